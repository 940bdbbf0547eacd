"""The runtime gate, for real: a separate environment with numpy<2 and tflite-runtime 2.14."""
import json
import os

import pytest

from export import compat
from pipeline import runtime_gate


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
    assert not (env_dir / ".greenlite-tflite-runtime-2.14.0").exists()  # not marked as made
