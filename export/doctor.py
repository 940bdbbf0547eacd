"""Quantization doctor: finds the tensors that break an int8 file, and fixes what it can.

For a calibrated variant (the formats export/formats.py marks
`doctor_examines`: int8, int16x8) it reports:
  - range outliers: tensors whose calibrated range is huge (|min| or |max| at
    least 1e4) or far beyond the float values they hold (100x their 99.9th
    percentile), with the Keras layer that produced each: one such tensor
    sets a scale that rounds every ordinary value to zero;
  - per-layer error of the quantized model against float on the run's
    representative inputs (RMSE / scale: 0.29 is the error of rounding
    alone), worst first, from TensorFlow's QuantizationDebugger;
and, when the file misses its budget (export/budget.py) on the test split
(accuracy points below the Keras float model, or perplexity percent above
it), it fixes it: first the known fixes (a -1e9 attention mask bounded,
models/attention.py); then the model re-quantized by ai-edge-quantizer
(static int8) with the worst ops widened to int16 activations one at a
time, where LiteRT has the int16 kernel (each candidate is scored in a
child process: a missing kernel aborts); then, if that is not enough, the
worst ops kept in float one at a time (the debugger's selective
quantization) until the file is within budget or `max_float_ops` is spent.
The result is a new file `<variant>_mixed`, with the ops made wider and what
each cost in bytes and latency.

The run's side (which variants, the report, the command line) is
pipeline/doctor.py's: `python -m pipeline.doctor --workdir=RUN`.

    inputs = DoctorInputs.load("runs/text_lm/export", "test_data")
    record, fix = examine(variant, model, inputs, keras_figures, budget,
                          output="runs/text_lm/export/train_int8_mixed.tflite")
"""
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import warnings

import numpy as np

from export.budget import losses

# A calibrated range this wide, or this many times the float values' 99.9th
# percentile, is an outlier.
MAX_ABS_RANGE = 1e4
MAX_RANGE_OVER_P999 = 100.0
from export import formats as formats_lib

# The formats the doctor diagnoses (export/formats.py).
CALIBRATED = formats_lib.names(doctor_examines=True)


@dataclasses.dataclass
class DoctorInputs:
    """What the doctor reads of a run, loaded once for all its variants: the
    representative (calibration) inputs, the split it scores files on, and that
    split's directory (children score candidates from it)."""
    representative: np.ndarray
    test: tuple
    data_dir: str

    @classmethod
    def load(cls, export_dir, eval_data="test_data"):
        data_dir = os.path.join(export_dir, eval_data)
        return cls(np.load(os.path.join(export_dir, "representative.npy")),
                   (np.load(os.path.join(data_dir, "x.npy")),
                    np.load(os.path.join(data_dir, "y.npy"))), data_dir)


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


