"""A run's TFLite and ONNX files side by side, per stage: bytes, accuracy, p50, GMAC/s.

    python benchmarks/onnx_vs_tflite.py --workdir=runs/default

Reads the run's report.json (every figure was measured by that run, on one
machine, in one sitting: LiteRT for the .tflite files, ONNX Runtime on the CPU
for the .onnx files, the recipe's thread count) and prints one markdown table
per stage, with each file's bytes and p50 against the stage's TFLite float32.
For a language model the score is perplexity and the latency also per token.
"""
import argparse
import json
import os
import sys


def rows(report):
    """[(stage, [row cells])] of the run's converted files, TFLite first."""
    lm = report["data"].get("task") == "language_model"
    length = report["data"]["input_shape"][0] if lm else None
    by_stage = {}
    for v in report["variants"]:
        if "error" not in v:
            by_stage.setdefault(v["stage"], []).append(v)
    out = []
    for stage, variants in by_stage.items():
        base = next((v for v in variants if v["format"] == "float32"), None)
        table = []
        # The report's order, the device's files first.
        for v in sorted(variants, key=lambda v: v["path"].endswith(".onnx")):
            p50 = v["latency_ms"]["p50"]
            cells = [v["format"], v.get("interpreter", ""), f"{v['size_bytes']:,}",
                     f"{v['size_bytes'] / base['size_bytes']:.3f}x" if base else "",
                     f"{v['perplexity']:.3f}" if lm else f"{v['accuracy']:.4f}",
                     f"{p50:.4f}", f"{base['latency_ms']['p50'] / p50:.2f}x" if base else "",
                     f"{v['gmacs_per_s']:.2f}" if v.get("gmacs_per_s") else "",
                     (f"{v['all_threads']['p50_ms']:.4f} ({v['all_threads']['threads']})"
                      if v.get("all_threads") else "")]
            if lm:
                cells.append(f"{p50 / length:.5f}")
            table.append(cells)
        out.append((stage, table))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run's directory")
    args = parser.parse_args(argv)
    path = os.path.join(args.workdir, "report.json")
    if not os.path.isfile(path):
        print(f"onnx_vs_tflite: error: --workdir: {args.workdir!r} holds no report.json",
              file=sys.stderr)
        return 2
    with open(path) as f:
        report = json.load(f)
    lm = report["data"].get("task") == "language_model"
    threads = report["recipe"].get("benchmark", {}).get("num_threads", 1)
    header = ["format", "runtime", "bytes", "vs float32", "perplexity" if lm else "accuracy",
              f"p50 ms ({threads} thread(s))", "faster than float32", "GMAC/s",
              "p50 ms, all threads (ONNX)"]
    if lm:
        header.append("ms per token (p50 / length)")
    for stage, table in rows(report):
        print(f"\n{stage}\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cells in table:
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
