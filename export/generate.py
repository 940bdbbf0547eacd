"""Generates text with a `.litertlm` bundle greenlite wrote, in LiteRT-LM, streaming it as it comes.

    python -m export.generate --model=runs/text_lm/export/train_float32.litertlm \
        --prompt="The for statement " --max_tokens=40

With --benchmark it prints (and with --json writes) LiteRT-LM's own timings
instead: time to first token, prefill and decode tokens per second, over
--runs generations after one warm-up, and the process's peak memory. This
module imports LiteRT-LM, not TensorFlow, so the peak is the runtime's.

Bad input (a prompt longer than the context, a --max_tokens of 0 or one that
does not fit after the prompt, a file that is not a bundle greenlite wrote)
is one line and exit status 2.
"""
import argparse
import json
import statistics
import sys

from export import litertlm
from export.benchmark import peak_rss_mb
from pipeline.errors import GreenliteError, command


def check_request(metadata, prompt, max_tokens):
    """The prompt's token count; GreenliteError when prompt + max_tokens exceed the context.

    A greenlite bundle's tokenizer is byte-level unless it names another
    (then LiteRT-LM counts and cuts; only the byte count is checked here).
    """
    context = int(metadata["greenlite.context"])
    tokens = len(prompt.encode("utf-8"))
    if not prompt:
        raise GreenliteError("--prompt: empty; give the text to continue")
    if tokens >= context:
        raise GreenliteError(f"--prompt: {tokens} tokens; the bundle's context is {context} "
                             f"tokens, so a prompt may have at most {context - 1}")
    if max_tokens < 1 or tokens + max_tokens > context:
        raise GreenliteError(f"--max_tokens: got {max_tokens}; allowed: 1 to "
                             f"{context - tokens} after a prompt of {tokens} tokens "
                             f"(context {context})")
    return tokens


def benchmark(path, prompt, max_tokens, threads, runs=5):
    """LiteRT-LM's timings of generating `max_tokens` after `prompt`: medians over `runs`."""
    engine = litertlm.open_engine(path, threads=threads)
    try:
        litertlm.generate(engine, prompt, max_tokens)  # warm-up: first-call allocations
        infos = [litertlm.generate(engine, prompt, max_tokens)[1] for _ in range(runs)]
    finally:
        engine.close()
    median = lambda key: statistics.median(getattr(i, key) for i in infos)
    return {
        "threads": threads, "runs": runs, "prompt_tokens": infos[0].last_prefill_token_count,
        "generated_tokens": infos[0].last_decode_token_count,
        "time_to_first_token_ms": median("time_to_first_token_in_second") * 1000,
        "prefill_tokens_per_s": median("last_prefill_tokens_per_second"),
        "decode_tokens_per_s": median("last_decode_tokens_per_second"),
        "init_ms": infos[0].init_time_in_second * 1000,
        # This process's own high-water mark (not ru_maxrss, which a child
        # inherits from the process that started it).
        "peak_rss_mb": peak_rss_mb(),
        "source": "LiteRT-LM's benchmark info (litert_lm.Session.get_benchmark_info), "
                  "CPU backend",
    }


@command("generate")
def main(argv=None):
    parser = argparse.ArgumentParser(prog="greenlite generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .litertlm bundle greenlite wrote")
    parser.add_argument("--prompt", required=True, help="the text to continue")
    parser.add_argument("--max_tokens", type=int, default=None,
                        help="tokens to generate (default: what fits the context)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--benchmark", action="store_true",
                        help="print LiteRT-LM's timings instead of the text")
    parser.add_argument("--runs", type=int, default=5, help="with --benchmark: generations timed")
    parser.add_argument("--json", help="with --benchmark: write the figures here too")
    args = parser.parse_args(argv)
    metadata = litertlm.check_bundle(args.model)
    context = int(metadata["greenlite.context"])
    max_tokens = args.max_tokens
    if max_tokens is None:
        max_tokens = max(context - len(args.prompt.encode("utf-8")), 1)
    check_request(metadata, args.prompt, max_tokens)
    if args.threads < 1:
        raise GreenliteError(f"--threads: got {args.threads}; allowed: 1 or more")
    if args.benchmark:
        figures = benchmark(args.model, args.prompt, max_tokens, args.threads, args.runs)
        text = json.dumps(figures, indent=1)
        if args.json:
            from pipeline.files import atomic_write_bytes
            atomic_write_bytes(args.json, text.encode())
        print(text)
        return 0
    engine = litertlm.open_engine(args.model, threads=args.threads)
    try:
        sys.stdout.write(args.prompt)
        for piece in litertlm.stream(engine, args.prompt, max_tokens):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
