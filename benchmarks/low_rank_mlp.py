"""low_rank_mlp's figures: parameters, TFLite float32 latency and accuracy, before and after.

    python benchmarks/low_rank_mlp.py [--seeds=0] [--workdir=runs/low_rank_bench]

Runs recipes/low_rank_mlp.yaml and reads one run's report: the trained MLP
(stage `train`) against its factorized, fine-tuned version (stage
`low_rank`). Both latencies come from the same run, same interpreter settings.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "low_rank_bench"))
    args = parser.parse_args()
    print("| seed | params before | after | fewer | float32 p50 ms before | after | faster | "
          "float32 TFLite acc before | after | points | int8 bytes before | after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        workdir = os.path.join(args.workdir, f"seed{seed}")
        subprocess.run([sys.executable, "-m", "pipeline", "--recipe=recipes/low_rank_mlp.yaml",
                        f"--workdir={workdir}", "--set", f"seed={seed}"],
                       cwd=ROOT, check=True, capture_output=True)
        with open(os.path.join(workdir, "report.json")) as f:
            report = json.load(f)
        stages = {s["name"]: s for s in report["stages"]}
        v = {x["name"]: x for x in report["variants"]}
        before, after = v["train_float32"], v["low_rank_float32"]
        p0, p1 = stages["train"]["params"], stages["low_rank"]["params"]
        l0, l1 = before["latency_ms"]["p50"], after["latency_ms"]["p50"]
        print(f"| {seed} | {p0:,} | {p1:,} | {p0 / p1:.2f}x | {l0:.4f} | {l1:.4f} | {l0 / l1:.2f}x | "
              f"{before['accuracy']:.4f} | {after['accuracy']:.4f} | "
              f"{100 * (after['accuracy'] - before['accuracy']):+.2f} | "
              f"{v['train_int8']['size_bytes']:,} | {v['low_rank_int8']['size_bytes']:,} |", flush=True)
        for layer, info in stages["low_rank"]["metrics"]["factorized_layers"].items():
            print(f"|   {layer}: rank {info['rank']}/{info['full_rank']}, params "
                  f"{info['params_before']:,} -> {info['params_after']:,}, MACs "
                  f"{info['macs_before']:,} -> {info['macs_after']:,}, reconstruction error "
                  f"{info['reconstruction_error']:.3f} |" + " |" * 11)


if __name__ == "__main__":
    main()
