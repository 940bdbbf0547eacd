"""Kernel coverage: which ops of each .tflite file have no kernel, or fall back, on each
runtime greenlite checks — before anyone flashes a device.

    headers, rows = coverage_table(report)        # report.json's dict

One row per converted device file, one column per runtime, from what the run
measured: LiteRT with XNNPACK (ops left to the builtin kernels), tflite-runtime
2.14 (the runtime gate: loads or not), tflite-micro (missing ops), each Ethos-U
accelerator (Vela's ops left on the Cortex-M CPU). The last column flags the
places the recipe says the file ships to (`deploy.targets`: a microcontroller
runs tflite-micro; `deploy.npu`: those accelerators) where it cannot run, or
cannot run whole on the NPU.
"""
from export import formats


def _ops(counts):
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))


def litert_cell(v):
    left = v.get("not_delegated") or {}
    if v.get("xnnpack") == "all":
        return "XNNPACK: every op"
    if v.get("xnnpack") in ("partial", "none"):
        return f"builtin kernels: {_ops(left)}" if left else "builtin kernels: every op"
    return "runs (delegation unknown)"


def runtime_cell(result):
    if result is None or result.get("loads") is None:
        return "not checked"
    if not result["loads"]:
        return f"does NOT load: {result['reason']}"
    return "loads" + (", WRONG outputs" if result.get("agrees") is False else "")


def micro_cell(m):
    if not m or not m.get("checked"):
        return "not checked"
    if m.get("runs"):
        return "every op"
    return "missing: " + (", ".join(m.get("missing_ops") or []) or m.get("reason", "?"))


def npu_cell(n):
    if not n:
        return "not compiled"
    if not n.get("compiled"):
        return f"not compiled: {n['reason']}"
    return f"CPU: {_ops(n['cpu_ops'])}" if n.get("cpu_ops") else "every op on the NPU"


def ships_cell(v, micro_targets, accelerators):
    """Where the recipe ships it and it cannot run (whole, on an NPU)."""
    problems = []
    m = v.get("micro") or {}
    if micro_targets and m.get("checked") and not m.get("runs"):
        problems.append(f"tflite-micro ({', '.join(micro_targets)}): "
                        + (", ".join(m.get("missing_ops") or []) or "does not run"))
    for accelerator in accelerators:
        n = (v.get("npu") or {}).get(accelerator) or {}
        if n.get("compiled") and n.get("cpu_ops"):
            problems.append(f"{accelerator}: {_ops(n['cpu_ops'])} on the CPU")
        elif n and not n.get("compiled") and formats.get(v["format"]).micro:
            problems.append(f"{accelerator}: Vela failed")
    return "; ".join(problems) or "runs where it ships"


# A float-activation file on an integer-only runtime: not a coverage question.
NOT_INTEGER = "n/a (not full-integer)"


def _full_integer(v):
    return v["format"] not in formats.FORMATS or formats.get(v["format"]).micro


def coverage_table(report):
    """(headers, rows) of the coverage table, or None when the run checked no runtime
    beyond LiteRT (nothing to compare)."""
    variants = [v for v in report["variants"] if "error" not in v
                and formats.on_device(v["format"])]
    runtimes = sorted({r for v in variants for r in v.get("runtimes", {})})
    accelerators = list(dict.fromkeys(a for v in variants for a in (v.get("npu") or {})))
    micro = any(v.get("micro") for v in variants)
    if not (runtimes or accelerators or micro):
        return None
    deploy = report.get("recipe", {}).get("deploy", {})
    micro_targets = [t if isinstance(t, str) else t.get("name", "?")
                     for t in deploy.get("targets") or []]
    shipped_npus = [a for a in deploy.get("npu") or [] if a in accelerators]
    headers = (["variant", "LiteRT (this CPU)"] + runtimes + ["tflite-micro"]
               + [f"{a} (Vela)" for a in accelerators] + ["cannot run where it ships"])
    rows = [[v["name"], litert_cell(v)]
            + [runtime_cell(v.get("runtimes", {}).get(r)) for r in runtimes]
            + ([micro_cell(v.get("micro"))] + [npu_cell((v.get("npu") or {}).get(a))
                                               for a in accelerators]
               if _full_integer(v) else [NOT_INTEGER] * (1 + len(accelerators)))
            + [ships_cell(v, micro_targets, shipped_npus)] for v in variants]
    return headers, rows
