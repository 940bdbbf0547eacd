"""tf.distribute: the recipe's distribute: section, checked early and run over two CPU replicas."""
import json
import os

import pytest

from pipeline import recipe as recipe_lib
from pipeline.errors import RecipeError
from tests.conftest import ROOT, run_cli, slow

DEFAULT = os.path.join(ROOT, "recipes", "default.yaml")


@pytest.mark.parametrize("overrides, message", [
    (["distribute.strategy=parameter_server"],
     "distribute.strategy: got 'parameter_server'; allowed values: 'default', 'mirrored', "
     "'multi_worker', 'tpu'"),
    (["distribute.tpu=my-tpu"], "distribute: tpu: only the tpu strategy takes a TPU address; "
                                "the strategy is 'default'"),
    (["distribute.devices=2"], "distribute: devices: only the mirrored strategy takes devices; "
                               "the strategy is 'default'"),
    (["distribute.strategy=mirrored", "distribute.devices=0"],
     "distribute: devices: got 0; expected a replica count of at least 1 or a list of device "
     "names"),
    (["distribute.strategy=mirrored", "distribute.devices=3", "train.batch_size=32"],
     "stages.train.batch_size: 32 does not split across the 3 replicas of "
     "distribute.strategy 'mirrored'; batch_size is the global batch: give a multiple of 3"),
])
def test_bad_distribute_settings_are_one_recipe_error(overrides, message):
    with pytest.raises(RecipeError) as e:
        recipe_lib.load(DEFAULT, overrides)
    assert str(e.value) == message


def test_each_training_stage_runs_in_the_strategys_scope(tmp_path):
    """In this process TensorFlow has started, so one named device: the stages'
    models are made in the MirroredStrategy's scope, as with more replicas."""
    from tests.conftest import run_pipeline
    workdir = tmp_path / "run"
    result = run_pipeline(_recipe(tmp_path, '["/cpu:0"]'), workdir, "prune.epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    assert [s["distribute"] for s in report["stages"]] == [
        {"strategy": "MirroredStrategy", "replicas": 1}] * 2


def _recipe(tmp_path, devices):
    recipe = tmp_path / "mirrored.yaml"
    recipe.write_text(
        "model: {name: mlp, options: {units: [32]}}\n"
        "stages:\n  train: {epochs: 1, batch_size: 64}\n"
        "  prune: {target_sparsity: 0.5, epochs: 2, batch_size: 64}\n"
        "export: {formats_by_stage: {prune: [float32]}, doctor: false}\n"
        "benchmark: {num_runs: 2, warmup_runs: 0, check_tflite_runtime: false}\n"
        "energy: {track: false}\ndeploy: {micro: false, metadata: false}\n"
        f"distribute: {{strategy: mirrored, devices: {devices}}}\n")
    return str(recipe)


@slow("45-65 s (a new TensorFlow process)")
def test_two_cpu_replicas_train_prune_and_keep_the_sparsity(tmp_path):
    """MirroredStrategy over two logical CPU devices (a new process: they can only
    be made before TensorFlow starts); tfmot's masks are reduced across replicas."""
    recipe = _recipe(tmp_path, 2)
    workdir = tmp_path / "run"
    result = run_cli(["-m", "pipeline", f"--recipe={recipe}", f"--workdir={workdir}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MirroredStrategy over 2 replica(s) (/cpu:0, /cpu:1)" in result.stdout
    report = json.loads((workdir / "report.json").read_text())
    variant = report["variants"][0]
    assert variant["sparsity"] == pytest.approx(0.5, abs=0.01) and "violations" not in variant
    assert [s["distribute"]["replicas"] for s in report["stages"]] == [2, 2]
    # The schedule fires within the steps of the global batch.
    steps = {s["name"]: s for s in report["stages"]}["prune"]["metrics"]["schedule"]
    assert steps["total_steps"] == 2 * -(-report["data"]["train"] // 64)
    assert steps["begin_step"] + steps["frequency"] <= steps["end_step"] <= steps["total_steps"]


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG is not set; set TF_CONFIG on each machine"),
    ("{not json", "TF_CONFIG is not a cluster and task (JSONDecodeError"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "TF_CONFIG's cluster has no chief or worker addresses"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "TF_CONFIG's task worker 2 is not in its cluster (0 chief, 2 worker(s))"),
])
def test_multi_worker_without_a_usable_tf_config_stops_before_tensorflow(
        tf_config, message, monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    recipe = recipe_lib.load(DEFAULT, ["distribute.strategy=multi_worker"])
    with pytest.raises(RecipeError) as e:
        recipe_lib.check_inputs(recipe)
    assert str(e.value).startswith("distribute.strategy multi_worker: ") and message in str(e.value)
    assert "--workers=N" in str(e.value)


def test_the_chief_is_tf_configs_chief_or_worker_0(monkeypatch):
    from pipeline import distribute
    recipe = recipe_lib.load(DEFAULT, ["distribute.strategy=multi_worker"])
    for cluster, task, chief in (({"worker": ["a:1", "b:2"]}, ("worker", 0), True),
                                 ({"worker": ["a:1", "b:2"]}, ("worker", 1), False),
                                 ({"chief": ["c:0"], "worker": ["a:1"]}, ("worker", 0), False),
                                 ({"chief": ["c:0"], "worker": ["a:1"]}, ("chief", 0), True)):
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}))
        assert distribute.is_chief(recipe.distribute) is chief, (cluster, task)
    assert distribute.is_chief(recipe_lib.load(DEFAULT).distribute)  # one process: always


