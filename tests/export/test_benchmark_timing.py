"""What the benchmark's latency figures mean, checked against a clock the test controls.

A fake interpreter takes exactly the time the test says for each invoke(): a
slow cold first call, warm-up calls, then timed runs of known lengths. So the
figures can be computed by hand: the cold call is `first_inference_ms` and in
no percentile, warm-up calls are in neither, the percentiles are numpy's of
the timed runs alone, throughput is 1000 / mean. Nothing here depends on the
CPU's speed.
"""
import numpy as np
import pytest

from export import benchmark


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def _fake_interpreter(clock, durations_ms):
    """An Interpreter class whose n-th invoke() takes durations_ms[n] on `clock`."""
    calls = iter(durations_ms)

    class Interpreter:
        def __init__(self, model_path=None, num_threads=1, **kwargs):
            self.num_threads = num_threads
            self.invokes = 0

        def allocate_tensors(self):
            clock.now += 0.004  # 4 ms to load

        def get_input_details(self):
            return [{"index": 0, "shape": np.array([1, 4]), "dtype": np.float32,
                     "quantization": (0.0, 0), "name": "x"}]

        def get_output_details(self):
            return [{"index": 1, "shape": np.array([1, 3]), "dtype": np.float32,
                     "quantization": (0.0, 0), "name": "y"}]

        def resize_tensor_input(self, index, shape):
            pass

        def set_tensor(self, index, value):
            self.x = value

        def invoke(self):
            clock.now += next(calls) / 1000

        def get_tensor(self, index):
            return np.tile(np.array([[0.1, 0.7, 0.2]], np.float32), (len(self.x), 1))

        def get_tensor_details(self):
            return []

    return Interpreter


@pytest.fixture
def tflite_file(tmp_path):
    path = tmp_path / "fake.tflite"
    path.write_bytes(b"\x00\x00\x00\x00TFL3" + bytes(56))
    return str(path)


def _run(monkeypatch, tflite_file, durations, **kwargs):
    clock = FakeClock()
    monkeypatch.setattr(benchmark, "time", clock)
    monkeypatch.setattr(benchmark, "load_interpreter_class",
                        lambda: (_fake_interpreter(clock, durations), "fake 1.0"))
    return benchmark.benchmark(tflite_file, **kwargs)


def test_the_cold_call_and_the_warm_up_are_not_timed(monkeypatch, tflite_file):
    timed = [float(k) for k in range(1, 101)]  # 1, 2, ..., 100 ms
    result = _run(monkeypatch, tflite_file, [250.0] + [40.0] * 5 + timed,
                  num_runs=100, warmup_runs=5)
    latency = result["latency_ms"]
    assert result["first_inference_ms"] == pytest.approx(250.0)
    assert result["warmup_mean_ms"] == pytest.approx(40.0)
    assert latency["count"] == 100
    assert latency["max"] == pytest.approx(100.0) and latency["min"] == pytest.approx(1.0)
    for q in (5, 50, 90, 95, 99):
        assert latency[f"p{q}"] == pytest.approx(np.percentile(timed, q)), q
    assert latency["mean"] == pytest.approx(50.5)
    assert latency["std"] == pytest.approx(np.std(timed))
    assert result["throughput_per_s"] == pytest.approx(1000 / 50.5)
    assert result["init_ms"] == pytest.approx(4.0)


def test_no_warm_up_still_keeps_the_cold_call_out(monkeypatch, tflite_file):
    result = _run(monkeypatch, tflite_file, [500.0, 2.0, 2.0, 2.0], num_runs=3, warmup_runs=0)
    assert result["first_inference_ms"] == pytest.approx(500.0)
    assert result["warmup_mean_ms"] is None
    assert result["latency_ms"]["max"] == pytest.approx(2.0)
    assert result["latency_ms"]["count"] == 3


def test_accuracy_counts_every_example_and_only_hits(monkeypatch, tflite_file):
    """Every example scores against its label: 3 of 4 labelled 1 (the fake always says 1)."""
    x = np.zeros((4, 4), np.float32)
    y = np.array([1, 1, 0, 1])
    result = _run(monkeypatch, tflite_file, [1.0] * 50, num_runs=2, warmup_runs=0, data=(x, y))
    assert result["accuracy"] == pytest.approx(0.75) and result["num_examples"] == 4
    # Cross-entropy of the probabilities [0.1, 0.7, 0.2] (they sum to 1: used as given).
    expected = -(3 * np.log(0.7) + np.log(0.1)) / 4
    assert result["cross_entropy"] == pytest.approx(expected, rel=1e-5)
