"""Runtime-compatibility gate: will an exported file load on an older TFLite runtime?

A file converted by TF 2.21 can use operator versions an older runtime does
not have (TF 2.21 writes FULLY_CONNECTED version 12 for dynamic-range files;
tflite-runtime 2.14 stops at 11). The only reliable answer is to load the file
in that runtime, so this tool keeps a separate virtual environment with
numpy<2 and tflite-runtime 2.14.0 (the last standalone release, still common
on Raspberry Pi and older Android apps; it needs numpy<2, hence its own
environment) and runs export/benchmark.py there on each file. A run's
variants are checked, and its report updated, by `python -m
pipeline.runtime_gate --workdir=runs/default` (or by the recipe's
benchmark.check_tflite_runtime).

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

import numpy as np

from export import child, side_env, tflite_file
from export.budget import Budget
from pipeline.errors import GreenliteError, command

RUNTIME = "tflite-runtime==2.14.0"
DEFAULT_ENV = os.path.join(side_env.CACHE, "tflite-runtime-2.14")
BENCHMARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark.py")


class CompatError(GreenliteError):
    """The runtime environment cannot be set up, or the input is wrong."""


def ensure_env(env_dir=DEFAULT_ENV, runtime=RUNTIME):
    """Creates (once) a venv with numpy<2 and `runtime`; returns its Python."""
    try:
        return side_env.ensure(env_dir, ["numpy<2", runtime], runtime,
                               f", and {runtime} has wheels for Python 3.8-3.11 only")
    except side_env.SideEnvError as e:
        raise CompatError(str(e)) from None


def runtime_name(python):
    """'tflite-runtime 2.14.0' as the environment reports it."""
    result = subprocess.run([python, "-c", "from importlib import metadata; "
                             "print(metadata.version('tflite-runtime'))"],
                            capture_output=True, text=True)
    return f"tflite-runtime {result.stdout.strip() or '?'}"


# A file that runs in the other runtime "agrees" with LiteRT when its metrics on
# the same test split are within these budgets of LiteRT's, either way
# (export/budget.py); outside them it loads but is wrong.
AGREEMENT = (Budget("max_drop_points", 1.0), Budget("max_rise_percent", 2.0))


class Checker:
    """The runtime gate for many files: one benchmark process in the other environment and
    one in LiteRT's (this Python), each serving every file.

        with Checker(python) as checker:
            result = checker.check("a.tflite", num_threads=1, data="export/test_data")
    """

    def __init__(self, python, reference_python=None):
        self.other = child.Server([BENCHMARK, "--serve"], "the runtime", python=python)
        self.reference = child.Server([BENCHMARK, "--serve"], "LiteRT",
                                      python=reference_python or sys.executable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.other.stop()
        self.reference.stop()

    def check(self, tflite_path, num_runs=20, num_threads=1, data=None):
        """Loads and runs one file in the other environment, with `num_threads`
        interpreter threads (the recipe's benchmark setting, so its median is
        comparable with LiteRT's).

        With `data` (a test split: .npz, or a directory with x.npy and y.npy) the
        file is also scored there and in LiteRT on the same inputs, since a runtime
        can load a file, run it and be wrong: the result then adds "accuracy",
        "perplexity" (that runtime's), "reference" (LiteRT's figures),
        "max_abs_diff" (of the outputs of the first examples) and "agrees".

        Returns {"loads": bool, "reason": None or why not, "median_ms", "delegated",
        "num_threads"} and, with `data`, the figures above.
        """
        with tempfile.TemporaryDirectory() as tmp:
            figures, error = _run_benchmark(self.other, tflite_path, tmp, "other", num_runs,
                                            num_threads, data)
            if error:
                return {"loads": False, "reason": error.removeprefix(
                    f"--model: {tflite_path!r} is not a valid TFLite model: "),
                        "median_ms": None, "delegated": None, "num_threads": num_threads}
            result = {"loads": True, "reason": None, "median_ms": figures["latency_ms"]["p50"],
                      "delegated": figures["delegated"], "num_threads": figures["num_threads"]}
            if data is None:
                return result
            reference, error = _run_benchmark(self.reference, tflite_path, tmp, "reference", 1,
                                              num_threads, data)
            if error:
                return {**result, "agrees": None, "reason": f"LiteRT could not score it: {error}"}
            other_outputs = np.load(os.path.join(tmp, "other.npy"))
            reference_outputs = np.load(os.path.join(tmp, "reference.npy"))
        return {**result, **agreement(figures, reference, other_outputs, reference_outputs)}


def check(python, tflite_path, num_runs=20, num_threads=1, data=None, reference_python=None):
    """`Checker.check` for one file (see there)."""
    with Checker(python, reference_python) as checker:
        return checker.check(tflite_path, num_runs, num_threads, data)


def agreement(figures, reference, outputs, reference_outputs):
    """Whether a runtime's figures and outputs agree with LiteRT's on the same inputs.

    `figures`/`reference`: benchmark results (accuracy, perplexity); the
    outputs: arrays of the same examples. Returns {"accuracy", "perplexity",
    "reference": {"accuracy", "perplexity"}, "max_abs_diff", "agrees",
    "reason"} where reason says how they disagree.
    """
    diff = float(np.max(np.abs(outputs.astype(np.float64) - reference_outputs)))
    problems = []
    ppl, ref_ppl = figures.get("perplexity"), reference.get("perplexity")
    for budget in AGREEMENT:
        if budget.metric == "perplexity" and (ppl is None or not ref_ppl):
            continue
        if not budget.agrees(figures, reference):
            spec = ".4f" if budget.metric == "accuracy" else ".4g"
            problems.append(f"{budget.metric} {figures[budget.metric]:{spec}} against LiteRT's "
                            f"{reference[budget.metric]:{spec}}")
    return {"accuracy": figures["accuracy"], "perplexity": ppl,
            "reference": {"accuracy": reference["accuracy"], "perplexity": ref_ppl},
            "max_abs_diff": diff, "agrees": not problems,
            "reason": ("loads but wrong: " + "; ".join(problems)
                       + f" (max output difference {diff:.4g})") if problems else None}


def _run_benchmark(server, tflite_path, tmp, name, num_runs, num_threads, data):
    """Runs export/benchmark.py on one file in `server`'s process; returns (figures, error)."""
    out = os.path.join(tmp, name + ".json")
    args = [f"--model={tflite_path}", f"--num_runs={num_runs}",
            f"--num_threads={num_threads}", "--warmup_runs=2", f"--json={out}"]
    if data is not None:
        args += [f"--data={data}", f"--outputs={os.path.join(tmp, name + '.npy')}"]
    reply, error = server.request(args, timeout=1800)
    if error:
        return None, error
    if reply["returncode"] != 0:
        return None, reply["error"].removeprefix("benchmark: error: ") or (
            f"the benchmark exited with status {reply['returncode']}")
    with open(out) as f:
        return json.load(f), None


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


@command("compat")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a .tflite file (repeatable)")
    parser.add_argument("--list_ops", help="print a file's operators and versions, then exit")
    parser.add_argument("--env", default=DEFAULT_ENV, help="where the runtime's venv lives")
    parser.add_argument("--num_threads", type=int, default=1, help="interpreter threads")
    args = parser.parse_args(argv)
    if args.list_ops:
        for op, version in tflite_file.operators(args.list_ops):
            print(f"{op} v{version}")
        return 0
    if not args.model:
        raise CompatError("give --model=FILE.tflite (for a run directory: "
                          "python -m pipeline.runtime_gate --workdir=RUN_DIR)")
    python = ensure_env(args.env)
    name = runtime_name(python)
    with Checker(python) as checker:
        rows = [(m, {**checker.check(m, num_threads=args.num_threads), "ops": ops_text(m)})
                for m in args.model]
    print_table(name, rows)
    return 0


def print_table(name, rows):
    """Prints [(file, check result)] as a Markdown table."""
    print(f"| file | loads on {name} | there / LiteRT | max output difference | "
          "why not / median ms there | operators (highest version) |")
    print("|---|---|---|---:|---|---|")
    for file, r in rows:
        detail = r["reason"] if not r["loads"] else f"{r['median_ms']:.4f} ms ({r['delegated']} XNNPACK)"
        loads = "NO" if not r["loads"] else ("yes, but WRONG" if r.get("agrees") is False
                                             else "yes")
        metric = diff = ""
        if r.get("max_abs_diff") is not None:
            metric = (f"accuracy {r['accuracy']:.4f} / {r['reference']['accuracy']:.4f}, "
                      f"perplexity {r['perplexity']:.4f} / {r['reference']['perplexity']:.4f}")
            diff = f"{r['max_abs_diff']:.3g}"
            if r.get("agrees") is False:
                detail = r["reason"]
        print(f"| {os.path.basename(file)} | {loads} | {metric} | {diff} | {detail} | {r['ops']} |")


if __name__ == "__main__":
    sys.exit(main())
