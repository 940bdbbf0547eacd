"""Each export format produces a real TFLite file that the interpreter runs."""
import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from export.convert import convert, convert_all_in_child
from export.formats import TFLITE as FORMATS
from pipeline.errors import ExportError


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_runs_in_the_interpreter(exported, fmt, trained_model, digits):
    """Each format's file runs, with the input and output types its table entry says
    (export/formats.py), and computes what the Keras model computes: to float32's
    rounding for float32, within the quantization error of its weights for the
    float-activation formats, the same answer for the calibrated ones."""
    from export import formats
    spec = formats.get(fmt)
    interpreter = Interpreter(model_path=exported[fmt])
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    from export.benchmark import dequantize_output, quantize_input
    x = digits.test.x[:8]
    wide = spec.quantizer and spec.quantizer.get("activation_num_bits") == 16
    if spec.integer_io or wide:  # ai-edge-quantizer quantizes the inputs and outputs too
        expected_dtype = np.int16 if wide else np.int8
        assert inp["dtype"] == expected_dtype and out["dtype"] == expected_dtype
    else:
        assert inp["dtype"] == np.float32
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], quantize_input(x, inp))
    interpreter.invoke()
    got = dequantize_output(interpreter.get_tensor(out["index"]), out)
    assert got.shape == (8, 10)
    expected = trained_model.predict(x, verbose=0)
    if spec.calibrated:
        # A calibrated output holds the calibrated range: a logit far below it
        # is clipped (-12.8 read as -9.9 in int16x8_mixed); the answer stands.
        assert (got.argmax(1) == expected.argmax(1)).mean() >= 7 / 8
    else:
        atol = 0.1 if fmt == "float32" else 2.0 if spec.int4_granularity else 0.5
        np.testing.assert_allclose(got, expected, atol=atol)


def test_sizes_shrink_as_expected(exported):
    size = {fmt: os.path.getsize(exported[fmt]) for fmt in FORMATS}
    assert size["float16"] < 0.6 * size["float32"]
    assert size["dynamic_range"] < 0.4 * size["float32"]
    assert size["int8"] < 0.4 * size["float32"]
    assert size["int4_weights"] < 0.25 * size["float32"]  # 0.22 here: a 42 KB model


@pytest.mark.parametrize("fmt", ["int4_weights", "int4_dynamic", "int4_blockwise"])
def test_int4_files_hold_4_bit_weights(exported, fmt, trained_model, digits):
    from export import benchmark
    from export.tflite_file import weight_tensors
    kernels = {w.name: w for w in weight_tensors(exported[fmt]) if w.dtype == "int4"}
    # Both convolutions and both Dense layers; blockwise covers the Dense layers
    # only (ai-edge-quantizer's policy), their block scales stored as float16.
    dense = {n for n in kernels if "MatMul" in n}
    assert len(dense) == 2 and len(kernels) == (2 if fmt == "int4_blockwise" else 4)
    for w in kernels.values():
        assert -8 <= w.values.min() and w.values.max() <= 7 and len(np.unique(w.values)) > 8
    scored = benchmark.benchmark(exported[fmt], (digits.test.x, digits.test.y), num_runs=1,
                                 warmup_runs=0)
    float32 = benchmark.benchmark(exported["float32"], (digits.test.x, digits.test.y),
                                  num_runs=1, warmup_runs=0)
    assert scored["accuracy"] > float32["accuracy"] - 0.05


def test_unpack_int4_is_low_nibble_first_and_signed():
    from export.tflite_file import unpack_int4
    np.testing.assert_array_equal(unpack_int4(bytes([0x71, 0x8F]), 4), [1, 7, -1, -8])
    np.testing.assert_array_equal(unpack_int4(bytes([0x21]), 1), [1])


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
    missing = tmp_path / "missing.tflite"
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not a model")
    # One child process for the three jobs (each child costs a TensorFlow import).
    errors = convert_all_in_child([(str(model_path), "float16", str(out)),
                                   (str(tmp_path / "nope.h5"), "float32", str(missing)),
                                   (str(garbage), "float32", str(missing))])
    assert errors[0] is None and out.read_bytes()[4:8] == b"TFL3"
    assert errors[1] == (f"--model: cannot load {str(tmp_path / 'nope.h5')!r}: No file or "
                         f"directory found at {tmp_path / 'nope.h5'}")
    assert errors[2].startswith(f"--model: cannot load {str(garbage)!r}: ")
    assert not missing.exists()
    # The child is kept for the next call: one TensorFlow start-up per process.
    import export.convert
    child_pid = export.convert._CONVERTER._proc.pid
    assert convert_all_in_child([(str(model_path), "float32", str(missing))]) == [None]
    assert export.convert._CONVERTER._proc.pid == child_pid and missing.exists()


def test_one_converter_process_for_many_jobs_and_a_crash_fails_only_its_job(
        tmp_path, trained_model, digits):
    from models import saved, user
    from pipeline.backend import keras
    from tests.pipeline.test_run_compression import ABORTING_LAYER
    module = tmp_path / "fragile.py"
    module.write_text(ABORTING_LAYER)
    fragile = user.custom_objects_from(str(module))["Fragile"]
    inputs = keras.Input((8, 8, 1))
    crashing = keras.Model(inputs, keras.layers.Dense(10)(fragile()(keras.layers.Flatten()(inputs))))
    for name in ("good", "bad"):
        (tmp_path / name).mkdir()
    good = saved.save(trained_model, str(tmp_path / "good"))
    bad = saved.save(crashing, str(tmp_path / "bad"))
    representative = tmp_path / "representative.npy"
    np.save(representative, digits.representative(50, 0))
    out = tmp_path / "out"
    out.mkdir()
    jobs = [(good, "float32", str(out / "a.tflite")), (bad, "float32", str(out / "b.tflite")),
            (good, "int8", str(out / "c.tflite"))]
    seen = []
    errors = convert_all_in_child(jobs, str(representative), custom_objects=[str(module)],
                                  on_done=lambda index, error: seen.append((index, error)))
    assert errors == [None, "the converter process crashed (SIGABRT)", None]
    assert seen == list(enumerate(errors))
    assert sorted(os.listdir(out)) == ["a.tflite", "c.tflite"]  # no job list or partial file left
    from ai_edge_litert.interpreter import Interpreter
    detail = Interpreter(model_path=str(out / "c.tflite")).get_input_details()[0]
    assert detail["dtype"] == np.int8  # calibrated: the int8 job got the representative data


