"""Latency, energy per inference and battery life on a microcontroller, estimated from
MLPerf Tiny's measurements of that board (pipeline/mlperf_tiny.json).

MLPerf Tiny measures, on each board, the median latency and energy per
inference of four reference int8 models (keyword spotting, visual wake words,
image classification, anomaly detection). Divided by each model's MACs they
give the board's cost per MAC, which differs by model (70-120 pJ/MAC on an
STM32U385: memory-bound layers cost more per MAC than convolutions). A
variant's estimate is its MACs times those per-MAC costs, given as the range
over the four models with their geometric mean as the middle, and labelled
as an estimate. `leave_one_out` checks the rule honestly: each reference
model estimated from the other three, against its measurement.

    board = device_energy.board("stm32u385")
    device_energy.estimate(2_656_768, board)   # the KWS model's MACs
    -> {"energy_uj": {"low": ..., "mid": ..., "high": ...}, "latency_ms": {...}, ...}
    device_energy.battery(245e-6, Duty(inferences_per_day=86400))   # days, shares
"""
import dataclasses
import json
import math
import os

from pipeline.config import at_least
from pipeline.errors import GreenliteError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlperf_tiny.json")
# Short names for the boards the report shows by default (MLPerf Tiny's system names).
ALIASES = {"stm32u385": "NUCLEO_U385RG_Q", "stm32l4r5": "NUCLEO_L4R5ZI-P",
           "stm32u575": "NUCLEO_U575ZI_Q", "stm32h7a3": "NUCLEO_H7A3ZI_Q",
           "syntiant-ndp9120": "syntiant_9120_1v1_98mhz"}
LABEL = "estimated from MLPerf Tiny {round} measurements on {board} ({models})"


class BoardDataError(GreenliteError, ValueError):
    """An unknown board, or a duty cycle that is not positive (one line)."""


