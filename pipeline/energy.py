"""Energy and CO2: CodeCarbon around every stage, joules per inference, carbon payback.

Training energy is CodeCarbon's (offline mode: no network). On machines
without RAPL (these have none) CodeCarbon does not *measure* CPU power: it
estimates it from the CPU's TDP (from its database, or a default of 4 W per
thread for unknown CPUs) scaled by CPU load, and RAM power from its size.
The report states which mode was used, with the figures it rests on.

Energy per inference is always an estimate, also on machines with RAPL (a
RAPL counter cannot be read per millisecond-long invoke): the TDP share of
the threads the interpreter uses, times the measured median latency. RAM
power is left out: it is drawn whether or not an inference runs. The report
says when that TDP is CodeCarbon's generic default (4 W per thread for a CPU
missing from its database) rather than the CPU's own figure.
"""
import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Optional

from pipeline.config import between

JOULES_PER_KWH = 3.6e6
# CodeCarbon's CPU modes that read a power counter instead of estimating.
MEASURED_MODES = ("intel_rapl", "intel_power_gadget", "apple_powermetrics")


@dataclasses.dataclass
class EnergyConfig:
    """The `energy:` section of a recipe."""
    # Track every stage with CodeCarbon (offline).
    track: bool = True
    # ISO 3166 alpha-3 code of the country whose grid powers the machine.
    country_iso_code: str = "USA"
    # Optional state/province (CodeCarbon knows US states and Canadian provinces).
    region: Optional[str] = None
    # Overrides the country's grid carbon intensity (gCO2e/kWh).
    grid_intensity: Optional[float] = dataclasses.field(
        default=None, metadata=between(0, 5000))

    def validate(self):
        known = known_countries()
        if self.country_iso_code not in known:
            raise ValueError(
                f"country_iso_code: got {self.country_iso_code!r}; expected an ISO 3166 "
                f"alpha-3 code CodeCarbon knows, e.g. USA, FRA, DEU, GBR, IND, CHN "
                f"({len(known)} known)")


@functools.lru_cache(maxsize=1)
def known_countries():
    """{ISO alpha-3 code: (country name, grid intensity gCO2e/kWh)} from CodeCarbon's data."""
    import codecarbon
    path = os.path.join(os.path.dirname(codecarbon.__file__), "data", "private_infra",
                        "global_energy_mix.json")
    with open(path) as f:
        mix = json.load(f)
    return {code: (v.get("country_name", code), v.get("carbon_intensity"))
            for code, v in mix.items()}


@contextlib.contextmanager
def track(cfg, name, output):
    """Runs the block under CodeCarbon's offline tracker; fills `output` (a dict).

    `output` gets seconds, energy_kwh, emissions_kg, cpu/ram power and energy,
    and `mode`/`method` saying how CPU power was obtained. With tracking off,
    only seconds.
    """
    start = time.perf_counter()
    if not cfg.track:
        yield output
        output["seconds"] = time.perf_counter() - start
        return
    from codecarbon import OfflineEmissionsTracker
    kwargs = dict(project_name=f"greenlite-{name}", country_iso_code=cfg.country_iso_code,
                  save_to_file=False, log_level="error", tracking_mode="process",
                  measure_power_secs=1, allow_multiple_runs=True)
    if cfg.region:
        kwargs["region"] = cfg.region
    if cfg.grid_intensity is not None:
        kwargs["force_carbon_intensity_g_co2e_kwh"] = cfg.grid_intensity
    # CodeCarbon logs through `logging`; its warnings (unknown CPU, no RAPL)
    # are summarized in `method` instead of printed.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(**kwargs)
    tracker.start()
    try:
        yield output
    finally:
        tracker.stop()
        output["seconds"] = time.perf_counter() - start
        output.update(summarize(tracker))


def summarize(tracker):
    """The figures of a stopped tracker, and how its CPU power was obtained."""
    d = tracker.final_emissions_data
    cpu = next((h for h in getattr(tracker, "_hardware", []) if type(h).__name__ == "CPU"), None)
    mode = getattr(cpu, "_mode", "unknown")
    tdp = getattr(cpu, "_tdp", None)
    generic = bool(getattr(cpu, "_is_generic_tdp", False)) or not in_cpu_database(d.cpu_model)
    measured = mode in MEASURED_MODES
    if measured:
        method = f"CPU power measured ({mode})"
    else:
        method = (f"CPU power estimated, not measured (no RAPL here): CodeCarbon mode "
                  f"'{mode}' from a TDP of {tdp} W for {d.cpu_count:g} threads of "
                  f"'{d.cpu_model}'")
    tdp_source = (f"CodeCarbon's generic default ({tdp} W: {d.cpu_model!r} is not in its CPU "
                  f"database)" if generic else f"CodeCarbon's CPU database ({d.cpu_model!r})")
    return {
        "energy_kwh": d.energy_consumed, "emissions_kg": d.emissions,
        "cpu_energy_kwh": d.cpu_energy, "ram_energy_kwh": d.ram_energy,
        "cpu_power_w": d.cpu_power, "ram_power_w": d.ram_power,
        "country_iso_code": d.country_iso_code, "region": d.region,
        "grid_intensity_g_per_kwh": (1000 * d.emissions / d.energy_consumed
                                     if d.energy_consumed else None),
        "mode": "measured" if measured else "estimated",
        "cpu_mode": mode, "cpu_tdp_w": tdp, "cpu_tdp_generic": generic,
        "cpu_tdp_source": tdp_source, "cpu_count": d.cpu_count,
        "cpu_model": d.cpu_model, "method": method,
    }


