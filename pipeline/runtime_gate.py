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

from export import compat


def check_variants(workdir, variants, num_threads, log=print, env_dir=compat.DEFAULT_ENV,
                   data=None):
    """Adds `runtimes[<runtime>]` to each converted variant (mutated in place).

    A runtime environment that cannot be set up (offline, a Python without a
    tflite-runtime wheel) is recorded as "not checked" with the reason: the
    run goes on. `data`: the test split (export/test_data) to score each file on.
    """
    log(f"runtime check: loading every file in {compat.RUNTIME} (environment: {env_dir})")
    try:
        python = compat.ensure_env(env_dir)
        name = compat.runtime_name(python)
    except compat.CompatError as e:
        log(f"runtime check skipped: {e}")
        for v in variants:
            v.setdefault("runtimes", {})[compat.RUNTIME] = {
                "loads": None, "reason": f"not checked: {e}", "median_ms": None,
                "delegated": None, "ops": None}
        return None
    for v in variants:
        if "error" in v:
            continue
        path = os.path.join(workdir, v["path"])
        result = v.setdefault("runtimes", {})[name] = {
            **compat.check(python, path, num_threads=num_threads, data=data),
            "ops": compat.ops_text(path)}
        log(f"  {v['name']} on {name}: {verdict(result)}")
    return name


def verdict(result):
    """'loads and agrees', 'loads but WRONG: ...', 'does NOT load: ...' for one check."""
    if not result["loads"]:
        return f"does NOT load: {result['reason']}"
    if result.get("agrees") is False:
        return result["reason"].replace("loads but wrong", "loads but WRONG", 1)
    if result.get("agrees"):
        return (f"loads and agrees with LiteRT (accuracy {result['accuracy']:.4f}, perplexity "
                f"{result['perplexity']:.4g}, max output difference {result['max_abs_diff']:.3g})")
    return "loads" + (f" ({result['reason']})" if result.get("reason") else "")


def check_run(workdir, python):
    """Checks every variant of a finished run at its recipe's thread count and
    rewrites its report with the result; returns (runtime name, [(variant, result)])."""
    from pipeline import report as report_lib
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise compat.CompatError(f"--workdir: {workdir!r} holds no report.json; "
                                 "run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    name = compat.runtime_name(python)
    threads = report.get("recipe", {}).get("benchmark", {}).get("num_threads", 1)
    split = report.get("recipe", {}).get("benchmark", {}).get("split", "test")
    data = os.path.join(workdir, "export", f"{split}_data")
    data = data if os.path.isdir(data) else None
    for v in report["variants"]:
        if "error" in v:
            continue
        tflite = os.path.join(workdir, v["path"])
        v.setdefault("runtimes", {})[name] = {
            **compat.check(python, tflite, num_threads=threads, data=data),
            "ops": compat.ops_text(tflite)}
        from pipeline import deploy
        v["deploy"] = deploy.summary(v, True)
    report_lib.write(workdir, report)
    return name, [(v["name"], v["runtimes"][name]) for v in report["variants"] if "runtimes" in v]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a run directory")
    parser.add_argument("--env", default=compat.DEFAULT_ENV, help="where the runtime's venv lives")
    args = parser.parse_args(argv)
    try:
        name, rows = check_run(args.workdir, compat.ensure_env(args.env))
    except (compat.CompatError, OSError, ValueError) as e:
        print(f"runtime_gate: error: {e}", file=sys.stderr)
        return 2
    compat.print_table(name, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
