"""The mutation score of greenlite's pure-Python modules, measured by mutmut.

    pip install -e '.[test,mutation]'
    python benchmarks/mutation_score.py [--modules=export/budget.py,...] [--children=2]
        [--scratch=/tmp/greenlite-mutmut] [--survivors]

mutmut writes every small change it can to each module (an operator, a
constant, a condition, a string, a call's argument dropped) and runs the
module's tests against each; a change no test notices survives. This prints,
per module, the mutants killed, survived, without a covering test and timed
out, the score (killed over those a test ran), and with `--survivors` each
survivor's diff, to be killed by a new test or explained as equivalent
(BUILD_NOTES.md "Mutation score").

It works on a copy of the working tree (mutmut rewrites the sources it
mutates into `mutants/`), with only the fast tests of each module (listed
below): the end-to-end runs would cover everything and take hours per module.
benchmarks/mutation_check.py keeps the hand-written list for the slow,
end-to-end promises.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Module -> its fast tests. The list: benchmark statistics and input
# quantization, report, energy, health, data label checks, channels,
# factorize, resume, search front and budget, doctor thresholds, compat
# tolerances, rundir.
MODULES = {
    "export/budget.py": ["tests/export/test_budget.py"],
    "pipeline/search_front.py": ["tests/pipeline/test_search_front.py",
                                 "tests/test_properties.py"],
    "export/benchmark.py": ["tests/export/test_benchmark_timing.py", "tests/test_properties.py",
                            "tests/export/test_benchmark_robustness.py"],
    "export/compat.py": ["tests/export/test_compat.py"],
    "pipeline/report.py": ["tests/pipeline/test_report.py"],
    "pipeline/energy.py": ["tests/pipeline/test_energy.py"],
    "pipeline/health.py": ["tests/pipeline/test_health.py"],
    "pipeline/data/dataset.py": ["tests/pipeline/data/test_labels.py"],
    "pipeline/channels.py": ["tests/pipeline/test_channels.py", "tests/test_properties.py"],
    "pipeline/factorize.py": ["tests/pipeline/stages/test_low_rank.py"],
    "pipeline/resume.py": ["tests/pipeline/test_resume.py", "tests/test_properties.py"],
    "pipeline/rundir.py": ["tests/pipeline/test_rundir.py"],
    "pipeline/sparse_inference.py": ["tests/pipeline/test_sparse_inference.py"],
    "pipeline/variants.py": ["tests/pipeline/test_sparse_inference.py",
                             "tests/pipeline/test_variants.py"],
    "pipeline/device_energy.py": ["tests/pipeline/test_device_energy.py"],
    "pipeline/recommend.py": ["tests/pipeline/test_recommend.py"],
    "pipeline/coverage.py": ["tests/pipeline/test_report.py"],
}
# End-to-end tests in those files: minutes each under every mutant of a
# function they touch. Their promises are benchmarks/mutation_check.py's.
DESELECT = [
    "tests/pipeline/test_resume.py::test_kill_9_mid_stage_then_resume_keeps_the_finished_stages",
    "tests/pipeline/test_resume.py::test_a_changed_stage_invalidates_it_and_every_later_stage",
    "tests/pipeline/test_resume.py::test_resume_of_another_recipes_run_is_refused_and_touches_nothing",
    "tests/pipeline/test_resume.py::test_resume_without_a_run_says_so",
    "tests/pipeline/test_rundir.py::test_kill_9_during_export_leaves_no_process_and_resume_redoes_the_export",
    "tests/pipeline/test_rundir.py::test_a_run_failing_midway_leaves_the_previous_run_untouched",
    "tests/pipeline/test_channels.py::test_the_stage_shrinks_and_fine_tunes",
    "tests/export/test_compat.py::test_the_report_records_the_result",
    "tests/export/test_compat.py::test_the_environment_is_the_old_runtime",
    # Runs export/benchmark.py by path in a child: mutmut's mutants of it need
    # mutmut's own state, which a child process lacks.
    "tests/export/test_compat.py::test_a_file_that_runs_but_disagrees_is_marked_wrong",
    "tests/export/test_compat.py::test_which_files_load_on_tflite_runtime_2_14",
    "tests/export/test_compat.py::test_the_gate_scores_each_file_there_and_compares_it_with_litert",
    "tests/export/test_benchmark_robustness.py::test_mutated_files_give_a_result_or_one_line",
    "tests/export/test_compat.py::test_without_a_registry_the_environment_fails_with_one_clear_error",
    "tests/export/test_compat.py::test_a_stateful_streaming_file_is_judged_by_the_old_runtime_itself",
]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no test", 33: "no test", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}


def config(modules):
    """The [mutmut] section for `modules` (mutmut reads setup.cfg)."""
    tests = sorted({t for m in modules for t in MODULES[m]})
    lines = ["", "[mutmut]", "paths_to_mutate = " + "\n    ".join(modules),
             "tests_dir = " + "\n    ".join(tests),
             # What the tests read beside the sources: recipes, data files, helpers.
             "also_copy = recipes/\n    benchmarks/\n    pipeline/mlperf_tiny.json",
             # The suite's own addopts start xdist; mutmut runs pytest in-process.
             "pytest_add_cli_args = -o\n    addopts=--import-mode=importlib\n    -p\n    no:xdist"]
    lines += ["    --deselect\n    " + d for d in DESELECT]
    return "\n".join(lines) + "\n"


def scores(scratch, modules):
    """{module: {status: count}} and [(mutant, module)] survivors, from mutmut's records."""
    counts, survivors = {}, []
    for module in modules:
        meta = os.path.join(scratch, "mutants", module + ".meta")
        codes = {}
        if os.path.isfile(meta):
            with open(meta) as f:
                codes = json.load(f)["exit_code_by_key"]
        tally = counts.setdefault(module, {})
        for name, code in codes.items():
            status = STATUS.get(code, "suspicious" if code is not None else "not checked")
            tally[status] = tally.get(status, 0) + 1
            if status == "survived":
                survivors.append(name)
    return counts, survivors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES),
                        help="comma-separated module paths (default: all of MODULES)")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--scratch", default="/tmp/greenlite-mutmut")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    modules = args.modules.split(",")
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"--modules: {', '.join(unknown)} not in MODULES ({', '.join(MODULES)})")
    from benchmarks.mutation_check import copy_tree
    copy_tree(args.scratch)
    with open(os.path.join(args.scratch, "setup.cfg"), "a") as f:
        f.write(config(modules))
    start = time.perf_counter()
    mutmut = os.path.join(os.path.dirname(sys.executable), "mutmut")
    with open(os.path.join(args.scratch, "mutmut.log"), "w") as log:
        subprocess.run([mutmut, "run", "--max-children", str(args.children)], cwd=args.scratch,
                       stdout=log, stderr=subprocess.STDOUT)
    counts, survivors = scores(args.scratch, modules)
    print(f"mutmut over {len(modules)} module(s) in {time.perf_counter() - start:.0f} s "
          f"(log: {args.scratch}/mutmut.log)\n")
    print("| module | mutants | killed | survived | no test | timeout | score (killed / tested) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = {}
    for module, tally in counts.items():
        for k, v in tally.items():
            totals[k] = totals.get(k, 0) + v
        print(_row(module, tally))
    print(_row("**all**", totals))
    if args.survivors:
        for name in survivors:
            shown = subprocess.run([mutmut, "show", name], cwd=args.scratch, capture_output=True,
                                   text=True).stdout
            print("\n" + shown.strip())


def _row(name, tally):
    killed, survived = tally.get("killed", 0), tally.get("survived", 0)
    tested = killed + survived + tally.get("timeout", 0)
    score = f"{100 * (killed + tally.get('timeout', 0)) / tested:.1f} %" if tested else "—"
    return (f"| {name} | {sum(tally.values())} | {killed} | {survived} | "
            f"{tally.get('no test', 0)} | {tally.get('timeout', 0)} | {score} |")


if __name__ == "__main__":
    main()
