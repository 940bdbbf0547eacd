"""Writes pipeline/mlperf_tiny.json: measured latency and energy per board, from MLPerf Tiny.

    python benchmarks/mlperf_tiny_boards.py --results=PATH/tiny_results_v1.3 \
        --results=PATH/tiny_results_v1.2 --models=PATH/tiny [--out=pipeline/mlperf_tiny.json]

The inputs are clones of mlcommons/tiny_results_v1.3 and _v1.2 (closed
division) and of mlcommons/tiny (the reference int8 models). For each system
with results it reads the median throughput (performance mode) and the median
energy per inference (energy mode) of the four benchmarks (keyword spotting,
visual wake words, image classification, anomaly detection) from
`closed/<org>/results/<system>/<task>/{performance,energy}/results.txt`, and
the board, processor and clock from `closed/<org>/systems/<system>.json`; for
each reference model, its MACs and bytes as greenlite's benchmark counts
them. The JSON names the source path of every figure: they are measurements
of MLCommons' submitters, carried over as facts. Run again when a new round
is published.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = {"kws": "keyword_spotting/trained_models/kws_ref_model.tflite",
         "vww": "visual_wake_words/trained_models/vww_96_int8.tflite",
         "ic": "image_classification/trained_models/pretrainedResnet_quant.tflite",
         "ad": "anomaly_detection/trained_models/ad01_int8.tflite"}
ENERGY = re.compile(r"Median energy cost is\s+([0-9.]+)\s*uJ/inf")
THROUGHPUT = re.compile(r"Median throughput is\s+([0-9.]+)\s*inf\./sec")


def _git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=True).stdout


def _files(repo):
    return _git(repo, "ls-tree", "-r", "--name-only", "HEAD").decode().splitlines()


def _read(repo, path):
    return _git(repo, "show", f"HEAD:{path}").decode("utf-8", "replace")


def systems(repo, version):
    """{system: record} of one results repository's closed division."""
    found = {}
    files = _files(repo)
    for path in files:
        parts = path.split("/")
        if len(parts) != 7 or parts[0] != "closed" or parts[2] != "results" \
                or parts[6] != "results.txt" or parts[4] not in TASKS:
            continue
        org, system, task, mode = parts[1], parts[3], parts[4], parts[5]
        text = _read(repo, path)
        match = (ENERGY if mode == "energy" else THROUGHPUT).findall(text)
        if mode not in ("energy", "performance") or not match:
            continue
        record = found.setdefault(system, {"system": system, "submitter": org,
                                           "round": version, "tasks": {}})
        entry = record["tasks"].setdefault(task, {})
        if mode == "energy":
            entry["energy_uj"] = float(match[-1])
        else:
            entry["latency_ms"] = 1000.0 / float(match[-1])
        entry.setdefault("sources", []).append(
            f"mlcommons/tiny_results_{version}:{path}")
    for system, record in found.items():
        meta = f"closed/{record['submitter']}/systems/{system}.json"
        if meta in files:
            info = json.loads(_read(repo, meta))
            record.update(board=info.get("Board Name"), soc=info.get("SoC Name"),
                          processor=info.get("Processor(s) Name"),
                          clock=info.get("Processor(s) Frequencies"),
                          accelerator=info.get("Accelerator") or None,
                          framework=info.get("Inference Framework"),
                          memory=info.get("SoC Memory capacity (not including processor or "
                                          "accelerator)"),
                          system_source=f"mlcommons/tiny_results_{version}:{meta}")
    return found


def reference_models(repo):
    """{task: {macs, bytes, source}} of MLPerf Tiny's reference int8 models."""
    import tempfile

    from export import benchmark
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, path in TASKS.items():
            local = os.path.join(tmp, os.path.basename(path))
            with open(local, "wb") as f:
                f.write(_git(repo, "show", f"HEAD:benchmark/training/{path}"))
            figures = benchmark.benchmark(local, num_runs=1, warmup_runs=0)
            out[task] = {"macs": figures["macs"], "bytes": figures["size_bytes"],
                         "source": f"mlcommons/tiny:benchmark/training/{path} (MACs: "
                                   "export/benchmark.py's count of its ops)"}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", action="append", required=True,
                        help="a clone of mlcommons/tiny_results_vX.Y (repeatable; newest first)")
    parser.add_argument("--models", required=True, help="a clone of mlcommons/tiny")
    parser.add_argument("--out", default=os.path.join(ROOT, "pipeline", "mlperf_tiny.json"))
    args = parser.parse_args()
    boards = {}
    for repo in args.results:
        version = os.path.basename(os.path.normpath(repo.rstrip("/").removesuffix("/repo")))
        version = version.split("tiny_results_")[-1]
        for system, record in systems(repo, version).items():
            boards.setdefault(system, record)  # the newest round wins
    data = {"source": "MLPerf Tiny closed division, rounds " + ", ".join(
        sorted({b["round"] for b in boards.values()}, reverse=True))
        + ": the submitters' measured median latency (performance mode) and energy per "
          "inference (energy mode) of the reference models",
        "reference_models": reference_models(args.models),
        "boards": dict(sorted(boards.items()))}
    from pipeline.files import atomic_write_text
    atomic_write_text(args.out, json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}: {len(boards)} systems, "
          f"{sum(1 for b in boards.values() for t in b['tasks'].values() if 'energy_uj' in t)} "
          "energy figures")


if __name__ == "__main__":
    main()
