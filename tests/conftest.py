"""Shared fixtures: small real data and a small trained model, built once per session.

Tests write only under temporary directories: HOME, TMPDIR (TensorFlow's
autograph writes a module file there for each function it converts) and the
caches that Keras, Matplotlib and greenlite's runtime gate would fill point
into one made for this session (and inherited by every child process a test
starts).
"""
import atexit
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOME = tempfile.mkdtemp(prefix="greenlite-tests-home-")
for _name, _path in {"HOME": _HOME, "XDG_CACHE_HOME": os.path.join(_HOME, ".cache"),
                     "MPLCONFIGDIR": os.path.join(_HOME, ".config", "matplotlib"),
                     "KERAS_HOME": os.path.join(_HOME, ".keras"),
                     "TMPDIR": os.path.join(_HOME, "tmp")}.items():
    os.environ[_name] = _path
os.makedirs(os.environ["TMPDIR"])
tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def slow(reason):
    """The slow tier's mark: skipped unless GREENLITE_SLOW_TESTS=1, and selected by
    `-m slow` (.ci/run's second pass runs exactly these).

        @slow("95 s: two TensorFlow workers")
        def test_...():
    """
    def mark(test):
        test = pytest.mark.slow(test)
        return pytest.mark.skipif(os.environ.get("GREENLITE_SLOW_TESTS") != "1",
                                  reason=f"{reason}; set GREENLITE_SLOW_TESTS=1")(test)
    return mark


SLOW_MARKS = [pytest.mark.slow, pytest.mark.skipif(
    os.environ.get("GREENLITE_SLOW_TESTS") != "1", reason="set GREENLITE_SLOW_TESTS=1")]


def _remove_home(creator=os.getpid()):
    # At the exit of the process that made it, not at the end of a session: a
    # process may run several sessions (mutmut runs pytest.main many times, and
    # forks children that must not remove their parent's directory).
    if os.getpid() == creator:
        shutil.rmtree(_HOME, ignore_errors=True)


atexit.register(_remove_home)


