"""export.benchmark on real exported files, with and without TensorFlow importable."""
import json
import os

import numpy as np
import pytest

from export import benchmark
from tests.conftest import ROOT, run_cli

SCRIPT = os.path.join(ROOT, "export", "benchmark.py")


def test_figures_are_present_and_consistent(exported, trained_model, digits):
    data = benchmark.load_eval_data(exported["data"])
    r = benchmark.benchmark(exported["float32"], data, num_runs=20, warmup_runs=2)
    lat = r["latency_ms"]
    # What the figures mean is checked against a controlled clock
    # (tests/export/test_benchmark_timing.py); here, that a real file gives them all.
    assert lat["count"] == 20
    assert all(np.isfinite(value) and value > 0 for key, value in lat.items()
               if key not in ("count", "std"))
    assert r["init_ms"] > 0 and r["first_inference_ms"] > 0 and r["warmup_mean_ms"] > 0
    assert r["size_bytes"] == os.path.getsize(exported["float32"])
    assert 0 < r["gzip_bytes"] < r["size_bytes"]
    assert r["interpreter"].startswith("ai_edge_litert")
    keras_accuracy = float(np.mean(
        trained_model.predict(digits.test.x, verbose=0).argmax(-1) == digits.test.y))
    assert r["accuracy"] == pytest.approx(keras_accuracy, abs=0.005)
    assert r["num_examples"] == len(digits.test.x)


def test_int8_accuracy_uses_the_models_quantization(exported):
    data = benchmark.load_eval_data(exported["data"])
    float_acc = benchmark.benchmark(exported["float32"], data, num_runs=1)["accuracy"]
    int8 = benchmark.benchmark(exported["int8"], data, num_runs=1)
    assert int8["input"]["dtype"] == "int8"
    assert int8["accuracy"] > 0.8
    assert abs(int8["accuracy"] - float_acc) < 0.03


def test_score_file_is_what_the_benchmark_scores(exported):
    # Per example, in the int8 file's own quantization: their mean is the
    # benchmark's accuracy, so an interval built on them is about that figure.
    x, y = benchmark.load_eval_data(exported["data"])
    scored = benchmark.score_file(exported["int8"], x, y)
    hits = scored["hits"]
    assert hits.shape == (len(x),) and set(np.unique(hits)) <= {0.0, 1.0}
    figures = benchmark.benchmark(exported["int8"], (x, y), num_runs=1)
    assert hits.mean() == pytest.approx(figures["accuracy"])
    assert scored["accuracy"] == pytest.approx(figures["accuracy"])
    assert scored["perplexity"] == pytest.approx(figures["perplexity"])


def test_runs_where_tensorflow_cannot_be_imported(exported, tmp_path):
    # A sitecustomize that makes `import tensorflow` fail, as on a device.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' or name.startswith(('tensorflow.', 'tf_keras')):\n"
        "            raise ImportError('TensorFlow is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n")
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(blocker))
    check = run_cli(["-c", "import tensorflow"], env=env)
    assert check.returncode != 0 and "blocked" in check.stderr
    result = run_cli([SCRIPT, f"--model={exported['int8']}", f"--data={exported['data']}",
                      "--num_runs=5", f"--json={out}"], env=env)
    assert result.returncode == 0, result.stderr
    assert "Interpreter: ai_edge_litert" in result.stdout
    assert "Accuracy:" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["accuracy"] > 0.8 and "tensorflow" not in figures["interpreter"]


