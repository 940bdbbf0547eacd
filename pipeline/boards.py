"""Boards a run can ship to: presets (datasheet RAM and flash) and the user's own.

A board with an Arm Ethos-U NPU names its accelerator (`npu`): its fit is then
judged on Vela's figures for that accelerator (the compiled model's SRAM and
flash), not on the tflite-micro arena of the CPU path (pipeline/verdicts.py).

A leaf module: the recipe validates `deploy.targets` with it, the deploy checks
and the report's verdicts read the same presets.
"""
import dataclasses
from typing import Optional

from pipeline.errors import GreenliteError


class BoardError(GreenliteError, ValueError):
    """An unknown board preset or a board size that is not a positive number
    (a ValueError too: recipe validation turns those into RecipeErrors)."""


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
    # Ethos-U boards. RAM is the memory the vendor's own ML build puts the tensor
    # arena in, flash where it puts the model (Arm's ml-embedded-evaluation-kit,
    # Alif's fork alifsemi/alif_ml-embedded-evaluation-kit, its linker scripts):
    # not the chip's total, which is split over banks an arena cannot span.
    "alif-e7-rtss-hp": {
        "ram_kb": 2560, "flash_kb": 4572, "npu": "ethos-u55-256",
        "chip": "Alif Ensemble E7 (AE722F80F55D5) high-performance core: Cortex-M55 + Ethos-U55-256",
        "source": "alif_ml-embedded-evaluation-kit scripts/cmake/platforms/alif/AE722F80F55D5/"
                  "rtss_hp/RTSS-HP.ld: arena in SRAM1 (0x280000), model in MRAM (0x477000)"},
    "alif-e7-rtss-he": {
        "ram_kb": 2560, "flash_kb": 4604, "npu": "ethos-u55-128",
        "chip": "Alif Ensemble E7 (AE722F80F55D5) high-efficiency core: Cortex-M55 + Ethos-U55-128",
        "source": "alif_ml-embedded-evaluation-kit scripts/cmake/platforms/alif/AE722F80F55D5/"
                  "rtss_he/RTSS-HE.ld: arena in SRAM1 (0x280000), model in MRAM (0x47F000)"},
    "corstone-300-u55": {
        "ram_kb": 2048, "flash_kb": 32768, "npu": "ethos-u55-128",
        "chip": "Arm Corstone-300 (MPS3 SSE-300 / its FVP): Cortex-M55 + Ethos-U55-128",
        "source": "ml-embedded-evaluation-kit scripts/cmake/platforms/mps3/sse-300/"
                  "mps3-sse-300.gnu.ld: arena in SRAM (0x200000), model in DDR (0x2000000); "
                  "U55 default H128 (npu_opts.cmake)"},
    "corstone-310-u55": {
        "ram_kb": 4096, "flash_kb": 32768, "npu": "ethos-u55-128",
        "chip": "Arm Corstone-310 (MPS3 SSE-310 / its FVP): Cortex-M85 + Ethos-U55-128",
        "source": "ml-embedded-evaluation-kit scripts/cmake/platforms/mps3/sse-310/"
                  "mps3-sse-310.gnu.ld: arena in SRAM (0x400000), model in DDR (0x2000000); "
                  "U55 default H128 (npu_opts.cmake)"},
}
_FIELDS = {"name", "ram_kb", "flash_kb"}
@dataclasses.dataclass
class Target:
    """A board: RAM for the tensor arena, flash for the model (KiB), and the Ethos-U
    accelerator it carries (a Vela name such as "ethos-u55-128"; None for none)."""
    name: str
    ram_kb: float
    flash_kb: float
    npu: Optional[str] = None


def parse_targets(items):
    """[Target] from preset names and {name, ram_kb, flash_kb[, npu]} mappings.

    Raises BoardError (one line) for an unknown preset, a size that is not a
    positive number or an accelerator Vela does not know.
    """
    targets = []
    for item in items or []:
        if isinstance(item, str):
            if item not in PRESETS:
                raise BoardError(f"targets: unknown board preset {item!r}; presets: "
                                 f"{', '.join(sorted(PRESETS))}, or give "
                                 "{name, ram_kb, flash_kb}")
            preset = PRESETS[item]
            targets.append(Target(item, preset["ram_kb"], preset["flash_kb"], preset.get("npu")))
            continue
        if not isinstance(item, dict) or not _FIELDS <= set(item) <= _FIELDS | {"npu"}:
            raise BoardError(f"targets: got {item!r}; expected a preset name or "
                             "{name, ram_kb, flash_kb} (and npu: an Ethos-U accelerator, "
                             "optional)")
        for key in ("ram_kb", "flash_kb"):
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise BoardError(f"targets: {item['name']!r}: {key} got {value!r}; expected a "
                                 "positive number of KiB")
        npu = item.get("npu")
        if npu is not None:
            from export.vela import ACCELERATORS
            if npu not in ACCELERATORS:
                raise BoardError(f"targets: {item['name']!r}: npu got {npu!r}; expected one of "
                                 f"{', '.join(ACCELERATORS)}")
        targets.append(Target(str(item["name"]), item["ram_kb"], item["flash_kb"], npu))
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise BoardError(f"targets: {names} names a board twice")
    return targets


def parse_target_argument(text):
    """A --target value: a preset name, or NAME:RAM_KB:FLASH_KB[:NPU]."""
    parts = text.split(":")
    if len(parts) == 1:
        return parse_targets([text])[0]
    if len(parts) not in (3, 4):
        raise BoardError(f"--target {text!r}: expected a preset name or "
                         "NAME:RAM_KB:FLASH_KB[:NPU]")
    try:
        ram, flash = float(parts[1]), float(parts[2])
    except ValueError:
        raise BoardError(f"--target {text!r}: RAM_KB and FLASH_KB must be numbers") from None
    board = {"name": parts[0], "ram_kb": ram, "flash_kb": flash}
    if len(parts) == 4:
        board["npu"] = parts[3]
    return parse_targets([board])[0]


def accelerators(targets):
    """The Ethos-U accelerators `targets` (Target list) carry, in order, once each."""
    return list(dict.fromkeys(t.npu for t in targets if t.npu))
