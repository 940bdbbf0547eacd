"""Deployability of each variant: microcontroller fit, C arrays, Android metadata and labels.

The runner calls `examine` after export (recipe section `deploy:`); a
finished run is examined again, its report rewritten, by

    python -m pipeline.deploy --workdir=runs/default [--variant=NAME] \
        [--target=arduino-nano-33-ble --target=my-board:192:512] [--labels=labels.txt]

For every full-integer variant (int8, int16x8, a doctor's int8_mixed) it runs
the file in tflite-micro (export/micro.py, in a child process): accuracy from
the micro runtime against LiteRT's, the arena measured, the operators the
micro runtime lacks; writes the file as a C array (`export/<variant>_model_data.cc/.h`);
and gives a fits / does-not-fit verdict with margins per target board.
For every variant of a classifier it writes `export/labels.txt` and the
Android metadata (export/metadata.py). report.build then summarizes it all
in each variant's `deploy` block (pipeline/verdicts.py `summary`).
"""
import argparse
import dataclasses
import json
import os
import sys

from export import formats as formats_lib
from pipeline.errors import GreenliteError, command


class DeployError(GreenliteError):
    """Bad input to the deploy checks (a labels file, a run directory, a variant)."""


# Files whose activations are integers: the ones a microcontroller runs.
MICRO_FORMATS = formats_lib.names(micro=True)
LABELS = os.path.join("export", "labels.txt")


def examine(workdir, variants, cfg, data, log=print, metadata_env=None):
    """Adds `micro`, `c_array` and `metadata` to each converted variant
    (pipeline.variants.Variant, in place), and `shipped`: the file's size and
    gzip size once its metadata is written into it.

    cfg: the recipe's DeployConfig; data: {task, class_names, normalization,
    description, model, split} (see `data_info`). Writes export/labels.txt
    and the C arrays; writes metadata into the .tflite files. One micro-runtime
    process and one metadata writer serve every file of the call.
    """
    from export import child, micro as micro_lib
    from pipeline.boards import parse_targets
    from pipeline.verdicts import fit_all, micro_text
    targets = parse_targets(cfg.targets)
    labels = _labels(workdir, cfg, data)
    metadata_python, metadata_reason = _metadata_env(cfg, data, labels, metadata_env, log)
    test_data = os.path.join(workdir, "export", data["split"] + "_data")
    with child.Server(["-m", "export.micro", "--serve"], "the micro runtime") as micro_server, \
            _metadata_writer(metadata_python) as writer:
        for v in variants:
            if not v.ok or not formats_lib.on_device(v.format):
                continue  # an ONNX file or an engine runs on a server, not a device
            path = os.path.join(workdir, v.path)
            if writer:
                _write_metadata(writer, path, v, data, labels, workdir, log)
            elif metadata_reason:
                v.metadata = {"written": False, "reason": metadata_reason}
            if not cfg.micro:
                continue
            if v.format not in MICRO_FORMATS:
                v.micro = {"checked": False, "reason": f"a {v.format} file: microcontrollers "
                           f"run full-integer files ({', '.join(MICRO_FORMATS)})"}
                continue
            reply, error = micro_server.request(
                {"model": path, "data": test_data, "max_examples": cfg.micro_examples},
                timeout=3600)
            error = error or (reply or {}).get("error")
            if error:
                v.micro = {"checked": True, "runs": False, "reason": error, "missing_ops": []}
            else:
                v.micro = {"checked": True, **reply["result"]}
            fit_all(v, targets)
            if cfg.c_array:
                cc, h = micro_lib.write_c_array(path, os.path.dirname(path), v.name)
                v.c_array = {"source": os.path.relpath(cc, workdir),
                             "header": os.path.relpath(h, workdir),
                             "symbol": micro_lib.c_symbol(v.name)}
            log(f"  {v.name} on tflite-micro: {micro_text(v.micro)}")


def _metadata_writer(python):
    """The metadata writer's process for this call (a no-op context without an environment)."""
    import contextlib
    if not python:
        return contextlib.nullcontext(None)
    from export import metadata
    return metadata.Writer(python)


def data_info(data, split, model_name):
    """What `examine` needs of the run's Data."""
    return {"task": data.task, "class_names": list(data.class_names),
            "normalization": data.normalization, "description": data.description,
            "preprocessing": data.preprocessing, "split": split, "model": model_name}


def _labels(workdir, cfg, data):
    """Writes export/labels.txt for a classifier; returns its path (None otherwise)."""
    from export import metadata
    if data["task"] != "classification":
        return None
    names = data["class_names"]
    if cfg.labels:
        names = metadata.read_labels(cfg.labels)
        if len(names) != len(data["class_names"]):
            raise DeployError(f"deploy.labels: {cfg.labels!r} holds {len(names)} labels but the "
                             f"model has {len(data['class_names'])} outputs; give one label "
                             "per class, in label order")
    path = os.path.join(workdir, LABELS)
    metadata.write_labels(path, names)
    return path