@pytest.mark.parametrize("make, args, message", [
    (lambda p, e: p.write_bytes(open(e["float32"], "rb").read()[:5000]), [],
     "is not a valid TFLite model"),
    (lambda p, e: p.write_text("not a model at all"), [], "is not a TFLite model"),
    (lambda p, e: None, [], "does not exist"),
    (lambda p, e: p.write_bytes(open(e["float32"], "rb").read()), ["--num_runs=0"],
     "--num_runs: got 0; expected an integer >= 1"),
])
def test_bad_input_gives_one_line_and_exit_2(exported, tmp_path, make, args, message):
    model = tmp_path / "m.tflite"
    make(model, exported)
    result = run_cli([SCRIPT, f"--model={model}"] + args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_data_that_does_not_fit_the_model(exported, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((3, 4, 4, 1), np.float32), y=np.zeros(3, int))
    with pytest.raises(benchmark.BenchmarkError, match=r"examples have shape \(4, 4, 1\) but "
                                                       r"the model's input takes \(8, 8, 1\)"):
        benchmark.benchmark(exported["float32"], benchmark.load_eval_data(str(data)))


def test_percentiles_throughput_and_memory(exported):
    r = benchmark.benchmark(exported["float32"], num_runs=30, warmup_runs=1)
    lat = r["latency_ms"]
    assert lat["count"] == 30 and sorted(lat) == ["count", "max", "mean", "min", "p5", "p50",
                                                  "p90", "p95", "p99", "std"]
    assert r["throughput_per_s"] == pytest.approx(1000 / lat["mean"])
    assert r["peak_rss_mb"] > 10
    assert r["op_profile"] is None and "not exposed" in r["op_profile_note"]


def test_mac_count_equals_the_hand_computed_figure(exported):
    # The narrow digits CNN (tests/conftest.py): 8x8 inputs, 'same' padding.
    conv1 = 8 * 8 * 8 * (3 * 3 * 1)      # 64 positions x 8 filters x 3x3x1
    conv2 = 8 * 8 * 16 * (3 * 3 * 8)     # 64 positions x 16 filters x 3x3x8
    dense1 = (4 * 4 * 16) * 32           # flatten(pool) 256 -> 32
    logits = 32 * 10
    for fmt in ("float32", "int8"):
        r = benchmark.benchmark(exported[fmt], num_runs=2)
        assert r["macs"] == conv1 + conv2 + dense1 + logits == 86_848
        assert r["gmacs_per_s"] > 0
        assert r["ops"] == {"CONV_2D": 2, "FULLY_CONNECTED": 2, "MAX_POOL_2D": 1, "RESHAPE": 1}


def test_xnnpack_on_and_off(exported):
    data = benchmark.load_eval_data(exported["data"])
    on = benchmark.benchmark(exported["float32"], data, num_runs=5, use_xnnpack=True)
    off = benchmark.benchmark(exported["float32"], data, num_runs=5, use_xnnpack=False)
    assert on["delegated"] == "all" and on["delegated_ops"] == on["total_ops"] == 6
    assert off["delegated"] == "none" and off["delegated_ops"] == 0
    assert on["accuracy"] == pytest.approx(off["accuracy"], abs=0.005)


def test_several_models_in_one_call(exported, tmp_path):
    out = tmp_path / "all.json"
    result = run_cli([SCRIPT, f"--model={exported['float32']}", f"--model={exported['int8']}",
                      "--num_runs=3", "--use_xnnpack=false", f"--json={out}"])
    assert result.returncode == 0, result.stderr
    assert "| model | size (bytes) |" in result.stdout
    assert "| model_float32.tflite |" in result.stdout and "| model_int8.tflite |" in result.stdout
    figures = json.loads(out.read_text())
    assert [os.path.basename(f["model"]) for f in figures] == ["model_float32.tflite",
                                                               "model_int8.tflite"]


def test_data_of_the_wrong_dtype(exported, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([["a"] * 64] * 2).reshape(2, 8, 8, 1), y=np.zeros(2, int))
    result = run_cli([SCRIPT, f"--model={exported['float32']}", f"--data={data}"])
    assert result.returncode == 2
    assert "--data: x has dtype <U1; expected real numbers (the model takes float32)" in result.stderr


def test_already_quantized_int8_data_is_fed_as_is(exported, digits):
    from ai_edge_litert.interpreter import Interpreter
    scale, zero_point = Interpreter(model_path=exported["int8"]).get_input_details()[0]["quantization"]
    q = np.clip(np.round(digits.test.x / scale + zero_point), -128, 127).astype(np.int8)
    as_floats = benchmark.benchmark(exported["int8"], (digits.test.x, digits.test.y), num_runs=1)
    as_int8 = benchmark.benchmark(exported["int8"], (q, digits.test.y), num_runs=1)
    assert as_int8["accuracy"] == pytest.approx(as_floats["accuracy"], abs=0.01)


def test_a_model_ending_in_softmax_is_scored_on_its_probabilities(digits, tmp_path):
    # Cross-entropy of a softmax output must not be log-softmaxed a second time:
    # the TFLite figure equals the Keras one (float32) or nearly (int8).
    from pipeline import training
    from pipeline.backend import keras
    from tests.conftest import export_file
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.train.x, digits.train.y, epochs=5, verbose=0)
    keras_accuracy, keras_ce = training.evaluate(model, digits.test)
    data = (digits.test.x, digits.test.y)
    for fmt, tolerance in (("float32", 1e-5), ("int8", 0.05)):
        r = benchmark.benchmark(export_file(model, fmt, digits, tmp_path / f"{fmt}.tflite"),
                                data, num_runs=1)
        assert r["cross_entropy"] == pytest.approx(keras_ce, rel=tolerance), fmt
        assert r["accuracy"] == pytest.approx(keras_accuracy, abs=0.03), fmt


def test_softmax_outputs_are_recognised_without_the_op_list(exported):
    # An interpreter that does not list its ops: the output values decide.
    class NoOps:
        def get_output_details(self):
            return [{"index": 0}]
    probabilities = np.array([[0.2, 0.7, 0.1]], np.float32)
    assert benchmark.outputs_probabilities(NoOps(), probabilities)
    assert not benchmark.outputs_probabilities(NoOps(), np.array([[2.0, -1.0, 0.5]]))
    # With the op list: the digits CNN ends in logits.
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=exported["float32"])
    interpreter.allocate_tensors()
    assert not benchmark.outputs_probabilities(interpreter)
