"""Board estimates from MLPerf Tiny's measurements, against hand-computed values."""
import math

import pytest

from pipeline import device_energy as de

KWS_MACS = 2_656_768  # MLPerf Tiny's reference DS-CNN, as export/benchmark.py counts it


def test_the_stored_measurements_are_mlperf_tinys():
    """The figures the issue quotes from MLPerf Tiny v1.3 (STM32U385, KWS 245 uJ /
    48.3 ms), read back from the data file with their source."""
    record = de.board("stm32u385")
    kws = record["tasks"]["kws"]
    assert kws["energy_uj"] == pytest.approx(245.3, abs=0.1)
    assert kws["latency_ms"] == pytest.approx(48.3, abs=0.05)
    assert any(s.endswith("NUCLEO_U385RG_Q/kws/energy/results.txt") for s in kws["sources"])
    assert record["clock"] == "96 MHz" and record["round"] == "v1.3"
    assert de.table()["reference_models"]["kws"]["macs"] == KWS_MACS


def test_the_estimate_is_the_variants_macs_times_the_boards_per_mac_costs():
    record = de.board("stm32u385")
    models = de.table()["reference_models"]
    pj = {t: record["tasks"][t]["energy_uj"] * 1e6 / models[t]["macs"] for t in models}
    ms = {t: record["tasks"][t]["latency_ms"] * 1e6 / models[t]["macs"] for t in models}
    macs = 1_000_000
    got = de.estimate(macs, record)
    assert got["energy_uj"]["low"] == pytest.approx(macs * min(pj.values()) * 1e-6)
    assert got["energy_uj"]["high"] == pytest.approx(macs * max(pj.values()) * 1e-6)
    assert got["energy_uj"]["mid"] == pytest.approx(
        macs * 1e-6 * math.prod(pj.values()) ** (1 / len(pj)))
    assert got["latency_ms"]["mid"] == pytest.approx(
        macs * 1e-6 * math.prod(ms.values()) ** (1 / len(ms)))
    # Twice the MACs, twice the energy and time; per-MAC costs of 70-120 pJ on this board.
    twice = de.estimate(2 * macs, record)
    assert twice["energy_uj"]["mid"] == pytest.approx(2 * got["energy_uj"]["mid"])
    assert 60 < min(pj.values()) < max(pj.values()) < 130
    assert got["source"].startswith("estimated from MLPerf Tiny v1.3 measurements on NUCLEO-U385RG-Q")


def test_leave_one_out_estimates_each_model_from_the_others():
    record = de.board("stm32u385")
    models = de.table()["reference_models"]
    held = de.leave_one_out(record)
    assert sorted(held) == ["ad", "ic", "kws", "vww"]
    others = [t for t in models if t != "kws"]
    rate = math.prod(record["tasks"][t]["energy_uj"] * 1e6 / models[t]["macs"]
                     for t in others) ** (1 / 3)
    assert held["kws"]["estimated_uj"]["mid"] == pytest.approx(KWS_MACS * rate * 1e-6)
    assert held["kws"]["error"] == pytest.approx(
        held["kws"]["estimated_uj"]["mid"] / record["tasks"]["kws"]["energy_uj"] - 1)
    # The held-out model's own measurement plays no part in its estimate.
    assert held["kws"]["estimated_uj"]["mid"] != pytest.approx(de.estimate(
        KWS_MACS, record)["energy_uj"]["mid"])


def test_battery_days_on_hand_computed_values():
    # 1,000 mAh at 3.0 V = 10,800 J; a day: 86,400 x 245 uJ = 21.168 J of inferences
    # and 2 uA x 3.0 V x 86,400 s = 0.5184 J asleep.
    life = de.battery(245e-6, de.Duty(inferences_per_day=86_400, battery_mah=1000, voltage=3.0,
                                      sleep_ua=2.0))
    assert life["days"] == pytest.approx(10_800 / (21.168 + 0.5184))
    assert life["inference_share"] == pytest.approx(21.168 / (21.168 + 0.5184))
    # Asleep all day but once an hour: the sleep current dominates.
    rare = de.battery(245e-6, de.Duty(inferences_per_day=24, sleep_ua=2.0))
    assert rare["inference_share"] < 0.02 and rare["days"] == pytest.approx(
        10_800 / (24 * 245e-6 + 0.5184))


def test_the_battery_range_runs_opposite_to_the_energy_range():
    out = de.estimate_variant(KWS_MACS, ["stm32u385"], de.Duty())["stm32u385"]
    days = out["battery"]["days"]
    assert days["low"] < days["mid"] < days["high"]
    assert days["low"] == pytest.approx(de.battery(out["energy_uj"]["high"] * 1e-6,
                                                   de.Duty())["days"])
    assert 0.1 < out["leave_one_out_error"] < 0.5


def test_unknown_boards_and_bad_duty_cycles_are_refused_in_the_recipe():
    from pipeline import recipe as recipe_lib
    from pipeline.errors import RecipeError
    from tests.conftest import ROOT
    path = f"{ROOT}/recipes/default.yaml"
    with pytest.raises(RecipeError, match="deploy: boards: 'esp32' is not a board with MLPerf "
                                          "Tiny energy measurements; boards: stm32h7a3"):
        recipe_lib.load(path, ["deploy.boards=[esp32]"])
    for key, value in (("battery_mah", 0), ("voltage", -1), ("inferences_per_day", 0)):
        with pytest.raises(RecipeError, match=rf"deploy.duty: {key}: got|deploy.duty.{key}: got"):
            recipe_lib.load(path, [f"deploy.duty.{key}={value}"])
    assert recipe_lib.load(path, ["deploy.boards=[NUCLEO_U575ZI_Q]"]).deploy.boards == [
        "NUCLEO_U575ZI_Q"]