def _metadata_env(cfg, data, labels, env_dir, log):
    """(the tflite-support Python, None) or (None, why no metadata is written)."""
    from export import metadata
    if not cfg.metadata:
        return None, None
    if labels is None:
        return None, "not a classifier: the metadata writers describe classifiers"
    if not data.get("normalization"):
        return None, "the data declares no input normalization"
    try:
        return metadata.ensure_env(env_dir or metadata.DEFAULT_ENV), None
    except metadata.MetadataError as e:
        log(f"metadata skipped: {e}")
        return None, f"not written: {e}"


def _write_metadata(writer, path, v, data, labels, workdir, log):
    from export import metadata
    from export import micro as micro_lib
    norm = data["normalization"]
    spec = {"name": f"{data['model']} ({v.name})",
            "description": (f"{data['description']}; greenlite variant {v.name} "
                            f"({v.format}). Inputs: {data['preprocessing']}."),
            "version": v.format, "kind": norm["kind"], "color_space": norm["color_space"]
            or "RGB", "mean": norm["mean"], "std": norm["std"], "min": norm["min"],
            "max": norm["max"], "author": "greenlite",
            "probabilities": micro_lib.ends_in_softmax(path)}
    before = (metadata.strip_metadata(path) if metadata.has_metadata(path)
              else os.path.getsize(path))
    try:
        size = writer.write(path, labels, spec)
    except metadata.MetadataError as e:
        v.metadata = {"written": False, "reason": str(e)}
        log(f"  {v.name}: metadata NOT written: {e}")
        return
    v.metadata = {"written": True, "bytes": size - before, "labels": os.path.relpath(
        labels, workdir), "mean": norm["mean"], "std": norm["std"],
        "range": [norm["min"], norm["max"]]}
    # The file grew by the metadata and the packed labels: what ships.
    from export.benchmark import gzip_bytes
    with open(path, "rb") as f:
        v.shipped = {"size_bytes": size, "gzip_bytes": gzip_bytes(f.read())}


def examine_run(workdir, variant=None, targets=None, labels=None, env_dir=None, log=print):
    """Examines a finished run's variants (one, with `variant`) and rewrites its report."""
    from pipeline import recipe as recipe_lib
    from pipeline import report as report_lib
    from pipeline.boards import accelerators, parse_targets
    from pipeline.variants import Variant
    from pipeline.verdicts import summary
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise DeployError(f"--workdir: {workdir!r} holds no report.json; run the pipeline first")
    with open(path) as f:
        report = json.load(f)
    recipe = recipe_lib.from_dict({k: v for k, v in report["recipe"].items()})
    cfg = dataclasses.replace(recipe.deploy, micro=True)
    if targets is not None:
        cfg.targets = targets
    if labels is not None:
        cfg.labels = labels
    parse_targets(cfg.targets)
    chosen = report["variants"]
    if variant is not None:
        chosen = [v for v in chosen if v["name"] == variant]
        if not chosen:
            raise DeployError(f"--variant: {variant!r} is not a variant of this run; variants: "
                             f"{', '.join(v['name'] for v in report['variants'])}")
        if chosen[0]["format"] not in MICRO_FORMATS:
            raise DeployError(f"--variant: {variant!r} is a {chosen[0]['format']} file; the micro "
                             f"runtime takes full-integer files ({', '.join(MICRO_FORMATS)})")
    info = report.get("deploy_data")
    if info is None:
        raise DeployError(f"--workdir: {workdir!r} was made before deploy checks existed; "
                         "run the recipe again")
    records = [Variant.from_dict(v) for v in report["variants"]]
    examined = [r for r, v in zip(records, report["variants"]) if v in chosen]
    # An Ethos-U board the run did not compile for: Vela first, so that its
    # verdict reads the NPU build's figures.
    missing = [a for a in accelerators(parse_targets(cfg.targets))
               if any(a not in (r.npu or {}) for r in examined if r.ok and r.format in MICRO_FORMATS)]
    if missing:
        from pipeline import npu
        npu.compile_variants(workdir, examined, missing, log)
    examine(workdir, examined, cfg, info, log, env_dir)
    report["variants"] = [r.to_dict() for r in records]
    for v in report["variants"]:
        if "error" not in v:
            v["deploy"] = summary(v, recipe.benchmark.check_tflite_runtime or any(
                v.get("runtimes", {})))
    report_lib.write(workdir, report)
    return report


@command("deploy")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run directory")
    parser.add_argument("--variant", help="only this variant (a full-integer one)")
    parser.add_argument("--target", action="append",
                        help="a board preset or NAME:RAM_KB:FLASH_KB (repeatable); default: "
                             "the recipe's deploy.targets")
    parser.add_argument("--labels", help="a labels file, one class name per line")
    args = parser.parse_args(argv)
    targets = None
    if args.target:
        from pipeline.boards import parse_target_argument
        targets = [dataclasses.asdict(parse_target_argument(t)) for t in args.target]
    if args.labels and not os.path.isfile(args.labels):
        raise DeployError(f"--labels: {args.labels!r} does not exist")
    report = examine_run(args.workdir, args.variant, targets, args.labels)
    for v in report["variants"]:
        if "deploy" in v:
            print(f"{v['name']}: " + json.dumps(v["deploy"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