def test_int8_calibration_uses_every_representative_example():
    """Inputs whose range differs from example to example (scales 0.1 .. 10): the
    int8 input scale must cover them all. Calibrated on the first example only,
    the larger inputs clip and the outputs go wrong."""
    from pipeline.backend import keras
    rng = np.random.default_rng(0)
    scales = np.geomspace(0.1, 10, 64).astype(np.float32)
    x = (rng.uniform(-1, 1, (64, 16)) * scales[:, None]).astype(np.float32)
    inputs = keras.Input((16,))
    keras.utils.set_random_seed(0)
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    expected = model.predict(x, verbose=0)

    def int8_error(representative):
        interpreter = Interpreter(model_content=convert(model, "int8", representative))
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
        worst = 0.0
        for example, want in zip(x, expected):
            q = np.clip(np.round(example / s_in + z_in), -128, 127).astype(np.int8)
            interpreter.set_tensor(inp["index"], q[None])
            interpreter.invoke()
            got = (interpreter.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out
            worst = max(worst, float(np.abs(got - want).max()))
        return worst / float(np.abs(expected).max())  # relative to the output range

    assert int8_error(x) < 0.05         # every example: within 5 % of the output range
    assert int8_error(x[:1]) > 0.5      # the smallest example alone: the rest clip


def test_int16x8_mixed_runs_where_the_converters_int16x8_cannot(tmp_path):
    """A Transformer's layer norm has no int16 kernel (SQUARED_DIFFERENCE): the
    converter's int16x8 file fails to run; int16x8_mixed keeps those ops in
    float, holds int16 activations elsewhere, and runs close to float."""
    import models
    from export import benchmark
    from export.tflite_file import float_op_types, read_model
    model = models.build("tiny_transformer", (16,), 32,
                         {"width": 16, "heads": 2, "layers": 1, "mlp_width": 32})
    tokens = np.random.default_rng(0).integers(0, 32, (40, 16)).astype(np.int32)
    paths = {}
    for fmt in ("float32", "int16x8", "int16x8_mixed"):
        paths[fmt] = tmp_path / f"{fmt}.tflite"
        paths[fmt].write_bytes(convert(model, fmt, tokens))
    from export import child
    bench = os.path.join(os.path.dirname(benchmark.__file__), "benchmark.py")
    # In a child process: LiteRT aborts (SIGABRT) on the missing int16 kernel.
    for fmt, fails in (("int16x8", True), ("int16x8_mixed", False)):
        _, error = child.run([bench, f"--model={paths[fmt]}", "--num_runs=1",
                              "--warmup_runs=0"], timeout=300, what="the benchmark")
        assert (error is not None) is fails, (fmt, error)
    graph = read_model(str(paths["int16x8_mixed"])).subgraphs[0]
    assert sum(t.type == 7 for t in graph.tensors) > 10  # TensorType.INT16 activations
    kept = float_op_types(str(paths["int16x8_mixed"]))
    assert "SQUARED_DIFFERENCE" in kept  # layer norm's variance: no int16 kernel
    assert "FULLY_CONNECTED" not in kept and "BATCH_MATMUL" not in kept
    outputs = {}
    for fmt in ("float32", "int16x8_mixed"):
        interpreter = Interpreter(model_path=str(paths[fmt]))
        interpreter.allocate_tensors()
        kept_outputs = []
        benchmark.evaluate(interpreter, tokens[:8], tokens[:8], kept_outputs, keep=8)
        outputs[fmt] = np.concatenate(kept_outputs)
    spread = outputs["float32"].max() - outputs["float32"].min()
    difference = np.abs(outputs["int16x8_mixed"] - outputs["float32"])
    assert difference.mean() < 0.02 * spread


def test_float32_sparse_stores_a_pruned_model_sparse(trained_model, digits, tmp_path):
    """The zeros are left out of the file (DENSIFY ops), the answers unchanged."""
    from export import benchmark
    from export.tflite_file import weight_tensors
    from pipeline.stages.base import clone
    from tests.conftest import export_file
    model = clone(trained_model)
    for name in ("conv2", "dense1"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.9)] = 0
        layer.set_weights([kernel, bias])
    dense = export_file(model, "float32", digits, tmp_path / "dense.tflite")
    sparse = export_file(model, "float32_sparse", digits, tmp_path / "sparse.tflite")
    assert os.path.getsize(sparse) < 0.5 * os.path.getsize(dense)
    data = (digits.test.x[:50], digits.test.y[:50])
    figures = {p: benchmark.benchmark(p, data, num_runs=1, keep_outputs=50) for p in (dense, sparse)}
    assert figures[sparse]["ops"]["DENSIFY"] >= 2 and "DENSIFY" not in figures[dense]["ops"]
    np.testing.assert_allclose(figures[sparse]["outputs"], figures[dense]["outputs"], atol=1e-5)
    # The sparse buffers are not read as dense kernels.
    names = {t.name for t in weight_tensors(sparse)}
    assert not any("dense1" in n and "MatMul" in n for n in names)
