"""One-line verdicts on a variant's deploy checks, and its report `deploy` block.

Pure functions of the records the checks wrote (no files, no processes): the
deploy checks log them, the runtime gate logs them, the report shows them.
A leaf module, so that none of those needs another's module.
"""


def fit(micro, target, npu=None):
    """The verdict of one measured file on one board: {target, fits, ram/flash margins,
    basis, why}.

    micro: the file's tflite-micro record; npu: its Vela records by accelerator
    (the variant's `npu` block). A board carrying an Ethos-U (`target.npu`) is
    judged on Vela's SRAM and flash (or DRAM) for that accelerator where Vela
    compiled the file: the NPU build's arena and model, not the CPU path's.
    Where it did not, the file would run on the board's CPU: tflite-micro's
    figures judge it, and `basis` says so.
    """
    ram, flash = int(target.ram_kb * 1024), int(target.flash_kb * 1024)
    verdict = {"target": target.name, "ram_bytes": ram, "flash_bytes": flash,
               "basis": "tflite-micro"}
    compiled = (npu or {}).get(target.npu) if target.npu else None
    if compiled and compiled.get("compiled"):
        verdict["basis"] = f"Vela {target.npu}"
        micro = {"runs": True, "missing_ops": [], "arena_bytes": compiled["sram_bytes"],
                 "flash_bytes": compiled["flash_bytes"] or compiled["dram_bytes"] or 0}
    elif target.npu:
        reason = compiled["reason"] if compiled else f"Vela did not run for {target.npu}"
        verdict["basis"] = f"tflite-micro on the CPU ({target.npu}: {reason})"
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


def fit_all(variant, targets):
    """Each of `targets`' verdicts on a micro-checked variant (pipeline.variants.Variant),
    written to its micro record; nothing for a variant the micro runtime did not check."""
    if variant.micro and variant.micro.get("checked"):
        variant.micro["targets"] = [fit(variant.micro, t, variant.npu) for t in targets]


def fit_text(verdict):
    """'fits (margin: RAM 201.3 KiB, flash 866.6 KiB)' or 'does NOT fit: ...', with
    ', on Vela ethos-u55-128's figures' for a board judged on its NPU build."""
    basis = verdict.get("basis", "tflite-micro")
    on = "" if basis == "tflite-micro" else f", on {basis}" + (
        "'s figures" if basis.startswith("Vela") else "")
    if verdict["fits"]:
        return (f"fits (margin: RAM {verdict['ram_margin_bytes'] / 1024:.1f} KiB, "
                f"flash {verdict['flash_margin_bytes'] / 1024:.1f} KiB{on})")
    return f"does NOT fit: {verdict['why']}{on}"


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


def runtime_verdict(result):
    """'loads and agrees', 'loads but WRONG: ...', 'does NOT load: ...' for one check."""
    if not result["loads"]:
        return f"does NOT load: {result['reason']}"
    if result.get("agrees") is False:
        return result["reason"].replace("loads but wrong", "loads but WRONG", 1)
    if result.get("agrees"):
        return (f"loads and agrees with LiteRT (accuracy {result['accuracy']:.4f}, perplexity "
                f"{result['perplexity']:.4g}, max output difference {result['max_abs_diff']:.3g})")
    return "loads" + (f" ({result['reason']})" if result.get("reason") else "")


def summary(v, runtimes_checked):
    """A variant's `deploy` block: runtimes it loads and agrees on, XNNPACK coverage,
    micro fit per target, metadata, and what blocks each missing one."""
    from export import formats
    if not formats.on_device(v["format"]):
        # A server's file (ONNX, TensorRT): its own runtime ran it; no device step applies.
        runtime = {"onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}[
            formats.get(v["format"]).runtime]
        return {"runtimes": {runtime: f"{v.get('interpreter')}: loads and runs (benchmarked, "
                                      "scored)"},
                "xnnpack": None, "blockers": [], "metadata": False}
    block = {"runtimes": {"LiteRT": "loads and runs (benchmarked, scored)"},
             "xnnpack": v.get("xnnpack"), "blockers": []}
    for name, result in v.get("runtimes", {}).items():
        block["runtimes"][name] = runtime_verdict(result) if result["loads"] is not None else result[
            "reason"]
        if result["loads"] is False or result.get("agrees") is False:
            block["blockers"].append(f"{name}: {runtime_verdict(result)}")
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
    for accelerator, n in (v.get("npu") or {}).items():
        name = f"{accelerator} (Vela)"
        if not n.get("compiled"):
            block["runtimes"][name] = f"not compiled: {n['reason']}"
            continue
        left = ", ".join(f"{op} x{c}" for op, c in n["cpu_ops"].items())
        block["runtimes"][name] = ("every op on the NPU" if not left
                                   else f"compiled; on the Cortex-M CPU: {left}")
    md = v.get("metadata")
    block["metadata"] = bool(md and md.get("written"))
    if md and not md.get("written"):
        block["blockers"].append(f"Android metadata: {md['reason']}")
    return block
