"""Runtime-compatibility gate: will an exported file load on an older TFLite runtime?

A file converted by TF 2.21 can use operator versions an older runtime does
not have (TF 2.21 writes FULLY_CONNECTED version 12 for dynamic-range files;
tflite-runtime 2.14 stops at 11). The only reliable answer is to load the file
in that runtime, so this tool keeps a separate virtual environment with
numpy<2 and tflite-runtime 2.14.0 (the last standalone release, still common
on Raspberry Pi and older Android apps; it needs numpy<2, hence its own
environment) and runs export/benchmark.py there on each file.

    python -m export.compat --workdir=runs/default     # every variant of a run; updates its report
    python -m export.compat --model=a.tflite [--model=b.tflite]
    python -m export.compat --list_ops=a.tflite        # operators and versions only

The environment is created on first use (pip downloads ~20 MB) under
~/.cache/greenlite/ unless --env says where.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from export import child, tflite_file

RUNTIME = "tflite-runtime==2.14.0"
DEFAULT_ENV = os.path.join(os.path.expanduser("~"), ".cache", "greenlite", "tflite-runtime-2.14")
BENCHMARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark.py")


class CompatError(Exception):
    """The runtime environment cannot be set up, or the input is wrong."""


def ensure_env(env_dir=DEFAULT_ENV, runtime=RUNTIME):
    """Creates (once) a venv with numpy<2 and `runtime`; returns its Python."""
    python = os.path.join(env_dir, "bin", "python")
    marker = os.path.join(env_dir, ".greenlite-" + runtime.replace("==", "-"))
    if os.path.exists(marker):
        return python
    steps = [[sys.executable, "-m", "venv", env_dir],
             [python, "-m", "pip", "install", "-q", "numpy<2", runtime]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise CompatError(f"cannot set up {runtime} in {env_dir} (it has wheels for "
                              f"Python 3.8-3.11 only): {' '.join(step[:4])}...: {last}")
    open(marker, "w").close()
    return python


def runtime_name(python):
    """'tflite-runtime 2.14.0' as the environment reports it."""
    result = subprocess.run([python, "-c", "from importlib import metadata; "
                             "print(metadata.version('tflite-runtime'))"],
                            capture_output=True, text=True)
    return f"tflite-runtime {result.stdout.strip() or '?'}"


def check(python, tflite_path, num_runs=20):
    """Loads and runs one file in the other environment.

    Returns {"loads": bool, "reason": None or why not, "median_ms", "delegated"}.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        _, error = child.run([BENCHMARK, f"--model={tflite_path}", f"--num_runs={num_runs}",
                              "--warmup_runs=2", f"--json={out}"], timeout=600,
                             what="the runtime", python=python)
        if error:
            return {"loads": False, "reason": error.removeprefix(
                f"--model: {tflite_path!r} is not a valid TFLite model: "),
                    "median_ms": None, "delegated": None}
        with open(out) as f:
            figures = json.load(f)
    return {"loads": True, "reason": None, "median_ms": figures["latency_ms"]["p50"],
            "delegated": figures["delegated"]}


def ops_text(path):
    """'CONV_2D v3, FULLY_CONNECTED v12, ...': each operator type with its highest version
    ("unreadable: ..." for a file whose operator table cannot be read)."""
    versions = {}
    try:
        for name, version in tflite_file.operators(path):
            versions[name] = max(version, versions.get(name, 0))
    except Exception as e:  # pylint: disable=broad-except
        # A malformed flatbuffer raises whatever the schema reader meets first.
        return f"unreadable: {type(e).__name__}"
    return ", ".join(f"{name} v{v}" for name, v in sorted(versions.items()))


def check_run(workdir, python):
    """Checks every variant of a run and records the result in its report."""
    from pipeline import report as report_lib
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise CompatError(f"--workdir: {workdir!r} holds no report.json; run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    name = runtime_name(python)
    for v in report["variants"]:
        if "error" in v:
            continue
        tflite = os.path.join(workdir, v["path"])
        v.setdefault("runtimes", {})[name] = {**check(python, tflite), "ops": ops_text(tflite)}
    report_lib.write(workdir, report)
    return name, [(v["name"], v["runtimes"][name]) for v in report["variants"] if "runtimes" in v]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="a run directory: check every variant, update its report")
    parser.add_argument("--model", action="append", default=[], help="a .tflite file (repeatable)")
    parser.add_argument("--list_ops", help="print a file's operators and versions, then exit")
    parser.add_argument("--env", default=DEFAULT_ENV, help="where the runtime's venv lives")
    args = parser.parse_args(argv)
    try:
        if args.list_ops:
            for op, version in tflite_file.operators(args.list_ops):
                print(f"{op} v{version}")
            return 0
        if not args.workdir and not args.model:
            raise CompatError("give --workdir=RUN_DIR or --model=FILE.tflite")
        python = ensure_env(args.env)
        if args.workdir:
            name, rows = check_run(args.workdir, python)
        else:
            name = runtime_name(python)
            rows = [(m, {**check(python, m), "ops": ops_text(m)}) for m in args.model]
    except (CompatError, OSError, ValueError) as e:
        print(f"compat: error: {e}", file=sys.stderr)
        return 2
    print(f"| file | loads on {name} | why not / median ms there | operators (highest version) |")
    print("|---|---|---|---|")
    for file, r in rows:
        detail = r["reason"] if not r["loads"] else f"{r['median_ms']:.4f} ms ({r['delegated']} XNNPACK)"
        print(f"| {os.path.basename(file)} | {'yes' if r['loads'] else 'NO'} | {detail} | {r['ops']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
