"""Median latency of several TFLite files measured together, their runs interleaved.

    python benchmarks/interleaved_latency.py --models=a.tflite,b.tflite[,...] [--runs=500]
        [--threads=1]

Each round invokes every file once, in turn, so whatever else the machine
is doing falls on all of them alike; a ratio of two medians from one such
run is fairer than two reports' medians taken minutes apart. Prints each
file's median and its ratio to the first file's. Inputs are zeros of each
file's input type (latency does not depend on the values for these models).
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def medians(paths, runs=500, threads=1, warmup=20):
    """[median ms] of each file, their invocations interleaved."""
    from export.benchmark import load_interpreter_class, make_interpreter
    interpreter_class, _ = load_interpreter_class()
    interpreters = []
    for path in paths:
        interpreter = make_interpreter(interpreter_class, path, threads, True)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreters.append(interpreter)
    times = [[] for _ in paths]
    for k in range(warmup + runs):
        for i, interpreter in enumerate(interpreters):
            start = time.perf_counter()
            interpreter.invoke()
            if k >= warmup:
                times[i].append((time.perf_counter() - start) * 1e3)
    return [float(np.median(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated .tflite files")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    paths = args.models.split(",")
    result = medians(paths, args.runs, args.threads)
    print(f"| file | median ms ({args.threads} thread(s), {args.runs} interleaved runs) | "
          "vs first | speed-up vs first |")
    print("|---|---:|---:|---:|")
    for path, ms in zip(paths, result):
        print(f"| {path} | {ms:.4f} | {ms / result[0]:.3f}x | {result[0] / ms:.2f}x |")


if __name__ == "__main__":
    main()
