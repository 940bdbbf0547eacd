"""Quantization doctor: finds the tensors that break a run's int8 file, and fixes what it can.

    python -m export.doctor --workdir=runs/text_lm [--variant=train_int8]
        [--max_drop_points=2 | --max_rise_percent=5] [--max_float_ops=8]

For a calibrated variant (int8, int16x8) of a finished run it reports:
  - range outliers: tensors whose calibrated range is huge (|min| or |max| at
    least 1e4) or far beyond the float values they hold (100x their 99.9th
    percentile), with the Keras layer that produced each: one such tensor
    sets a scale that rounds every ordinary value to zero;
  - per-layer error of the quantized model against float on the run's
    representative inputs (RMSE / scale: 0.29 is the error of rounding
    alone), worst first, from TensorFlow's QuantizationDebugger;
and, when the file misses its budget on the test split (accuracy points
below the Keras float model, or perplexity percent above it), it fixes it:
first the known fixes (a -1e9 attention mask bounded, pipeline/attention.py);
then the model re-quantized by ai-edge-quantizer (static int8) with the
worst ops widened to int16 activations one at a time, where LiteRT has the
int16 kernel (each candidate is scored in a child process: a missing kernel
aborts); then, if that is not enough, the worst ops kept in float one at a
time (the debugger's selective quantization) until the file is within budget
or `--max_float_ops` is spent. The result is a new variant `<variant>_mixed`
in the run's report, with the ops made wider and what each cost in bytes
and latency. The run directory
is changed only by atomic writes of the new file and the report.
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import warnings

import numpy as np

# A calibrated range this wide, or this many times the float values' 99.9th
# percentile, is an outlier.
MAX_ABS_RANGE = 1e4
MAX_RANGE_OVER_P999 = 100.0
CALIBRATED = ("int8", "int16x8")


class DoctorError(Exception):
    """Bad input: one line, non-zero exit, nothing written."""


def keras_layer(tensor_name, layer_names, output_layer=None):
    """The Keras layer a TFLite tensor comes from ('model/block1_attention/add' ->
    'block1_attention'; the converter names the model's output tensor
    'StatefulPartitionedCall:0': `output_layer`), or '?' when the name does not say."""
    for part in tensor_name.split(";")[0].split("/"):
        if part in layer_names:
            return part
    if output_layer and tensor_name.startswith("StatefulPartitionedCall"):
        return output_layer
    return "?"


@contextlib.contextmanager
def _quiet():
    """Mutes what the debugger prints: the converter's C++ lines on the process's
    stdout/stderr, the deprecated tf.lite.Interpreter it uses, and numpy's
    warnings on tensors with no finite values."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _debugger(model, representative, denylisted=(), metrics=True, fully_quantize=False):
    from pipeline.backend import tf
    from export.convert import keras_converter, representative_dataset
    converter = keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(representative)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={
            "float_p999": lambda f, q, s, zp: float(np.percentile(np.abs(f), 99.9)),
            "float_abs_max": lambda f, q, s, zp: float(np.max(np.abs(f))),
        } if metrics else None,
        denylisted_nodes=list(denylisted) or None, fully_quantize=fully_quantize)
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_dataset(representative), debug_options=options)


