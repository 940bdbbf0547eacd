"""Each export format produces a real TFLite file that the interpreter runs."""
import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from export.convert import FORMATS, convert, convert_in_child
from pipeline.errors import ExportError


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_runs_in_the_interpreter(exported, fmt, trained_model, digits):
    interpreter = Interpreter(model_path=exported[fmt])
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    x = digits.test.x[:1]
    if fmt == "int8":
        assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
        scale, zero_point = inp["quantization"]
        x = np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8)
    else:
        assert inp["dtype"] == np.float32
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(out["index"])
    assert got.shape == (1, 10)
    if fmt != "int8":
        expected = trained_model.predict(digits.test.x[:1], verbose=0)
        np.testing.assert_allclose(got, expected, atol=0.1 if fmt == "float32" else 0.5)


def test_sizes_shrink_as_expected(exported):
    size = {fmt: os.path.getsize(exported[fmt]) for fmt in FORMATS}
    assert size["float16"] < 0.6 * size["float32"]
    assert size["dynamic_range"] < 0.4 * size["float32"]
    assert size["int8"] < 0.4 * size["float32"]


def test_int8_only_uses_integer_builtins(exported):
    # Full-integer files hold int8 weights: no float32 tensor larger than a bias.
    interpreter = Interpreter(model_path=exported["int8"])
    float_tensors = [t for t in interpreter.get_tensor_details()
                     if t["dtype"] == np.float32 and np.prod(t["shape"]) > 64]
    assert float_tensors == []


def test_int8_without_representative_data(trained_model):
    with pytest.raises(ExportError, match="int8 needs representative data"):
        convert(trained_model, "int8", None)


def test_unknown_format(trained_model):
    with pytest.raises(ExportError, match="format: got 'int4'; allowed: float32, float16"):
        convert(trained_model, "int4")


def test_child_conversion_writes_the_file_or_reports_why(tmp_path, trained_model):
    from models import saved
    model_path = saved.save(trained_model, str(tmp_path))
    out = tmp_path / "out.tflite"
    assert convert_in_child(str(model_path), "float16", str(out)) is None
    assert out.read_bytes()[4:8] == b"TFL3"

    missing = tmp_path / "missing.tflite"
    error = convert_in_child(str(tmp_path / "nope.h5"), "float32", str(missing))
    assert error and not missing.exists()
