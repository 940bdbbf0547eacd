"""report.json and report.md: every variant side by side.

report.json schema (version 1), stable for tools and dashboards:
    schema_version  1
    recipe          the validated recipe as plain values
    data            {description, input_shape, num_classes, train, val, test}
    baseline        {stage, keras_accuracy, params}: the first stage's Keras float model
    stages[]        {name, type, dir, model_path, seconds, params, keras_accuracy, metrics}
    variants[]      {name, stage, format, path, size_bytes, gzip_bytes, accuracy,
                     latency_ms{p50, p90, p99, mean}, init_ms, first_inference_ms,
                     interpreter, benchmark_path,
                     gzip_ratio_vs_baseline (baseline float32 gzip / this gzip),
                     and where the stage claims structure, measured in the file:
                     sparsity (over the pruned kernels), max_unique_per_channel
                     (over the clustered kernels), weights{layer: {dtype, size,
                     sparsity, unique, max_unique_per_channel}}, violations[];
                     float_layers{layer: reason} for QAT stages}
                    or  {name, stage, format, path, error}
    seconds         wall time of the whole run
Paths are relative to the run directory; accuracy is measured on the TFLite
file over the test split; latencies are milliseconds.
"""
import json
import os

from pipeline.files import atomic_write_text

SCHEMA_VERSION = 1


def build(recipe, data, stage_records, variants, seconds):
    """Assembles the report dict."""
    first = stage_records[0]
    reference = next((v for v in variants if v["stage"] == first["name"]
                      and v["format"] == "float32" and "error" not in v), None)
    for v in variants:
        if reference and "error" not in v:
            v["gzip_ratio_vs_baseline"] = reference["gzip_bytes"] / v["gzip_bytes"]
    return {
        "schema_version": SCHEMA_VERSION,
        "recipe": recipe.to_dict(),
        "data": {"description": data.description, "input_shape": list(data.input_shape),
                 "num_classes": data.num_classes, "train": len(data.x_train),
                 "val": len(data.x_val), "test": len(data.x_test)},
        "baseline": {"stage": first["name"], "keras_accuracy": first["keras_accuracy"],
                     "accuracy": first["keras_accuracy"], "params": first["params"],
                     "float32_variant": reference["name"] if reference else None},
        "stages": stage_records,
        "variants": variants,
        "seconds": seconds,
    }


def write(workdir, report):
    """Writes report.json and report.md into `workdir`, each atomically."""
    atomic_write_text(os.path.join(workdir, "report.json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(os.path.join(workdir, "report.md"), to_markdown(report))


def to_markdown(report):
    """The report as a Markdown page with one table of variants."""
    base = report["baseline"]
    lines = [
        f"# greenlite report: {report['recipe']['name']}",
        "",
        f"Data: {report['data']['description']} ({report['data']['train']} train / "
        f"{report['data']['val']} val / {report['data']['test']} test). "
        f"Run time: {report['seconds']:.1f} s.",
        "",
        f"Baseline (Keras float model of stage `{base['stage']}`): test accuracy "
        f"{base['keras_accuracy']:.4f}, {base['params']:,} parameters.",
        "",
        "## Stages",
        "",
        "| stage | type | time (s) | parameters | Keras test accuracy |",
        "|---|---|---:|---:|---:|",
    ]
    for s in report["stages"]:
        lines.append(f"| {s['name']} | {s['type']} | {s['seconds']:.1f} | {s['params']:,} | "
                     f"{s['keras_accuracy']:.4f} |")
    float32 = {v["stage"]: v for v in report["variants"]
               if v["format"] == "float32" and "error" not in v}
    lines += [
        "",
        "## TFLite variants",
        "",
        "Accuracy is measured on the .tflite file over the test split; latency is "
        "the interpreter's invoke() time in ms. *gzip vs baseline*: how many times "
        "smaller the gzipped file is than the baseline's float32 file. Sparsity and "
        "unique values per channel are measured in the file's weight buffers.",
        "",
        "| variant | format | size (bytes) | gzip (bytes) | size vs stage float32 | "
        "gzip vs baseline | TFLite accuracy | vs baseline (points) | sparsity | "
        "unique/channel | p50 | p90 | p99 | mean |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for v in report["variants"]:
        if "error" in v:
            lines.append(f"| {v['name']} | {v['format']} | failed: {v['error']} |" + " |" * 11)
            continue
        ref = float32.get(v["stage"])
        ratio = f"{v['size_bytes'] / ref['size_bytes']:.3f}x" if ref else "n/a"
        gzip_ratio = (f"{v['gzip_ratio_vs_baseline']:.1f}x smaller"
                      if "gzip_ratio_vs_baseline" in v else "n/a")
        lat = v["latency_ms"]
        delta = 100 * (v["accuracy"] - base["keras_accuracy"])
        sparsity = f"{v['sparsity']:.4f}" if v.get("sparsity") is not None else ""
        unique = str(v["max_unique_per_channel"]) if v.get("max_unique_per_channel") else ""
        lines.append(
            f"| {v['name']} | {v['format']} | {v['size_bytes']:,} | {v['gzip_bytes']:,} | "
            f"{ratio} | {gzip_ratio} | {v['accuracy']:.4f} | {delta:+.2f} | {sparsity} | "
            f"{unique} | {lat['p50']:.4f} | {lat['p90']:.4f} | {lat['p99']:.4f} | "
            f"{lat['mean']:.4f} |")
        if v.get("float_layers"):
            notes.append(f"- `{v['name']}` keeps these layers in float: " + "; ".join(
                f"`{layer}` ({why})" for layer, why in v["float_layers"].items()))
        for problem in v.get("violations", []):
            notes.append(f"- **`{v['name']}` fails its structure check**: {problem}")
    skipped = [(s["name"], s["metrics"]["skipped_layers"]) for s in report["stages"]
               if s["metrics"].get("skipped_layers")]
    for stage, layers in skipped:
        notes.append(f"- stage `{stage}` skipped: " + "; ".join(
            f"`{layer}` ({why})" for layer, why in layers.items()))
    if notes:
        lines += ["", "## Notes", ""] + notes
    return "\n".join(lines) + "\n"
