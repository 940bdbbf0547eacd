"""Boards a run can ship to: presets (datasheet RAM and flash) and the user's own.

A leaf module: the recipe validates `deploy.targets` with it, the deploy checks
and the report's verdicts read the same presets.
"""
import dataclasses

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
}
@dataclasses.dataclass
class Target:
    """A board: RAM for the tensor arena, flash for the model (KiB)."""
    name: str
    ram_kb: float
    flash_kb: float


def parse_targets(items):
    """[Target] from preset names and {name, ram_kb, flash_kb} mappings.

    Raises BoardError (one line) for an unknown preset or a size that is not
    a positive number.
    """
    targets = []
    for item in items or []:
        if isinstance(item, str):
            if item not in PRESETS:
                raise BoardError(f"targets: unknown board preset {item!r}; presets: "
                                 f"{', '.join(sorted(PRESETS))}, or give "
                                 "{name, ram_kb, flash_kb}")
            targets.append(Target(item, PRESETS[item]["ram_kb"], PRESETS[item]["flash_kb"]))
            continue
        if not isinstance(item, dict) or set(item) != {"name", "ram_kb", "flash_kb"}:
            raise BoardError(f"targets: got {item!r}; expected a preset name or "
                             "{name, ram_kb, flash_kb}")
        for key in ("ram_kb", "flash_kb"):
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise BoardError(f"targets: {item['name']!r}: {key} got {value!r}; expected a "
                                 "positive number of KiB")
        targets.append(Target(str(item["name"]), item["ram_kb"], item["flash_kb"]))
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise BoardError(f"targets: {names} names a board twice")
    return targets


def parse_target_argument(text):
    """A --target value: a preset name, or NAME:RAM_KB:FLASH_KB."""
    parts = text.split(":")
    if len(parts) == 1:
        return parse_targets([text])[0]
    if len(parts) != 3:
        raise BoardError(f"--target {text!r}: expected a preset name or NAME:RAM_KB:FLASH_KB")
    try:
        ram, flash = float(parts[1]), float(parts[2])
    except ValueError:
        raise BoardError(f"--target {text!r}: RAM_KB and FLASH_KB must be numbers") from None
    return parse_targets([{"name": parts[0], "ram_kb": ram, "flash_kb": flash}])[0]
