"""Benchmarks an .onnx file with ONNX Runtime on the CPU: the figures export/benchmark.py
gives a .tflite file (size, latency percentiles, MACs, GMAC/s, accuracy), so a
server's ONNX file and a device's TFLite file compare side by side.

export/benchmark.py hands it every `--model` ending in `.onnx` (this file is not
run by itself); copy both files to benchmark on a server (numpy, onnxruntime; `onnx` too for the op list, the
MACs and softmax detection — without it those are left out):

    python export/benchmark.py --model=train_onnx_int8.onnx --model=train_int8.tflite \
        --data=export/test_data --num_threads=1

Latency is `InferenceSession.run` at batch 1, intra-op threads = --num_threads
(inter-op 1, sequential execution), all of ONNX Runtime's graph optimizations
on: what a server's single request waits for.
"""
import os
import time
from typing import Optional

import numpy as np

# export/benchmark.py, which hands this module its files and lends it its helpers
# (scoring, latency statistics, gzip, peak RSS, BenchmarkError) through `bind`:
# this file imports nothing of greenlite, so the pair copies as two files.
common = None


def bind(benchmark_module):
    """Lends this module export/benchmark.py's helpers (called by that module)."""
    global common
    common = benchmark_module

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(int8)": np.int8,
          "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}
# Ops an output passes through unchanged in meaning on its way out of the graph
# (a QDQ file quantizes the softmax's output and dequantizes it again).
PASS_THROUGH = {"QuantizeLinear", "DequantizeLinear", "Identity", "Reshape", "Squeeze",
                "Flatten", "Cast"}


