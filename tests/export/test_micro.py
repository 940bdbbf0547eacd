"""tflite-micro on real int8 files: scores, the arena, missing ops, the C array."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from export import micro
from tests.conftest import export_file, run_cli


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_model, digits):
    """The trained digits CNN as int8 and its test split (only the format
    these tests need: conftest's `exported` converts every format)."""
    directory = tmp_path_factory.mktemp("micro")
    data = directory / "test_data.npz"
    np.savez(data, x=digits.test.x, y=digits.test.y)
    return {"int8": export_file(trained_model, "int8", digits, directory / "model_int8.tflite"),
            "data": str(data)}


def test_micro_runtime_scores_like_litert(exported):
    result = micro.check(exported["int8"], exported["data"])
    assert result["runs"] and result["missing_ops"] == []
    assert result["examples"] == len(np.load(exported["data"])["y"])
    # The same int8 arithmetic: TFLM's reference kernels and LiteRT's
    # optimized ones may round a multiply differently (one output step), so
    # a rare top-1 may flip; the accuracies are within half a point.
    assert result["top1_agreement"] >= 0.99
    assert abs(result["micro"]["accuracy"] - result["litert"]["accuracy"]) <= 0.005
    assert result["micro"]["accuracy"] > 0.8
    with open(exported["int8"], "rb") as f:
        assert result["flash_bytes"] == len(f.read())


def test_the_measured_arena_is_the_smallest_that_runs(exported, tmp_path):
    with open(exported["int8"], "rb") as f:
        model_bytes = f.read()
    arena = micro.measure_arena(model_bytes)
    n = arena["arena_bytes"]
    assert n % micro.ALIGNMENT == 0 and arena["fails_at_bytes"] == n - micro.ALIGNMENT
    log = str(tmp_path / "stderr.txt")
    # Checked here, independently of the search: runs at N, fails 16 bytes below.
    assert micro._try(model_bytes, n, None, log)[0] is True
    assert micro._try(model_bytes, n - micro.ALIGNMENT, None, log)[0] is False
    # TFLM's recording allocator reports what stays allocated; planning the
    # tensors needs some room more while the interpreter is set up.
    assert 0 < arena["recorded_bytes"] <= n


@pytest.fixture(scope="module")
def gelu_int8(tmp_path_factory, digits):
    """An int8 file with a GELU, an op tflite-micro has no kernel for."""
    from pipeline.backend import keras
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="gelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    return export_file(model, "int8", digits, tmp_path_factory.mktemp("gelu") / "gelu.tflite")


def test_an_op_the_micro_runtime_lacks_is_reported_not_crashed(gelu_int8, exported):
    result = micro.check(gelu_int8, exported["data"])
    assert result["runs"] is False
    assert result["missing_ops"] == ["GELU"]
    assert "GELU" in result["reason"]


def test_registered_ops_are_read_from_the_installed_runtime():
    ops = micro.registered_ops()
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "DEPTHWISE_CONV_2D"} <= ops
    assert "GELU" not in ops and "REDUCE_PROD" not in ops


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler (g++) on this machine")
def test_the_c_array_compiles_and_holds_the_file(exported, tmp_path):
    source, header = micro.write_c_array(exported["int8"], str(tmp_path), "train_int8")
    symbol = micro.c_symbol("train_int8")
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "train_int8_model_data.h"\n'
        "int main() {\n"
        f"  if (reinterpret_cast<std::uintptr_t>({symbol}) % 16 != 0) return 3;\n"
        f"  fwrite({symbol}, 1, {symbol}_len, stdout);\n  return 0;\n}}\n")
    binary = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++17", "-o", str(binary), str(tmp_path / "main.cc"), source],
                   check=True, cwd=tmp_path)
    out = subprocess.run([str(binary)], capture_output=True, check=True).stdout
    with open(exported["int8"], "rb") as f:
        assert out == f.read()
    assert os.path.basename(header) == "train_int8_model_data.h"
    # The alignment TFLM needs is declared, not left to the compiler: GCC on
    # x86-64 aligns a large array to 16 bytes anyway (so the run above passes
    # without it), a Cortex-M toolchain does not.
    with open(source) as f:
        definitions = [line for line in f if f"{symbol}[]" in line]
    assert definitions == [f"alignas(16) const unsigned char {symbol}[] = {{\n"]


def test_cli_writes_json_and_refuses_a_missing_file(exported, tmp_path):
    out = tmp_path / "micro.json"
    result = run_cli(["-m", "export.micro", f"--model={exported['int8']}",
                      f"--data={exported['data']}", "--max_examples=20", f"--json={out}"])
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["examples"] == 20
    result = run_cli(["-m", "export.micro", f"--model={tmp_path / 'no.tflite'}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"micro: error: --model: {str(tmp_path / 'no.tflite')!r} does not exist"]


@pytest.mark.parametrize("options, missing", [
    ({}, ["GELU", "REDUCE_PROD"]),
    ({"activation": "relu", "projection": "conv1x1"}, []),
])
def test_the_zoo_transformer_has_a_microcontroller_build(tmp_path, options, missing):
    """GELU and the Dense-on-a-sequence reshape (REDUCE_PROD) have no TFLM kernels;
    ReLU and 1x1 convolutions do, and that build runs in the micro runtime."""
    import models
    from export.convert import convert
    model = models.build("tiny_transformer", (16,), 32,
                         {"width": 16, "heads": 2, "layers": 1, "mlp_width": 32, **options})
    tokens = np.random.default_rng(0).integers(0, 32, (20, 16)).astype(np.int32)
    path = tmp_path / "lm_int8.tflite"
    path.write_bytes(convert(model, "int8", tokens))
    result = micro.check(str(path))
    assert result["missing_ops"] == missing
    assert result["runs"] is (not missing)
