"""Does distillation help? The distill_student recipe against the same student on labels alone.

    python benchmarks/distill_vs_alone.py [--seeds=0,1,2] [--workdir=runs/distill_bench]

For each seed it runs recipes/distill_student.yaml twice: as shipped, and
with `distill.alpha=1` and `quantize.alpha=1`, which turns the teacher's term
off (the loss is then exactly the labels' cross-entropy: tested in
tests/pipeline/test_distillation.py). Same seed, same student, same epochs.
Prints the student's Keras accuracy after the distill stage and the int8
TFLite accuracy after QAT, for both.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(seed, workdir, overrides):
    args = [sys.executable, "-m", "pipeline", "--recipe=recipes/distill_student.yaml",
            f"--workdir={workdir}", "--set", f"seed={seed}"]
    for o in overrides:
        args += ["--set", o]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    stages = {s["name"]: s for s in report["stages"]}
    int8 = next(v for v in report["variants"] if v["format"] == "int8")
    d = stages["distill"]["metrics"]["distillation"]
    return {"teacher": d["teacher"]["keras_accuracy"], "student": d["student"]["keras_accuracy"],
            "student_params": d["student"]["params"], "teacher_params": d["teacher"]["params"],
            "int8": int8["accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "distill_bench"))
    args = parser.parse_args()
    print("| seed | teacher | student distilled | student alone | int8 distilled | int8 alone |")
    print("|---:|---:|---:|---:|---:|---:|")
    wins = 0
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        kd = run(seed, os.path.join(args.workdir, f"kd_{seed}"), [])
        alone = run(seed, os.path.join(args.workdir, f"alone_{seed}"),
                    ["distill.alpha=1.0", "quantize.alpha=1.0"])
        wins += kd["student"] > alone["student"]
        print(f"| {seed} | {kd['teacher']:.4f} | {kd['student']:.4f} | {alone['student']:.4f} | "
              f"{kd['int8']:.4f} | {alone['int8']:.4f} |", flush=True)
    print(f"\nstudent {kd['student_params']:,} parameters, teacher {kd['teacher_params']:,}; "
          f"distillation ahead on {wins} of {len(seeds)} seeds (Keras accuracy after distill)")


if __name__ == "__main__":
    main()
