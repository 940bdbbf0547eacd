"""The quantization doctor on a run: which variants it examines, the report, the command.

    python -m pipeline.doctor --workdir=runs/text_lm [--variant=train_int8]
        [--max_drop_points=2 | --max_rise_percent=5] [--max_float_ops=8]

The diagnosis and the fix are export/doctor.py's; this module picks the
calibrated variants (export/formats.py: `doctor_examines`), loads the run's
data and each stage's model once for all of them, and records what the
doctor found in each variant's `doctor` block, with its fixes as new
variants. The run directory is changed only by atomic writes of the fixed
files and the report.
"""
import argparse
import json
import os
import sys

from export import formats
from export.budget import Budget, BudgetError
from pipeline.errors import GreenliteError, command
from pipeline.variants import Variant, figures_block


class DoctorError(GreenliteError):
    """Bad input to the doctor's command: one line, exit status 2, nothing written."""


def run_budget(recipe, task):
    """The budget a run's doctor holds files to: the recipe's, on the task's measure."""
    return Budget.for_task(task, recipe.export.max_drop_points, recipe.export.max_rise_percent)


def examine_variants(workdir, variants, stages, recipe, budget, max_float_ops=8, log=print):
    """The doctor on every calibrated, converted variant (pipeline.variants.Variant);
    returns the fixed variants it made.

    `stages`: {name: stage record}; `recipe`: the run's Recipe (benchmark
    settings, the model's custom objects); `budget`: an export.budget.Budget.
    """
    from export import doctor
    from models import saved
    from pipeline import custom_objects
    inputs = doctor.DoctorInputs.load(os.path.join(workdir, "export"),
                                      f"{recipe.benchmark.split}_data")
    objects = custom_objects.resolve(recipe.model.custom_objects)
    bench = {"num_threads": recipe.benchmark.num_threads, "num_runs": recipe.benchmark.num_runs,
             "warmup_runs": recipe.benchmark.warmup_runs}
    loaded, fixes = {}, []
    for variant in [v for v in variants if v.ok and formats.get(v.format).doctor_examines]:
        stage = stages[variant.stage]
        if stage["model_path"] not in loaded:  # one load per stage, not per variant
            loaded[stage["model_path"]] = saved.load(os.path.join(workdir, stage["model_path"]),
                                                     objects)
        keras = {"accuracy": stage["keras_accuracy"], "perplexity": stage["keras_perplexity"]}
        path = os.path.join("export", f"{variant.name}_mixed.tflite")
        try:
            record, fix = doctor.examine(variant.to_dict(), loaded[stage["model_path"]], inputs,
                                         keras, budget, bench, max_float_ops, log,
                                         output=os.path.join(workdir, path))
        except Exception as e:  # pylint: disable=broad-except
            # A diagnosis that fails (the debugger meets a model it cannot
            # handle) is reported; the variants and the run stand.
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            log(f"doctor: {variant.name}: could not examine it: {first}")
            variant.doctor_error = first
            continue
        variant.doctor = record
        if fix:
            fixes.append(Variant(fix["name"], variant.stage, fix["format"], path,
                                 figures=figures_block(fix["figures"]),
                                 fix={k: fix[k] for k in ("changes", "int16_ops", "float_ops",
                                                          "within_budget") if k in fix}))
    return fixes


def treat(workdir, variant_name=None, budget=None, max_float_ops=8, log=print):
    """Examines a finished run's calibrated variant and writes the result (and a
    fixed variant, if one was made) into its report; returns the doctor record."""
    from pipeline import recipe as recipe_lib
    from pipeline import report as report_lib
    report, index = _find(workdir, variant_name)
    recipe = recipe_lib.from_dict(dict(report["recipe"]))
    budget = budget or run_budget(recipe, report["data"].get("task"))
    variant = Variant.from_dict(report["variants"][index])
    stages = {s["name"]: s for s in report["stages"]}
    fixes = examine_variants(workdir, [variant], stages, recipe, budget, max_float_ops, log)
    report["variants"][index] = variant.to_dict()
    names = {f.name for f in fixes}
    report["variants"] = ([v for v in report["variants"] if v["name"] not in names]
                          + [f.to_dict() for f in fixes])
    report_lib.write(workdir, report)
    if variant.doctor_error:
        raise DoctorError(f"--variant: {variant.name!r} could not be examined: "
                          f"{variant.doctor_error}")
    return variant.doctor


def _find(workdir, name):
    """(the report, the index of the variant to examine)."""
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise DoctorError(f"--workdir: {workdir!r} holds no report.json; run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    examined = formats.names(doctor_examines=True)
    calibrated = [i for i, v in enumerate(report["variants"])
                  if v.get("format") in examined and "error" not in v]
    by_name = {v["name"]: i for i, v in enumerate(report["variants"])}
    if name is None:
        if not calibrated:
            raise DoctorError(f"--workdir: the run has no {' or '.join(examined)} variant; its "
                              f"variants: {', '.join(by_name)}")
        return report, calibrated[-1]
    if name not in by_name:
        raise DoctorError(f"--variant: no variant {name!r}; the run's variants: "
                          f"{', '.join(by_name)}")
    variant = report["variants"][by_name[name]]
    if variant.get("format") not in examined:
        raise DoctorError(f"--variant: {name!r} is {variant.get('format')}; the doctor "
                          f"examines calibrated variants ({', '.join(examined)}): "
                          + (", ".join(report["variants"][i]["name"] for i in calibrated)
                             or "none here"))
    if "error" in variant:
        raise DoctorError(f"--variant: {name!r} was not exported: {variant['error']}")
    return report, by_name[name]


def parse_budget(max_drop_points=None, max_rise_percent=None):
    """The command line's budget: one of the two flags, or None for the run's own."""
    given = {k: v for k, v in (("max_drop_points", max_drop_points),
                               ("max_rise_percent", max_rise_percent)) if v is not None}
    if len(given) > 1:
        raise DoctorError("give one budget: --max_drop_points (accuracy) or --max_rise_percent "
                          "(perplexity), not both")
    if not given:
        return None
    try:
        return Budget.parse(given)
    except BudgetError as e:
        raise DoctorError(f"--{e}") from None


@command("doctor")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run directory")
    parser.add_argument("--variant", help="a calibrated variant (default: the last int8 one)")
    parser.add_argument("--max_drop_points", type=float,
                        help="budget: accuracy points the file may lose against Keras float")
    parser.add_argument("--max_rise_percent", type=float,
                        help="budget: percent the file's perplexity may rise above Keras float")
    parser.add_argument("--max_float_ops", type=int, default=8,
                        help="at most this many ops kept in float by the fix")
    args = parser.parse_args(argv)
    budget = parse_budget(args.max_drop_points, args.max_rise_percent)
    if args.max_float_ops < 0:
        raise DoctorError(f"--max_float_ops: got {args.max_float_ops}; allowed: 0 or more")
    treat(args.workdir, args.variant, budget, args.max_float_ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
