"""Benchmarks a .tflite file on the device itself: latency, size and accuracy.

Needs only numpy and a TFLite interpreter, never TensorFlow, so this one file
can be copied to a phone, a Raspberry Pi or a CI runner. The interpreter is
the first of ai_edge_litert (LiteRT, maintained), tflite_runtime (older
devices), tensorflow.lite (deprecated) that imports; the output says which.

    python -m export.benchmark --model=model.tflite [--model=other.tflite ...] \
        [--data=eval.npz] [--num_threads=1] [--num_runs=50] [--warmup_runs=5] \
        [--use_xnnpack=true|false] [--json=out.json]

`--data` is an .npz with `x` and `y` (or `x_test` and `y_test`), or a
directory with x.npy and y.npy (memory-mapped), in the float
range the Keras model was trained on; integer models get their inputs
quantized with the model's own scale and zero point. Flag names follow
TFLite's benchmark_model. Several --model flags print one comparison table.

Besides latency it reports throughput, whether the XNNPACK delegate took the
whole graph, part of it or none, the MACs counted from the graph and the
achieved GMAC/s, and the process's peak RSS. Per-op time is not available:
the Python interpreter API exposes no profiler (TFLite's benchmark_model
--enable_op_profiling=true has one); the output says so.

It stays one file, with everything it needs, so that copying it is all a
device needs (see BUILD_NOTES.md). An `.onnx` file is measured by ONNX
Runtime with the same figures (export/benchmark_onnx.py, the file beside this
one: copy both to a server), so one command compares a TFLite and an ONNX file.
"""
import argparse
import gzip
import json
import os
import resource
import re
import sys
import tempfile
import time
from typing import Optional

import numpy as np

# The first 4 bytes of a flatbuffer are the root offset, then the file identifier.
TFLITE_IDENTIFIER = b"TFL3"


def _onnx():
    """export/benchmark_onnx.py, the ONNX Runtime half, beside this file."""
    try:
        from export import benchmark_onnx
    except ImportError:  # run from a copy of the two files, not from greenlite
        import benchmark_onnx  # pylint: disable=import-error
    benchmark_onnx.bind(sys.modules[__name__])
    return benchmark_onnx


def _tensorrt():
    """export/benchmark_tensorrt.py, a TensorRT engine's runner (within greenlite only)."""
    from export import benchmark_tensorrt
    benchmark_tensorrt.bind(sys.modules[__name__])
    return benchmark_tensorrt


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


def make_interpreter(interpreter_class, model_path, num_threads, use_xnnpack):
    """Builds the interpreter; `use_xnnpack=False` turns off the default delegate."""
    kwargs = {"model_path": model_path, "num_threads": num_threads}
    if not use_xnnpack:
        module = sys.modules[interpreter_class.__module__]
        resolver = getattr(module, "OpResolverType", None)
        if resolver is None:
            raise BenchmarkError("--use_xnnpack=false: this interpreter cannot turn off "
                                 "its default delegates")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return interpreter_class(**kwargs)


def check_tflite_file(path):
    """Raises BenchmarkError unless `path` is a readable file with the TFLite identifier."""
    if not os.path.isfile(path):
        raise BenchmarkError(f"--model: {path!r} does not exist or is not a file")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise BenchmarkError(f"--model: {path!r} is not a TFLite model "
                             "(no 'TFL3' flatbuffer identifier)")


def load_eval_data(path: str) -> tuple:
    """Reads (x, y) from an .npz with `x`/`y` or `x_test`/`y_test`, or from a
    directory holding x.npy and y.npy (memory-mapped: read as evaluated)."""
    if os.path.isdir(path):
        files = [os.path.join(path, f"{name}.npy") for name in ("x", "y")]
        if not all(os.path.isfile(f) for f in files):
            raise BenchmarkError(f"--data: directory {path!r} must hold x.npy and y.npy")
        try:
            x, y = (np.load(f, mmap_mode="r", allow_pickle=False) for f in files)
        except Exception as e:  # numpy raises several types for a bad file
            raise BenchmarkError(f"--data: cannot read the .npy files in {path!r}: {e}") from None
        return _checked(x, y, "x", "y")
    if not os.path.isfile(path):
        raise BenchmarkError(f"--data: {path!r} does not exist")
    try:
        arrays = np.load(path, allow_pickle=False)
        names = set(arrays.files)
    except Exception as e:  # numpy raises several types for a bad file
        raise BenchmarkError(f"--data: cannot read {path!r} as .npz: {e}") from None
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        if {x_key, y_key} <= names:
            return _checked(arrays[x_key], arrays[y_key], x_key, y_key)
    raise BenchmarkError(f"--data: {path!r} holds {sorted(names)}; expected x and y "
                         "(or x_test and y_test)")


