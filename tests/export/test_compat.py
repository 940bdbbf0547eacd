"""The runtime gate, for real: a separate environment with numpy<2 and tflite-runtime 2.14."""
import json
import os
import sys

import numpy as np
import pytest

from export import compat
from pipeline import runtime_gate, verdicts


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory):
    """The gate's environment, made under the test's temporary directory.

    It needs the package registry (tflite-runtime 2.14 and numpy 1.26, ~20 MB)
    and a Python with a tflite-runtime 2.14 wheel (3.8-3.11): without either
    these tests are skipped, saying why.
    """
    try:
        return compat.ensure_env(str(tmp_path_factory.mktemp("env") / "tflite-runtime-2.14"))
    except compat.CompatError as e:
        pytest.skip(f"the tflite-runtime 2.14 environment cannot be built here: {e}")


def test_the_environment_is_the_old_runtime(runtime_python):
    assert compat.runtime_name(runtime_python) == "tflite-runtime 2.14.0"
    env_dir = os.path.dirname(os.path.dirname(runtime_python))
    assert compat.ensure_env(env_dir) == runtime_python  # made once, then reused


def test_which_files_load_on_tflite_runtime_2_14(runtime_python, exported):
    for fmt in ("float32", "float16", "int8"):
        r = compat.check(runtime_python, exported[fmt], num_runs=2, num_threads=2)
        assert r["loads"] and r["reason"] is None and r["median_ms"] > 0, fmt
        assert r["num_threads"] == 2  # as the benchmark there reports it
    # TF 2.21 writes FULLY_CONNECTED v12 for dynamic-range weights; 2.14 knows up to v11.
    r = compat.check(runtime_python, exported["dynamic_range"], num_runs=2)
    assert not r["loads"]
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" in r["reason"]
    assert "FULLY_CONNECTED v12" in compat.ops_text(exported["dynamic_range"])


def test_the_gate_scores_each_file_there_and_compares_it_with_litert(runtime_python, exported):
    r = compat.check(runtime_python, exported["int8"], num_runs=1, data=exported["data"])
    assert r["loads"] and r["agrees"] is True and r["reason"] is None
    assert abs(r["accuracy"] - r["reference"]["accuracy"]) <= 0.01
    assert 0.5 < r["accuracy"] <= 1 and 0 <= r["max_abs_diff"] < 1


def _wrong_runtime(tmp_path, other_file):
    """A "runtime" that loads and runs every file it is given, but computes another
    model (`other_file`): what a runtime with a broken kernel looks like from outside.
    It runs export/benchmark.py with its `benchmark` pointed at the other file, so it
    lies the same way whether it serves many files or runs for one."""
    wrapper = tmp_path / "wrong_runtime.py"
    wrapper.write_text(f"""import importlib.util, sys
spec = importlib.util.spec_from_file_location("benchmark", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
honest = module.benchmark
module.benchmark = lambda model, *args, **kwargs: honest({str(other_file)!r}, *args, **kwargs)
sys.exit(module.main(sys.argv[2:]))
""")
    script = tmp_path / "wrong-python"
    script.write_text(f'#!/bin/bash\nexec {sys.executable} {wrapper} "$@"\n')
    script.chmod(0o755)
    return str(script)


def test_a_file_that_runs_but_disagrees_is_marked_wrong(exported, small_model, tmp_path):
    from export.convert import convert
    untrained = tmp_path / "untrained.tflite"
    untrained.write_bytes(convert(small_model, "int8", np.zeros((1, 8, 8, 1), np.float32)))
    wrong = _wrong_runtime(tmp_path, untrained)
    r = compat.check(wrong, exported["int8"], num_runs=1, data=exported["data"])
    assert r["loads"] and r["agrees"] is False
    assert r["reason"].startswith("loads but wrong: accuracy ")
    assert r["max_abs_diff"] > 0
    assert verdicts.runtime_verdict(r).startswith("loads but WRONG: accuracy")
    # The same file in the same runtime agrees with itself.
    same = compat.check(sys.executable, exported["int8"], num_runs=1, data=exported["data"])
    assert same["agrees"] is True and same["max_abs_diff"] == 0


