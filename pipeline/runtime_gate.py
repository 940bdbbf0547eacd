"""The runtime gate applied to a run: every variant loaded, run and scored in tflite-runtime 2.14.

Each file is scored there on the run's test split and its outputs compared
with LiteRT's on the same inputs: a file that loads and runs but disagrees
is marked "loads but wrong" with the figures.

The runner calls `check_variants` when the recipe sets
benchmark.check_tflite_runtime; afterwards, a finished run is checked (its
report rewritten with the result) by

    python -m pipeline.runtime_gate --workdir=runs/default [--env=DIR]

The environment and the check of one file are export/compat.py's.
"""
import argparse
import json
import os
import sys

from export import compat, formats
from pipeline.errors import command
from pipeline.verdicts import runtime_verdict, summary


def check_variants(workdir, variants, num_threads, log=print, env_dir=compat.DEFAULT_ENV,
                   data=None, python=None):
    """Adds `runtimes[<runtime>]` to each converted variant (pipeline.variants.Variant,
    in place); returns the runtime's name, or None when it could not be set up.

    A runtime environment that cannot be set up (offline, a Python without a
    tflite-runtime wheel) is recorded as "not checked" with the reason: the
    run goes on. `data`: the test split (export/test_data) to score each file on;
    `python`: the runtime environment's interpreter, when the caller made it.
    One benchmark process in each runtime serves every file.
    """
    log(f"runtime check: loading every file in {compat.RUNTIME} (environment: {env_dir})")
    try:
        python = python or compat.ensure_env(env_dir)
        name = compat.runtime_name(python)
    except compat.CompatError as e:
        log(f"runtime check skipped: {e}")
        for v in variants:
            if not formats.on_device(v.format):
                continue
            v.runtimes[compat.RUNTIME] = {
                "loads": None, "reason": f"not checked: {e}", "median_ms": None,
                "delegated": None, "ops": None}
        return None
    with compat.Checker(python) as checker:
        for v in variants:
            if not v.ok or not formats.on_device(v.format):
                continue  # tflite-runtime runs .tflite files only
            path = os.path.join(workdir, v.path)
            result = v.runtimes[name] = {
                **checker.check(path, num_threads=num_threads, data=data),
                "ops": compat.ops_text(path)}
            log(f"  {v.name} on {name}: {runtime_verdict(result)}")
    return name


def check_run(workdir, python):
    """Checks every variant of a finished run at its recipe's thread count and
    rewrites its report with the result; returns (runtime name, [(variant, result)])."""
    from pipeline import report as report_lib
    from pipeline.variants import Variant
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise compat.CompatError(f"--workdir: {workdir!r} holds no report.json; "
                                 "run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    threads = report.get("recipe", {}).get("benchmark", {}).get("num_threads", 1)
    split = report.get("recipe", {}).get("benchmark", {}).get("split", "test")
    data = os.path.join(workdir, "export", f"{split}_data")
    records = [Variant.from_dict(v) for v in report["variants"]]
    name = check_variants(workdir, records, threads, log=lambda line: None,
                          data=data if os.path.isdir(data) else None, python=python)
    report["variants"] = [r.to_dict() for r in records]
    for v in report["variants"]:
        if "error" not in v:
            v["deploy"] = summary(v, True)
    report_lib.write(workdir, report)
    return name, [(v["name"], v["runtimes"][name]) for v in report["variants"]
                  if name in v.get("runtimes", {})]


@command("runtime_gate")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a run directory")
    parser.add_argument("--env", default=compat.DEFAULT_ENV, help="where the runtime's venv lives")
    args = parser.parse_args(argv)
    name, rows = check_run(args.workdir, compat.ensure_env(args.env))
    compat.print_table(name, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