def _checked(x, y, x_key, y_key):
    if len(x) != len(y) or len(x) == 0:
        raise BenchmarkError(f"--data: {x_key} has {len(x)} examples and {y_key} "
                             f"{len(y)}; expected the same non-zero count")
    return x, y


# TfLiteType numbers (c/c_api_types.h), for messages that quote one.
TFLITE_TYPES = {0: "NOTYPE", 1: "FLOAT32", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING",
                6: "BOOL", 7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT16", 11: "FLOAT64",
                12: "COMPLEX128", 13: "UINT64", 14: "RESOURCE", 15: "VARIANT", 16: "UINT32",
                17: "UINT16", 18: "INT4", 19: "BFLOAT16"}


def name_types(message):
    """Replaces TfLiteType numbers in a runtime message ("... got 7.") by names (INT16)."""
    import re
    return re.sub(r"\b(got|type|Type) (\d+)\b",
                  lambda m: f"{m.group(1)} {TFLITE_TYPES.get(int(m.group(2)), m.group(2))}"
                  f" ({m.group(2)})", message)


def quantize_input(x: "np.ndarray", detail: dict) -> "np.ndarray":
    """Casts inputs to the model's input type, quantizing float data for quantized inputs.

    An integer input without a quantization scale takes integers as they are
    (token ids); float data for it is refused.
    """
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer) and x.dtype == dtype:
        return x  # already quantized by the caller
    if np.issubdtype(dtype, np.integer):
        scale, zero_point = detail["quantization"]
        if scale == 0:
            if np.issubdtype(x.dtype, np.integer):
                return x.astype(dtype)
            raise BenchmarkError(f"the model takes {np.dtype(dtype).name} values (token ids, "
                                 f"no quantization scale) but the data holds {x.dtype.name}; "
                                 "give integer data")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(q: "np.ndarray", detail: dict) -> "np.ndarray":
    """Float values of an output tensor (integer outputs use their scale and zero point)."""
    scale, zero_point = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer) and scale:
        return (q.astype(np.float32) - zero_point) * scale
    return q.astype(np.float32)


def synthetic_input(interpreter, detail, example_shape):
    """One valid input when no data is given: uniform [0, 1) floats (quantized
    for int8 models), or token ids within the embedding table the input indexes."""
    rng = np.random.default_rng(0)
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer) and not detail["quantization"][0]:
        vocabulary = lookup_table_rows(interpreter, detail["index"])
        if vocabulary is None:
            raise BenchmarkError(
                f"--data: required; the model takes {np.dtype(dtype).name} inputs that are not "
                "quantized values and feed no embedding table whose size shows their valid "
                "range, so no input can be made up")
        return rng.integers(0, vocabulary, (1,) + example_shape).astype(dtype)
    return quantize_input(rng.random((1,) + example_shape, dtype=np.float32), detail)


def _made_up(interpreter, detail):
    """Values for an input beyond the first: as `synthetic_input`, or zeros for an integer
    input whose range nothing in the file shows (a position, a step counter)."""
    try:
        return synthetic_input(interpreter, detail, tuple(int(n) for n in detail["shape"][1:]))
    except BenchmarkError:
        return np.zeros([int(n) for n in detail["shape"]], dtype=detail["dtype"])


def lookup_table_rows(interpreter, input_index):
    """Rows of the table a GATHER / EMBEDDING_LOOKUP indexes with `input_index`, or None."""
    try:
        ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    except AttributeError:
        return None
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    for op in ops:
        inputs = list(op["inputs"])
        if op["op_name"] == "GATHER" and len(inputs) > 1 and inputs[1] == input_index:
            table = inputs[0]
        elif op["op_name"] == "EMBEDDING_LOOKUP" and len(inputs) > 1 and inputs[0] == input_index:
            table = inputs[1]
        else:
            continue
        shape = shapes.get(table)
        if shape is not None and len(shape) >= 1 and shape[0] > 0:
            return int(shape[0])
    return None


