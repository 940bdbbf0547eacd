"""Each architecture users bring, saved as .keras, through fine-tune -> prune -> PQAT -> int8.

Prints, per architecture: the stages it reached, how many layers pruning
skipped and QAT left float (and why), the sparsity read from the int8 file,
and TFLite test accuracy of the fine-tuned float32 file against the int8 file
(and the Keras float model), all measured in this run.

    python -m pipeline.data.synthetic --scenes=data/scenes64 --per_class=60 --size=64
    python benchmarks/user_architectures.py --data=data/scenes64 --size=64 [--names=mobilenet_v2,...]
        [--keras=3]

Each architecture runs the CLI (`python -m pipeline`) on its own run directory.
`--keras=3` builds each with Keras 3 (benchmarks/architectures_keras3.py):
greenlite translates it to tf_keras, and the table adds the translation's
measured difference.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

NAMES = ["sequential", "functional_logits", "custom_layer", "mobilenet_v2", "mobilenet_v3_small",
         "efficientnet_b0", "resnet", "densenet"]


def run(name, args):
    workdir = os.path.join(args.workdir, name)
    os.makedirs(args.workdir, exist_ok=True)
    model = os.path.join(args.workdir, f"{name}.keras")
    custom = os.path.join(args.workdir, "user_layers.py")
    from benchmarks import architectures, architectures_keras3
    with open(custom, "w") as f:
        f.write((architectures_keras3 if args.keras == 3 else architectures).CUSTOM_LAYER_MODULE)
    subprocess.run([sys.executable, "-m", "benchmarks.architectures", name, f"--out={model}",
                    f"--input_shape={args.size},{args.size},3", f"--classes={args.classes}",
                    f"--custom_module={custom}", f"--keras={args.keras}"],
                   cwd=ROOT, check=True, capture_output=True)
    overrides = [f"model.name={model}", "model.batchnorm_momentum=0.9",
                 "data.source=image_folder", f"data.path={args.data}",
                 f"data.image_size=[{args.size}, {args.size}]",
                 f"finetune.epochs={args.epochs}", "finetune.learning_rate=0.002",
                 "prune.target_sparsity=0.75", f"prune.epochs={max(2, args.epochs // 3)}",
                 "quantize.epochs=2", "benchmark.num_runs=20", "benchmark.warmup_runs=2",
                 "export.formats_by_stage={finetune: [float32], quantize: [int8]}"]
    if name == "custom_layer":
        overrides.append(f"model.custom_objects={custom}")
    command = [sys.executable, "-m", "pipeline", "--recipe=recipes/user_model.yaml",
               f"--workdir={workdir}"] + [a for o in overrides for a in ("--set", o)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"name": name, "seconds": seconds, "error": result.stderr.strip().splitlines()[-1]}
    report = json.load(open(os.path.join(workdir, "report.json")))
    stages = {s["name"]: s for s in report["stages"]}
    variants = {v["name"]: v for v in report["variants"]}
    float32, int8 = variants["finetune_float32"], variants["quantize_int8"]
    origin = (report.get("model") or {}).get("keras3") or {}
    return {"name": name, "seconds": seconds, "stages": list(stages),
            "difference": origin.get("difference"),
            "params": report["baseline"]["params"],
            "skipped": len(stages["prune"]["metrics"]["skipped_layers"]),
            "float": stages["quantize"]["metrics"]["float_layers"],
            "keras": report["baseline"]["keras_accuracy"],
            "float32": float32.get("accuracy"), "int8": int8.get("accuracy"),
            "sparsity": int8.get("sparsity"), "error": float32.get("error") or int8.get("error")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an image folder (one subfolder per class)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs")
    parser.add_argument("--names", default=",".join(NAMES))
    parser.add_argument("--workdir", default="runs/user_architectures")
    parser.add_argument("--keras", type=int, choices=(2, 3), default=2,
                        help="build the models with tf_keras (2) or Keras 3 (3)")
    args = parser.parse_args()
    args.classes = len([d for d in os.listdir(args.data)
                        if os.path.isdir(os.path.join(args.data, d))])
    print("| architecture | params | time (s) | stages | Keras 3 translation (max |diff| / range) "
          "| pruning skipped | QAT float layers (why) | sparsity in int8 file | Keras float "
          "| float32 TFLite | int8 TFLite | int8 - float32 (points) |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name in args.names.split(","):
        r = run(name, args)
        if r.get("error") and "stages" not in r:
            print(f"| {name} | | {r['seconds']:.0f} | FAILED: {r['error']} | | | | | | | | |",
                  flush=True)
            continue
        reasons = sorted({why.split(":")[0] for why in r["float"].values()})
        num = lambda value, spec: "—" if value is None else format(value, spec)
        gap = (None if r["int8"] is None or r["float32"] is None
               else 100 * (r["int8"] - r["float32"]))
        print(f"| {name} | {r['params']:,} | {r['seconds']:.0f} | {' > '.join(r['stages'])} | "
              f"{num(r['difference'], '.1e')} | {r['skipped']} | {len(r['float'])} ({', '.join(reasons) or '-'}) | "
              f"{num(r['sparsity'], '.4f')} | {num(r['keras'], '.4f')} | "
              f"{num(r['float32'], '.4f')} | {num(r['int8'], '.4f')} | {num(gap, '+.2f')} |"
              + (f" export failed: {r['error']}" if r.get("error") else ""), flush=True)


if __name__ == "__main__":
    main()
