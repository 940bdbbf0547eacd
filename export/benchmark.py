"""Benchmarks a .tflite file on the device itself: latency, size and accuracy.

Needs only numpy and a TFLite interpreter, never TensorFlow, so this one file
can be copied to a phone, a Raspberry Pi or a CI runner. The interpreter is
the first of ai_edge_litert (LiteRT, maintained), tflite_runtime (older
devices), tensorflow.lite (deprecated) that imports; the output says which.

    python -m export.benchmark --model=model.tflite [--data=eval.npz] \
        [--num_threads=1] [--num_runs=50] [--warmup_runs=5] [--json=out.json]

`--data` is an .npz with `x` and `y` (or `x_test` and `y_test`) in the float
range the Keras model was trained on; integer models get their inputs
quantized with the model's own scale and zero point. Flag names follow
TFLite's benchmark_model.
"""
import argparse
import gzip
import json
import os
import sys
import tempfile
import time

import numpy as np

# The first 4 bytes of a flatbuffer are the root offset, then the file identifier.
TFLITE_IDENTIFIER = b"TFL3"


class BenchmarkError(Exception):
    """Bad input to the benchmark: printed as one line, exit status 2."""


def load_interpreter_class():
    """Returns (Interpreter class, a description of where it came from)."""
    from importlib import metadata
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, f"ai_edge_litert {metadata.version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, f"tflite_runtime {metadata.version('tflite-runtime')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter, f"tensorflow.lite {tf.__version__} (deprecated)"
    except ImportError:
        pass
    raise BenchmarkError("no TFLite interpreter found: pip install ai-edge-litert "
                         "(or tflite-runtime on older devices)")


def check_tflite_file(path):
    """Raises BenchmarkError unless `path` is a readable file with the TFLite identifier."""
    if not os.path.isfile(path):
        raise BenchmarkError(f"--model: {path!r} does not exist or is not a file")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise BenchmarkError(f"--model: {path!r} is not a TFLite model "
                             "(no 'TFL3' flatbuffer identifier)")


def load_eval_data(path):
    """Reads (x, y) from an .npz with `x`/`y` or `x_test`/`y_test`."""
    if not os.path.isfile(path):
        raise BenchmarkError(f"--data: {path!r} does not exist")
    try:
        arrays = np.load(path, allow_pickle=False)
        names = set(arrays.files)
    except Exception as e:  # numpy raises several types for a bad file
        raise BenchmarkError(f"--data: cannot read {path!r} as .npz: {e}") from None
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        if {x_key, y_key} <= names:
            x, y = arrays[x_key], arrays[y_key]
            if len(x) != len(y) or len(x) == 0:
                raise BenchmarkError(f"--data: {x_key} has {len(x)} examples and {y_key} "
                                     f"{len(y)}; expected the same non-zero count")
            return x, y
    raise BenchmarkError(f"--data: {path!r} holds {sorted(names)}; expected x and y "
                         "(or x_test and y_test)")


def quantize_input(x, detail):
    """Casts float inputs to the model's input type, quantizing integer inputs."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero_point = detail["quantization"]
        if scale == 0:
            raise BenchmarkError("the model's integer input has no quantization scale")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(q, detail):
    """Float values of an output tensor (integer outputs use their scale and zero point)."""
    scale, zero_point = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer) and scale:
        return (q.astype(np.float32) - zero_point) * scale
    return q.astype(np.float32)


def latency_stats(samples_ms):
    """Summary statistics of latencies in milliseconds."""
    s = np.asarray(samples_ms, dtype=np.float64)
    p5, p50, p90, p95, p99 = np.percentile(s, [5, 50, 90, 95, 99])
    return {"count": int(s.size), "min": float(s.min()), "max": float(s.max()),
            "mean": float(s.mean()), "std": float(s.std()), "p5": float(p5),
            "p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99)}


def benchmark(model_path, data=None, num_threads=1, num_runs=50, warmup_runs=5):
    """Measures one .tflite file.

    Args:
      model_path: the .tflite file.
      data: optional (x, y) arrays; x in float, y class indices.
      num_threads: interpreter threads.
      num_runs: timed invocations (>= 1).
      warmup_runs: untimed invocations after the first one (>= 0).
    Returns:
      A dict of figures (see the keys below); times are in milliseconds.
    """
    if num_runs < 1:
        raise BenchmarkError(f"--num_runs: got {num_runs}; expected an integer >= 1")
    if warmup_runs < 0:
        raise BenchmarkError(f"--warmup_runs: got {warmup_runs}; expected an integer >= 0")
    if num_threads < 1:
        raise BenchmarkError(f"--num_threads: got {num_threads}; expected an integer >= 1")
    check_tflite_file(model_path)
    interpreter_class, interpreter_name = load_interpreter_class()
    with open(model_path, "rb") as f:
        content = f.read()

    start = time.perf_counter()
    try:
        interpreter = interpreter_class(model_path=model_path, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BenchmarkError(f"--model: {model_path!r} is not a valid TFLite model: "
                             f"{str(e).strip().splitlines()[0]}") from None
    init_ms = (time.perf_counter() - start) * 1e3
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1:
        raise BenchmarkError(f"--model: {len(inputs)} inputs; this benchmark feeds models "
                             "with exactly one input")
    detail = inputs[0]
    example_shape = tuple(int(d) for d in detail["shape"][1:])

    if data is not None:
        x, y = data
        if tuple(x.shape[1:]) != example_shape:
            raise BenchmarkError(f"--data: examples have shape {tuple(x.shape[1:])} but the "
                                 f"model's input takes {example_shape}")
        feed = quantize_input(x[:1], detail)
    else:
        rng = np.random.default_rng(0)
        feed = quantize_input(rng.random((1,) + example_shape, dtype=np.float32), detail)

    def invoke_ms():
        interpreter.set_tensor(detail["index"], feed)
        start = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - start) * 1e3

    first_ms = invoke_ms()
    warmup = [invoke_ms() for _ in range(warmup_runs)]
    runs = [invoke_ms() for _ in range(num_runs)]

    result = {
        "model": model_path,
        "interpreter": interpreter_name,
        "num_threads": num_threads,
        "size_bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, compresslevel=9)),
        "input": {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name},
        "output": {"shape": [int(d) for d in outputs[0]["shape"]],
                   "dtype": np.dtype(outputs[0]["dtype"]).name},
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "warmup_runs": warmup_runs,
        "warmup_mean_ms": float(np.mean(warmup)) if warmup else None,
        "latency_ms": latency_stats(runs),
        "accuracy": None,
        "num_examples": 0,
    }
    if data is not None:
        result["accuracy"] = evaluate_accuracy(interpreter, x, y)
        result["num_examples"] = int(len(x))
    return result


def evaluate_accuracy(interpreter, x, y):
    """Top-1 accuracy of the interpreter's model over (x, y), one example at a time."""
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    q = quantize_input(np.asarray(x, dtype=np.float32), detail)
    correct = 0
    for i in range(len(q)):
        interpreter.set_tensor(detail["index"], q[i:i + 1])
        interpreter.invoke()
        logits = dequantize_output(interpreter.get_tensor(output["index"]), output)
        correct += int(np.argmax(logits.reshape(-1)) == int(y[i]))
    return correct / len(q)


def format_result(r):
    """benchmark_model-style text for one result."""
    lat = r["latency_ms"]
    lines = [
        f"Model: {r['model']}",
        f"Interpreter: {r['interpreter']}, {r['num_threads']} thread(s)",
        f"Input: {r['input']['dtype']} {r['input']['shape']}   "
        f"Output: {r['output']['dtype']} {r['output']['shape']}",
        f"Size: {r['size_bytes']:,} bytes ({r['gzip_bytes']:,} gzipped)",
        f"Init: {r['init_ms']:.3f} ms   First inference: {r['first_inference_ms']:.3f} ms   "
        + (f"Warmup (avg of {r['warmup_runs']}): {r['warmup_mean_ms']:.3f} ms"
           if r["warmup_mean_ms"] is not None else "Warmup: none"),
        f"Inference ({lat['count']} runs, ms): min {lat['min']:.4f}  median {lat['p50']:.4f}  "
        f"mean {lat['mean']:.4f}  p90 {lat['p90']:.4f}  p99 {lat['p99']:.4f}  "
        f"max {lat['max']:.4f}  std {lat['std']:.4f}",
    ]
    if r["accuracy"] is not None:
        lines.append(f"Accuracy: {r['accuracy']:.4f} on {r['num_examples']} examples")
    return "\n".join(lines)


def write_json(path, value):
    """Writes JSON through a temporary file and a rename (this file stands alone,
    so it does not import greenlite's pipeline.files)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark a TFLite model (latency, size, accuracy) without TensorFlow.")
    parser.add_argument("--model", required=True, help="the .tflite file")
    parser.add_argument("--data", help=".npz with x and y (or x_test and y_test) for accuracy")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--num_runs", type=int, default=50)
    parser.add_argument("--warmup_runs", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        data = load_eval_data(args.data) if args.data else None
        result = benchmark(args.model, data, args.num_threads, args.num_runs, args.warmup_runs)
    except BenchmarkError as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