def gzip_bytes(content: bytes) -> int:
    """The download size of a file's bytes: gzip at its best level (the report's
    `gzip_bytes`; computed here only, so every figure means the same)."""
    return len(gzip.compress(content, compresslevel=9))


def latency_stats(samples_ms: list) -> dict:
    """Summary statistics of latencies in milliseconds."""
    s = np.asarray(samples_ms, dtype=np.float64)
    p5, p50, p90, p95, p99 = np.percentile(s, [5, 50, 90, 95, 99])
    return {"count": int(s.size), "min": float(s.min()), "max": float(s.max()),
            "mean": float(s.mean()), "std": float(s.std()), "p5": float(p5),
            "p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99)}


def graph_info(interpreter):
    """Operators, delegate coverage and MACs, from the interpreter's op list.

    Returns {"ops": {op type: count}, "delegated": "all"|"partial"|"none",
    "delegated_ops", "total_ops", "not_delegated": {op type: count}, "macs"}.
    `macs` is None when the interpreter does not list its ops.
    """
    try:
        ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    except AttributeError:
        return {"ops": None, "delegated": "unknown", "macs": None}
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producers = {t: op["index"] for op in original for t in op["outputs"]}
    by_index = {op["index"]: op for op in original}
    covered = set()
    for delegate in delegates:
        # A delegate node replaces the ops between its inputs and outputs:
        # walk back from its outputs until its inputs.
        boundary, stack = set(delegate["inputs"]), list(delegate["outputs"])
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producers or producers[tensor] in covered:
                continue
            covered.add(producers[tensor])
            stack.extend(by_index[producers[tensor]]["inputs"])
    count = lambda items: {name: sum(1 for op in items if op["op_name"] == name)
                           for name in sorted({op["op_name"] for op in items})}
    left = [op for op in original if op["index"] not in covered]
    delegated = "none" if not covered else ("all" if not left else "partial")
    return {"ops": count(original), "total_ops": len(original), "delegated": delegated,
            "delegated_ops": len(covered), "not_delegated": count(left) if covered else {},
            "macs": sum(_op_macs(op, tensors) for op in original)}


def _op_macs(op, tensors):
    """Multiply-accumulates of one op, from its tensor shapes (0 for ops without any)."""
    def shape(i):
        return [int(d) for d in tensors[i]["shape"]] if i >= 0 and i in tensors else []
    name = op["op_name"]
    # len(), not truth: the op lists are numpy arrays, and a stateful model's
    # ASSIGN_VARIABLE has none (numpy 2 refuses the truth of an empty array).
    out = shape(op["outputs"][0]) if len(op["outputs"]) else []
    weights = shape(op["inputs"][1]) if len(op["inputs"]) > 1 else []
    if not out or not weights:
        return 0
    out_elements = int(np.prod(out))
    if name == "CONV_2D":            # filter [out_c, kh, kw, in_c]
        return out_elements * int(np.prod(weights[1:]))
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_c]
        return out_elements * weights[1] * weights[2]
    if name == "FULLY_CONNECTED":    # weights [out, in]
        return out_elements * weights[-1]
    if name == "CONV_3D":            # filter [kd, kh, kw, in_c, out_c]
        return out_elements * int(np.prod(weights[:-1]))
    if name == "TRANSPOSE_CONV":     # inputs: output shape, filter [out_c, kh, kw, in_c], input
        source = shape(op["inputs"][2]) if len(op["inputs"]) > 2 else []
        return int(np.prod(source)) * int(np.prod(weights[:-1])) if source else 0
    if name == "BATCH_MATMUL":       # [..., m, k] x [..., k, n]
        a = shape(op["inputs"][0])
        return out_elements * a[-1] if a else 0
    return 0


