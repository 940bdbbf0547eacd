"""The server's files: ONNX from tf2onnx, int8 QDQ from ONNX Runtime, measured by
export/benchmark_onnx.py as the TFLite files are; TensorRT's one line without a GPU."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import benchmark, benchmark_onnx, onnx_convert, tensorrt_engine
from export.convert import convert
from pipeline.backend import keras, tf
from pipeline.errors import ExportError


def _run(onnx_bytes, x):
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, trained_model, digits):
    """The trained digits model as onnx_float32, onnx_int8 and TFLite float32, + test data."""
    directory = tmp_path_factory.mktemp("onnx")
    representative = digits.representative(100, 0)
    paths = {}
    for fmt, suffix in (("onnx_float32", "onnx"), ("onnx_int8", "onnx"), ("float32", "tflite")):
        path = directory / f"model_{fmt}.{suffix}"
        path.write_bytes(convert(trained_model, fmt, representative))
        paths[fmt] = str(path)
    np.savez(directory / "test.npz", x=digits.test.x, y=digits.test.y)
    paths["data"] = str(directory / "test.npz")
    return paths


def test_onnx_float32_computes_what_keras_computes(onnx_files, trained_model, digits):
    x = digits.test.x[:16]
    got = _run(open(onnx_files["onnx_float32"], "rb").read(), x)
    np.testing.assert_allclose(got, trained_model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("build", ["sequential_softmax", "functional_logits", "custom_layer",
                                   "exact_gelu", "mobilenet_v2"])
def test_users_models_convert_and_agree(build):
    """Sequential and functional, softmax and logits, a custom layer, a
    keras.applications net: each file computes the Keras model's outputs."""
    tf.random.set_seed(0)
    if build == "sequential_softmax":
        model = keras.Sequential([keras.layers.Input((12,)), keras.layers.Dense(8, "relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        shape = (4, 12)
    elif build == "functional_logits":
        inputs = keras.Input((10, 10, 3))
        h = keras.layers.SeparableConv2D(6, 3, padding="same")(inputs)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        model = keras.Model(inputs, keras.layers.Dense(5)(h))
        shape = (4, 10, 10, 3)
    elif build == "custom_layer":
        class Scale(keras.layers.Layer):
            def build(self, input_shape):
                self.w = self.add_weight(name="w", shape=(input_shape[-1],),
                                         initializer="ones")

            def call(self, x):
                return x * self.w + 0.5
        inputs = keras.Input((6,))
        model = keras.Model(inputs, keras.layers.Dense(2)(Scale()(inputs)))
        shape = (4, 6)
    elif build == "exact_gelu":  # TensorFlow's Erfc, which tf2onnx alone cannot convert
        inputs = keras.Input((16,))
        model = keras.Model(inputs, keras.layers.Dense(8, activation="gelu")(inputs))
        shape = (64, 16)
    else:
        model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                               weights=None, classes=4)
        shape = (2, 32, 32, 3)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = _run(onnx_convert.to_onnx(model), x)
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=2e-4, rtol=1e-3)


def _qdq(model):
    """[(op, quantized tensor's initializer or None, zero point array)] of a QDQ file."""
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return initializers, [(n, initializers.get(n.input[0]), initializers[n.input[2]])
                          for n in model.graph.node
                          if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                          and len(n.input) > 2]


def test_onnx_int8_is_u8s8_with_int8_weights_per_channel(onnx_files):
    """onnx_int8 as ONNX Runtime's CPU kernels run it fastest: weights int8,
    symmetric, a scale per output channel; activations uint8 with zero points."""
    model = onnx.load(onnx_files["onnx_int8"])
    ops = onnx_convert.op_counts(onnx_files["onnx_int8"])
    assert ops["QuantizeLinear"] >= 3 and ops["DequantizeLinear"] >= 5
    initializers, qdq = _qdq(model)
    weights = [(node, w, z) for node, w, z in qdq if w is not None and w.ndim > 1]
    activations = [(node, z) for node, w, z in qdq if node.op_type == "QuantizeLinear"]
    assert weights and all(w.dtype == np.int8 and np.all(z == 0) for _, w, z in weights)
    axis = lambda node: next((a.i for a in node.attribute if a.name == "axis"), 1)
    assert all(initializers[node.input[1]].size == w.shape[axis(node)] > 1
               for node, w, _ in weights)
    assert activations and all(z.dtype == np.uint8 for _, z in activations)
    assert any(np.any(z != 0) for _, z in activations)  # asymmetric: zero points used
    # Conv and dense kernels: most of the file's weights, at a byte each.
    int8 = sum(w.size for _, w, _ in weights)
    floats = sum(a.size for a in initializers.values() if a.dtype == np.float32)
    assert int8 > 0.9 * (int8 + floats)
    # Weights at a byte, not four (QDQ names and scales cost the small model the rest).
    assert os.path.getsize(onnx_files["onnx_int8"]) < 0.6 * os.path.getsize(
        onnx_files["onnx_float32"])


def test_the_tensorrt_int8_file_is_symmetric(onnx_files, trained_model, digits):
    """The QDQ file tensorrt_int8's engine is built from: int8 activations and
    weights, every zero point 0 (TensorRT's explicit quantization refuses others)."""
    from export import formats
    spec = formats.get("tensorrt_int8")
    qdq_bytes = onnx_convert.quantize_int8(onnx_convert.to_onnx(trained_model),
                                           digits.representative(100, 0), **spec.quantizer)
    _, qdq = _qdq(onnx.load_from_string(qdq_bytes))
    assert qdq and all(z.dtype != np.uint8 and np.all(z == 0) for _, _, z in qdq)
    assert any(z.dtype == np.int8 for node, w, z in qdq if w is None)  # int8 activations
    x = digits.test.x[:64]
    agree = (_run(qdq_bytes, x).argmax(1) == trained_model.predict(x, verbose=0).argmax(1))
    assert agree.mean() >= 0.95


def test_the_benchmark_measures_an_onnx_file_as_it_measures_a_tflite_file(onnx_files):
    """The same model's ONNX and TFLite float32 files: the same accuracy and
    cross-entropy on the same examples (a softmax read as logits would change the
    cross-entropy), the same MAC count from the two graphs, the asked threads."""
    data = benchmark.load_eval_data(onnx_files["data"])
    onnx_figures = benchmark.benchmark(onnx_files["onnx_float32"], data, num_threads=2,
                                       num_runs=3, warmup_runs=1)
    tflite_figures = benchmark.benchmark(onnx_files["float32"], data, num_runs=3, warmup_runs=1)
    assert onnx_figures["interpreter"].startswith("onnxruntime ")
    assert onnx_figures["num_threads"] == 2 and onnx_figures["num_examples"] == len(data[0])
    assert onnx_figures["accuracy"] == pytest.approx(tflite_figures["accuracy"], abs=1e-9)
    assert onnx_figures["cross_entropy"] == pytest.approx(tflite_figures["cross_entropy"],
                                                          rel=1e-4)
    assert onnx_figures["macs"] == tflite_figures["macs"] > 0
    assert onnx_figures["size_bytes"] == os.path.getsize(onnx_files["onnx_float32"])
    latency = onnx_figures["latency_ms"]
    assert latency["count"] == 3 and 0 < latency["min"] <= latency["p50"] <= latency["max"]
    scored = benchmark.score_file(onnx_files["onnx_int8"], *data)
    int8_figures = benchmark.benchmark(onnx_files["onnx_int8"], data, num_runs=1, warmup_runs=0)
    assert scored["accuracy"] == pytest.approx(int8_figures["accuracy"], abs=1e-9)
    assert scored["accuracy"] >= tflite_figures["accuracy"] - 0.02
    assert len(scored["hits"]) == len(data[0])


def test_a_softmax_model_is_scored_on_its_probabilities(tmp_path):
    """A model ending in softmax: its ONNX files (float32, and int8, whose softmax
    output passes through QuantizeLinear/DequantizeLinear) are scored on the
    probabilities, as the TFLite file is; read as logits, the cross-entropy would
    be about log(classes) whatever the model."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((12,)), keras.layers.Dense(16, "relu"),
                              keras.layers.Dense(4, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype(np.float32) * 3
    y = model.predict(x, verbose=0).argmax(1)  # the model's own answers: confident, right
    paths = {}
    for fmt, suffix in (("onnx_float32", "onnx"), ("onnx_int8", "onnx"), ("float32", "tflite")):
        paths[fmt] = str(tmp_path / f"m_{fmt}.{suffix}")
        with open(paths[fmt], "wb") as f:
            f.write(convert(model, fmt, x[:32]))
    expected = -np.mean(np.log(model.predict(x, verbose=0)[np.arange(64), y]))
    figures = {fmt: benchmark.benchmark(path, (x, y), num_runs=1, warmup_runs=0)
               for fmt, path in paths.items()}
    assert figures["float32"]["cross_entropy"] == pytest.approx(expected, rel=1e-3)
    assert figures["onnx_float32"]["cross_entropy"] == pytest.approx(expected, rel=1e-3)
    assert figures["onnx_int8"]["cross_entropy"] == pytest.approx(expected, abs=0.05)
    # The search's per-example scoring reads it the same way.
    scored = benchmark.score_file(paths["onnx_int8"], x, y)
    assert scored["cross_entropy"] == pytest.approx(figures["onnx_int8"]["cross_entropy"])
    assert abs(expected - np.log(4)) > 0.3  # the logit reading would be caught


def test_macs_count_depthwise_dense_and_einsum_as_the_tflite_graph_does():
    """Depthwise convolution (one input channel per output), a dense layer on a
    sequence (MatMul over the last axis) and attention's Einsum, counted on both
    files of one model."""
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
    h = keras.layers.Reshape((16, 16))(keras.layers.Conv2D(4, 1)(h))
    h = keras.layers.Dense(12)(h)
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=6)(h, h)
    model = keras.Model(inputs, h)
    onnx_bytes = onnx_convert.to_onnx(model)
    feed = {model.inputs[0].name.split(":")[0]: np.ones((1, 8, 8, 4), np.float32)}
    onnx_macs = benchmark_onnx.graph_info(onnx_bytes, feed)["macs"]
    expected = (8 * 8 * 4 * 9            # depthwise 3x3
                + 8 * 8 * 4 * 4          # 1x1 conv
                + 16 * 12 * 16           # dense
                + 3 * 16 * 12 * 2 * 6    # query, key, value projections
                + 2 * 16 * 16 * 6 * 2    # scores and weighted values
                + 16 * 2 * 6 * 12)       # output projection
    assert onnx_macs == expected


def test_a_model_onnx_cannot_express_is_one_line_naming_the_op():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: tf.math.lgamma(t))(inputs))
    with pytest.raises(ExportError) as error:
        convert(model, "onnx_int8", np.ones((4, 4), np.float32))
    assert str(error.value) == ("onnx_int8: tf2onnx cannot express these TensorFlow ops in "
                                "ONNX opset 17: Lgamma x1")


def test_onnx_int8_refuses_an_empty_calibration_set(trained_model):
    with pytest.raises(ExportError, match="onnx_int8 needs representative data"):
        convert(trained_model, "onnx_int8", np.zeros((0, 8, 8, 1), np.float32))


def test_a_bad_onnx_file_is_one_line(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a protobuf at all")
    result = benchmark.main([f"--model={path}"])
    assert result == 2
    with pytest.raises(benchmark.BenchmarkError, match="is not a valid ONNX model"):
        benchmark.benchmark(str(path))


@pytest.mark.skipif(tensorrt_engine.gpu_problem() is None, reason="this machine has a CUDA GPU")
def test_tensorrt_without_a_gpu_is_one_line(trained_model):
    problem = tensorrt_engine.gpu_problem()
    with pytest.raises(ExportError) as error:
        convert(trained_model, "tensorrt_fp16")
    assert str(error.value) == (f"tensorrt_fp16 needs a CUDA GPU: {problem}; the other "
                                "variants go on")


@pytest.mark.skipif(tensorrt_engine.gpu_problem() is not None,
                    reason=f"needs a CUDA GPU and TensorRT: {tensorrt_engine.gpu_problem()}")
@pytest.mark.parametrize("fmt", ["tensorrt_fp16", "tensorrt_int8"])
def test_a_tensorrt_engine_computes_what_the_onnx_file_computes(fmt, onnx_files, trained_model,
                                                               digits, tmp_path):
    """The engine's answers against the ONNX file's on the test split, its figures."""
    path = tmp_path / "model.engine"
    path.write_bytes(convert(trained_model, fmt, digits.representative(100, 0)))
    data = benchmark.load_eval_data(onnx_files["data"])
    figures = benchmark.benchmark(str(path), data, num_runs=5, warmup_runs=1, keep_outputs=64)
    onnx_outputs = _run(open(onnx_files["onnx_float32"], "rb").read(), data[0][:64])
    agree = figures["outputs"].argmax(-1) == onnx_outputs.argmax(-1)
    assert agree.mean() >= 0.95
    assert figures["throughput_large_batch"]["items_per_s"] > 0
    assert figures["versions"]["tensorrt"] and figures["versions"]["gpu"]
