"""A compression recipe end to end: structure verified in the files, failures keep earlier work."""
import json
import os

import pytest

from tests.conftest import run_pipeline

FAST = ["train.epochs=4", "train.early_stopping_patience=null", "prune.epochs=4",
        "quantize.epochs=1", "benchmark.num_runs=5", "benchmark.warmup_runs=0",
        "data.representative_samples=50"]


@pytest.fixture(scope="module")
def prune_qat_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pq") / "run"
    result = run_pipeline("prune_qat", workdir, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_prune_qat_report_holds_the_measured_structure(prune_qat_run):
    report = json.loads((prune_qat_run / "report.json").read_text())
    variants = {v["name"]: v for v in report["variants"]}
    assert sorted(variants) == ["prune_float32", "quantize_int8", "train_float32"]
    int8 = variants["quantize_int8"]
    assert int8["sparsity"] >= 0.89
    assert int8["weights"]["dense1"]["dtype"] == "int8"
    assert int8["gzip_ratio_vs_baseline"] > 5
    assert variants["train_float32"]["gzip_ratio_vs_baseline"] == 1
    stages = {s["name"]: s for s in report["stages"]}
    steps = stages["prune"]["metrics"]["schedule"]
    # The schedule fires within the steps trained (else tfmot prunes nothing).
    assert steps["begin_step"] + steps["frequency"] <= steps["end_step"] <= steps["total_steps"]
    assert stages["quantize"]["metrics"]["scheme"] == "Default8BitPrunePreserveQuantizeScheme"
    md = (prune_qat_run / "report.md").read_text()
    assert "| quantize_int8 | int8 |" in md and "| gzip smaller than baseline float32 (download) |" in md


def test_every_structure_figure_in_the_report_is_read_from_its_file(prune_qat_run):
    from export.tflite_file import kernel_stats, kernels_by_layer
    report = json.loads((prune_qat_run / "report.json").read_text())
    checked = 0
    for v in report["variants"]:
        claims = next(s["claims"] for s in report["stages"] if s["name"] == v["stage"])
        if not claims:
            assert "weights" not in v and "sparsity" not in v
            continue
        kernels = kernels_by_layer(str(prune_qat_run / v["path"]), sorted(claims["sparsity"]))
        assert sorted(kernels) == sorted(v["weights"]) == sorted(claims["sparsity"])
        zeros = sizes = 0
        for name, tensor in kernels.items():
            stats = kernel_stats(tensor.values)
            assert v["weights"][name] == {"dtype": tensor.dtype, **stats}, (v["name"], name)
            zeros += int((tensor.values == 0).sum())
            sizes += tensor.values.size
        assert v["sparsity"] == pytest.approx(zeros / sizes, abs=1e-12), v["name"]
        assert "violations" not in v
        checked += 1
    assert checked == 2  # prune_float32 and quantize_int8


def test_a_claim_the_file_does_not_hold_fails_the_run_after_the_report(tmp_path, monkeypatch):
    import numpy as np

    from pipeline.stages import prune
    original = prune.Prune.run

    def prune_then_fill_one_kernel(self, model, data, ctx):
        # The stage prunes and claims its sparsity, then (a bug) loses it in one layer.
        result = original(self, model, data, ctx)
        kernel = result.get_layer("dense1").kernel
        kernel.assign(np.where(kernel.numpy() == 0, 1e-3, kernel.numpy()))
        return result

    monkeypatch.setattr(prune.Prune, "run", prune_then_fill_one_kernel)
    workdir = tmp_path / "run"
    recipe = tmp_path / "lying.yaml"
    recipe.write_text(
        "model: {name: digits_cnn, options: {width: 0.25, dense_units: 32}}\n"
        "stages:\n  train: {epochs: 2, allow_chance: true}\n"
        "  prune: {target_sparsity: 0.5, epochs: 2, layers: [conv2, dense1]}\n"
        "export: {formats_by_stage: {prune: [float32]}}\n"
        "benchmark: {num_runs: 2, warmup_runs: 0, check_tflite_runtime: false}\n"
        "energy: {track: false}\n")
    result = run_pipeline(str(recipe), workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("greenlite: error: an exported file lost the structure its stages claim (see "
            "report.md): prune_float32: dense1: sparsity 0.0000 is more than 1 point below "
            "the target 0.50") in result.stderr
    report = json.loads((workdir / "report.json").read_text())
    v = next(v for v in report["variants"] if v["name"] == "prune_float32")
    assert v["weights"]["dense1"]["sparsity"] == 0.0  # the file's figure, not the claim
    assert v["sparsity"] < 0.5
    assert "**`prune_float32` fails its structure check**: dense1: sparsity 0.0000" in (
        workdir / "report.md").read_text()


def test_a_failing_stage_leaves_earlier_artifacts_untouched(prune_qat_run):
    quantize_model = prune_qat_run / "03_quantize" / "model.h5"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in
              [quantize_model, prune_qat_run / "report.json", prune_qat_run / "report.md"]}
    # preserve: clusters on a pruned, unclustered model is bad input at stage 3.
    result = run_pipeline("prune_qat", prune_qat_run, "quantize.preserve=clusters", *FAST)
    assert result.returncode == 2
    assert ("greenlite: error: stages.quantize.preserve: 'clusters', but no kernel of the "
            "input model is clustered") in result.stderr
    assert "Traceback" not in result.stderr
    for path, (mtime, content) in before.items():
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == content
    assert (prune_qat_run / "02_prune" / "model.h5").is_file()
    assert not [f for f in os.listdir(prune_qat_run) if f.startswith((".tmp-", ".old-"))]


ABORTING_LAYER = '''
import os
import sys

from pipeline.backend import keras


class Fragile(keras.layers.Layer):
    """Passes its input through; aborts the process when the converter loads it."""

    @classmethod
    def from_config(cls, config):
        if sys.argv[0].endswith(os.path.join("export", "convert.py")):
            os.abort()  # what an MLIR converter crash looks like from outside: SIGABRT
        return cls(**config)

    def call(self, x):
        return x
'''


def test_a_converter_crash_fails_its_variant_and_the_run_goes_on(tmp_path):
    from pipeline.backend import keras
    from models import user
    module = tmp_path / "fragile.py"
    module.write_text(ABORTING_LAYER)
    fragile = user.custom_objects_from(str(module))["Fragile"]
    inputs = keras.Input((8, 8, 1))
    x = fragile(name="fragile")(keras.layers.Flatten()(inputs))
    model_path = tmp_path / "fragile.keras"
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(str(model_path))
    workdir = tmp_path / "run"
    result = run_pipeline("default", workdir, f"model.name={model_path}",
                          f"model.custom_objects={module}", "train.epochs=1",
                          "train.allow_chance=true",  # one epoch: this test is about the crash
                          "export.formats=[float32, int8]", "benchmark.check_tflite_runtime=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train_float32 FAILED: the converter process crashed (SIGABRT)" in result.stdout
    assert "[export 2/2] train_int8" in result.stdout  # the run went on
    report = json.loads((workdir / "report.json").read_text())
    assert [v["error"] for v in report["variants"]] == [
        "the converter process crashed (SIGABRT)"] * 2
    assert "failed: the converter process crashed (SIGABRT)" in (workdir / "report.md").read_text()