def peak_rss_mb():
    """Peak resident memory of this process since it started this program, MiB.

    On Linux this is VmHWM, the high-water mark of the process's own address
    space, which exec starts afresh. Not ru_maxrss: Linux carries it across
    fork and exec, so a benchmark started by the pipeline (a forked child of
    a process holding TensorFlow) reported the parent's 897 MiB instead of
    its own ~50. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def benchmark(model_path: str, data: Optional[tuple] = None, num_threads: int = 1,
              num_runs: int = 50, warmup_runs: int = 5, use_xnnpack: bool = True,
              keep_outputs: int = 0) -> dict:
    """Measures one .tflite file.

        >>> figures = benchmark("model_int8.tflite", (x_test, y_test), num_runs=100)
        >>> figures["latency_ms"]["p50"], figures["accuracy"], figures["size_bytes"]

    Args:
      model_path: the .tflite file.
      data: optional (x, y) arrays; x in float, y class indices.
      num_threads: interpreter threads.
      num_runs: timed invocations (>= 1).
      warmup_runs: untimed invocations after the first one (>= 0).
      use_xnnpack: False runs the builtin kernels only.
      keep_outputs: with `data`, also return the (dequantized, float32)
        outputs of the first this many examples as result["outputs"], to
        compare runtimes on the same inputs.
    Returns:
      A dict of figures (see the keys below); times are in milliseconds.
    """
    if model_path.endswith(".onnx"):
        return _onnx().benchmark(model_path, data, num_threads, num_runs, warmup_runs,
                                 keep_outputs)
    if model_path.endswith(".engine"):
        return _tensorrt().benchmark(model_path, data, num_runs, warmup_runs, keep_outputs)
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
        interpreter = make_interpreter(interpreter_class, model_path, num_threads, use_xnnpack)
        interpreter.allocate_tensors()
    except Exception as e:  # pylint: disable=broad-except
        # A malformed file surfaces as ValueError, RuntimeError, UnicodeDecodeError
        # (names read from the flatbuffer) and more: all mean "not a valid model".
        raise BenchmarkError(f"--model: {model_path!r} is not a valid TFLite model: "
                             f"{_first_line(e)}") from None
    init_ms = (time.perf_counter() - start) * 1e3
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if data is not None and len(inputs) != 1:
        names = ", ".join(d["name"] for d in inputs)
        raise BenchmarkError(f"--data: the model has {len(inputs)} inputs ({names}); --data "
                             "scores files of one input (x and y); without --data every input "
                             "is fed made-up values of its type and shape")
    detail = inputs[0]
    example_shape = tuple(int(d) for d in detail["shape"][1:])
    # Every other input of a file with several (a decoder's cache, a second
    # feature) gets made-up values of its own type and shape, as benchmark_model does.
    others = [(d, _made_up(interpreter, d)) for d in inputs[1:]]

    if data is not None:
        x, y = data
        if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
            raise BenchmarkError(f"--data: x has dtype {x.dtype}; expected real numbers "
                                 f"(the model takes {np.dtype(detail['dtype']).name})")
        if tuple(x.shape[1:]) != example_shape:
            raise BenchmarkError(f"--data: examples have shape {tuple(x.shape[1:])} but the "
                                 f"model's input takes {example_shape}")
        feed = quantize_input(x[:1], detail)
    else:
        feed = synthetic_input(interpreter, detail, example_shape)

    def invoke_ms():
        interpreter.set_tensor(detail["index"], feed)
        for other, value in others:
            interpreter.set_tensor(other["index"], value)
        start = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - start) * 1e3

    first_ms = invoke_ms()
    warmup = [invoke_ms() for _ in range(warmup_runs)]
    runs = [invoke_ms() for _ in range(num_runs)]
    graph = graph_info(interpreter)
    latency = latency_stats(runs)

    result = {
        "model": model_path,
        "interpreter": interpreter_name,
        "num_threads": num_threads,
        "use_xnnpack": use_xnnpack,
        "size_bytes": len(content),
        "gzip_bytes": gzip_bytes(content),
        "input": {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
                  "scale": float(detail["quantization"][0]),
                  "zero_point": int(detail["quantization"][1])},
        "output": {"shape": [int(d) for d in outputs[0]["shape"]],
                   "dtype": np.dtype(outputs[0]["dtype"]).name},
        "num_inputs": len(inputs),
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "warmup_runs": warmup_runs,
        "warmup_mean_ms": float(np.mean(warmup)) if warmup else None,
        "latency_ms": latency,
        "throughput_per_s": 1000.0 / latency["mean"] if latency["mean"] > 0 else None,
        "ops": graph["ops"],
        "delegated": graph["delegated"],
        "delegated_ops": graph.get("delegated_ops"),
        "total_ops": graph.get("total_ops"),
        "not_delegated": graph.get("not_delegated"),
        "macs": graph["macs"],
        "gmacs_per_s": (graph["macs"] / (latency["p50"] / 1e3) / 1e9
                        if graph["macs"] and latency["p50"] > 0 else None),
        "op_profile": None,
        "op_profile_note": "per-op time is not exposed by the Python interpreter API; "
                           "use TFLite's benchmark_model --enable_op_profiling=true",
        "accuracy": None,
        "cross_entropy": None,
        "perplexity": None,
        "num_examples": 0,
    }
    if data is not None:
        kept = []
        result["accuracy"], result["cross_entropy"] = evaluate(interpreter, x, y, kept,
                                                               keep_outputs)
        if keep_outputs:
            result["outputs"] = np.concatenate(kept).astype(np.float32)
        result["perplexity"] = float(np.exp(result["cross_entropy"]))
        result["num_examples"] = int(len(x))
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def score(outputs: "np.ndarray", targets: "np.ndarray",
          probabilities: bool = False) -> tuple:
    """(top-1 hits, summed negative log-likelihood in nats, count) of model
    outputs against integer targets.

    outputs: [..., classes], logits or, when `probabilities`, a softmax's
    output; targets: the matching [...] class indices (one per example, or
    one per position for language models). Shared with the Keras evaluation
    (pipeline/training.py), so Keras and TFLite figures mean the same thing.
    """
    targets = np.asarray(targets).reshape(-1).astype(np.int64)
    outputs = np.asarray(outputs, dtype=np.float64).reshape(targets.size, -1)
    if probabilities:
        log_probs = np.log(np.clip(outputs, 1e-12, 1.0))
    else:
        shifted = outputs - outputs.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    hits = int((outputs.argmax(-1) == targets).sum())
    return hits, -float(log_probs[np.arange(targets.size), targets].sum()), targets.size


def outputs_probabilities(interpreter, first_output=None):
    """True when the model's output comes from a SOFTMAX op (probabilities, not logits).

    Read from the graph; an interpreter that does not list its ops falls back
    to the values of `first_output` (non-negative rows summing to 1).
    """
    index = interpreter.get_output_details()[0]["index"]
    try:
        ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    except AttributeError:
        if first_output is None:
            return False
        rows = np.asarray(first_output, dtype=np.float64).reshape(-1, first_output.shape[-1])
        return bool(rows.min() >= 0 and np.allclose(rows.sum(-1), 1.0, atol=1e-2))
    # Delegate nodes are listed beside the ops they replaced; the op is what counts.
    producers = [op["op_name"] for op in ops
                 if index in op["outputs"] and op["op_name"] != "DELEGATE"]
    return producers == ["SOFTMAX"]


def _example_scores(interpreter, x, y):
    """Yields (outputs, hits, nats, positions) for each example of (x, y), in order:
    the one pass that `evaluate` and `score_file` share."""
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    probabilities = None
    for i in range(len(x)):
        # One example at a time: x may be memory-mapped and larger than memory.
        interpreter.set_tensor(detail["index"], quantize_input(np.asarray(x[i:i + 1]), detail))
        interpreter.invoke()
        outputs = dequantize_output(interpreter.get_tensor(output["index"]), output)
        if probabilities is None:
            probabilities = outputs_probabilities(interpreter, outputs)
        yield (outputs,) + score(outputs, y[i], probabilities)


def evaluate(interpreter, x, y, kept=None, keep=0):
    """Top-1 accuracy and mean cross-entropy (nats) of the interpreter's model over (x, y).

    y holds one class per example (classifiers) or one per position (language
    models, where the model outputs logits at every position); accuracy and
    cross-entropy are then per token. A model ending in a softmax is scored
    on its probabilities. Runs one example at a time. The outputs of the
    first `keep` examples are appended to `kept`.
    """
    correct = count = 0
    nll = 0.0
    for i, (outputs, hits, nats, n) in enumerate(_example_scores(interpreter, x, y)):
        if i < keep:
            kept.append(outputs)
        correct, nll, count = correct + hits, nll + nats, count + n
    return correct / count, nll / count


def score_file(model_path: str, x: "np.ndarray", y: "np.ndarray") -> dict:
    """Accuracy, perplexity and per-example hits of one .tflite file over (x, y),
    in one pass (1 thread, XNNPACK), as `evaluate` scores it.

    `hits` holds one figure per example: 1.0 or 0.0 for a classifier, the
    fraction of positions right for a language model; per token they
    average to `accuracy`. Two files scored on the same examples can then be
    compared pair by pair (pipeline/stats.py).
    """
    if model_path.endswith(".onnx"):
        onnx = _onnx()
        run = onnx.session(model_path, 1)
        with open(model_path, "rb") as f:
            probabilities = onnx.graph_info(f.read())["probabilities"]
        per_example = [(hits, nats, n) for _, hits, nats, n in onnx.example_scores(
            run, x, y, onnx.input_dtype(run), probabilities)]
    else:
        check_tflite_file(model_path)
        interpreter = make_interpreter(load_interpreter_class()[0], model_path, 1, True)
        interpreter.allocate_tensors()
        per_example = [(hits, nats, n)
                       for _, hits, nats, n in _example_scores(interpreter, x, y)]
    hits, nats, counts = (np.array(column, dtype=np.float64) for column in zip(*per_example))
    cross_entropy = float(nats.sum() / counts.sum())
    return {"accuracy": float(hits.sum() / counts.sum()), "cross_entropy": cross_entropy,
            "perplexity": float(np.exp(cross_entropy)), "hits": hits / counts}


def _first_line(error):
    """What the interpreter's error says, as one line for a user: what in the file is
    wrong, never a Python exception's class or codec text."""
    if isinstance(error, UnicodeDecodeError):
        # Names and strings in a flatbuffer are read as UTF-8: a damaged one fails here.
        return (f"a name or string in the file is not valid UTF-8 (byte "
                f"0x{error.object[error.start]:02x} at offset {error.start} of a "
                f"{len(error.object)}-byte string): the file is damaged")
    text = name_types(str(error).strip())
    # TFLite's error reporter joins its messages without a separator
    # ("... in XNNPACK delegateunsupported datatype ..."): put one back.
    text = re.sub(r"(delegate|failed to prepare\.|failed to invoke\.)(?=[A-Za-z])", r"\1; ",
                  text)
    first = text.splitlines()[0] if text else ""
    return first or "the interpreter stopped without saying why"