def examine(variant, model, inputs, keras, budget, bench=None, max_float_ops=8, log=print,
            output=None):
    """Diagnoses a calibrated variant and, when its file misses `budget` against the
    Keras float model of its stage, fixes it.

    Args:
      variant: the variant's report record (its name, format and measured
        accuracy and perplexity).
      model: its stage's Keras model (or a models.keras3.SavedModelSource).
      inputs: DoctorInputs of the run.
      keras: {"accuracy", "perplexity"} of that model on the same split.
      budget: an export.budget.Budget.
      bench: the benchmark settings (num_threads, num_runs, warmup_runs).
      output: where a fixed file is written (atomically); its name is the fix's.
    Returns:
      (record, fix or None): fix = {name, format: int8_mixed, changes[],
      int16_ops[] (when that step ran), float_ops[], within_budget, figures
      (export/benchmark.py's, of the fixed file)}.
    """
    from models.attention import MASK_VALUE, bound_attention_masks
    from pipeline.files import atomic_write_bytes

    bench = bench or {}
    representative, test = inputs.representative, inputs.test
    log(f"doctor: {variant['name']}: calibrating with the quantization debugger ...")
    record = {"budget": budget.to_dict(), "keras": keras, **diagnose(model, representative)}
    for r in record["outliers"]:
        log(f"  range outlier: {r['tensor']} (layer {r['layer']}, {r['op']}): calibrated "
            f"[{r['range'][0]:.3g}, {r['range'][1]:.3g}], float values' 99.9th percentile "
            + (f"{r['float_p999']:.3g}" if r["float_p999"] is not None else "n/a"))
    for k, r in enumerate(record["worst"][:3], 1):
        # Not a failure: the tensors int8 rounds most, for a user deciding what to widen.
        log(f"  largest int8 rounding #{k}: layer {r['layer']} ({r['op']}), RMSE/scale "
            f"{r['rmse_over_scale']:.3g} (tensor {r['tensor']})")
    record["before"] = losses(variant, keras)
    within = budget.within(variant, keras)
    log(f"  {variant['name']}: accuracy {variant['accuracy']:.4f}, perplexity "
        f"{variant['perplexity']:.4g} against Keras {keras['accuracy']:.4f} / "
        f"{keras['perplexity']:.4g}: {'within' if within else 'outside'} the budget "
        f"({budget.describe()})")
    if within or not formats_lib.get(variant["format"]).doctor_fixes:
        record["fix"] = None if within else (
            "automatic fixes are made for " + ", ".join(formats_lib.names(doctor_fixes=True))
            + " variants only")
        return record, None

    fixed_name = variant["name"] + "_mixed"
    fixed = {"name": fixed_name, "format": "int8_mixed", "changes": [], "float_ops": []}
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
                   if not budget.within(figures, keras) and max_float_ops else [])
        if ranking:
            widened = _widen_to_int16(model, representative, ranking, figures, budget, keras,
                                      inputs.data_dir, bench, tmp, fixed, log)
            if widened is not None:
                flatbuffer, figures = widened
                ranking = []
        while not budget.within(figures, keras) and ranking:
            worst = ranking.pop(0)
            kept.append(worst["tensor"])
            previous = figures
            flatbuffer = mixed_model(model, representative, kept)
            atomic_write_bytes(candidate, flatbuffer)
            figures = _score(candidate, test, bench)
            fixed["float_ops"].append(_step(worst, flatbuffer, previous, figures, keras))
            log(f"  kept {worst['tensor']} ({worst['op']}, layer {worst['layer']}) in float: "
                f"accuracy {figures['accuracy']:.4f}, perplexity {figures['perplexity']:.4g}")
        atomic_write_bytes(output, flatbuffer)
    fixed.update(figures=figures, within_budget=budget.within(figures, keras))
    record["fix"] = {"variant": fixed_name, "changes": fixed["changes"],
                     "int16_ops": fixed.get("int16_ops", []),
                     "float_ops": fixed["float_ops"], "after": losses(figures, keras),
                     "within_budget": fixed["within_budget"]}
    widened = [o for o in fixed.get("int16_ops", []) if "error" not in o]
    log(f"  {fixed_name}: {'within' if fixed['within_budget'] else 'STILL OUTSIDE'} the budget "
        f"({budget.describe()}); {len(widened)} op(s) int16, "
        f"{len(fixed['float_ops'])} op(s) kept float")
    return record, fixed


def _step(worst, flatbuffer, previous, figures, keras):
    """One op made wider: which, and what it cost against the file before it."""
    return {"tensor": worst["tensor"], "layer": worst["layer"], "op": worst["op"],
            "rmse_over_scale": worst["rmse_over_scale"],
            "bytes": len(flatbuffer) - previous["size_bytes"],
            "latency_ms": figures["latency_ms"]["p50"] - previous["latency_ms"]["p50"],
            "after": losses(figures, keras)}


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
        if budget.within(scored, keras):
            fixed["changes"].append("re-quantized by ai-edge-quantizer (static int8"
                                    + (f", {len(wide)} op(s) with int16 activations)"
                                       if wide else ")"))
            fixed["int16_ops"] = steps
            return flatbuffer, scored
    log("  int16 step: not within the budget; keeping ops in float instead")
    return None