@pytest.mark.parametrize("flags, message", [
    (["--workers=0"], "--workers: got 0; expected at least 1"),
    (["--workers=2", "--resume"], "--resume: not with --workers"),
])
def test_bad_launcher_flags(flags, message, tmp_path):
    result = run_cli(["-m", "pipeline", f"--recipe={DEFAULT}", f"--workdir={tmp_path / 'run'}",
                      *flags])
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("greenlite: error") == 1 and not (tmp_path / "run").exists()


PRUNE_PQAT = (
    "model: {name: mlp, options: {units: [64]}}\n"
    "stages:\n  train: {epochs: 3, batch_size: 64}\n"
    "  prune: {target_sparsity: 0.75, epochs: 2, batch_size: 64}\n"
    "  quantize: {preserve: sparsity, epochs: 1, batch_size: 64}\n"
    "export: {formats_by_stage: {quantize: [int8]}, doctor: false}\n"
    "benchmark: {num_runs: 2, warmup_runs: 0, check_tflite_runtime: false}\n"
    "energy: {track: false}\ndeploy: {micro: false, metadata: false}\n")


def test_a_worker_that_is_not_the_chief_trains_and_writes_nothing(tmp_path, monkeypatch):
    """The non-chief branch of a multi-worker run, in one process (the collective
    run itself: test_prune_then_pqat_on_two_local_workers)."""
    from pipeline import distribute
    from tests.conftest import run_pipeline
    monkeypatch.setattr(distribute, "is_chief", lambda cfg: False)
    recipe = tmp_path / "worker.yaml"
    recipe.write_text(PRUNE_PQAT.replace("epochs: 3", "epochs: 1").replace("epochs: 2", "epochs: 1"))
    result = run_pipeline(str(recipe), tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[stage 3/3] quantize done" in result.stdout
    assert "worker: every stage done; the chief writes the run directory" in result.stdout
    assert "converting" not in result.stdout and os.listdir(tmp_path) == ["worker.yaml"]


@slow("95 s (two TensorFlow workers and a one-process run)")
def test_prune_then_pqat_on_two_local_workers(tmp_path):
    """--workers=2: two processes, one MultiWorkerMirroredStrategy; the chief alone
    writes; the sparsity holds in the int8 file and the accuracy is the one-process run's."""
    from tests.conftest import run_pipeline
    recipe = tmp_path / "prune_pqat.yaml"
    recipe.write_text(PRUNE_PQAT)
    workdir = tmp_path / "two"
    result = run_cli(["-m", "pipeline", f"--recipe={recipe}", f"--workdir={workdir}",
                      "--workers=2"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "[worker 1]" in result.stdout and "this is worker 1" in result.stdout
    assert "[worker 1] " in result.stdout and "worker: every stage done" in result.stdout
    assert not any(line.startswith("[worker 1]") and "converting" in line
                   for line in result.stdout.splitlines())  # only the chief exports
    report = json.loads((workdir / "report.json").read_text())
    assert [s["distribute"]["replicas"] for s in report["stages"]] == [2, 2, 2]
    int8 = report["variants"][0]
    assert int8["sparsity"] == pytest.approx(0.75, abs=0.01) and "violations" not in int8
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".tmp-", "two."))]

    one = run_pipeline(str(recipe), tmp_path / "one")
    assert one.returncode == 0, one.stderr[-2000:]
    single = json.loads((tmp_path / "one" / "report.json").read_text())["variants"][0]
    assert int8["accuracy"] == pytest.approx(single["accuracy"], abs=0.03)
