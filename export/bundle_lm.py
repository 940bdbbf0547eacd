"""Writes a language model's LiteRT-LM bundles, each checked before it is kept.

For one saved Keras causal LM and each requested format:
1. the cached forward (export/generative.py) is checked against the Keras
   model on a window (max |logit difference|);
2. its generative TFLite file is converted (prefill_<T> and decode);
3. that file's greedy continuation of each prompt is computed with the
   interpreter's signature runners: for float32 it must equal the Keras
   model's greedy continuation token for token, or nothing is written; for
   the quantized formats the tokens up to the first difference from Keras
   are recorded;
4. the `.litertlm` bundle is built and loaded in LiteRT-LM, whose greedy
   output must equal the signature runners' (the bundle is read as meant);
5. next-token KL divergence and top-1 agreement against the Keras model on
   test windows (export/lm_quality.py).

Run as a program (the runner starts it as a child: a converter abort fails
that model's bundles, not the run):

    python -m export.bundle_lm --model=RUN/01_train/model.h5 --formats=float32,dynamic_range \
        --output_prefix=RUN/export/train --windows=RUN/export/test_data/x.npy --json=out.json
"""
import argparse
import json
import os
import sys
import tempfile

from pipeline.errors import command

DEFAULT_PROMPTS = ("The ", "def ", "An object ")