@dataclasses.dataclass
class Duty:
    """How the device lives: inferences a day, its battery, its sleep current.

    Defaults: one inference a second on a 1,000 mAh cell at 3.0 V, 2 uA asleep
    (an STM32U3/U5 in Stop mode with RAM retained draws about that; the
    report names these as the assumptions they are).
    """
    inferences_per_day: float = dataclasses.field(default=86_400.0, metadata=at_least(0))
    battery_mah: float = dataclasses.field(default=1000.0, metadata=at_least(0))
    voltage: float = dataclasses.field(default=3.0, metadata=at_least(0))
    sleep_ua: float = dataclasses.field(default=2.0, metadata=at_least(0))

    def validate(self):
        for name in ("inferences_per_day", "battery_mah", "voltage"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: got {getattr(self, name)!r}; allowed: a number > 0")


_CACHE = {}


def table():
    """The stored MLPerf Tiny figures (pipeline/mlperf_tiny.json)."""
    if "table" not in _CACHE:
        with open(DATA) as f:
            _CACHE["table"] = json.load(f)
    return _CACHE["table"]


def board(name):
    """The record of board `name` (an alias or an MLPerf Tiny system name) with at least
    two tasks measured for energy.

    Raises:
      BoardDataError: naming the boards that have energy measurements.
    """
    boards = table()["boards"]
    system = ALIASES.get(name, name)
    measured = sorted(k for k, b in boards.items()
                      if sum("energy_uj" in t for t in b["tasks"].values()) >= 2)
    if system not in measured:
        raise BoardDataError(
            f"deploy.boards: {name!r} is not a board with MLPerf Tiny energy measurements; "
            f"boards: {', '.join(sorted(ALIASES))} or one of {', '.join(measured)}")
    return {"name": name, **boards[system]}


def per_mac(record):
    """{task: (pJ per MAC, ns per MAC)} of a board's measured reference models."""
    models = table()["reference_models"]
    return {task: (t["energy_uj"] * 1e6 / models[task]["macs"],
                   t["latency_ms"] * 1e6 / models[task]["macs"])
            for task, t in record["tasks"].items()
            if "energy_uj" in t and "latency_ms" in t and task in models}


def estimate(macs, record, tasks=None):
    """The board's latency and energy for a model of `macs` MACs: {energy_uj, latency_ms}
    each {low, mid, high} over the reference models (`tasks`: a subset), and the label."""
    rates = {t: r for t, r in per_mac(record).items() if tasks is None or t in tasks}
    if not rates:
        raise BoardDataError(f"{record['name']}: no reference model measured for energy")
    result = {}
    for index, key in ((0, "energy_uj"), (1, "latency_ms")):
        values = sorted(r[index] for r in rates.values())
        scale = 1e-6  # pJ -> uJ, and ns -> ms
        mid = math.exp(sum(math.log(v) for v in values) / len(values))
        result[key] = {"low": macs * values[0] * scale, "mid": macs * mid * scale,
                       "high": macs * values[-1] * scale}
    result["source"] = LABEL.format(round=record["round"], board=record.get("board") or
                                    record["system"], models=", ".join(sorted(rates)))
    return result


def leave_one_out(record):
    """{task: {measured_uj, estimated_uj {low, mid, high}, error (mid / measured - 1),
    inside (the measurement within the range)}}: each reference model estimated from
    the board's other ones."""
    models = table()["reference_models"]
    rates = per_mac(record)
    out = {}
    for task in rates:
        others = [t for t in rates if t != task]
        if len(others) < 1:
            continue
        guess = estimate(models[task]["macs"], record, others)["energy_uj"]
        measured = record["tasks"][task]["energy_uj"]
        out[task] = {"measured_uj": measured, "estimated_uj": guess,
                     "error": guess["mid"] / measured - 1,
                     "inside": guess["low"] <= measured <= guess["high"]}
    return out


def battery(energy_j, duty):
    """{days, inference_share} on `duty`'s battery at `energy_j` joules per inference:
    the battery's energy over a day's inferences and a day asleep."""
    battery_j = duty.battery_mah / 1000 * 3600 * duty.voltage
    inference_j = duty.inferences_per_day * energy_j
    sleep_j = duty.sleep_ua * 1e-6 * duty.voltage * 86_400
    daily = inference_j + sleep_j
    return {"days": battery_j / daily if daily > 0 else math.inf,
            "inference_share": inference_j / daily if daily > 0 else 0.0}


def estimate_variant(macs, boards, duty):
    """{board: estimate + battery {days low/mid/high, inference_share}} of a variant."""
    out = {}
    for name in boards:
        record = board(name)
        figures = estimate(macs, record)
        held_out = leave_one_out(record)
        # How far the rule misses a reference model it did not see, on this board.
        figures["leave_one_out_error"] = (sum(abs(r["error"]) for r in held_out.values())
                                          / len(held_out)) if held_out else None
        energy = figures["energy_uj"]
        figures["battery"] = {
            # Most energy per inference, fewest days: the range's ends swap.
            "days": {k: battery(energy[j] * 1e-6, duty)["days"]
                     for k, j in (("low", "high"), ("mid", "mid"), ("high", "low"))},
            "inference_share": battery(energy["mid"] * 1e-6, duty)["inference_share"],
            "duty": dataclasses.asdict(duty)}
        out[name] = figures
    return out


def check_boards(names, where="deploy.boards"):
    """Raises BoardDataError for a name `board` does not know."""
    for name in names:
        try:
            board(name)
        except BoardDataError as e:
            raise BoardDataError(str(e).replace("deploy.boards", where)) from None
    return names


def text(name, figures):
    """One line for the log."""
    e, t, b = figures["energy_uj"], figures["latency_ms"], figures["battery"]
    return (f"{name}: {e['mid']:,.1f} uJ ({e['low']:,.1f}-{e['high']:,.1f}) and "
            f"{t['mid']:,.2f} ms ({t['low']:,.2f}-{t['high']:,.2f}) per inference, battery "
            f"{b['days']['mid']:,.0f} days ({b['days']['low']:,.0f}-{b['days']['high']:,.0f}); "
            f"{figures['source']}")

