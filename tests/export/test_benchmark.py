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
    assert lat["count"] == 20
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
    assert r["init_ms"] > 0 and r["first_inference_ms"] > 0 and r["warmup_mean_ms"] > 0
    assert r["size_bytes"] == os.path.getsize(exported["float32"])
    assert 0 < r["gzip_bytes"] < r["size_bytes"]
    assert r["interpreter"].startswith("ai_edge_litert")
    keras_accuracy = float(np.mean(
        trained_model.predict(digits.x_test, verbose=0).argmax(-1) == digits.y_test))
    assert r["accuracy"] == pytest.approx(keras_accuracy, abs=0.005)
    assert r["num_examples"] == len(digits.x_test)


def test_int8_accuracy_uses_the_models_quantization(exported):
    data = benchmark.load_eval_data(exported["data"])
    float_acc = benchmark.benchmark(exported["float32"], data, num_runs=1)["accuracy"]
    int8 = benchmark.benchmark(exported["int8"], data, num_runs=1)
    assert int8["input"]["dtype"] == "int8"
    assert int8["accuracy"] > 0.8
    assert abs(int8["accuracy"] - float_acc) < 0.03


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