def diagnose(model, representative, top=10):
    """{"outliers": [...], "worst": [...]} for `model` calibrated on `representative`.

    Each entry: {tensor, layer, op, scale, range (calibrated [min, max]),
    float_p999, rmse_over_scale}.
    """
    import csv
    import io
    with _quiet():
        debugger = _debugger(model, representative)
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    names = {l.name for l in model.layers}
    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale, zero_point = float(row["scale"]), int(float(row["zero_point"]))
        if scale <= 0:
            continue
        low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
        p999 = float(row["float_p999"])
        p999 = p999 if np.isfinite(p999) else None  # a tensor the samples never reached
        error = float(np.sqrt(float(row["mean_squared_error"])) / scale)
        rows.append({"tensor": row["tensor_name"],
                     "layer": keras_layer(row["tensor_name"], names,
                                          model.layers[-1].name if model.layers else None),
                     "op": row["op_name"], "scale": scale, "range": [low, high],
                     "float_p999": p999, "rmse_over_scale": error if np.isfinite(error) else None})
    def outlier(r):
        widest = max(abs(r["range"][0]), abs(r["range"][1]))
        return widest >= MAX_ABS_RANGE or (
            r["float_p999"] is not None and widest > MAX_RANGE_OVER_P999 * max(r["float_p999"], 1e-12))

    outliers = [r for r in rows if outlier(r)]
    worst = sorted((r for r in rows if r["rmse_over_scale"] is not None),
                   key=lambda r: -r["rmse_over_scale"])[:top]
    return {"outliers": outliers, "worst": worst}


def mixed_model(model, representative, float_tensors):
    """The int8 flatbuffer with the ops producing `float_tensors` kept in float
    (int8 input and output when the model's input is float, as int8 export has)."""
    with _quiet():
        return bytes(_debugger(model, representative, float_tensors, metrics=False,
                               fully_quantize=model.inputs[0].dtype.is_floating
                               ).get_nondebug_quantized_model())


def int16_model(float_flatbuffer, representative, int16_tensors):
    """Static int8 by ai-edge-quantizer, with the ops producing `int16_tensors`
    computing with int16 activations (mixed precision; int8 weights throughout)."""
    import re
    os.environ.setdefault("TQDM_DISABLE", "1")
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    from export.convert import _calibration_data
    manager = recipe_manager.RecipeManager()
    every = qtyping.TFLOperationName.ALL_SUPPORTED
    manager.add_static_config(regex=".*", operation_name=every, activation_num_bits=8,
                              weight_num_bits=8)
    for name in int16_tensors:  # a later, narrower entry wins for the ops it names
        manager.add_static_config(regex=re.escape(name), operation_name=every,
                                  activation_num_bits=16, weight_num_bits=8)
    with _quiet():
        q = quantizer.Quantizer(bytearray(float_flatbuffer), manager.get_quantization_recipe())
        calibration = q.calibrate(_calibration_data(float_flatbuffer, representative))
        return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)


def _score_in_child(path, data_dir, bench):
    """export/benchmark.py's figures for `path` from a child process, or (None, why):
    an op without an int16 kernel aborts the interpreter."""
    from export import child
    out = path + ".json"
    _, error = child.run(
        [os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark.py"),
         f"--model={path}", f"--data={data_dir}", f"--json={out}",
         f"--num_threads={bench.get('num_threads', 1)}",
         f"--num_runs={bench.get('num_runs', 20)}",
         f"--warmup_runs={bench.get('warmup_runs', 2)}"], timeout=1800, what="the benchmark")
    if error:
        return None, error
    with open(out) as f:
        return json.load(f), None


def _score(path, test, bench):
    from export import benchmark
    return benchmark.benchmark(path, test, num_threads=bench.get("num_threads", 1),
                               num_runs=bench.get("num_runs", 20),
                               warmup_runs=bench.get("warmup_runs", 2))


def _within(figures, budget, keras):
    missed = _miss(figures, keras)
    key = "drop_points" if budget["kind"] == "max_drop_points" else "rise_percent"
    return missed[key] <= budget["value"]


def _miss(figures, keras):
    """The file's metrics and how far each is from the Keras float model's."""
    return {"accuracy": figures["accuracy"], "perplexity": figures["perplexity"],
            "drop_points": 100 * (keras["accuracy"] - figures["accuracy"]),
            "rise_percent": 100 * (figures["perplexity"] / keras["perplexity"] - 1)}


def default_budget(task, max_drop_points=2.0, max_rise_percent=5.0):
    """The budget that fits the task: perplexity for language models, else accuracy."""
    if task == "language_model":
        return {"kind": "max_rise_percent", "value": max_rise_percent}
    return {"kind": "max_drop_points", "value": max_drop_points}


