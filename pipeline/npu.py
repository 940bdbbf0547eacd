"""The NPU step of the export phase: each full-integer variant compiled by Vela per accelerator.

Writes each variant's `npu` block (pipeline/variants.py): {accelerator: the
figures of export/vela.py, or why it was not compiled}, and the compiled
files as `export/<variant>_<accelerator>.tflite`. A file Vela fails on is
recorded with the reason; the other variants and accelerators go on.
"""
import os

from export import formats


def compile_variants(workdir, variants, accelerators, log=print):
    """Compiles every converted full-integer variant (pipeline.variants.Variant) for each
    of `accelerators`, beside what its `npu` block already holds; other formats get
    the one reason why not."""
    from export import vela
    log(f"npu: Vela {vela.version()} for {', '.join(accelerators)} ...")
    for v in variants:
        if not v.ok or not formats.on_device(v.format):
            continue
        if not formats.get(v.format).micro:
            v.npu = {**(v.npu or {}), **{
                a: {"compiled": False, "reason": f"a {v.format} file: Ethos-U NPUs run "
                    f"full-integer files ({', '.join(formats.names(micro=True))})"}
                for a in accelerators}}
            continue
        v.npu = dict(v.npu or {})
        for accelerator in accelerators:
            figures = vela.compile(os.path.join(workdir, v.path), accelerator,
                                   os.path.join(workdir, "export"))
            if figures.get("path"):
                figures["path"] = os.path.relpath(figures["path"], workdir)
            v.npu[accelerator] = figures
            log(f"  {v.name} on {accelerator}: {text(figures)}")


def text(figures):
    """One line about one compilation."""
    if not figures.get("compiled"):
        return f"not compiled: {figures['reason']}"
    cpu = ", ".join(f"{op} x{n}" for op, n in figures["cpu_ops"].items()) or "none"
    storage = (f"flash {figures['flash_bytes']:,} B" if figures["flash_bytes"]
               else f"DRAM {figures['dram_bytes']:,} B")
    return (f"SRAM {figures['sram_bytes']:,} B, {storage}, {figures['inferences_per_s']:,.0f} "
            f"inferences/s ({figures['cycles_total']:,} cycles at {figures['clock_mhz']:g} MHz, "
            f"{figures['system_config']}), weights {figures['weight_bytes']:,} -> "
            f"{figures['encoded_weight_bytes']:,} B encoded; ops on the CPU: {cpu} "
            "(Vela's estimate)")