@functools.lru_cache(maxsize=8)
def in_cpu_database(cpu_model):
    """Whether CodeCarbon's CPU power table knows `cpu_model`.

    CodeCarbon flags a generic TDP only when it cannot count threads; a CPU
    missing from its table silently gets 4 W per thread (this AMD EPYC), so
    the table is asked directly (a private lookup; codecarbon is pinned <4).
    """
    try:
        from codecarbon.core.cpu import TDP
        return TDP.__new__(TDP)._get_cpu_power_from_registry(cpu_model) is not None
    except Exception:  # pylint: disable=broad-except
        return False  # unknown: say the TDP is generic rather than claim a table value


def joules_per_inference(latency_ms, num_threads, cpu_tdp_w, cpu_count):
    """Energy of one inference: the CPU power of the busy threads times the latency.

    CodeCarbon's load-based model puts a fully loaded CPU at its TDP; an
    interpreter running `num_threads` threads loads that share of it.
    """
    share = min(num_threads, cpu_count) / cpu_count
    return cpu_tdp_w * share * latency_ms / 1000.0


def payback_inferences(extra_emissions_kg, baseline_joules, variant_joules, grid_g_per_kwh):
    """Inferences after which a variant's extra CO2 is repaid by its per-inference savings.

    Returns 0 when nothing extra was emitted and the variant saves energy, and
    None ("never") when it saves nothing per inference.
    """
    saving_kg = (baseline_joules - variant_joules) / JOULES_PER_KWH * grid_g_per_kwh / 1000.0
    if saving_kg <= 0:
        return None
    return max(0.0, extra_emissions_kg) / saving_kg


def account(cfg, stage_records, variants, num_threads, baseline):
    """Adds energy per inference and carbon payback to each variant; returns the summary.

    Args:
      cfg: the recipe's EnergyConfig.
      stage_records: the runner's stage records, each with its `energy` dict.
      variants: the report's variants (mutated: joules_per_inference,
        co2_g_per_million_inferences, extra_emissions_kg, payback_inferences).
      num_threads: the benchmark's interpreter threads.
      baseline: the variant payback is counted against (the first stage's
        float32 file; see report.build), or None.
    Returns:
      The report's `energy` section.
    """
    tracked = [s["energy"] for s in stage_records if "energy_kwh" in s["energy"]]
    if not tracked:
        return {"tracked": False, "reason": "energy.track is false in the recipe"}
    first = tracked[0]
    if cfg.grid_intensity is not None:
        intensity, source = cfg.grid_intensity, "recipe energy.grid_intensity"
    else:
        intensity = first["grid_intensity_g_per_kwh"] or known_countries()[cfg.country_iso_code][1]
        source = f"CodeCarbon's energy mix for {cfg.country_iso_code}"
    cpu_w = first["cpu_tdp_w"] * min(num_threads, first["cpu_count"]) / first["cpu_count"]
    tdp_source = first.get("cpu_tdp_source") or "CodeCarbon"
    inference_method = (
        f"an estimate, not a measurement: median latency x {cpu_w:g} W, the TDP "
        f"({first['cpu_tdp_w']} W for {first['cpu_count']:g} threads, from {tdp_source}) "
        f"scaled to {num_threads} interpreter thread(s); RAM power excluded")

    order = [s["name"] for s in stage_records]
    emissions = {s["name"]: s["energy"].get("emissions_kg", 0.0) for s in stage_records}
    for v in variants:
        if "error" in v:
            continue
        v["joules_per_inference"] = joules_per_inference(
            v["latency_ms"]["p50"], num_threads, first["cpu_tdp_w"], first["cpu_count"])
        v["co2_g_per_million_inferences"] = (
            v["joules_per_inference"] * 1e6 / JOULES_PER_KWH * intensity)
        # The stages after the baseline's, up to this variant's, are its compression cost.
        stages = order[1:order.index(v["stage"]) + 1]
        v["extra_emissions_kg"] = sum(emissions[s] for s in stages)
        if baseline is not None and v is not baseline:
            v["payback_inferences"] = payback_inferences(
                v["extra_emissions_kg"], baseline["joules_per_inference"],
                v["joules_per_inference"], intensity)
        speed = (((v.get("generation") or {}).get("benchmark") or {}).get("threads_1")
                 or {}).get("decode_tokens_per_s")
        if speed:
            # The same rule as per inference: one busy thread's TDP share x the time
            # LiteRT-LM took per decoded token.
            v["generation"]["joules_per_generated_token"] = joules_per_inference(
                1000.0 / speed, 1, first["cpu_tdp_w"], first["cpu_count"])
    return {
        "tracked": True,
        "country_iso_code": cfg.country_iso_code,
        "region": cfg.region,
        "grid_intensity_g_per_kwh": intensity,
        "grid_intensity_source": source,
        "mode": first["mode"],
        "inference_mode": "estimated",
        "cpu_tdp_generic": bool(first.get("cpu_tdp_generic")),
        "training_method": first["method"],
        "inference_method": inference_method,
        "training_energy_kwh": sum(t["energy_kwh"] for t in tracked),
        "training_emissions_kg": sum(t["emissions_kg"] for t in tracked),
        "payback_baseline": baseline["name"] if baseline else None,
    }
