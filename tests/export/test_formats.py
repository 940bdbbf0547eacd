"""The format table's contract (export/formats.py): every format it holds exports,
benchmarks and reports on the default model, and each fact it states about a
format is true of the file that format produces.

A format added to the table is run here without a line changed: the facts
are read from its entry, not from its name.
"""
import json
import os

import numpy as np
import pytest

from export import formats
from export.tflite_file import INT4, read_model, weight_tensors
from tests.conftest import ROOT, run_pipeline

# report.json's key paths on a run of every format (recipes/default.yaml at test
# settings); a change to the report's shape fails here, on purpose.
GOLDEN_KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_keys.txt")


# Mappings keyed by data, not by the schema (op types, layer names, boards): their
# keys depend on the model and the machine's kernels, so the shape stops at them.
DATA_KEYED = {"not_delegated", "cpu_ops", "float_op_types", "weights", "micro_fit",
              "float_layers", "skipped_layers", "onnx_ops"}


def key_paths(node, prefix=""):
    """Every key path of a JSON value ('variants[].latency_ms.p50'), list items merged."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            found |= {path} | (set() if key in DATA_KEYED else key_paths(value, path))
    elif isinstance(node, list):
        for value in node:
            found |= key_paths(value, prefix + "[]")
    return found


@pytest.fixture(scope="module")
def every_format_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("formats") / "run"
    result = run_pipeline("default", workdir, "train.epochs=3", "benchmark.num_runs=3",
                          "benchmark.warmup_runs=1",
                          f"export.formats=[{', '.join(formats.REQUESTABLE)}]",
                          "export.doctor=true", "deploy.micro=true", "deploy.npu=[ethos-u55-128]")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "report.json") as f:
        return workdir, json.load(f)


def test_every_format_exports_benchmarks_and_reports(every_format_run):
    workdir, report = every_format_run
    variants = {v["format"]: v for v in report["variants"]}
    assert sorted(variants) == sorted(formats.REQUESTABLE)
    float32 = variants["float32"]
    markdown = (workdir / "report.md").read_text()
    from export.tensorrt_engine import gpu_problem
    for name, v in variants.items():
        if formats.get(name).needs_gpu and gpu_problem():
            # Without a CUDA GPU: one line, and every other variant goes on.
            assert v["error"] == f"{name} needs a CUDA GPU: {gpu_problem()}; the other " \
                                 "variants go on", v["error"]
            assert f"| {v['name']} | {name} | failed: {name} needs a CUDA GPU" in markdown
            continue
        assert "error" not in v, (name, v.get("error"))
        assert os.path.getsize(workdir / v["path"]) == v["size_bytes"]
        assert v["accuracy"] >= float32["accuracy"] - 0.1, name
        assert v["latency_ms"]["p50"] > 0 and v["num_examples"] == report["data"]["test"]
        assert f"| {v['name']} | {name} |" in markdown
        if not formats.get(name).on_device and (os.cpu_count() or 1) > 1:
            # A server's file: ONNX Runtime's latency at every core as well.
            assert v["all_threads"]["threads"] == os.cpu_count()
            assert v["all_threads"]["p50_ms"] > 0


def test_each_fact_of_the_table_holds_in_its_file(every_format_run):
    workdir, report = every_format_run
    for v in report["variants"]:
        spec = formats.get(v["format"])
        path = str(workdir / v["path"])
        assert path.endswith(spec.suffix), v["format"]
        if spec.runtime == "onnxruntime":
            # Calibrated: QDQ nodes quantize the activations; float: none.
            qdq = v["onnx_ops"].get("QuantizeLinear", 0)
            assert (qdq >= 3) is spec.calibrated, v["format"]
            assert spec.int4_granularity is None and not spec.integer_io
            continue
        if not spec.on_device:
            continue  # an engine: built only where a GPU is (test_onnx.py)
        model = read_model(path)
        graph = model.subgraphs[0]
        input_type = graph.tensors[graph.inputs[0]].type
        weights = weight_tensors(path)
        int4 = [w for w in weights if w.dtype == "int4"]
        assert (input_type == 9) is spec.integer_io, v["format"]  # TensorType.INT8
        assert bool(int4) is (spec.int4_granularity is not None), v["format"]
        if spec.calibrated:
            # Calibrated: the activations are integers (every op output but the edges').
            outputs = [graph.tensors[op.outputs[0]].type for op in graph.operators]
            assert sum(t == 0 for t in outputs) <= max(2, len(outputs) // 4), v["format"]
        if spec.maker == "converter" and spec.optimization is None:
            assert all(w.dtype == "float32" for w in weights), v["format"]


def test_the_table_answers_by_fact_and_refuses_an_unknown_name():
    assert formats.names(calibrated=True) == ("int8", "int8_float_io", "int16x8",
                                              "int16x8_mixed", "onnx_int8", "tensorrt_int8")
    assert formats.names(runtime="onnxruntime") == ("onnx_float32", "onnx_int8")
    assert formats.get("tensorrt_int8").needs_gpu and formats.get(
        "tensorrt_int8").quantizer == {"activations": "int8", "symmetric_activations": True}
    assert "onnx_int8" not in formats.TFLITE and "int8" in formats.TFLITE
    # A format an older greenlite wrote into a report.json was a .tflite file.
    assert formats.on_device("int8") and not formats.on_device("onnx_int8")
    assert formats.on_device("int2_retired")
    assert "int8_mixed" not in formats.REQUESTABLE and formats.get("int8_mixed").micro
    assert formats.names(int4_granularity="blockwise_32") == ("int4_blockwise",)
    with pytest.raises(KeyError, match="unknown format 'int3'; formats: float32"):
        formats.get("int3")
    # Every name the recipe accepts is in the table, and nothing else.
    from pipeline import recipe
    assert recipe.FORMATS == formats.REQUESTABLE


def test_the_report_keeps_its_shape(every_format_run):
    _, report = every_format_run
    found = key_paths(report)
    # The recipe's own keys follow the recipe dataclasses; the rest is the report's.
    shape = sorted(p for p in found if not p.startswith("recipe."))
    with open(GOLDEN_KEYS) as f:
        golden = [line.strip() for line in f if line.strip()]
    assert shape == golden, (f"report.json's shape changed: added {sorted(set(shape) - set(golden))}, "
                             f"removed {sorted(set(golden) - set(shape))}; if on purpose, "
                             "update tests/export/report_keys.txt and the schema in "
                             "pipeline/report.py")