def treat(workdir, variant_name=None, budget=None, max_float_ops=8, log=print):
    """Examines a finished run's calibrated variant and writes the result (and a
    fixed variant, if one was made) into its report; returns the doctor record."""
    from pipeline import report as report_lib
    report, variant, stage = _find(workdir, variant_name)
    budget = budget or default_budget(report["data"].get("task"))
    split = report["recipe"].get("benchmark", {}).get("split", "test")
    record, fixed = examine(workdir, variant, stage, report["recipe"], budget, max_float_ops, log,
                            eval_data=f"{split}_data")
    variant["doctor"] = record
    if fixed:
        report["variants"] = [v for v in report["variants"] if v["name"] != fixed["name"]]
        report["variants"].append(fixed)
    report_lib.write(workdir, report)
    return record


def examine(workdir, variant, stage, recipe, budget, max_float_ops=8, log=print,
            eval_data="test_data"):
    """Diagnoses a calibrated variant of the run in `workdir` and, when its file
    misses `budget` against the Keras float model of its stage, fixes it.

    Args:
      variant, stage: the variant's and its stage's records (report.json).
      recipe: the run's recipe as report.json holds it (benchmark settings,
        the model's custom objects).
      budget: {"kind": "max_drop_points" or "max_rise_percent", "value"}.
      eval_data: the folder under export/ with the split the run scores on.
    Returns:
      (record, fixed variant record or None). Only the fixed variant's
      .tflite file is written (atomically).
    """
    from models import saved
    from pipeline import custom_objects
    from pipeline import report as report_lib
    from pipeline.attention import MASK_VALUE, bound_attention_masks
    from pipeline.files import atomic_write_bytes

    export_dir = os.path.join(workdir, "export")
    representative = np.load(os.path.join(export_dir, "representative.npy"))
    test = (np.load(os.path.join(export_dir, eval_data, "x.npy")),
            np.load(os.path.join(export_dir, eval_data, "y.npy")))
    keras = {"accuracy": stage["keras_accuracy"], "perplexity": stage["keras_perplexity"]}
    bench = recipe.get("benchmark", {})
    objects = custom_objects.resolve(recipe.get("model", {}).get("custom_objects"))
    model = saved.load(os.path.join(workdir, stage["model_path"]), objects)

    log(f"doctor: {variant['name']}: calibrating with the quantization debugger ...")
    record = {"budget": budget, "keras": keras, **diagnose(model, representative)}
    for r in record["outliers"]:
        log(f"  range outlier: {r['tensor']} (layer {r['layer']}, {r['op']}): calibrated "
            f"[{r['range'][0]:.3g}, {r['range'][1]:.3g}], float values' 99.9th percentile "
            + (f"{r['float_p999']:.3g}" if r["float_p999"] is not None else "n/a"))
    for r in record["worst"][:3]:
        log(f"  error: {r['tensor']} (layer {r['layer']}, {r['op']}): RMSE/scale "
            f"{r['rmse_over_scale']:.3g}")
    record["before"] = _miss(variant, keras)
    within = _within(variant, budget, keras)
    log(f"  {variant['name']}: accuracy {variant['accuracy']:.4f}, perplexity "
        f"{variant['perplexity']:.4g} against Keras {keras['accuracy']:.4f} / "
        f"{keras['perplexity']:.4g}: {'within' if within else 'outside'} the budget "
        f"({budget['kind']} {budget['value']:g})")
    if within or variant["format"] != "int8":
        record["fix"] = None if within else "automatic fixes are made for int8 variants only"
        return record, None

    fixed_name = variant["name"] + "_mixed"
    fixed = {"name": fixed_name, "stage": variant["stage"], "format": "int8_mixed",
             "path": os.path.join("export", fixed_name + ".tflite"), "changes": [],
             "float_ops": []}
    # Known fix first: attention that masks with -1e9 gets the bounded constant.
    model, bounded = bound_attention_masks(model)
    if bounded:
        fixed["changes"].append(f"attention mask bounded to {MASK_VALUE:g} in "
                                f"{', '.join(bounded)}")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = os.path.join(tmp, "candidate.tflite")
        flatbuffer = mixed_model(model, representative, [])
        atomic_write_bytes(candidate, flatbuffer)
        figures = _score(candidate, test, bench)
        log(f"  after {'; '.join(fixed['changes']) or 'recalibration'}: accuracy "
            f"{figures['accuracy']:.4f}, perplexity {figures['perplexity']:.4g}")
        kept = []
        # Worst first, ranked once on the model as fixed so far (keeping one op in
        # float changes little of the others' error).
        ranking = (diagnose(model, representative, top=max_float_ops)["worst"]
                   if not _within(figures, budget, keras) and max_float_ops else [])
        if ranking:
            widened = _widen_to_int16(model, representative, ranking, figures, budget, keras,
                                      os.path.join(export_dir, eval_data), bench, tmp, fixed,
                                      log)
            if widened is not None:
                flatbuffer, figures = widened
                ranking = []
        while not _within(figures, budget, keras) and ranking:
            worst = ranking.pop(0)
            kept.append(worst["tensor"])
            previous = figures
            flatbuffer = mixed_model(model, representative, kept)
            atomic_write_bytes(candidate, flatbuffer)
            figures = _score(candidate, test, bench)
            fixed["float_ops"].append(_step(worst, flatbuffer, previous, figures, keras))
            log(f"  kept {worst['tensor']} ({worst['op']}, layer {worst['layer']}) in float: "
                f"accuracy {figures['accuracy']:.4f}, perplexity {figures['perplexity']:.4g}")
        atomic_write_bytes(os.path.join(workdir, fixed["path"]), flatbuffer)
    fixed.update(report_lib.variant_figures(figures),
                 within_budget=_within(figures, budget, keras))
    record["fix"] = {"variant": fixed_name, "changes": fixed["changes"],
                     "int16_ops": fixed.get("int16_ops", []),
                     "float_ops": fixed["float_ops"], "after": _miss(figures, keras),
                     "within_budget": fixed["within_budget"]}
    widened = [o for o in fixed.get("int16_ops", []) if "error" not in o]
    log(f"  {fixed_name}: {'within' if fixed['within_budget'] else 'STILL OUTSIDE'} the budget "
        f"({budget['kind']} {budget['value']:g}); {len(widened)} op(s) int16, "
        f"{len(fixed['float_ops'])} op(s) kept float")
    return record, fixed