# Modules whose end-to-end runs take minutes go first, so that with several
# test processes (pytest-xdist) the last minutes are not one long module alone.
_SLOW_MODULES = ("test_run_edge_recipes.py", "test_rundir.py", "test_run_compression.py",
                 "test_user.py", "test_run.py", "test_distillation.py", "test_quantize.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


@pytest.fixture(scope="session", autouse=True)
def deterministic_ops():
    """Fixtures train models once per session: deterministic kernels keep them identical
    from run to run, as the runner does for recipes."""
    from pipeline.backend import tf
    tf.config.experimental.enable_op_determinism()


@pytest.fixture(scope="session")
def digits():
    """The embedded digits with the default split."""
    from pipeline.data import DataConfig, load
    return load(DataConfig(), seed=0)


@pytest.fixture(scope="session")
def small_model():
    """A narrow, uncompiled digits CNN (fast to train and convert). Seeded: its
    initial weights must not depend on which tests ran before in this process."""
    import models
    from pipeline.backend import keras
    keras.utils.set_random_seed(0)
    return models.build("digits_cnn", (8, 8, 1), 10, {"width": 0.25, "dense_units": 32})


@pytest.fixture(scope="session")
def trained_model(digits, small_model):
    """`small_model` trained for a few epochs (about 90% test accuracy)."""
    from pipeline.backend import keras
    from pipeline.stages.base import clone
    keras.utils.set_random_seed(0)
    model = clone(small_model)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.train.x, digits.train.y, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def small_lm():
    """A small byte-level Transformer (context 32, matmul embeddings) trained for a few
    epochs on the start of pydoc_data's text: its greedy continuations are text-like,
    with margins between the top logits well above float rounding."""
    import models
    from pipeline.backend import keras
    from pipeline.data.text import default_text
    keras.utils.set_random_seed(0)
    model = models.build("tiny_transformer", (32,), 256,
                         {"width": 32, "heads": 2, "layers": 1, "mlp_width": 64,
                          "embeddings": "matmul"})
    tokens = np.frombuffer(default_text().encode()[:60000], np.uint8).astype(np.int32)
    starts = np.arange(0, len(tokens) - 33, 16)
    x = np.stack([tokens[s:s + 32] for s in starts])
    y = np.stack([tokens[s + 1:s + 33] for s in starts])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def exported(tmp_path_factory, trained_model, digits):
    """The trained model converted to every format: {format: path}, plus test data."""
    from export.convert import convert
    from export.formats import TFLITE
    from pipeline.files import atomic_write_bytes
    directory = tmp_path_factory.mktemp("exported")
    paths = {}
    for fmt in TFLITE:  # the ONNX files: tests/export/test_onnx.py
        path = directory / f"model_{fmt}.tflite"
        atomic_write_bytes(path, convert(trained_model, fmt, digits.representative(100, 0)))
        paths[fmt] = str(path)
    data = directory / "test_data.npz"
    np.savez(data, x=digits.test.x, y=digits.test.y)
    paths["data"] = str(data)
    return paths


def run_cli(args, cwd=ROOT, env=None, timeout=600):
    """Runs `python <args>` in a child process; returns the CompletedProcess."""
    import subprocess
    return subprocess.run([sys.executable] + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_pipeline(recipe, workdir, *overrides, resume=False):
    """Runs the pipeline on recipes/<recipe>.yaml (or a recipe file's absolute
    path) with `--set` overrides, as
    `python -m pipeline` does, in this process (one TensorFlow start-up saved
    per run: the suite runs a dozen); returns a CompletedProcess with its
    exit status and what it printed. `resume`: as the CLI's --resume.
    The converter and the benchmark run in their child processes, as in a
    run (the converter child is kept between runs: one TensorFlow start-up
    per test process). The command line itself is tested through `run_cli`.

    The tflite-runtime gate is off unless an override sets it: it needs the
    package registry (tests/export/test_compat.py tests it where one is reachable).
    So is the quantization doctor (seconds per int8 variant; tests/export/test_doctor.py),
    and so are the deploy checks (the Android metadata writer's environment
    would be made under ~/.cache; tests/pipeline/test_deploy.py runs them
    with the environment under a temporary directory).
    """
    import contextlib
    import io
    import subprocess

    from pipeline import recipe as recipe_lib
    from pipeline.backend import keras
    from pipeline.errors import GreenliteError
    from pipeline.run import Runner
    if not any(o.startswith("benchmark.check_tflite_runtime=") for o in overrides):
        overrides += ("benchmark.check_tflite_runtime=false",)
    if not any(o.startswith("export.doctor=") for o in overrides):
        overrides += ("export.doctor=false",)
    for key in ("deploy.micro", "deploy.metadata"):
        if not any(o.startswith(key + "=") for o in overrides):
            overrides += (key + "=false",)
    if not any(o.startswith("deploy.npu=") for o in overrides):
        overrides += ("deploy.npu=[]",)  # Vela: a second a file (tests/export/test_vela.py)
    out, err, status = io.StringIO(), io.StringIO(), 0
    keras.backend.clear_session()  # layer names and graphs as in a fresh process
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            path = recipe if os.path.isabs(recipe) else os.path.join(ROOT, "recipes",
                                                                       f"{recipe}.yaml")
            loaded = recipe_lib.load(path, overrides)
            recipe_lib.check_inputs(loaded)
            resume_from = None
            if resume:
                from pipeline import resume as resume_lib
                resume_from = resume_lib.locate(str(workdir), loaded)
            Runner(loaded, str(workdir), log=lambda line: print(line, flush=True),
                   resume_from=resume_from).run()
        except GreenliteError as e:
            print(f"greenlite: error: {e}", file=sys.stderr)
            status = 2
    return subprocess.CompletedProcess(["pipeline", recipe, *overrides], status, out.getvalue(),
                                       err.getvalue())


def stage_config_error(stage_type, settings):
    """The RecipeError message of building a stage's Config from `settings`."""
    from pipeline import config, stages
    from pipeline.errors import RecipeError
    try:
        config.build(stages.get(stage_type).Config, settings, f"stages.{stage_type}")
    except RecipeError as e:
        return str(e)
    raise AssertionError(f"{settings} was accepted")


def run_stage(stage_type, settings, model, data, tmp_path, claims=None, name=None,
              teachers=None, log=None):
    """Runs one stage as the runner would; returns (model, ctx).

    `claims`: the previous stage's structure.Claims; `teachers`: the earlier
    stages' models by name.
    """
    from pipeline import config as config_lib
    from pipeline import stages
    name = name or stage_type
    cls = stages.get(stage_type)
    cfg = config_lib.build(cls.Config, settings, f"stages.{name}")
    ctx = stage_context(tmp_path, name, claims, teachers, log)
    return cls(cfg).run(model, data, ctx), ctx


def stage_context(tmp_path, name, claims=None, teachers=None, log=None):
    """The RunContext the runner gives stage `name` (seed 0, under `tmp_path`)."""
    from pipeline.context import RunContext
    from pipeline.structure import Claims
    return RunContext(workdir=str(tmp_path), seed=0, stage_name=name,
                      stage_dir=str(tmp_path / name), log=log or (lambda line: None),
                      claims=claims or Claims(), models=dict(teachers or {}))


def export_file(model, fmt, data, path):
    """Converts `model` in-process and writes `path`; returns the path as str."""
    from export.convert import convert
    from pipeline.files import atomic_write_bytes
    atomic_write_bytes(path, convert(model, fmt, data.representative(100, 0)))
    return str(path)


def tflite_accuracy(path, data):
    from export import benchmark
    return benchmark.benchmark(path, (data.test.x, data.test.y), num_runs=1)["accuracy"]
