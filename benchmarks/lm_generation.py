"""Generation figures of a causal LM's LiteRT-LM bundles, all formats in one run.

    python benchmarks/lm_generation.py --model=runs/text_lm/01_train/model.h5 \
        [--formats=float32,dynamic_range,int4_blockwise] [--rounds=7] [--prompt_bytes=64]

Writes the bundles (export/bundle_lm.py, in a child process: greedy checked
against Keras, KL and top-1 on --windows), then times them in LiteRT-LM in
this process, interleaved round by round (float32, int8, int4, float32, ...)
so that a change in the machine's load falls on every format alike; prints
the medians, each format's decode speed over float32's in the same run, and
time to first token for a --prompt_bytes prompt. Figures are this CPU's.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--formats", default="float32,dynamic_range,int4_blockwise")
    parser.add_argument("--windows", help="test windows .npy (default: none, no KL)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--prompt_bytes", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="directory for the bundles (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="lm-generation-")
    os.makedirs(out, exist_ok=True)
    records_path = os.path.join(out, "records.json")
    command = [sys.executable, "-m", "export.bundle_lm", f"--model={args.model}",
               f"--formats={args.formats}", f"--output_prefix={os.path.join(out, 'lm')}",
               f"--json={records_path}"] + ([f"--windows={args.windows}"] if args.windows else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode:
        sys.exit(result.stderr.strip().splitlines()[-1])
    with open(records_path) as f:
        records = {k: v for k, v in json.load(f).items() if "error" not in v}

    from export import litertlm
    from pipeline.data.text import default_text
    context = next(iter(records.values()))["context"]
    length = min(args.prompt_bytes, context - 8)
    prompt = default_text().encode()[5000:5000 + length].decode("utf-8", errors="ignore")
    generated = context - len(prompt.encode())
    engines = {fmt: litertlm.open_engine(r["path"], threads=args.threads)
               for fmt, r in records.items()}
    timings = {fmt: [] for fmt in records}
    for fmt, engine in engines.items():  # warm-up
        litertlm.generate(engine, prompt, generated)
    for _ in range(args.rounds):
        for fmt, engine in engines.items():
            timings[fmt].append(litertlm.generate(engine, prompt, generated)[1])
    median = lambda fmt, key: statistics.median(getattr(i, key) for i in timings[fmt])
    base = median("float32", "last_decode_tokens_per_second") if "float32" in timings else None
    print(f"\n{len(prompt.encode())}-byte prompt, {generated} tokens generated, "
          f"{args.threads} thread(s), median of {args.rounds} interleaved rounds (LiteRT-LM "
          "CPU, its benchmark info)\n")
    print("| format | bundle bytes | x float32 bytes | greedy = Keras | KL | top-1 | "
          "first token ms | prefill tok/s | decode tok/s | decode x float32 |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    float_bytes = records.get("float32", {}).get("bundle_bytes")
    for fmt, r in records.items():
        decode = median(fmt, "last_decode_tokens_per_second")
        q = r.get("quality", {})
        print(f"| {fmt} | {r['bundle_bytes']:,} | "
              + (f"{r['bundle_bytes'] / float_bytes:.3f}" if float_bytes else "") + " | "
              + ("yes" if r["matches_keras"] else f"{100 * r['keras_agreement']:.0f} %") + " | "
              + (f"{q['mean_kl']:.4f} | {q['top1_agreement']:.4f}" if q else " | ") + " | "
              f"{1000 * median(fmt, 'time_to_first_token_in_second'):.3f} | "
              f"{median(fmt, 'last_prefill_tokens_per_second'):,.0f} | {decode:,.0f} | "
              + (f"{decode / base:.2f}" if base else "") + " |")
    for engine in engines.values():
        engine.close()
    print("\nGreedy continuations (first check prompt):")
    for fmt, r in records.items():
        c = r["continuations"][0]
        print(f"  {fmt}: {c['prompt']!r} -> {c['text']!r}")


if __name__ == "__main__":
    main()
