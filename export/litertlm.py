"""LiteRT-LM bundles: a generative TFLite file, its tokenizer and metadata in one `.litertlm`.

LiteRT-LM (google-ai-edge/LiteRT-LM; it replaced MediaPipe's LLM Inference
API) runs a `.litertlm` file on Android, iOS, desktop and the web. greenlite
writes the bundle with `litert-lm-builder` and checks it by loading it in
`litert-lm-api`, the same runtime, before reporting it.

What the bundle holds (`build`):
- the TFLite model with `prefill_<T>` and `decode` signatures (export/generative.py);
- a tokenizer: greenlite's byte-level Hugging Face `tokenizer.json`
  (`byte_tokenizer`: ids 0..255 are the bytes, then `<bos>`, `<eos>`,
  `<pad>`), or the user's `tokenizer.json` / SentencePiece `.model`;
- LLM metadata: stop token, context length (`max_num_tokens`), sampler
  defaults, prompt template (empty affixes: a plain continuation model);
- system metadata `greenlite.*` (vocabulary, context, format, window) read
  back by `read_metadata`.

Facts of the runtime (litert-lm-api 0.18.1, measured here): the CPU sampler
is TOP_P only (GREEDY and TOP_K fail at the first decode, "not implemented
yet"); top-k 1 makes it greedy. The Python binding returns text as a C
string, so generation stops showing text at a NUL byte. One `run_decode`
generates until a stop token or `max_output_tokens`.
"""
import contextlib
import io
import json
import os
import tempfile

from pipeline.errors import ExportError

BYTE_SPECIALS = ("<bos>", "<eos>", "<pad>")
GREENLITE_KEYS = ("greenlite.vocabulary", "greenlite.context", "greenlite.format",
                  "greenlite.window")


class BundleError(ExportError):
    """A bundle could not be built, loaded or run."""


