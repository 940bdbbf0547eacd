"""The variant record (pipeline/variants.py): each block lands where its step wrote it, the
flat report.json record round-trips, and the benchmark's figures become the figures block."""
from pipeline.variants import Variant, figures_block


def _flat():
    return {
        "name": "train_int8", "stage": "train", "format": "int8", "path": "export/train_int8.tflite",
        "error": "benchmark failed: x",
        "stripped_bytes": 12, "onnx_ops": {"Conv": 2},           # converted
        "changes": ["widened"], "within_budget": True,            # fix
        "size_bytes": 100, "accuracy": 0.9, "latency_ms": {"p50": 1.0},  # figures
        "gzip_bytes": 80,
        "sparsity": 0.5, "violations": ["v"],                     # structure
        "micro": {"checked": False}, "npu": {"u55": {}}, "generation": {"x": 1},
        "runtimes": {"tflite-runtime 2.14.0": {"loads": True}},
        "joules_per_inference": 1e-5, "deploy": {"blockers": []},  # derived
        "someone_elses": 7,                                        # extra
    }


def test_a_flat_record_splits_into_its_blocks_and_back():
    flat = _flat()
    v = Variant.from_dict(flat)
    assert (v.name, v.stage, v.format, v.path) == ("train_int8", "train", "int8",
                                                   "export/train_int8.tflite")
    assert v.error == "benchmark failed: x" and not v.ok
    assert v.converted == {"stripped_bytes": 12, "onnx_ops": {"Conv": 2}}
    assert v.fix == {"changes": ["widened"], "within_budget": True}
    assert v.figures == {"size_bytes": 100, "accuracy": 0.9, "latency_ms": {"p50": 1.0},
                         "gzip_bytes": 80}
    assert v.structure == {"sparsity": 0.5, "violations": ["v"]}
    assert (v.micro, v.npu, v.generation) == ({"checked": False}, {"u55": {}}, {"x": 1})
    assert v.runtimes == {"tflite-runtime 2.14.0": {"loads": True}}
    assert v.derived == {"joules_per_inference": 1e-5, "deploy": {"blockers": []}}
    assert v.extra == {"someone_elses": 7}
    assert v.to_dict() == flat
    # The runtimes block is the record's own copy: changing it leaves `flat` alone.
    v.runtimes["other"] = {}
    assert "other" not in flat["runtimes"]


def test_an_ok_variant_has_no_error_key_and_empty_blocks_stay_out():
    v = Variant("a_float32", "a", "float32", "export/a_float32.tflite")
    v.figures = {"size_bytes": 10}
    assert v.ok
    assert v.to_dict() == {"name": "a_float32", "stage": "a", "format": "float32",
                           "path": "export/a_float32.tflite", "size_bytes": 10}


def test_the_shipped_size_wins_over_the_converted_one():
    v = Variant("a_int8", "a", "int8", "p")
    v.figures = {"size_bytes": 100, "gzip_bytes": 90}
    assert v.size_bytes == 100
    v.shipped = {"size_bytes": 120, "gzip_bytes": 95}   # with its metadata
    assert v.size_bytes == 120
    assert v.to_dict()["size_bytes"] == 120 and v.to_dict()["gzip_bytes"] == 95


def _benchmark_json(**extra):
    return {"size_bytes": 100, "gzip_bytes": 90, "accuracy": 0.9, "num_examples": 10,
            "interpreter": "ai_edge_litert 2.3.0", "cross_entropy": 0.3, "perplexity": 1.35,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "mean": 1.5, "min": 0.5,
                           "max": 9.0},
            "init_ms": 4.0, "first_inference_ms": 5.0, "input": {"shape": [1, 8]},
            "throughput_per_s": 666.0, "macs": 1000, "gmacs_per_s": 1.0,
            "delegated": "partial", "not_delegated": {"GELU": 1},
            "ops": {"DENSIFY": 3, "CONV_2D": 1}, "peak_rss_mb": 80.0, "num_threads": 2,
            **extra}


def test_the_figures_block_keeps_what_the_report_reads():
    block = figures_block(_benchmark_json())
    assert block == {
        "size_bytes": 100, "gzip_bytes": 90, "accuracy": 0.9, "num_examples": 10,
        "interpreter": "ai_edge_litert 2.3.0", "cross_entropy": 0.3, "perplexity": 1.35,
        "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "mean": 1.5},
        "init_ms": 4.0, "first_inference_ms": 5.0, "input": {"shape": [1, 8]},
        "throughput_per_s": 666.0, "macs": 1000, "gmacs_per_s": 1.0, "xnnpack": "partial",
        "not_delegated": {"GELU": 1}, "densify_ops": 3, "peak_rss_mb": 80.0,
        "num_threads": 2}
    # No op list (an interpreter that lists none, an ONNX file): no DENSIFY counted.
    assert figures_block(_benchmark_json(ops=None))["densify_ops"] == 0
    # A TensorRT engine's extras come along.
    engine = figures_block(_benchmark_json(throughput_large_batch={"batch": 32},
                                           versions={"gpu": "g"}))
    assert engine["throughput_large_batch"] == {"batch": 32} and engine["versions"] == {
        "gpu": "g"}