def format_result(r):
    """benchmark_model-style text for one result."""
    lat = r["latency_ms"]
    delegation = {"all": "XNNPACK took the whole graph",
                  "partial": f"XNNPACK took {r['delegated_ops']} of {r['total_ops']} ops; left "
                             f"to builtin kernels: {r['not_delegated']}",
                  "none": "no delegate (builtin kernels)" if r["use_xnnpack"]
                          else "XNNPACK off (--use_xnnpack=false): builtin kernels",
                  "unknown": "delegation unknown (this interpreter does not list its ops)"}
    delegation[None] = f"ONNX Runtime's {r.get('execution_provider')}"
    lines = [
        f"Model: {r['model']}",
        f"Interpreter: {r['interpreter']}, {r['num_threads']} thread(s); "
        f"{delegation[r['delegated']]}",
        f"Input: {r['input']['dtype']} {r['input']['shape']}   "
        f"Output: {r['output']['dtype']} {r['output']['shape']}",
        f"Size: {r['size_bytes']:,} bytes ({r['gzip_bytes']:,} gzipped)",
        f"Init: {r['init_ms']:.3f} ms   First inference: {r['first_inference_ms']:.3f} ms   "
        + (f"Warmup (avg of {r['warmup_runs']}): {r['warmup_mean_ms']:.3f} ms"
           if r["warmup_mean_ms"] is not None else "Warmup: none"),
        f"Inference ({lat['count']} runs, ms): min {lat['min']:.4f}  median {lat['p50']:.4f}  "
        f"mean {lat['mean']:.4f}  max {lat['max']:.4f}  std {lat['std']:.4f}",
        f"  percentiles (ms): p5 {lat['p5']:.4f}  p90 {lat['p90']:.4f}  p95 {lat['p95']:.4f}  "
        f"p99 {lat['p99']:.4f}   throughput {r['throughput_per_s']:,.1f} inferences/s",
    ]
    if r["macs"] is not None:
        lines.append(f"MACs: {r['macs']:,} per inference; {r['gmacs_per_s']:.2f} GMAC/s at the median")
    if r["ops"]:
        lines.append("Ops: " + ", ".join(f"{name} x{n}" for name, n in r["ops"].items()))
    lines.append(f"Per-op time: not available ({r['op_profile_note']})")
    lines.append(f"Peak RSS: {r['peak_rss_mb']:.1f} MiB (this process)")
    if r["accuracy"] is not None:
        lines.append(f"Accuracy: {r['accuracy']:.4f} on {r['num_examples']} examples; "
                     f"cross-entropy {r['cross_entropy']:.4f} nats (perplexity {r['perplexity']:.3f})")
    return "\n".join(lines)


