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
in each variant's `deploy` block (`summary`).
"""
import argparse
import dataclasses
import json
import os
import sys

# Boards' on-chip RAM and flash (datasheets), in KiB. The arena must fit in RAM
# with the application's own memory; the model array in flash with its code.
PRESETS = {
    "arduino-nano-33-ble": {"ram_kb": 256, "flash_kb": 1024, "chip": "nRF52840 (Cortex-M4F)"},
    "arduino-nano-33-iot": {"ram_kb": 32, "flash_kb": 256, "chip": "SAMD21 (Cortex-M0+)"},
    "raspberry-pi-pico": {"ram_kb": 264, "flash_kb": 2048, "chip": "RP2040 (Cortex-M0+)"},
    "esp32-s3-devkitc-n8": {"ram_kb": 512, "flash_kb": 8192, "chip": "ESP32-S3 (Xtensa LX7)"},
    "stm32f746g-disco": {"ram_kb": 320, "flash_kb": 1024, "chip": "STM32F746 (Cortex-M7)"},
    "sparkfun-edge": {"ram_kb": 384, "flash_kb": 1024, "chip": "Apollo3 (Cortex-M4F)"},
    "cortex-m4-256k": {"ram_kb": 256, "flash_kb": 1024, "chip": "a generic Cortex-M4"},
}
# Files whose activations are integers: the ones a microcontroller runs.
MICRO_FORMATS = ("int8", "int16x8", "int8_mixed", "int16x8_mixed")
LABELS = os.path.join("export", "labels.txt")


@dataclasses.dataclass
class Target:
    """A board: RAM for the tensor arena, flash for the model (KiB)."""
    name: str
    ram_kb: float
    flash_kb: float


def parse_targets(items):
    """[Target] from preset names and {name, ram_kb, flash_kb} mappings.

    Raises ValueError (one line) for an unknown preset or a size that is not
    a positive number.
    """
    targets = []
    for item in items or []:
        if isinstance(item, str):
            if item not in PRESETS:
                raise ValueError(f"targets: unknown board preset {item!r}; presets: "
                                 f"{', '.join(sorted(PRESETS))}, or give "
                                 "{name, ram_kb, flash_kb}")
            targets.append(Target(item, PRESETS[item]["ram_kb"], PRESETS[item]["flash_kb"]))
            continue
        if not isinstance(item, dict) or set(item) != {"name", "ram_kb", "flash_kb"}:
            raise ValueError(f"targets: got {item!r}; expected a preset name or "
                             "{name, ram_kb, flash_kb}")
        for key in ("ram_kb", "flash_kb"):
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"targets: {item['name']!r}: {key} got {value!r}; expected a "
                                 "positive number of KiB")
        targets.append(Target(str(item["name"]), item["ram_kb"], item["flash_kb"]))
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"targets: {names} names a board twice")
    return targets


def parse_target_argument(text):
    """A --target value: a preset name, or NAME:RAM_KB:FLASH_KB."""
    parts = text.split(":")
    if len(parts) == 1:
        return parse_targets([text])[0]
    if len(parts) != 3:
        raise ValueError(f"--target {text!r}: expected a preset name or NAME:RAM_KB:FLASH_KB")
    try:
        ram, flash = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"--target {text!r}: RAM_KB and FLASH_KB must be numbers") from None
    return parse_targets([{"name": parts[0], "ram_kb": ram, "flash_kb": flash}])[0]


def fit(micro, target):
    """The verdict of one measured file on one board: {target, fits, ram/flash margins, why}."""
    ram, flash = int(target.ram_kb * 1024), int(target.flash_kb * 1024)
    verdict = {"target": target.name, "ram_bytes": ram, "flash_bytes": flash}
    why = []
    if micro.get("missing_ops"):
        why.append("the micro runtime lacks " + ", ".join(micro["missing_ops"]))
    if not micro.get("runs"):
        why.append(micro.get("reason", "it does not run in the micro runtime"))
    else:
        verdict["ram_margin_bytes"] = ram - micro["arena_bytes"]
        if verdict["ram_margin_bytes"] < 0:
            why.append(f"arena {micro['arena_bytes']:,} B > RAM {ram:,} B")
    verdict["flash_margin_bytes"] = flash - micro["flash_bytes"]
    if verdict["flash_margin_bytes"] < 0:
        why.append(f"model {micro['flash_bytes']:,} B > flash {flash:,} B")
    verdict["fits"] = not why
    verdict["why"] = "; ".join(dict.fromkeys(why))
    return verdict


def fit_text(verdict):
    """'fits (RAM margin 201.3 KiB, flash 866.6 KiB)' or 'does NOT fit: ...'."""
    if verdict["fits"]:
        return (f"fits (margin: RAM {verdict['ram_margin_bytes'] / 1024:.1f} KiB, "
                f"flash {verdict['flash_margin_bytes'] / 1024:.1f} KiB)")
    return f"does NOT fit: {verdict['why']}"


def examine(workdir, variants, cfg, data, log=print, metadata_env=None):
    """Adds `micro`, `c_array` and `metadata` to each converted variant (in place).

    cfg: the recipe's DeployConfig; data: {task, class_names, normalization,
    description, model, split} (see `data_info`). Writes export/labels.txt
    and the C arrays; writes metadata into the .tflite files (their
    size_bytes and gzip_bytes are measured again).
    """
    from export import child, micro as micro_lib
    targets = parse_targets(cfg.targets)
    labels = _labels(workdir, cfg, data)
    metadata_python, metadata_reason = _metadata_env(cfg, data, labels, metadata_env, log)
    for v in variants:
        if "error" in v:
            continue
        path = os.path.join(workdir, v["path"])
        if metadata_python:
            _write_metadata(metadata_python, path, v, data, labels, workdir, log)
        elif metadata_reason:
            v["metadata"] = {"written": False, "reason": metadata_reason}
        if not cfg.micro:
            continue
        if v["format"] not in MICRO_FORMATS:
            v["micro"] = {"checked": False, "reason": f"a {v['format']} file: microcontrollers "
                          f"run full-integer files ({', '.join(MICRO_FORMATS)})"}
            continue
        out = os.path.join(workdir, "export", v["name"] + ".micro.json")
        _, error = child.run(
            ["-m", "export.micro", f"--model={path}",
             f"--data={os.path.join(workdir, 'export', data['split'] + '_data')}",
             f"--max_examples={cfg.micro_examples}", f"--json={out}"],
            timeout=3600, what="the micro runtime")
        if error:
            v["micro"] = {"checked": True, "runs": False, "reason": error, "missing_ops": []}
        else:
            with open(out) as f:
                v["micro"] = {"checked": True, **json.load(f)}
            os.remove(out)
        v["micro"]["targets"] = [fit(v["micro"], t) for t in targets]
        if cfg.c_array:
            cc, h = micro_lib.write_c_array(path, os.path.dirname(path), v["name"])
            v["c_array"] = {"source": os.path.relpath(cc, workdir),
                            "header": os.path.relpath(h, workdir),
                            "symbol": micro_lib.c_symbol(v["name"])}
        log(f"  {v['name']} on tflite-micro: {micro_text(v['micro'])}")


def micro_text(m):
    """One line about a micro check."""
    if not m.get("checked"):
        return f"not checked: {m['reason']}"
    if not m.get("runs"):
        missing = f" (missing ops: {', '.join(m['missing_ops'])})" if m.get("missing_ops") else ""
        return f"does NOT run: {m['reason']}{missing}"
    text = f"runs, arena {m['arena_bytes']:,} B, flash {m['flash_bytes']:,} B"
    if "micro" in m and "litert" in m:
        text += (f", accuracy {m['micro']['accuracy']:.4f} (LiteRT {m['litert']['accuracy']:.4f}"
                 f" on the same {m['examples']}), top-1 agreement {m['top1_agreement']:.4f}")
    return text + "".join(f"; {t['target']}: {fit_text(t)}" for t in m.get("targets", []))


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
            raise ValueError(f"deploy.labels: {cfg.labels!r} holds {len(names)} labels but the "
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


def _write_metadata(python, path, v, data, labels, workdir, log):
    from export import metadata
    from export import micro as micro_lib
    norm = data["normalization"]
    spec = {"name": f"{data['model']} ({v['name']})",
            "description": (f"{data['description']}; greenlite variant {v['name']} "
                            f"({v['format']}). Inputs: {data['preprocessing']}."),
            "version": v["format"], "kind": norm["kind"], "color_space": norm["color_space"]
            or "RGB", "mean": norm["mean"], "std": norm["std"], "min": norm["min"],
            "max": norm["max"], "author": "greenlite",
            "probabilities": micro_lib.ends_in_softmax(path)}
    before = (metadata.strip_metadata(path) if metadata.has_metadata(path)
              else os.path.getsize(path))
    try:
        size = metadata.write(python, path, labels, spec)
    except metadata.MetadataError as e:
        v["metadata"] = {"written": False, "reason": str(e)}
        log(f"  {v['name']}: metadata NOT written: {e}")
        return
    v["metadata"] = {"written": True, "bytes": size - before, "labels": os.path.relpath(
        labels, workdir), "mean": norm["mean"], "std": norm["std"],
        "range": [norm["min"], norm["max"]]}
    # The file grew by the metadata and the packed labels: the figures say so.
    v["size_bytes"] = size
    from export.benchmark import gzip_bytes
    with open(path, "rb") as f:
        v["gzip_bytes"] = gzip_bytes(f.read())


def summary(v, runtimes_checked):
    """A variant's `deploy` block: runtimes it loads and agrees on, XNNPACK coverage,
    micro fit per target, metadata, and what blocks each missing one."""
    block = {"runtimes": {"LiteRT": "loads and runs (benchmarked, scored)"},
             "xnnpack": v.get("xnnpack"), "blockers": []}
    for name, result in v.get("runtimes", {}).items():
        from pipeline.runtime_gate import verdict
        block["runtimes"][name] = verdict(result) if result["loads"] is not None else result[
            "reason"]
        if result["loads"] is False or result.get("agrees") is False:
            block["blockers"].append(f"{name}: {verdict(result)}")
    if not runtimes_checked:
        block["runtimes"]["tflite-runtime 2.14"] = ("not checked (benchmark.check_tflite_runtime:"
                                                   " false)")
    m = v.get("micro")
    if m is not None:
        block["runtimes"]["tflite-micro"] = micro_text({**m, "targets": []})
        if m.get("checked") and not m.get("runs"):
            block["blockers"].append(f"tflite-micro: {micro_text({**m, 'targets': []})}")
        block["micro_fit"] = {t["target"]: fit_text(t) for t in m.get("targets", [])}
        block["blockers"] += [f"{t['target']}: {t['why']}" for t in m.get("targets", [])
                              if not t["fits"]]
    if v.get("xnnpack") not in (None, "all"):
        left = v.get("not_delegated") or {}
        block["blockers"].append(
            f"XNNPACK: {v['xnnpack']} of the graph delegated" + (
                " (left to the builtin kernels: " + ", ".join(
                    f"{op} x{n}" for op, n in sorted(left.items())) + ")" if left else ""))
    md = v.get("metadata")
    block["metadata"] = bool(md and md.get("written"))
    if md and not md.get("written"):
        block["blockers"].append(f"Android metadata: {md['reason']}")
    return block


def examine_run(workdir, variant=None, targets=None, labels=None, env_dir=None, log=print):
    """Examines a finished run's variants (one, with `variant`) and rewrites its report."""
    from pipeline import recipe as recipe_lib
    from pipeline import report as report_lib
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        raise ValueError(f"--workdir: {workdir!r} holds no report.json; run the pipeline first")
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
            raise ValueError(f"--variant: {variant!r} is not a variant of this run; variants: "
                             f"{', '.join(v['name'] for v in report['variants'])}")
        if chosen[0]["format"] not in MICRO_FORMATS:
            raise ValueError(f"--variant: {variant!r} is a {chosen[0]['format']} file; the micro "
                             f"runtime takes full-integer files ({', '.join(MICRO_FORMATS)})")
    info = report.get("deploy_data")
    if info is None:
        raise ValueError(f"--workdir: {workdir!r} was made before deploy checks existed; "
                         "run the recipe again")
    examine(workdir, chosen, cfg, info, log, env_dir)
    for v in report["variants"]:
        if "error" not in v:
            v["deploy"] = summary(v, recipe.benchmark.check_tflite_runtime or any(
                v.get("runtimes", {})))
    report_lib.write(workdir, report)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run directory")
    parser.add_argument("--variant", help="only this variant (a full-integer one)")
    parser.add_argument("--target", action="append",
                        help="a board preset or NAME:RAM_KB:FLASH_KB (repeatable); default: "
                             "the recipe's deploy.targets")
    parser.add_argument("--labels", help="a labels file, one class name per line")
    args = parser.parse_args(argv)
    try:
        targets = None
        if args.target:
            targets = [dataclasses.asdict(parse_target_argument(t)) for t in args.target]
        if args.labels and not os.path.isfile(args.labels):
            raise ValueError(f"--labels: {args.labels!r} does not exist")
        report = examine_run(args.workdir, args.variant, targets, args.labels)
    except (ValueError, OSError) as e:
        print(f"deploy: error: {e}", file=sys.stderr)
        return 2
    for v in report["variants"]:
        if "deploy" in v:
            print(f"{v['name']}: " + json.dumps(v["deploy"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
