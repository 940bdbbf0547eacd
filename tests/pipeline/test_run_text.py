"""text_lm's int4 path end to end: int4-aware training, int4_blockwise export, stripping."""
import json

import numpy as np
import pytest

from tests.conftest import run_pipeline


@pytest.fixture(scope="module")
def text_lm_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("text_lm") / "run"
    result = run_pipeline(
        "text_lm", workdir, "data.max_bytes=16000", "data.sequence_length=32",
        "data.representative_samples=20",
        "model.options={width: 32, heads: 2, layers: 1, mlp_width: 64, embeddings: matmul}",
        "train.epochs=1", "int4_aware.epochs=1", "benchmark.num_runs=3", "benchmark.warmup_runs=1",
        "export.formats_by_stage={train: [float32, int4_blockwise], int4_aware: [int4_blockwise]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, json.loads((workdir / "report.json").read_text())


def test_text_lm_int4_aware_run(text_lm_run):
    from export.tflite_file import read_model, weight_tensors
    from models import saved
    workdir, report = text_lm_run
    variants = {v["name"]: v for v in report["variants"]}
    stage = {s["name"]: s for s in report["stages"]}["int4_aware"]
    assert stage["metrics"]["int4_grid"]["off_grid"] < 1e-6
    aware = variants["int4_aware_int4_blockwise"]

    # The file holds the weights the stage trained, exactly (here: the token table).
    model = saved.load(str(workdir / stage["model_path"]))
    table = model.get_layer("token_embedding").embeddings.numpy()  # (vocabulary, width)
    stored = {w.shape: w.dequantized() for w in weight_tensors(workdir / aware["path"])
              if w.dtype == "int4"}
    np.testing.assert_allclose(stored[table.shape[::-1]].T, table, atol=1e-6 * np.abs(table).max())

    # Both int4 files hold the position table at 4 bits too, and no float32
    # table or folded (L, L) causal mask: what puts an int4 file under 0.2x.
    # (The lookups' version keeps a 256 x 32 float table and a 32 x 32 mask.)
    for name in ("train_int4_blockwise", "int4_aware_int4_blockwise"):
        tensors = weight_tensors(workdir / variants[name]["path"])
        assert (32, 32) in {w.shape for w in tensors if w.dtype == "int4"}  # positions (out, in)
        assert not [w.shape for w in tensors if w.dtype == "float32" and w.values.size >= 32 * 32]

    # export.strip: no names left, the bytes saved reported, and the file still
    # scores what the model scores (activations are quantized on the fly).
    for name in ("train_int4_blockwise", "int4_aware_int4_blockwise"):
        assert variants[name]["stripped_bytes"] > 0
        tflite = read_model(workdir / variants[name]["path"])
        assert not any(t.name for t in tflite.subgraphs[0].tensors) and not tflite.signatureDefs
    assert "train_float32" in variants and "stripped_bytes" not in variants["train_float32"]
    assert aware["perplexity"] == pytest.approx(stage["keras_perplexity"], rel=0.02)
    assert "int4 blockwise_32 grid" in (workdir / "report.md").read_text()


def test_a_language_model_run_writes_checked_litertlm_bundles(text_lm_run):
    """generation.litertlm auto: every variant with a generative twin gets a bundle,
    checked in LiteRT-LM, with quality, timings and energy per token in the report."""
    workdir, report = text_lm_run
    variants = {v["name"]: v for v in report["variants"]}
    assert {n for n, v in variants.items() if v.get("generation")} == {
        "train_float32", "train_int4_blockwise", "int4_aware_int4_blockwise"}
    for name in ("train_float32", "train_int4_blockwise", "int4_aware_int4_blockwise"):
        g = variants[name]["generation"]
        assert "error" not in g, g
        assert (workdir / g["path"]).stat().st_size == g["bundle_bytes"]
        assert g["path"] == f"export/{name}.litertlm" and g["context"] == 32
        one = g["benchmark"]["threads_1"]
        assert one["threads"] == 1 and one["decode_tokens_per_s"] > 0
        assert one["prompt_tokens"] == 16  # half the context of test text
        assert one["generated_tokens"] == 16
        # Energy per token: one thread's TDP share x the decode time, as per inference.
        first = report["stages"][0]["energy"]
        by_hand = first["cpu_tdp_w"] / first["cpu_count"] / one["decode_tokens_per_s"]
        assert g["joules_per_generated_token"] == pytest.approx(by_hand, rel=1e-9)
    assert variants["train_float32"]["generation"]["matches_keras"]
    assert variants["train_float32"]["generation"]["quality"]["top1_agreement"] == 1.0
    ratio = variants["train_int4_blockwise"]["generation"]["decode_speed_vs_float32"]
    assert ratio == pytest.approx(
        variants["train_int4_blockwise"]["generation"]["benchmark"]["threads_1"][
            "decode_tokens_per_s"]
        / variants["train_float32"]["generation"]["benchmark"]["threads_1"][
            "decode_tokens_per_s"])
    markdown = (workdir / "report.md").read_text()
    assert "## Generation (LiteRT-LM)" in markdown
    row = next(l for l in markdown.splitlines() if l.startswith("| train_float32 | "
                                                               f"{variants['train_float32']['generation']['bundle_bytes']:,} |"))
    assert "| yes |" in row