def comparison_table(results):
    """One row per model: the figures to compare side by side."""
    header = ("| model | size (bytes) | gzip (bytes) | median ms | p90 ms | p99 ms | "
              "inferences/s | MACs | GMAC/s | XNNPACK (or runtime) | accuracy |")
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        lat = r["latency_ms"]
        rows.append(
            f"| {os.path.basename(r['model'])} | {r['size_bytes']:,} | {r['gzip_bytes']:,} | "
            f"{lat['p50']:.4f} | {lat['p90']:.4f} | {lat['p99']:.4f} | "
            f"{r['throughput_per_s']:,.0f} | "
            f"{'' if r['macs'] is None else format(r['macs'], ',')} | "
            f"{'' if r['gmacs_per_s'] is None else format(r['gmacs_per_s'], '.2f')} | "
            f"{r['delegated'] or r['interpreter']} | "
            f"{'' if r['accuracy'] is None else format(r['accuracy'], '.4f')} |")
    return "\n".join(rows)


def write_json(path, value):
    """Writes JSON through a temporary file and a rename (this file stands alone,
    so it does not import greenlite's pipeline.files)."""
    _write_atomically(path, "w", lambda f: json.dump(value, f, indent=2))


def write_npy(path, array):
    """Writes a .npy file through a temporary file and a rename."""
    _write_atomically(path, "wb", lambda f: np.save(f, array))


