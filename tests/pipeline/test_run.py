"""End to end through the CLI, and what bad input does to a run directory."""
import json
import os

import pytest

from tests.conftest import run_cli, run_pipeline

FAST = ["train.epochs=3", "benchmark.num_runs=10", "benchmark.warmup_runs=1"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run") / "default"
    result = run_pipeline("default", workdir, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_default_recipe_end_to_end(default_run):
    workdir, result = default_run
    assert "[stage 1/1] train" in result.stdout and "[export 4/4]" in result.stdout
    report = json.loads((workdir / "report.json").read_text())
    assert 0.8 < report["baseline"]["accuracy"] <= 1
    variants = {v["format"]: v for v in report["variants"]}
    assert sorted(variants) == ["dynamic_range", "float16", "float32", "int8"]
    for v in variants.values():
        assert "error" not in v, v
        path = workdir / v["path"]
        assert v["path"] == os.path.join("export", f"train_{v['format']}.tflite")
        assert v["size_bytes"] == path.stat().st_size and 0 < v["gzip_bytes"] < v["size_bytes"]
        # Every format within 1 point of the float32 file; for int8 this is the
        # calibration's promise (calibrated on one example it loses ~6 points).
        assert abs(v["accuracy"] - variants["float32"]["accuracy"]) <= 0.01, v["format"]
        assert v["num_threads"] == 1
        # The report's figures are the benchmark's own for that file, not another's.
        with open(workdir / v["benchmark_path"]) as f:
            measured = json.load(f)
        assert v["latency_ms"] == {q: measured["latency_ms"][q] for q in ("p50", "p90", "p99",
                                                                           "mean")}
        assert (v["size_bytes"], v["accuracy"]) == (measured["size_bytes"], measured["accuracy"])
    assert variants["int8"]["size_bytes"] < 0.3 * variants["float32"]["size_bytes"]
    # int8 is calibrated on the recipe's representative_samples training inputs.
    import numpy as np
    assert np.load(workdir / "export" / "representative.npy").shape == (200, 8, 8, 1)
    # What an app must feed: the preprocessing, and the int8 file's quantization.
    assert "divided by 16" in report["data"]["preprocessing"]
    assert variants["int8"]["input"]["dtype"] == "int8" and variants["int8"]["input"]["scale"] > 0
    assert variants["float32"]["input"] == {"shape": [1, 8, 8, 1], "dtype": "float32",
                                            "scale": 0.0, "zero_point": 0}
    assert (workdir / "01_train" / "model.h5").is_file()
    assert (workdir / "tensorboard" / "train").is_dir()
    md = (workdir / "report.md").read_text()
    assert "| train_int8 | int8 |" in md and "![pareto](pareto.png)" in md
    assert "- `train_int8` takes int8 [1, 8, 8, 1], quantized as round(x / " in md
    assert (workdir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    page = (workdir / "report.html").read_text()
    assert "data:image/png;base64," in page and "train_int8" in page
    e = report["energy"]
    assert e["tracked"] and e["training_energy_kwh"] > 0 and e["training_emissions_kg"] > 0
    assert e["inference_mode"] == "estimated"  # whatever the machine: see test_energy.py
    stage = report["stages"][0]["energy"]
    assert stage["energy_kwh"] > 0 and stage["emissions_kg"] > 0
    for v in variants.values():  # the TDP share of one thread for the median latency
        assert v["joules_per_inference"] == pytest.approx(
            stage["cpu_tdp_w"] / stage["cpu_count"] * v["latency_ms"]["p50"] / 1000)
        assert v["extra_emissions_kg"] == 0  # no compression stage to repay
    assert "| train_int8 | int8 |" in md and "| — |" in md.split("| train_int8 | int8 |")[1].split("\n")[0]


@pytest.mark.parametrize("args, message", [
    (["--set", "train.epoch=3"], "stages.train.epoch: unknown key"),
    (["--set", "train.epochs=-1"], "stages.train.epochs: got -1; expected an integer >= 1"),
    (["--set", "data.source=npz", "--set", "data.path=/no/such.npz"],
     "data.path: '/no/such.npz' does not exist"),
    (["--recipe=recipes/nope.yaml"], "--recipe: 'recipes/nope.yaml' does not exist"),
    (["extra"], "unexpected arguments"),
])
def test_bad_input_leaves_the_run_directory_alone(tmp_path, args, message):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "report.json").write_text('{"earlier": true}')
    result = run_cli(["-m", "pipeline", f"--workdir={workdir}"] + args)
    assert result.returncode == 2
    assert f"greenlite: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert (workdir / "report.json").read_text() == '{"earlier": true}'
    assert sorted(os.listdir(workdir)) == ["report.json"]


def test_same_recipe_same_seed_gives_the_same_model_and_a_rerun_replaces_the_run(
        default_run, tmp_path):
    import shutil
    workdir, _ = default_run
    again = tmp_path / "again"
    shutil.copytree(workdir, again)  # an earlier, finished run in the directory
    result = run_pipeline("default", again, "export.formats=[float32]", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    first = json.loads((workdir / "report.json").read_text())
    second = json.loads((again / "report.json").read_text())
    assert second["baseline"]["accuracy"] == first["baseline"]["accuracy"]
    assert ((again / "export" / "train_float32.tflite").read_bytes()
            == (workdir / "export" / "train_float32.tflite").read_bytes())
    # The rerun replaced the run whole: none of the earlier run's files stay.
    assert f"replacing the earlier run in {again}" in result.stdout
    assert sorted(f for f in os.listdir(again / "export") if f.endswith(".tflite")) == [
        "train_float32.tflite"]
    assert [v["path"] for v in second["variants"]] == ["export/train_float32.tflite"]
    events = [f for _, _, files in os.walk(again / "tensorboard") for f in files]
    assert len([f for f in events if "tfevents" in f]) == 2  # this run's train and validation
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".tmp-", ".old-"))]


PREFLIGHT = """
import runpy, sys
sys.argv = ["pipeline", "--workdir=/nonexistent/never", "--set", "train.epoch=3"]
try:
    runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
except SystemExit as e:
    print(e.code, "tensorflow" in sys.modules)
"""


def test_a_recipe_error_comes_before_tensorflow_is_imported():
    result = run_cli(["-c", PREFLIGHT])
    assert "greenlite: error: stages.train.epoch: unknown key" in result.stderr
    assert result.stdout.split() == ["2", "False"]
