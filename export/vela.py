"""Arm Ethos-U NPUs: a full-integer file compiled by Vela, and what the NPU would spend.

    python -m export.vela --model=export/train_int8.tflite [--accelerator=ethos-u55-128]
        [--system_config=...] [--memory_mode=...] [--out=DIR]

Vela (`ethos-u-vela`, Arm's compiler, offline, no NPU needed) maps the ops an
Ethos-U55/U65/U85 runs onto it and leaves the rest to the Cortex-M CPU,
compresses the weights losslessly (zero runs and repeated values cost less:
pruning and clustering pay here), and writes a summary of the compiled
network. From it greenlite reports, per accelerator: SRAM and flash used,
the NPU's cycles and the whole inference's (memory accesses included), the
inference time and inferences per second at the system configuration's
clock, the ops left on the CPU (named, from the compiled file), the MACs,
and the weight bytes before and after Vela's encoding. Every figure is
Vela's performance model: a compiler estimate, not silicon.

Without `--system_config`, Vela's own default for the accelerator is used
(Ethos_U55_High_End_Embedded at 500 MHz for the U55, Ethos_U85_SYS_DRAM_Mid
at 1 GHz for the U85), and the figures say which.
"""
import argparse
import csv
import glob
import json
import os
import sys
import tempfile

from pipeline.errors import GreenliteError, command

ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
                "ethos-u65-256", "ethos-u65-512", "ethos-u85-128", "ethos-u85-256",
                "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
SOURCE = "Vela's performance model (ethos-u-vela {version}): a compiler estimate, not silicon"
_VELA = "import sys; from ethosu.vela.vela import main; sys.exit(main())"


class VelaError(GreenliteError):
    """An accelerator or configuration Vela does not know, or Vela missing (one line)."""


def check_accelerator(name, where="deploy.npu"):
    if name not in ACCELERATORS:
        raise VelaError(f"{where}: unknown accelerator {name!r}; Vela's: {', '.join(ACCELERATORS)}")
    return name


def version():
    """The installed Vela's version, or None."""
    from importlib import metadata
    try:
        return metadata.version("ethos-u-vela")
    except metadata.PackageNotFoundError:
        return None


def compile(tflite_path, accelerator, out_dir, system_config=None, memory_mode=None,
            timeout=600):
    """Compiles `tflite_path` for `accelerator` into `out_dir`; returns the figures.

    Returns {"compiled": True, accelerator, system_config, memory_mode, clock_mhz,
    sram_bytes, flash_bytes, cycles_npu, cycles_total, inference_ms,
    inferences_per_s, macs, npu_ops, cpu_ops: {op: count}, weight_bytes,
    encoded_weight_bytes, path (the compiled file), source} or
    {"compiled": False, "reason": why} when Vela fails or runs none of the
    file's ops on the NPU (a float file).
    """
    from export import child
    check_accelerator(accelerator)
    if version() is None:
        return {"compiled": False, "reason": "Vela is not installed: pip install ethos-u-vela"}
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vela-", dir=out_dir) as tmp:
        args = ["-c", _VELA, os.path.abspath(tflite_path), f"--accelerator-config={accelerator}",
                f"--output-dir={tmp}"]
        if system_config:
            args.append(f"--system-config={system_config}")
        if memory_mode:
            args.append(f"--memory-mode={memory_mode}")
        if system_config or memory_mode:
            args.append(f"--config={_default_config_file()}")
        _, error = child.run(args, timeout=timeout, what="Vela", cwd=tmp)
        if error:
            return {"compiled": False, "reason": f"Vela failed: {error}"}
        summaries = glob.glob(os.path.join(tmp, "*_summary_*.csv"))
        compiled = glob.glob(os.path.join(tmp, "*_vela.tflite"))
        if not summaries or not compiled:
            return {"compiled": False, "reason": "Vela wrote no summary or compiled file"}
        with open(summaries[0]) as f:
            row = next(csv.DictReader(f))
        figures = summary_figures(row)
        figures["cpu_ops"] = cpu_ops(compiled[0])
        if figures["npu_passes"] == 0 or not figures["macs"]:
            return {"compiled": False, "reason": "no op of the file runs on the NPU (Ethos-U runs "
                                                 "int8 and int16 ops; a float file stays on the CPU)",
                    "cpu_ops": figures["cpu_ops"]}
        stem = os.path.splitext(os.path.basename(tflite_path))[0]
        target = os.path.join(out_dir, f"{stem}_{accelerator}.tflite")
        os.replace(compiled[0], target)
        figures["path"] = target
    return figures


def summary_figures(row):
    """The figures of one row of Vela's summary CSV (its units: KiB, seconds, Hz)."""
    number = lambda key: float(row[key]) if row.get(key) not in (None, "") else None
    kib = lambda key: int(round(number(key) * 1024)) if number(key) is not None else None
    flash = sum(kib(k) or 0 for k in ("off_chip_flash_memory_used", "on_chip_flash_memory_used"))
    return {
        "compiled": True,
        "accelerator": row["accelerator_configuration"],
        "system_config": row["system_config"],
        "memory_mode": row["memory_mode"],
        "clock_mhz": number("core_clock") / 1e6,
        "sram_bytes": kib("sram_memory_used"),
        "flash_bytes": flash,
        "dram_bytes": kib("dram_memory_used"),
        "cycles_npu": int(number("cycles_npu")),
        "cycles_total": int(number("cycles_total")),
        "inference_ms": number("inference_time") * 1e3,
        "inferences_per_s": number("inferences_per_second"),
        "macs": int(number("nn_macs")),
        "npu_passes": int(number("passes_after_fusing")),
        "weight_bytes": int(number("total_original_weights")),
        "encoded_weight_bytes": int(number("total_npu_encoded_weights")),
        "source": SOURCE.format(version=version()),
    }


def cpu_ops(compiled_path):
    """{op: count} of the compiled file's ops that run on the CPU: every op but the
    `ethos-u` custom op that holds the NPU's command stream."""
    from ai_edge_litert.tools import flatbuffer_utils

    from export.tflite_file import read_model
    model = read_model(compiled_path)
    counts = {}
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = custom or flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            if name != "ethos-u":
                counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _default_config_file():
    import ethosu
    return os.path.join(os.path.dirname(ethosu.__file__), "config_files", "Arm", "vela.ini")


@command("vela")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a full-integer .tflite file")
    parser.add_argument("--accelerator", action="append",
                        help=f"repeatable; one of {', '.join(ACCELERATORS)} (default: "
                             "ethos-u55-128 and ethos-u85-256)")
    parser.add_argument("--system_config", help="a system configuration of Vela's vela.ini")
    parser.add_argument("--memory_mode", help="a memory mode of Vela's vela.ini")
    parser.add_argument("--out", default=".", help="where the compiled files go")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        raise VelaError(f"--model: {args.model!r} does not exist")
    results = {}
    for accelerator in args.accelerator or ["ethos-u55-128", "ethos-u85-256"]:
        check_accelerator(accelerator, "--accelerator")
        results[accelerator] = compile(args.model, accelerator, args.out, args.system_config,
                                       args.memory_mode)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