def _step(worst, flatbuffer, previous, figures, keras):
    """One op made wider: which, and what it cost against the file before it."""
    return {"tensor": worst["tensor"], "layer": worst["layer"], "op": worst["op"],
            "rmse_over_scale": worst["rmse_over_scale"],
            "bytes": len(flatbuffer) - previous["size_bytes"],
            "latency_ms": figures["latency_ms"]["p50"] - previous["latency_ms"]["p50"],
            "after": _miss(figures, keras)}


def _widen_to_int16(model, representative, ranking, figures, budget, keras, data_dir, bench,
                    tmp, fixed, log):
    """The int16 step: ai-edge-quantizer's static int8, then the worst ops widened
    to int16 activations one at a time. Returns (flatbuffer, figures) once within
    budget (recorded in `fixed`), or None (then the float step runs)."""
    from export.convert import convert
    float32 = convert(model, "float32")
    candidate = os.path.join(tmp, "int16_candidate.tflite")
    wide, steps, previous = [], [], figures
    for worst in [None] + list(ranking):
        names = wide + ([worst["tensor"]] if worst else [])
        try:
            flatbuffer = int16_model(float32, representative, names)
        except Exception as e:  # pylint: disable=broad-except
            log(f"  int16 step: ai-edge-quantizer failed: {str(e).splitlines()[0] if str(e) else e}")
            return None
        with open(candidate, "wb") as f:
            f.write(flatbuffer)
        scored, error = _score_in_child(candidate, data_dir, bench)
        if worst is None:
            if error:
                log(f"  int16 step skipped: ai-edge-quantizer's int8 file does not run: {error}")
                return None
            log(f"  re-quantized by ai-edge-quantizer (static int8): accuracy "
                f"{scored['accuracy']:.4f}, perplexity {scored['perplexity']:.4g}")
        elif error:
            log(f"  {worst['tensor']} ({worst['op']}): no int16 kernel runs it ({error})")
            steps.append({"tensor": worst["tensor"], "layer": worst["layer"], "op": worst["op"],
                          "error": error})
            continue
        else:
            wide.append(worst["tensor"])
            steps.append(_step(worst, flatbuffer, previous, scored, keras))
            log(f"  widened {worst['tensor']} ({worst['op']}, layer {worst['layer']}) to int16: "
                f"accuracy {scored['accuracy']:.4f}, perplexity {scored['perplexity']:.4g}")
        previous = scored
        if _within(scored, budget, keras):
            fixed["changes"].append("re-quantized by ai-edge-quantizer (static int8"
                                    + (f", {len(wide)} op(s) with int16 activations)"
                                       if wide else ")"))
            fixed["int16_ops"] = steps
            return flatbuffer, scored
    log("  int16 step: not within the budget; keeping ops in float instead")
    return None


