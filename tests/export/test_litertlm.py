"""LiteRT-LM bundles (export/litertlm.py, export/bundle_lm.py) and `export.generate`.

The bundles are run in LiteRT-LM itself (litert-lm-api): what greenlite
reports is what the phone's runtime does with the file.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from export import bundle_lm, generative, litertlm
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bundles(small_lm, tmp_path_factory):
    from pipeline.data.text import default_text
    directory = tmp_path_factory.mktemp("bundles")
    text = np.frombuffer(default_text().encode()[90000:90000 + 32 * 8], np.uint8)
    windows = text.astype(np.int32).reshape(8, 32)
    records = bundle_lm.bundle_all(small_lm, ["float32", "dynamic_range", "int4_blockwise"],
                                   str(directory / "lm"), prefill_lengths=[8],
                                   windows=windows, log=lambda line: None)
    return directory, records


def test_the_float32_bundle_generates_what_keras_generates(bundles, small_lm):
    directory, records = bundles
    record = records["float32"]
    assert record["matches_keras"] and record["keras_agreement"] == 1.0
    engine = litertlm.open_engine(record["path"], max_num_tokens=32)
    for prompt in ("The ", "def ", "An object "):
        expected = generative.keras_greedy(small_lm, list(prompt.encode()), 32 - len(prompt))
        text, info = litertlm.generate(engine, prompt, 32 - len(prompt))
        assert text.encode() == bytes(expected), prompt
        assert info.last_decode_token_count == 32 - len(prompt)
        assert info.last_prefill_token_count == len(prompt)  # bytes, no start token added
    # Streaming gives the same text.
    n = record["max_tokens"]
    assert n == 32 - len("An object ")  # what fits after the longest check prompt
    assert "".join(litertlm.stream(engine, "The ", n)) == record["continuations"][0]["text"]
    engine.close()


def test_each_bundle_is_recorded_with_its_quality(bundles):
    directory, records = bundles
    for fmt, record in records.items():
        assert "error" not in record, record
        assert os.path.getsize(record["path"]) == record["bundle_bytes"]
        assert record["context"] == 32 and record["prefill_lengths"] == [8]
        assert record["window_max_abs_difference"] < 1e-3
    assert records["float32"]["quality"]["mean_kl"] < 1e-6
    assert records["float32"]["quality"]["top1_agreement"] == 1.0
    assert records["float32"]["quality"]["positions"] == 8 * 32
    # Quantized: some divergence, int4 more than int8, and smaller bundles.
    assert 0 < records["dynamic_range"]["quality"]["mean_kl"] \
        < records["int4_blockwise"]["quality"]["mean_kl"]
    assert records["int4_blockwise"]["bundle_bytes"] < records["dynamic_range"]["bundle_bytes"] \
        < records["float32"]["bundle_bytes"]
    # No XNNPACK cache left beside the bundles.
    assert sorted(os.listdir(directory)) == sorted(
        f"lm_{fmt}.litertlm" for fmt in records)


def test_the_bundles_metadata_reads_back(bundles):
    import litert_lm
    record = bundles[1]["int4_blockwise"]
    metadata = litertlm.read_metadata(record["path"])
    assert {k: metadata[k] for k in litertlm.GREENLITE_KEYS} == {
        "greenlite.vocabulary": "256", "greenlite.context": "32",
        "greenlite.format": "int4_blockwise", "greenlite.window": "32"}
    with litert_lm.ModelInfo(record["path"]) as info:
        assert info.max_context_tokens == 32
        assert info.is_llm_model


def test_the_byte_tokenizer_maps_each_byte_to_its_value():
    spec = litertlm.byte_tokenizer()
    vocab = spec["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(256))
    assert vocab["A"] == 65 and vocab["\u0120"] == 32  # ByteLevel's stand-in for a space
    assert [t["id"] for t in spec["added_tokens"]] == [256, 257, 258]


def test_a_tokenizer_of_another_size_is_refused(tmp_path, bundles):
    record = bundles[1]["float32"]
    model = tmp_path / "m.tflite"
    with pytest.raises(litertlm.BundleError, match="the byte-level tokenizer has 256 tokens"):
        litertlm.build(str(model), str(tmp_path / "x.litertlm"), vocabulary=300, context=32,
                       fmt="float32", window=32)
    small = dict(litertlm.byte_tokenizer())
    small["model"] = {**small["model"], "vocab": {"a": 0, "b": 1}}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(small))
    with pytest.raises(litertlm.BundleError, match="has 2 tokens; the model's logits have 256"):
        litertlm.build(record["path"], str(tmp_path / "x.litertlm"), vocabulary=256,
                       context=32, fmt="float32", window=32, tokenizer=str(path))
    assert not (tmp_path / "x.litertlm").exists()


def _generate(*args):
    return subprocess.run([sys.executable, "-m", "export.generate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_generate_streams_the_continuation(bundles):
    record = bundles[1]["float32"]
    result = _generate(f"--model={record['path']}", "--prompt=The ",
                       f"--max_tokens={record['max_tokens']}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "The " + record["continuations"][0]["text"] + "\n"


def test_generate_benchmark_reports_the_runtimes_own_figures(bundles, tmp_path):
    record = bundles[1]["dynamic_range"]
    out = tmp_path / "bench.json"
    # Started from a process holding 300 MB: the child's peak must be its own.
    code = ("import numpy as np, subprocess, sys; big = np.ones(300 * 2**20 // 8); "
            f"sys.exit(subprocess.call([sys.executable, '-m', 'export.generate', "
            f"'--model={record['path']}', '--prompt=The ', '--max_tokens=20', '--benchmark', "
            f"'--runs=2', '--json={out}']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert (figures["prompt_tokens"], figures["generated_tokens"], figures["threads"]) == (4, 20, 1)
    assert figures["decode_tokens_per_s"] > 0 and figures["time_to_first_token_ms"] > 0
    assert 10 < figures["peak_rss_mb"] < 300


@pytest.mark.parametrize("args, message", [
    (["--prompt=" + "x" * 32], "--prompt: 32 tokens; the bundle's context is 32 tokens, so a "
                               "prompt may have at most 31"),
    (["--prompt=The ", "--max_tokens=0"], "--max_tokens: got 0; allowed: 1 to 28"),
    (["--prompt=The ", "--max_tokens=29"], "--max_tokens: got 29; allowed: 1 to 28"),
    (["--prompt="], "--prompt: empty"),
])
def test_bad_requests_are_one_line(bundles, args, message):
    result = _generate(f"--model={bundles[1]['float32']['path']}", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"generate: error: {message}" or message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_files_are_one_line(tmp_path, exported):
    corrupt = tmp_path / "corrupt.litertlm"
    corrupt.write_bytes(b"LITERTLM" + os.urandom(200))
    random = tmp_path / "random.litertlm"
    random.write_bytes(os.urandom(300))
    for path, message in ((corrupt, "not a LiteRT-LM bundle"), (random, "not a LiteRT-LM bundle"),
                          (exported["float32"], "not a LiteRT-LM bundle"),
                          (tmp_path / "absent.litertlm", "no such file")):
        result = _generate(f"--model={path}", "--prompt=The ")
        assert result.returncode == 2, (path, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_classifier_gets_no_bundle(small_model, tmp_path):
    with pytest.raises(generative.ExportError, match="not a language model"):
        bundle_lm.bundle_all(small_model, ["float32"], str(tmp_path / "x"), log=lambda l: None)
    assert not os.listdir(tmp_path)