def session(model_path: str, num_threads: int):
    """An ONNX Runtime CPU session of the file, or BenchmarkError saying why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise common.BenchmarkError("--model: an .onnx file needs ONNX Runtime: pip install "
                             "onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
        raise common.BenchmarkError(f"--model: {model_path!r} is not a valid ONNX model: "
                             f"{common._first_line(e)}") from None


def version() -> str:
    from importlib import metadata
    return f"onnxruntime {metadata.version('onnxruntime')}"


def benchmark(model_path: str, data: Optional[tuple] = None, num_threads: int = 1,
              num_runs: int = 50, warmup_runs: int = 5, keep_outputs: int = 0) -> dict:
    """Measures one .onnx file; the keys of export/benchmark.benchmark's result.

        >>> figures = benchmark("train_onnx_int8.onnx", (x_test, y_test), num_runs=100)
        >>> figures["latency_ms"]["p50"], figures["accuracy"], figures["macs"]
    """
    if num_runs < 1:
        raise common.BenchmarkError(f"--num_runs: got {num_runs}; expected an integer >= 1")
    if warmup_runs < 0:
        raise common.BenchmarkError(f"--warmup_runs: got {warmup_runs}; expected an integer >= 0")
    if num_threads < 1:
        raise common.BenchmarkError(f"--num_threads: got {num_threads}; expected an integer >= 1")
    if not os.path.isfile(model_path):
        raise common.BenchmarkError(f"--model: {model_path!r} does not exist or is not a file")
    with open(model_path, "rb") as f:
        content = f.read()
    start = time.perf_counter()
    run = session(model_path, num_threads)
    init_ms = (time.perf_counter() - start) * 1e3
    inputs, output = run.get_inputs(), run.get_outputs()[0]
    if data is not None and len(inputs) != 1:
        raise common.BenchmarkError(f"--data: the model has {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); --data scores files of "
                             "one input (x and y)")
    first = inputs[0]
    dtype = input_dtype(run)
    declared = tuple(d if isinstance(d, int) else None for d in first.shape[1:])
    if data is not None:
        x, y = data
        if any(d is not None and d != s for d, s in zip(declared, x.shape[1:])) \
                or len(declared) != len(x.shape[1:]):
            raise common.BenchmarkError(f"--data: examples have shape {tuple(x.shape[1:])} but the "
                                 f"model's input takes {declared}")
        example_shape = tuple(x.shape[1:])
        feed = np.asarray(x[:1]).astype(dtype)
    else:
        example_shape = tuple(d or 1 for d in declared)
        feed = np.zeros((1,) + example_shape, dtype)
    others = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],
                               DTYPES.get(i.type, np.float32)) for i in inputs[1:]}

    def invoke_ms():
        feeds = {first.name: feed, **others}
        start = time.perf_counter()
        run.run(None, feeds)
        return (time.perf_counter() - start) * 1e3

    first_ms = invoke_ms()
    warmup = [invoke_ms() for _ in range(warmup_runs)]
    runs = [invoke_ms() for _ in range(num_runs)]
    latency = common.latency_stats(runs)
    graph = graph_info(content, {first.name: feed, **others})
    result = {
        "model": model_path, "interpreter": version(), "num_threads": num_threads,
        "use_xnnpack": False, "execution_provider": "CPUExecutionProvider",
        "size_bytes": len(content), "gzip_bytes": common.gzip_bytes(content),
        "input": {"shape": [1, *example_shape], "dtype": np.dtype(dtype).name,
                  "scale": 0.0, "zero_point": 0},
        "output": {"shape": [d if isinstance(d, int) else 1 for d in output.shape],
                   "dtype": np.dtype(DTYPES.get(output.type, np.float32)).name},
        "num_inputs": len(inputs), "init_ms": init_ms, "first_inference_ms": first_ms,
        "warmup_runs": warmup_runs,
        "warmup_mean_ms": float(np.mean(warmup)) if warmup else None,
        "latency_ms": latency,
        "throughput_per_s": 1000.0 / latency["mean"] if latency["mean"] > 0 else None,
        "ops": graph["ops"], "delegated": None, "delegated_ops": None, "total_ops":
            sum(graph["ops"].values()) if graph["ops"] else None, "not_delegated": None,
        "macs": graph["macs"],
        "gmacs_per_s": (graph["macs"] / (latency["p50"] / 1e3) / 1e9
                        if graph["macs"] and latency["p50"] > 0 else None),
        "op_profile": None,
        "op_profile_note": "ONNX Runtime's profiler (SessionOptions.enable_profiling) is "
                           "not run by this benchmark",
        "accuracy": None, "cross_entropy": None, "perplexity": None, "num_examples": 0,
    }
    if data is not None:
        kept = []
        result["accuracy"], result["cross_entropy"] = evaluate(
            run, x, y, dtype, graph["probabilities"], kept, keep_outputs)
        if keep_outputs:
            result["outputs"] = np.concatenate(kept).astype(np.float32)
        result["perplexity"] = float(np.exp(result["cross_entropy"]))
        result["num_examples"] = int(len(x))
    result["peak_rss_mb"] = common.peak_rss_mb()
    return result


def input_dtype(run):
    """The numpy dtype of the session's first input."""
    return DTYPES.get(run.get_inputs()[0].type, np.float32)


def example_scores(run, x, y, dtype, probabilities):
    """Yields (outputs, hits, nats, positions) for each example of (x, y), in order, scored
    by export/benchmark.score as the TFLite files are: the one pass `evaluate` and
    benchmark.score_file share. `probabilities` None (no `onnx` package to read
    the graph with): judged from the first outputs (rows of non-negative values
    summing to 1)."""
    name = run.get_inputs()[0].name
    for i in range(len(x)):
        outputs = run.run(None, {name: np.asarray(x[i:i + 1]).astype(dtype)})[0]
        if probabilities is None:
            rows = np.asarray(outputs, np.float64).reshape(-1, outputs.shape[-1])
            probabilities = bool(rows.min() >= 0 and np.allclose(rows.sum(-1), 1, atol=1e-2))
        yield (outputs,) + common.score(outputs, y[i], probabilities)