def _find(workdir, name):
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise DoctorError(f"--workdir: {workdir!r} holds no report.json; run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    calibrated = [v for v in report["variants"] if v.get("format") in CALIBRATED
                  and "error" not in v]
    by_name = {v["name"]: v for v in report["variants"]}
    if name is None:
        if not calibrated:
            raise DoctorError(f"--workdir: the run has no int8 or int16x8 variant; its variants: "
                              f"{', '.join(by_name)}")
        variant = calibrated[-1]
    elif name not in by_name:
        raise DoctorError(f"--variant: no variant {name!r}; the run's variants: "
                          f"{', '.join(by_name)}")
    else:
        variant = by_name[name]
        if variant.get("format") not in CALIBRATED:
            raise DoctorError(f"--variant: {name!r} is {variant.get('format')}; the doctor "
                              f"examines calibrated variants ({', '.join(CALIBRATED)}): "
                              f"{', '.join(v['name'] for v in calibrated) or 'none here'}")
        if "error" in variant:
            raise DoctorError(f"--variant: {name!r} was not exported: {variant['error']}")
    stage = {s["name"]: s for s in report["stages"]}[variant["stage"]]
    return report, variant, stage


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
    try:
        budget = _budget(args)
        from pipeline.errors import GreenliteError
        try:
            treat(args.workdir, args.variant, budget, args.max_float_ops)
        except GreenliteError as e:
            raise DoctorError(str(e)) from None
    except DoctorError as e:
        print(f"doctor: error: {e}", file=sys.stderr)
        return 2
    return 0


def _budget(args):
    given = [(k, v) for k, v in (("max_drop_points", args.max_drop_points),
                                 ("max_rise_percent", args.max_rise_percent)) if v is not None]
    if len(given) > 1:
        raise DoctorError("give one budget: --max_drop_points (accuracy) or --max_rise_percent "
                          "(perplexity), not both")
    if args.max_float_ops < 0:
        raise DoctorError(f"--max_float_ops: got {args.max_float_ops}; allowed: 0 or more")
    if not given:
        return None
    kind, value = given[0]
    if not value >= 0:
        raise DoctorError(f"--{kind}: got {value}; allowed: a number >= 0")
    return {"kind": kind, "value": value}


if __name__ == "__main__":
    sys.exit(main())