def _bytes_to_unicode():
    """GPT-2's printable stand-in for each byte: what a ByteLevel tokenizer's vocabulary holds."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer():
    """A Hugging Face tokenizer.json (as a dict) whose id of every byte is the byte's value.

    BPE with no merges over ByteLevel's 256 byte symbols, so text is encoded
    to exactly its UTF-8 bytes, as pipeline/data/text.py trains on; the
    special tokens follow at 256, 257, 258.
    """
    chars = _bytes_to_unicode()
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 256 + i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, s in enumerate(BYTE_SPECIALS)],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {chars[b]: b for b in range(256)}, "merges": []},
    }


def tokenizer_vocabulary(path):
    """The number of regular (non-added) tokens of a tokenizer.json, or None for a
    SentencePiece model (its size is checked by the runtime when it loads)."""
    if not path.endswith(".json"):
        return None
    try:
        with open(path) as f:
            spec = json.load(f)
        return len(spec["model"]["vocab"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"tokenizer {path!r}: not a Hugging Face tokenizer.json ({e})") from None


def build(model_path, output_path, *, vocabulary, context, fmt, window, tokenizer=None,
          stop_token_id=None):
    """Writes `output_path` (.litertlm) from a generative TFLite file; returns its size in bytes.

    Args:
      model_path: the TFLite file with prefill_<T>/decode signatures.
      vocabulary: the model's logits width; a tokenizer whose vocabulary
        differs is refused.
      context: the KV cache length (the bundle's max_num_tokens).
      fmt: the export format it was made in (metadata only).
      window: the Keras model's window length (metadata only).
      tokenizer: a tokenizer.json or SentencePiece .model; None writes the
        byte-level one (which needs vocabulary 256).
      stop_token_id: the id that ends generation; default `<eos>` of the
        byte tokenizer (which a 256-way model never emits: it runs to the
        token limit).

    The file is written whole or not at all (a temporary file, then a rename).
    """
    from litert_lm_builder import litertlm_builder as builder_lib
    from litert_lm_builder.runtime.proto import llm_metadata_pb2, sampler_params_pb2

    with tempfile.TemporaryDirectory() as tmp:
        if tokenizer is None:
            if vocabulary != 256:
                raise BundleError(f"the byte-level tokenizer has 256 tokens; the model's "
                                  f"vocabulary is {vocabulary}: name the model's tokenizer "
                                  "(export.tokenizer: a tokenizer.json or SentencePiece .model)")
            tokenizer = os.path.join(tmp, "tokenizer.json")
            with open(tokenizer, "w") as f:
                json.dump(byte_tokenizer(), f)
            stop_token_id = 256 + BYTE_SPECIALS.index("<eos>") if stop_token_id is None \
                else stop_token_id
        else:
            if not os.path.isfile(tokenizer):
                raise BundleError(f"tokenizer {tokenizer!r}: no such file")
            if not tokenizer.endswith((".json", ".model")):
                raise BundleError(f"tokenizer {tokenizer!r}: allowed: a Hugging Face "
                                  "tokenizer.json or a SentencePiece .model")
            size = tokenizer_vocabulary(tokenizer)
            if size is not None and size != vocabulary:
                raise BundleError(f"tokenizer {tokenizer!r} has {size} tokens; the model's "
                                  f"logits have {vocabulary}: they must match")
        metadata = llm_metadata_pb2.LlmMetadata()
        if stop_token_id is not None:
            metadata.stop_tokens.add().token_ids.ids.append(int(stop_token_id))
        metadata.max_num_tokens = int(context)
        # TOP_P is the CPU sampler LiteRT-LM implements; k = 1 makes it greedy.
        metadata.sampler_params.type = sampler_params_pb2.SamplerParameters.TOP_P
        metadata.sampler_params.k = 1
        metadata.sampler_params.p = 0.0
        metadata.sampler_params.temperature = 1.0
        metadata.prompt_templates.user.prefix = ""
        metadata.llm_model_type.generic_model.SetInParent()
        metadata_path = os.path.join(tmp, "llm_metadata.pb")
        with open(metadata_path, "wb") as f:
            f.write(metadata.SerializeToString())

        b = builder_lib.LitertLmFileBuilder()
        for key, value in zip(GREENLITE_KEYS, (vocabulary, context, fmt, window)):
            b.add_system_metadata(builder_lib.Metadata(key=key, value=str(value),
                                                       dtype=builder_lib.DType.STRING))
        # fp32 activations: the file was verified token for token at float32
        # (the runtime's CPU default for a text decoder is fp16).
        with contextlib.redirect_stdout(io.StringIO()):
            b.add_tflite_model(model_path, builder_lib.TfLiteModelType.PREFILL_DECODE,
                               prefer_activation_type="fp32")
        if tokenizer.endswith(".model"):
            b.add_sentencepiece_tokenizer(tokenizer)
        else:
            b.add_hf_tokenizer(tokenizer)
        b.add_llm_metadata(metadata_path)
        partial = output_path + ".partial"
        try:
            with open(partial, "wb") as f:
                b.build(f)
            os.replace(partial, output_path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    return os.path.getsize(output_path)


def read_metadata(path):
    """{key: value} of a bundle's system metadata (greenlite's keys among them).

    Raises:
      BundleError: not a .litertlm file.
    """
    import struct

    from litert_lm_builder import litertlm_core, litertlm_peek

    try:
        # The header's length is checked against the file's before it is read:
        # a corrupt length would have the reader allocate it (MemoryError).
        with open(path, "rb") as f:
            f.seek(litertlm_core.HEADER_END_LOCATION_BYTE_OFFSET)
            end = struct.unpack("<Q", f.read(8))[0]
        if not litertlm_core.HEADER_BEGIN_BYTE_OFFSET < end <= os.path.getsize(path):
            raise ValueError("its header length does not fit the file")
        header = litertlm_peek.read_litertlm_header(path, io.StringIO())
        system = header.SystemMetadata()
        entries = {}
        for i in range(system.EntriesLength() if system else 0):
            pair = litertlm_peek.kvp_to_dict(system.Entries(i))
            entries[pair["key"]] = pair["value"]
        return entries
    except (ValueError, IndexError, struct.error, TypeError, AttributeError, UnicodeError) as e:
        raise BundleError(f"{path}: not a LiteRT-LM bundle ({e})") from None


def check_bundle(path):
    """The metadata of bundle `path` after checking it is one greenlite can run.

    Raises:
      BundleError: a corrupt file, or a bundle greenlite did not write.
    """
    if not os.path.isfile(path):
        raise BundleError(f"--model {path!r}: no such file")
    metadata = read_metadata(path)
    missing = [k for k in GREENLITE_KEYS if k not in metadata]
    if missing:
        raise BundleError(f"{path}: a LiteRT-LM bundle without greenlite's metadata "
                          f"({', '.join(missing)}); generate runs bundles greenlite wrote")
    return metadata


def quiet_runtime():
    """Keep LiteRT-LM's native INFO/WARNING lines off the user's terminal."""
    import litert_lm
    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)


def open_engine(path, threads=1, max_num_tokens=None):
    """A LiteRT-LM Engine on the CPU with benchmarking on; BundleError if it will not load.

    No XNNPACK weight cache: the runtime would write one beside the bundle.
    """
    import litert_lm
    quiet_runtime()
    try:
        return litert_lm.Engine(path, backend=litert_lm.Backend.CPU(thread_count=int(threads)),
                                max_num_tokens=max_num_tokens, enable_benchmark=True,
                                cache_dir=":nocache")
    except RuntimeError as e:
        raise BundleError(f"{path}: LiteRT-LM could not load the bundle ({e})") from None


def generate(engine, prompt, max_tokens):
    """(generated text, BenchmarkInfo) for `prompt` continued by up to `max_tokens` tokens."""
    session = engine.create_session(apply_prompt_template=False, max_output_tokens=int(max_tokens))
    try:
        session.run_prefill([prompt])
        responses = session.run_decode()
        return responses.texts[0] if responses.texts else "", session.get_benchmark_info()
    finally:
        session.close()


def stream(engine, prompt, max_tokens):
    """Yields the generated text piece by piece as the runtime decodes it."""
    session = engine.create_session(apply_prompt_template=False, max_output_tokens=int(max_tokens))
    try:
        session.run_prefill([prompt])
        for responses in session.run_decode_async():
            for text in responses.texts:
                yield text
    finally:
        session.close()
