"""report.json and report.md: every variant side by side.

report.json schema (version 1), stable for tools and dashboards:
    schema_version  1
    recipe          the validated recipe as plain values
    data            {description, input_shape, num_classes, train, val, test}
    baseline        {stage, keras_accuracy, params}: the first stage's Keras float model
    stages[]        {name, type, dir, model_path, seconds, params, keras_accuracy, metrics}
    variants[]      {name, stage, format, path, size_bytes, gzip_bytes, accuracy,
                     latency_ms{p50, p90, p99, mean}, init_ms, first_inference_ms,
                     interpreter, benchmark_path}  or  {name, stage, format, path, error}
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
    return {
        "schema_version": SCHEMA_VERSION,
        "recipe": recipe.to_dict(),
        "data": {"description": data.description, "input_shape": list(data.input_shape),
                 "num_classes": data.num_classes, "train": len(data.x_train),
                 "val": len(data.x_val), "test": len(data.x_test)},
        "baseline": {"stage": first["name"], "keras_accuracy": first["keras_accuracy"],
                     "accuracy": first["keras_accuracy"], "params": first["params"]},
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
        "the interpreter's invoke() time in ms.",
        "",
        "| variant | format | size (bytes) | gzip (bytes) | size vs float32 | TFLite accuracy | "
        "vs baseline (points) | p50 | p90 | p99 | mean |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in report["variants"]:
        if "error" in v:
            lines.append(f"| {v['name']} | {v['format']} | failed: {v['error']} |"
                         + " |" * 8)
            continue
        ref = float32.get(v["stage"])
        ratio = f"{v['size_bytes'] / ref['size_bytes']:.3f}x" if ref else "n/a"
        lat = v["latency_ms"]
        delta = 100 * (v["accuracy"] - base["keras_accuracy"])
        lines.append(
            f"| {v['name']} | {v['format']} | {v['size_bytes']:,} | {v['gzip_bytes']:,} | "
            f"{ratio} | {v['accuracy']:.4f} | {delta:+.2f} | {lat['p50']:.4f} | "
            f"{lat['p90']:.4f} | {lat['p99']:.4f} | {lat['mean']:.4f} |")
    return "\n".join(lines) + "\n"
