"""Benchmarks a TensorRT engine on its GPU: the figures export/benchmark.py gives a
.tflite file (size, latency percentiles, accuracy), plus throughput at a larger
batch and the GPU, driver and TensorRT versions.

export/benchmark.py hands it every `--model` ending in `.engine`. It runs the
engine through NVIDIA's Polygraphy (`TrtRunner`: device buffers, copies,
timing), so greenlite holds no CUDA memory code of its own. Latency is
Polygraphy's inference time of one call at batch 1, host-device copies
included: what a server's single request waits for.

Needs a CUDA GPU, `tensorrt` and `polygraphy` (`pip install -e '.[tensorrt]'`).
**Not yet run on a GPU** (none was lent to this work): the tests that need one
skip, saying so.
"""
import os
import time
from typing import Optional

import numpy as np

# export/benchmark.py lends its helpers through `bind` (see benchmark_onnx.py).
common = None
# The batch of the throughput figure (the engines' profiles admit 1 to 64).
LARGE_BATCH = 32


def bind(benchmark_module):
    """Lends this module export/benchmark.py's helpers (called by that module)."""
    global common
    common = benchmark_module


def benchmark(model_path: str, data: Optional[tuple] = None, num_runs: int = 50,
              warmup_runs: int = 5, keep_outputs: int = 0) -> dict:
    """Measures one engine; the keys of export/benchmark.benchmark's result, plus
    "throughput_large_batch" {batch, items_per_s} and "versions"."""
    from export import tensorrt_engine
    problem = tensorrt_engine.gpu_problem()
    if problem:
        raise common.BenchmarkError(f"--model: a TensorRT engine needs a CUDA GPU: {problem}")
    try:
        from polygraphy.backend.trt import TrtRunner, engine_from_bytes
        from polygraphy.datatype import DataType
    except ImportError:
        raise common.BenchmarkError("--model: a TensorRT engine is run through Polygraphy: "
                                    "pip install polygraphy") from None
    if not os.path.isfile(model_path):
        raise common.BenchmarkError(f"--model: {model_path!r} does not exist or is not a file")
    with open(model_path, "rb") as f:
        content = f.read()
    start = time.perf_counter()
    engine = engine_from_bytes(content)
    with TrtRunner(engine) as runner:
        init_ms = (time.perf_counter() - start) * 1e3
        metadata = runner.get_input_metadata()
        name, (dtype, shape) = next(iter(metadata.items()))
        dtype = np.dtype(DataType.to_dtype(dtype, "numpy"))
        example_shape = tuple(int(d) for d in shape[1:])
        feed = (np.asarray(data[0][:1]).astype(dtype) if data is not None
                else np.zeros((1,) + example_shape, dtype))

        def invoke_ms(batch):
            runner.infer({name: batch})
            return runner.last_inference_time() * 1e3

        first_ms = invoke_ms(feed)
        warmup = [invoke_ms(feed) for _ in range(warmup_runs)]
        latency = common.latency_stats([invoke_ms(feed) for _ in range(num_runs)])
        large = np.repeat(feed, LARGE_BATCH, axis=0)
        large_ms = float(np.median([invoke_ms(large) for _ in range(max(3, num_runs // 10))]))
        result = {
            "model": model_path, "interpreter": f"TensorRT {tensorrt_engine.versions()['tensorrt']}",
            "num_threads": 1, "use_xnnpack": False, "execution_provider": "TensorRT",
            "size_bytes": len(content), "gzip_bytes": common.gzip_bytes(content),
            "input": {"shape": [1, *example_shape], "dtype": dtype.name, "scale": 0.0,
                      "zero_point": 0},
            "num_inputs": len(metadata), "init_ms": init_ms, "first_inference_ms": first_ms,
            "warmup_runs": warmup_runs,
            "warmup_mean_ms": float(np.mean(warmup)) if warmup else None,
            "latency_ms": latency,
            "throughput_per_s": 1000.0 / latency["mean"] if latency["mean"] > 0 else None,
            "throughput_large_batch": {"batch": LARGE_BATCH,
                                       "items_per_s": LARGE_BATCH * 1000.0 / large_ms},
            "versions": tensorrt_engine.versions(),
            "ops": None, "delegated": None, "delegated_ops": None, "total_ops": None,
            "not_delegated": None, "macs": None, "gmacs_per_s": None, "op_profile": None,
            "op_profile_note": "TensorRT's layer profiler is not run by this benchmark",
            "accuracy": None, "cross_entropy": None, "perplexity": None, "num_examples": 0,
        }
        if data is not None:
            x, y = data
            correct = count = 0
            nll, kept = 0.0, []
            for i in range(len(x)):
                outputs = np.array(next(iter(runner.infer(
                    {name: np.asarray(x[i:i + 1]).astype(dtype)}).values())))
                if i < keep_outputs:
                    kept.append(outputs)
                rows = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
                probabilities = bool(rows.min() >= 0 and np.allclose(rows.sum(-1), 1, atol=1e-2))
                hits, nats, n = common.score(outputs, y[i], probabilities)
                correct, nll, count = correct + hits, nll + nats, count + n
            result.update(accuracy=correct / count, cross_entropy=nll / count,
                          perplexity=float(np.exp(nll / count)), num_examples=int(len(x)))
            if keep_outputs:
                result["outputs"] = np.concatenate(kept).astype(np.float32)
    result["output"] = {"shape": list(outputs.shape) if data is not None else [],
                        "dtype": "float32"}
    result["peak_rss_mb"] = common.peak_rss_mb()
    return result
