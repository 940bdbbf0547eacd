"""Cross-checks export/benchmark.py against LiteRT's own benchmark_litert_model.py.

    python benchmarks/crosscheck_litert.py [--workdir=runs/crosscheck] [--num_runs=200]

Builds MobileNetV2 (alpha 0.35, 96x96x3, random weights: latency does not
depend on weight values), converts it to float32 and full int8, then for each
file and 1 and 2 threads runs both benchmarks, each in its own process, with
the same warmup and run counts, alternating them `--repeats` times, and prints
the median of each tool's per-process medians, their ratio (goal: within 10%)
and the spread of the per-process medians. One process on this 2-core machine
can land 40% off the others (seen with 2 threads), so a single pair of runs
is not a comparison. Also prints the int8 vs float32 latency ratio at one
thread. Both tools time one inference call with time.perf_counter; ours times
Interpreter.invoke(), theirs CompiledModel.run_by_name().
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def export_mobilenet(workdir):
    import numpy as np

    import models
    from export.convert import convert
    from pipeline.backend import keras
    from pipeline.files import atomic_write_bytes
    keras.utils.set_random_seed(0)
    model = models.build("mobilenet_v2", (96, 96, 3), 10, {"alpha": 0.35})
    representative = np.random.default_rng(0).random((32, 96, 96, 3), dtype=np.float32)
    paths = {}
    for fmt in ("float32", "int8"):
        paths[fmt] = os.path.join(workdir, f"mobilenet_v2_035_96_{fmt}.tflite")
        atomic_write_bytes(paths[fmt], convert(model, fmt, representative))
    return paths


def ours(path, threads, runs, warmup):
    out = path + f".ours.{threads}.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "export", "benchmark.py"),
                    f"--model={path}", f"--num_threads={threads}", f"--num_runs={runs}",
                    f"--warmup_runs={warmup}", f"--json={out}"],
                   check=True, capture_output=True)
    with open(out) as f:
        return json.load(f)["latency_ms"]["p50"]


def theirs(path, threads, runs, warmup):
    import ai_edge_litert
    script = os.path.join(os.path.dirname(ai_edge_litert.__file__), "tools",
                          "benchmark_litert_model.py")
    out = path + f".litert.{threads}.json"
    subprocess.run([sys.executable, script, f"--model={path}", f"--num_threads={threads}",
                    f"--num_runs={runs}", f"--warmup_runs={warmup}", f"--result_json={out}"],
                   check=True, capture_output=True)
    with open(out) as f:
        return json.load(f)["latency"]["median_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "crosscheck"))
    parser.add_argument("--num_runs", type=int, default=200)
    parser.add_argument("--warmup_runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    paths = export_mobilenet(args.workdir)
    print(f"| file | threads | ours median (ms) [spread of {args.repeats}] | "
          f"benchmark_litert_model median (ms) [spread] | ours / theirs | within 10% |")
    print("|---|---:|---:|---:|---:|---|")
    medians = {}
    for fmt, path in paths.items():
        for threads in (1, 2):
            a_runs, b_runs = [], []
            for _ in range(args.repeats):
                a_runs.append(ours(path, threads, args.num_runs, args.warmup_runs))
                b_runs.append(theirs(path, threads, args.num_runs, args.warmup_runs))
            a, b = statistics.median(a_runs), statistics.median(b_runs)
            medians[fmt, threads] = a
            print(f"| {os.path.basename(path)} | {threads} | {a:.3f} [{min(a_runs):.3f}-"
                  f"{max(a_runs):.3f}] | {b:.2f} [{min(b_runs):.2f}-{max(b_runs):.2f}] | "
                  f"{a / b:.3f} | {'yes' if abs(a / b - 1) <= 0.10 else 'NO'} |", flush=True)
    print(f"\nint8 vs float32 at 1 thread (ours): float32 {medians['float32', 1]:.3f} ms / "
          f"int8 {medians['int8', 1]:.3f} ms = {medians['float32', 1] / medians['int8', 1]:.2f}x "
          "faster")


if __name__ == "__main__":
    main()