def bundle_all(model, formats, output_prefix, *, prefill_lengths=None, prompts=DEFAULT_PROMPTS,
               max_tokens=None, windows=None, tokenizer=None, log=print):
    """{format: record} for each format (module doc); a format that fails has {"error"}.

    Args:
      model: the tf_keras causal LM.
      formats: export formats with a generative twin (export.generative.TWIN_OF).
      output_prefix: bundles are written as `<output_prefix>_<format>.litertlm`.
      prefill_lengths: prefill signature lengths (default: 8 and the
        context's half, each below the context).
      prompts: texts whose greedy continuations are compared.
      max_tokens: tokens generated per prompt (default: what fits the context
        after the longest prompt).
      windows: [n, L] int token windows for KL and top-1 (None: skipped).
    """
    import numpy as np

    from export import generative
    from pipeline.errors import GreenliteError

    lm = generative.CachedLM(model)
    context = lm.context
    prefill_lengths = sorted(set(prefill_lengths or [t for t in (8, context // 2) if t < context]))
    encoded = [list(p.encode("utf-8")) for p in prompts]
    longest = max(len(p) for p in encoded)
    if longest >= context:
        raise generative.ExportError(f"a check prompt of {longest} tokens leaves nothing to "
                                     f"generate in the context of {context}")
    max_tokens = max_tokens or context - longest
    probe = (np.arange(lm.window, dtype=np.int32)[None] * 31 + 7) % lm.vocabulary
    window_difference = float(np.abs(lm.window_logits(probe) - model(probe).numpy()).max())
    keras_tokens = [generative.keras_greedy(model, p, max_tokens) for p in encoded]
    reference = None
    if windows is not None:
        reference = model(np.asarray(windows, np.int32), training=False).numpy()
        reference = reference.reshape(-1, reference.shape[-1])
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            try:
                records[fmt] = _one(lm, model, fmt, tmp, output_prefix, prefill_lengths,
                                    prompts, encoded, keras_tokens, max_tokens, windows,
                                    reference, tokenizer)
                records[fmt]["window_max_abs_difference"] = window_difference
                log(f"  {fmt}: {records[fmt]['bundle_bytes']:,} B bundle, greedy "
                    + ("= Keras" if records[fmt]["matches_keras"] else
                       f"agrees with Keras for {records[fmt]['keras_agreement']:.0%} of tokens")
                    + (f", KL {records[fmt]['quality']['mean_kl']:.4f}, top-1 "
                       f"{records[fmt]['quality']['top1_agreement']:.4f}"
                       if "quality" in records[fmt] else ""))
            except GreenliteError as e:
                records[fmt] = {"error": str(e)}
                log(f"  {fmt}: FAILED: {e}")
    return records


def _one(lm, model, fmt, tmp, output_prefix, prefill_lengths, prompts, encoded, keras_tokens,
         max_tokens, windows, reference, tokenizer):
    from export import generative, litertlm, lm_quality

    flatbuffer = generative.convert(lm, fmt, prefill_lengths, tmp)
    model_path = os.path.join(tmp, f"{fmt}.tflite")
    with open(model_path, "wb") as f:
        f.write(flatbuffer)
    runner = generative.SignatureRunner(model_path)
    runner_tokens = [runner.greedy(p, max_tokens) for p in encoded]
    agree = [_common_prefix(a, b) for a, b in zip(runner_tokens, keras_tokens)]
    matches = all(a == len(k) for a, k in zip(agree, keras_tokens))
    if fmt == "float32" and not matches:
        # A difference is a bug unless Keras itself all but tied there.
        for p, a, k, n in zip(encoded, runner_tokens, keras_tokens, agree):
            if n < len(k) and not _keras_tie(model, p + k[:n], a[n], k[n]):
                raise generative.ExportError(
                    f"{fmt}: the generative file's greedy tokens differ from the Keras "
                    f"model's after {n} tokens: not written (the cached forward does not "
                    "compute what the model computes)")
    output = f"{output_prefix}_{fmt}.litertlm"
    size = litertlm.build(model_path, output, vocabulary=lm.vocabulary, context=lm.context,
                          fmt=fmt, window=lm.window, tokenizer=tokenizer)
    engine = litertlm.open_engine(output, threads=1, max_num_tokens=lm.context)
    try:
        texts = [litertlm.generate(engine, p, max_tokens)[0] for p in prompts]
    finally:
        engine.close()
    for p, t, r in zip(encoded, texts, runner_tokens):
        if _canonical(t) != _canonical(_visible(r)) and not _runner_tie(runner, p, t, r):
            os.remove(output)
            raise generative.ExportError(
                f"{fmt}: LiteRT-LM's greedy text differs from the file's own signature "
                f"runners ({t[:30]!r} against {_visible(r)[:30]!r}): bundle not kept")
    from export.tflite_file import signature_op_counts
    record = {"path": output, "bundle_bytes": size, "model_bytes": len(flatbuffer),
              "decode_ops": signature_op_counts(model_path, generative.DECODE),
              "context": lm.context, "prefill_lengths": prefill_lengths,
              "max_tokens": max_tokens, "matches_keras": matches,
              "keras_agreement": sum(agree) / sum(len(k) for k in keras_tokens),
              "continuations": [{"prompt": p, "text": t, "keras": _visible(k)}
                                for p, t, k in zip(prompts, texts, keras_tokens)]}
    if windows is not None:
        logits = lm_quality.position_logits(runner, windows)
        record["quality"] = {**lm_quality.compare(reference, logits),
                             "against": "the Keras model the file was made from"}
    return record


# Two logits this close (relative to the logits' range) are a tie: float
# rounding in another kernel order may pick either.
TIE = 1e-4


def _keras_tie(model, tokens, a, b):
    """Whether the Keras model's next-token logits after `tokens` tie between a and b."""
    import numpy as np

    from export import generative
    logits = generative.keras_next_logits(model, tokens)
    return abs(logits[a] - logits[b]) <= TIE * (np.ptp(logits) or 1.0)


def _runner_tie(runner, prompt, text, tokens):
    """Whether LiteRT-LM's `text` left the runner's greedy `tokens` at a tie."""
    import numpy as np
    got = text.encode("utf-8")
    n = _common_prefix(got, bytes(tokens))
    if n >= len(got) or n >= len(tokens):
        return False
    runner.reset()
    logits = runner.feed(list(prompt) + list(tokens[:n]))
    return abs(logits[got[n]] - logits[tokens[n]]) <= TIE * (np.ptp(logits) or 1.0)


def _common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _canonical(text):
    """Text with each run of U+FFFD as one: decoders differ in how many they put for
    an invalid UTF-8 sequence."""
    import re
    return re.sub("\ufffd+", "\ufffd", text)


def _visible(tokens):
    """What LiteRT-LM's Python binding returns for these byte tokens: the UTF-8 text
    up to the first NUL byte (it hands text over as a C string)."""
    data = bytes(tokens)
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")


@command("bundle")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a saved Keras causal LM (.h5/.keras)")
    parser.add_argument("--formats", required=True, help="comma-separated formats")
    parser.add_argument("--output_prefix", required=True)
    parser.add_argument("--windows", help=".npy of [n, L] token windows for KL and top-1")
    parser.add_argument("--num_windows", type=int, default=32)
    parser.add_argument("--prefill", help="comma-separated prefill lengths")
    parser.add_argument("--tokenizer", help="tokenizer.json or SentencePiece .model")
    parser.add_argument("--custom_objects", action="append", default=[])
    parser.add_argument("--json", required=True, help="where the records go")
    args = parser.parse_args(argv)
    import numpy as np

    from export.convert import _load
    from pipeline.errors import GreenliteError
    from pipeline.files import atomic_write_bytes
    # The zoo's layers load without being named (a model of text_lm needs them).
    model = _load(args.model, ["models.attention", "models.tiny_transformer"]
                  + args.custom_objects)
    if isinstance(model, GreenliteError):
        raise model
    windows = (np.load(args.windows, mmap_mode="r")[:args.num_windows]
               if args.windows else None)
    records = bundle_all(model, args.formats.split(","), args.output_prefix,
                         prefill_lengths=[int(t) for t in args.prefill.split(",")]
                         if args.prefill else None,
                         windows=windows, tokenizer=args.tokenizer,
                         log=lambda line: print(line, flush=True))
    atomic_write_bytes(args.json, json.dumps(records, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