def test_agreement_on_perplexity():
    outputs = np.zeros((2, 4), np.float32)
    ok = compat.agreement({"accuracy": 0.5, "perplexity": 10.1}, {"accuracy": 0.5, "perplexity": 10.0},
                          outputs, outputs)
    assert ok["agrees"] and ok["max_abs_diff"] == 0
    bad = compat.agreement({"accuracy": 0.5, "perplexity": 214.9}, {"accuracy": 0.5, "perplexity": 5.34},
                           outputs + 3, outputs)
    assert not bad["agrees"] and bad["max_abs_diff"] == 3
    assert bad["reason"] == ("loads but wrong: perplexity 214.9 against LiteRT's 5.34 "
                             "(max output difference 3)")


def test_the_report_records_the_result(runtime_python, exported, tmp_path):
    import shutil
    (tmp_path / "export").mkdir()
    variants = []
    for fmt in ("float32", "dynamic_range"):
        shutil.copy(exported[fmt], tmp_path / "export" / f"m_{fmt}.tflite")
        variants.append({"name": f"m_{fmt}", "stage": "train", "format": fmt,
                         "path": f"export/m_{fmt}.tflite", "size_bytes": 1, "gzip_bytes": 1,
                         "accuracy": 0.9, "latency_ms": {"p50": 1, "p90": 1, "p99": 1, "mean": 1}})
    report = {"recipe": {"name": "t"}, "data": {"description": "d", "train": 1, "val": 1, "test": 1},
              "baseline": {"stage": "train", "keras_accuracy": 0.9, "params": 1},
              "stages": [], "variants": variants, "energy": {"tracked": False, "reason": "test"},
              "seconds": 1.0}
    (tmp_path / "report.json").write_text(json.dumps(report))
    name, rows = runtime_gate.check_run(str(tmp_path), runtime_python)
    saved = json.loads((tmp_path / "report.json").read_text())
    result = {v["name"]: v["runtimes"][name]["loads"] for v in saved["variants"]}
    assert result == {"m_float32": True, "m_dynamic_range": False}
    md = (tmp_path / "report.md").read_text()
    assert "**`m_dynamic_range` does not load on tflite-runtime 2.14.0**" in md
    assert "| loads on tflite-runtime 2.14.0 |" in md


def test_a_run_without_a_report(tmp_path):
    with pytest.raises(compat.CompatError, match="holds no report.json"):
        runtime_gate.check_run(str(tmp_path), "python-never-started")


def test_without_a_registry_the_environment_fails_with_one_clear_error(tmp_path, monkeypatch):
    # What an offline machine sees: pip cannot reach an index.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    env_dir = tmp_path / "env"
    with pytest.raises(compat.CompatError, match=r"cannot set up tflite-runtime==2\.14\.0 in "):
        compat.ensure_env(str(env_dir))
    assert not list(env_dir.glob(".greenlite-*"))  # not marked as made


@pytest.mark.parametrize("mine, theirs, agrees", [
    ({"accuracy": 0.5, "perplexity": 10.15}, {"accuracy": 0.5, "perplexity": 10.0}, True),  # +1.5 %
    ({"accuracy": 0.5, "perplexity": 10.25}, {"accuracy": 0.5, "perplexity": 10.0}, False),  # +2.5 %
    ({"accuracy": 0.5, "perplexity": 9.75}, {"accuracy": 0.5, "perplexity": 10.0}, False),  # -2.5 %
    ({"accuracy": 0.509, "perplexity": None}, {"accuracy": 0.5, "perplexity": None}, True),  # 0.9 pt
    ({"accuracy": 0.488, "perplexity": None}, {"accuracy": 0.5, "perplexity": None}, False),  # 1.2 pt
])
def test_the_gate_tolerates_two_percent_of_perplexity_and_one_point_of_accuracy(mine, theirs,
                                                                                 agrees):
    """At the edges of the tolerances and either way: 2 % read as a fraction (200 %) or
    as 0.02 %, or a one-sided check, would each give one of these the other answer."""
    outputs = np.zeros((2, 4), np.float32)
    assert compat.agreement(mine, theirs, outputs, outputs)["agrees"] is agrees


def test_a_stateful_streaming_file_is_judged_by_the_old_runtime_itself(runtime_python, tmp_path):
    """A microWakeWord-style file (a state variable, an op with no output) once stopped
    our benchmark, and the gate read that as "does not load"; the verdict is now the
    runtime's own."""
    from tests.export.test_benchmark_robustness import _stateful_file
    path = _stateful_file(tmp_path)
    result = compat.check(runtime_python, path, num_runs=2)
    assert result["loads"] is True and result["reason"] is None, result
