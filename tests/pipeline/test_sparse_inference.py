"""Whether a pruned file can use XNNPACK's sparse inference, judged from latency."""
from pipeline.sparse_inference import ENGAGED_SPEEDUP, note
from pipeline.sparse_inference import verdicts as record_verdicts
from pipeline.variants import Variant


def _variant(stage, fmt, p50, size=1000, **extra):
    return {"name": f"{stage}_{fmt}", "stage": stage, "format": fmt, "size_bytes": size,
            "latency_ms": {"p50": p50}, "path": f"export/{stage}_{fmt}.tflite", **extra}


def verdicts(flat):
    """The verdicts on report.json-shaped variants (replaced in place by the flattened records)."""
    records = [Variant.from_dict(v) for v in flat]
    record_verdicts(records)
    flat[:] = [v.to_dict() for v in records]


def test_the_sparse_check_reads_the_size_as_converted_whatever_metadata_adds():
    dense, sparse = (Variant.from_dict(_variant("prune", "float32", 1.0, 3000, sparsity={"c": 0.8})),
                     Variant.from_dict(_variant("prune", "float32_sparse", 0.5, 1000,
                                                densify_ops=3)))
    sparse.shipped = {"size_bytes": 1900, "gzip_bytes": 900}  # the deploy step ran first
    record_verdicts([dense, sparse])
    assert sparse.sparse_inference["size_bytes"] == 1000
    assert sparse.to_dict()["size_bytes"] == 1900  # the report shows the shipped file


def test_a_sparse_file_is_judged_against_its_dense_twin():
    fast = [_variant("prune", "float32", 1.0, 3000, sparsity={"c": 0.8}),
            _variant("prune", "float32_sparse", 0.5, 1000, densify_ops=3)]
    verdicts(fast)
    s = fast[1]["sparse_inference"]
    assert s["engaged"] is True and s["speedup"] == 2.0 and s["dense_size_bytes"] == 3000
    assert "(2.00x): XNNPACK's sparse path engaged" in note(fast[1])
    assert "0.333x, file bytes" in note(fast[1])
    # The dense twin is told why it cannot use the sparse path.
    assert fast[0]["sparse_inference"]["engaged"] is False
    assert "export the stage as float32_sparse" in note(fast[0])

    same = [_variant("prune", "float32", 1.0), _variant("prune", "float32_sparse",
                                                        1.0 / (ENGAGED_SPEEDUP - 0.01),
                                                        densify_ops=3)]
    verdicts(same)
    assert same[1]["sparse_inference"]["engaged"] is False
    assert "did NOT engage" in note(same[1])


def test_without_a_twin_or_without_sparse_weights():
    alone = [_variant("prune", "float32_sparse", 0.5, densify_ops=2)]
    verdicts(alone)
    assert alone[0]["sparse_inference"]["engaged"] is None
    assert "export prune as float32 too" in note(alone[0])
    dense_only = [_variant("train", "float32", 1.0), _variant("train", "float32_sparse", 1.0)]
    verdicts(dense_only)
    assert dense_only[1]["sparse_inference"]["stored_sparse"] is False
    assert "no weight is sparse enough" in note(dense_only[1])


def test_int8_and_unpruned_files():
    files = [_variant("prune", "int8", 1.0, sparsity={"c": 0.8}), _variant("train", "int8", 1.0),
             _variant("train", "float32", 1.0)]
    verdicts(files)
    assert "no sparse path for int8 files" in note(files[0])
    assert "sparse_inference" not in files[1] and "sparse_inference" not in files[2]
