"""What pruning and clustering buy on an Ethos-U NPU: kws_ds_cnn dense, pruned, and
pruned + clustered, each through QAT to int8 and compiled by Vela.

    python -m pipeline.data.synthetic --kws=data/kws.npz
    python benchmarks/npu_compression.py [--workdir=runs/npu_compression] [--sparsity=0.75]

Each variant is recipes/kws_ds_cnn.yaml with other stages (written beside its run
directory), run by the CLI. Prints, per variant and accelerator, what the run's
report.json holds: the int8 file's bytes, Vela's weight bytes before and after its
lossless encoding, SRAM, flash, cycles and inferences/s (Vela's performance model,
not silicon), and the TFLite test accuracy. Ratios are against the dense file of
the same run of this script.

Measured here (2026-12-02, the synthetic 600-example keyword features, 75 %
sparsity, 16 clusters; 563 s for the three runs): Vela's encoded weights
24,432 B dense -> 11,392 B pruned (0.47x) -> 10,400 B pruned and clustered
(0.43x) on Ethos-U55-128 (flash 30,896 -> 17,856 -> 16,864 B; SRAM 22,432 ->
19,776 -> 19,696 B), the same on U85-256; inferences/s unchanged (5,309 ->
5,357 -> 5,361 on U55-128, 1.01x): Vela stores zero runs and repeated values
compactly but computes every MAC. The int8 file itself is 46,542 B in all
three (TFLite stores int8 kernels dense); accuracy 1.0000 in all three.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipes(sparsity, clusters):
    """{variant: its stages}, each ending in QAT and exporting int8 only."""
    train = {"epochs": 20}
    prune = {"target_sparsity": sparsity, "epochs": 6, "learning_rate": 0.0005}
    cluster = {"number_of_clusters": clusters, "epochs": 3, "learning_rate": 0.0001}
    return {
        "dense": {"train": train, "quantize": {"epochs": 2}},
        "pruned": {"train": train, "prune": prune,
                   "quantize": {"epochs": 2, "preserve": "sparsity"}},
        "pruned_clustered": {"train": train, "prune": prune, "cluster": cluster,
                             "quantize": {"epochs": 2, "preserve": "both"}},
    }


def run(name, stages, workdir):
    with open(os.path.join(ROOT, "recipes", "kws_ds_cnn.yaml")) as f:
        recipe = yaml.safe_load(f)
    recipe["name"] = f"kws_ds_cnn_{name}"
    recipe["stages"] = stages
    recipe["export"] = {"formats_by_stage": {"quantize": ["int8"]}}
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(recipe, f, sort_keys=False)
    run_dir = os.path.join(workdir, name)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline", f"--recipe={path}",
                             f"--workdir={run_dir}"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name}: the run failed: {result.stderr.strip().splitlines()[-1]}")
    with open(os.path.join(run_dir, "report.json")) as f:
        report = json.load(f)
    variant = next(v for v in report["variants"] if v["format"] == "int8")
    return variant, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/npu_compression")
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--clusters", type=int, default=16)
    args = parser.parse_args(argv)
    rows, dense = [], {}
    for name, stages in recipes(args.sparsity, args.clusters).items():
        variant, seconds = run(name, stages, os.path.join(ROOT, args.workdir))
        print(f"{name}: {seconds:.0f} s", file=sys.stderr)
        for key, npu in sorted((variant.get("npu") or {}).items()):
            if not npu.get("compiled"):
                rows.append(f"| {name} | {key} | not compiled: {npu.get('error', npu)} |")
                continue
            base = dense.setdefault(key, npu)
            memory = npu["flash_bytes"] or npu["dram_bytes"]
            rows.append(
                f"| {name} | {key} | {variant['size_bytes']:,} | {npu['weight_bytes']:,} -> "
                f"{npu['encoded_weight_bytes']:,} "
                f"({npu['encoded_weight_bytes'] / base['encoded_weight_bytes']:.2f}x) | "
                f"{npu['sram_bytes']:,} | {memory:,} | {npu['cycles_total']:,} | "
                f"{npu['inferences_per_s']:,.0f} "
                f"({npu['inferences_per_s'] / base['inferences_per_s']:.2f}x) | "
                f"{variant['accuracy']:.4f} |")
    print("| variant | accelerator | int8 file (B) | Vela weights -> encoded (B, vs dense) | "
          "SRAM (B) | flash or DRAM (B) | cycles | inferences/s (vs dense) | TFLite accuracy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