def _write_atomically(path, mode, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bool(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"got {text!r}; expected true or false")


def serve(reply_fd):
    """Benchmarks many files in this one process (greenlite's runtime gate): each line on
    stdin is a JSON list of this command's arguments, answered on `reply_fd` with
    {"returncode", "error"} (the command's error line, if any)."""
    import contextlib
    import io
    with os.fdopen(reply_fd, "wb", buffering=0) as replies:
        for line in sys.stdin.buffer:
            if line.strip():
                errors = io.StringIO()
                with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
                    code = main(json.loads(line))
                last = (errors.getvalue().strip().splitlines() or [""])[-1]
                replies.write((json.dumps({"returncode": code, "error": last}) + "\n").encode())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--serve"]:
        return serve(int(argv[1].removeprefix("--reply_fd=")))
    parser = argparse.ArgumentParser(
        description="Benchmark TFLite models (latency, size, MACs, accuracy) without TensorFlow.")
    parser.add_argument("--model", required=True, action="append",
                        help="a .tflite (or .onnx) file; repeat to compare several")
    parser.add_argument("--data", help=".npz with x and y (or x_test and y_test), or a "
                        "directory with x.npy and y.npy, for accuracy")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--num_runs", type=int, default=50)
    parser.add_argument("--warmup_runs", type=int, default=5)
    parser.add_argument("--use_xnnpack", type=_bool, default=True,
                        help="true (default): LiteRT's default XNNPACK delegate; false: builtin kernels")
    parser.add_argument("--json", help="also write the figures to this JSON file "
                                       "(one object, or a list for several models)")
    parser.add_argument("--outputs", help="with --data and one --model: write the float "
                        "outputs of the first --keep_outputs examples to this .npy file")
    parser.add_argument("--keep_outputs", type=int, default=64)
    args = parser.parse_args(argv)
    results = []
    try:
        data = load_eval_data(args.data) if args.data else None
        if args.outputs and (data is None or len(args.model) != 1):
            raise BenchmarkError("--outputs: needs --data and exactly one --model")
        keep = args.keep_outputs if args.outputs else 0
        for model in args.model:
            try:
                results.append(benchmark(model, data, args.num_threads, args.num_runs,
                                         args.warmup_runs, args.use_xnnpack, keep))
            except BenchmarkError:
                raise
            except Exception as e:  # pylint: disable=broad-except
                # Whatever bytes a file holds, the answer is one line, not a traceback.
                raise BenchmarkError(f"--model: {model!r} could not be run: "
                                     f"{_first_line(e)}") from None
    except BenchmarkError as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    if args.outputs:
        write_npy(args.outputs, results[0].pop("outputs"))
    print("\n\n".join(format_result(r) for r in results))
    if len(results) > 1:
        print("\n" + comparison_table(results))
    if args.json:
        write_json(args.json, results[0] if len(results) == 1 else results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
