"""Arm Ethos-U through Vela: the figures greenlite reports are Vela's own, pruning and
clustering buy encoded weight bytes, and a file the NPU cannot run says why."""
import csv
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from export import vela
from tests.conftest import export_file


def _vela_cli(path, accelerator, out):
    """Vela's own command line on `path`: its summary CSV's row."""
    subprocess.run([sys.executable, "-c", vela._VELA, path, f"--accelerator-config={accelerator}",
                    f"--output-dir={out}"], check=True, capture_output=True, cwd=out)
    with open(glob.glob(os.path.join(out, "*_summary_*.csv"))[0]) as f:
        return next(csv.DictReader(f))


@pytest.mark.parametrize("accelerator", ["ethos-u55-128", "ethos-u85-256"])
def test_the_figures_are_those_of_running_vela(exported, accelerator, tmp_path):
    figures = vela.compile(exported["int8"], accelerator, str(tmp_path / "greenlite"))
    row = _vela_cli(exported["int8"], accelerator, str(tmp_path))
    assert figures["compiled"] and os.path.isfile(figures["path"])
    assert figures["sram_bytes"] == round(float(row["sram_memory_used"]) * 1024)
    assert figures["cycles_total"] == int(float(row["cycles_total"]))
    assert figures["inferences_per_s"] == pytest.approx(float(row["inferences_per_second"]))
    assert figures["inference_ms"] == pytest.approx(float(row["inference_time"]) * 1000)
    assert figures["encoded_weight_bytes"] == int(float(row["total_npu_encoded_weights"]))
    assert figures["clock_mhz"] * 1e6 == float(row["core_clock"])
    assert figures["cpu_ops"] == {}  # the digits CNN runs whole on the NPU
    # Time = cycles / clock: the model's own relation, in our units.
    assert figures["inference_ms"] == pytest.approx(
        figures["cycles_total"] / (figures["clock_mhz"] * 1e3), rel=1e-3)


def test_a_float_file_is_not_compiled_and_says_why(exported, tmp_path):
    figures = vela.compile(exported["float32"], "ethos-u55-128", str(tmp_path))
    assert figures["compiled"] is False and "float file stays on the CPU" in figures["reason"]
    assert figures["cpu_ops"]["CONV_2D"] == 2
    assert not glob.glob(str(tmp_path / "*.tflite"))  # nothing half-written left


def test_pruned_and_clustered_weights_encode_smaller(trained_model, digits, tmp_path):
    """Vela compresses zero runs and repeated values: the same network with 80 % of each
    kernel zeroed and the rest on 8 values per kernel encodes to fewer weight bytes."""
    from pipeline.stages.base import clone
    compressed = clone(trained_model)
    for layer in compressed.layers:
        weights = layer.get_weights()
        if not weights or weights[0].ndim < 2:
            continue
        kernel = weights[0]
        cut = np.quantile(np.abs(kernel), 0.8)
        kept = np.abs(kernel) >= cut
        centroids = np.quantile(kernel[kept], np.linspace(0, 1, 8))
        snapped = centroids[np.abs(kernel[..., None] - centroids).argmin(-1)]
        layer.set_weights([np.where(kept, snapped, 0).astype(kernel.dtype)] + weights[1:])
    dense = export_file(trained_model, "int8", digits, tmp_path / "dense.tflite")
    small = export_file(compressed, "int8", digits, tmp_path / "small.tflite")
    a = vela.compile(dense, "ethos-u55-128", str(tmp_path))
    b = vela.compile(small, "ethos-u55-128", str(tmp_path))
    assert a["weight_bytes"] == b["weight_bytes"]  # the same file size before encoding
    assert b["encoded_weight_bytes"] < 0.6 * a["encoded_weight_bytes"]
    assert b["cycles_total"] < a["cycles_total"]  # fewer bytes read from flash


def test_an_unknown_accelerator_is_refused_in_the_recipe():
    from pipeline import recipe as recipe_lib
    from pipeline.errors import RecipeError
    from tests.conftest import ROOT
    with pytest.raises(RecipeError, match="deploy: npu: unknown accelerator 'ethos-u99'; "
                                          "allowed: ethos-u55-32"):
        recipe_lib.load(f"{ROOT}/recipes/default.yaml", ["deploy.npu=[ethos-u99]"])
