"""Runs the shipped compression recipes and prints their figures side by side.

    python benchmarks/compression_recipes.py [--workdir=runs/bench] [--seeds=0] \
        [recipe names, default: prune_qat cluster_qat pcqat structured_2x4]

For each recipe and seed: wall time of the whole run, the int8 file's gzip
size and how many times smaller it is than the baseline float32 file, its
TFLite test accuracy against the Keras float baseline, and the sparsity and
unique values per channel measured in the int8 file. All ratios come from
one run's report.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = ["prune_qat", "cluster_qat", "pcqat", "structured_2x4"]


def run(recipe, seed, workdir):
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", f"--recipe=recipes/{recipe}.yaml",
         f"--workdir={workdir}", "--set", f"seed={seed}"],
        cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"recipe": recipe, "seed": seed, "error": result.stderr.strip().splitlines()[-1]}
    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    int8 = [v for v in report["variants"] if v["format"] == "int8" and "error" not in v][-1]
    base = report["baseline"]
    float32 = next(v for v in report["variants"] if v["name"] == base["float32_variant"])
    return {
        "recipe": recipe, "seed": seed, "seconds": seconds,
        "float32_gzip": float32["gzip_bytes"], "int8_gzip": int8["gzip_bytes"],
        "gzip_ratio": int8["gzip_ratio_vs_baseline"],
        "keras_baseline": base["keras_accuracy"], "float32_tflite": float32["accuracy"],
        "int8_tflite": int8["accuracy"],
        "delta_points": 100 * (int8["accuracy"] - base["keras_accuracy"]),
        "sparsity": int8.get("sparsity"), "unique": int8.get("max_unique_per_channel"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", default=DEFAULT)
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "bench"))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = parser.parse_args()
    rows = []
    for recipe in args.recipes:
        for seed in [int(s) for s in args.seeds.split(",")]:
            row = run(recipe, seed, os.path.join(args.workdir, f"{recipe}_seed{seed}"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| recipe | seed | time (s) | float32 gzip | int8 gzip | gzip smaller | Keras float "
          "| int8 TFLite | points | sparsity in file | unique/channel in file |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['recipe']} | {r['seed']} | failed: {r['error']} |" + " |" * 8)
            continue
        sparsity = f"{r['sparsity']:.4f}" if r["sparsity"] is not None else "-"
        print(f"| {r['recipe']} | {r['seed']} | {r['seconds']:.0f} | {r['float32_gzip']:,} | "
              f"{r['int8_gzip']:,} | {r['gzip_ratio']:.1f}x | {r['keras_baseline']:.4f} | "
              f"{r['int8_tflite']:.4f} | {r['delta_points']:+.2f} | {sparsity} | "
              f"{r['unique'] or '-'} |")


if __name__ == "__main__":
    main()