def evaluate(run, x, y, dtype, probabilities, kept=None, keep=0):
    """Top-1 accuracy and mean cross-entropy (nats) over (x, y), one example at a time;
    the outputs of the first `keep` examples are appended to `kept`."""
    correct = count = 0
    nll = 0.0
    for i, (outputs, hits, nats, n) in enumerate(example_scores(run, x, y, dtype,
                                                                probabilities)):
        if i < keep:
            kept.append(outputs)
        correct, nll, count = correct + hits, nll + nats, count + n
    return correct / count, nll / count


def graph_info(content: bytes, feed: Optional[dict] = None) -> dict:
    """{"ops": {op type: count}, "macs", "probabilities"} of an ONNX file, read with
    the `onnx` package (None each without it). MACs are counted as benchmark.py
    counts a .tflite file's (convolutions, matrix products, Einsum) on the shapes of
    one run on `feed` ({input name: array}; no MACs without it)."""
    try:
        import onnx
    except ImportError:
        return {"ops": None, "macs": None, "probabilities": None}
    model = onnx.load_from_string(content)
    from collections import Counter
    ops = dict(sorted(Counter(n.op_type for n in model.graph.node).items()))
    shapes = {t.name: [int(d) for d in t.dims] for t in model.graph.initializer}
    if feed is not None:
        shapes.update(_run_shapes(model, feed))
    macs = sum(_node_macs(n, shapes) for n in model.graph.node)
    return {"ops": ops, "macs": macs or None, "probabilities": _ends_in_softmax(model)}


def _run_shapes(model, feed):
    """{tensor name: shape} of every node output in one run of the model on `feed`.

    From a run, not from ONNX's shape inference: tf2onnx computes the shapes of
    its reshapes at run time (Shape, Gather, Concat around an Einsum), which
    static inference cannot follow, and a missed shape is a missed matmul."""
    import onnx
    import onnxruntime as ort
    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in model.graph.output}
    names = [out for node in model.graph.node for out in node.output
             if out and out not in known]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    options = ort.SessionOptions()
    # The graph as written: fused nodes would drop the intermediate tensors.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    run = ort.InferenceSession(model.SerializeToString(), options,
                               providers=["CPUExecutionProvider"])
    outputs = [o.name for o in run.get_outputs()]
    return {name: list(np.shape(value)) for name, value in zip(outputs, run.run(None, feed))}


def _node_macs(node, shapes):
    """Multiply-accumulates of one node from its tensor shapes (0 when unknown)."""
    shape = lambda name: shapes.get(name, [])
    out = shape(node.output[0]) if node.output else []
    if not out:
        return 0
    out_elements = int(np.prod(out))
    if node.op_type == "Conv":      # weights [out_c, in_c / group, *kernel]
        weights = shape(node.input[1])
        return out_elements * int(np.prod(weights[1:])) if weights else 0
    if node.op_type in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shape(node.input[0])
        return out_elements * a[-1] if a else 0
    if node.op_type == "Gemm":      # A [m, k] (or [k, m] with transA)
        a = shape(node.input[0])
        trans = any(attr.name == "transA" and attr.i for attr in node.attribute)
        return out_elements * (a[0] if trans else a[-1]) if a else 0
    if node.op_type == "Einsum":    # the product of every index's size
        equation = next(attr.s.decode() for attr in node.attribute if attr.name == "equation")
        sizes = {}
        for letters, name in zip(equation.split("->")[0].split(","), node.input):
            for letter, size in zip(letters.strip(), shape(name)):
                sizes[letter] = size
        return int(np.prod(list(sizes.values()))) if sizes else 0
    return 0


def _ends_in_softmax(model) -> bool:
    """The graph's first output comes from a Softmax (through Q/DQ, reshapes)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    node = producers.get(model.graph.output[0].name)
    while node is not None and node.op_type in PASS_THROUGH:
        node = producers.get(node.input[0])
    return node is not None and node.op_type == "Softmax"

