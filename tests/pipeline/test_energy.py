"""Energy and CO2: CodeCarbon offline, joules per inference, carbon payback."""
import socket

import pytest

from pipeline import energy
from pipeline.errors import RecipeError


def test_joules_per_inference():
    # 8 W for 2 threads; 1 thread busy for 2 ms: 4 W x 0.002 s.
    assert energy.joules_per_inference(2.0, 1, 8.0, 2) == pytest.approx(0.008)
    assert energy.joules_per_inference(2.0, 4, 8.0, 2) == pytest.approx(0.016)  # capped


def test_payback_arithmetic_on_hand_made_numbers():
    # Saves 0.36 J = 1e-7 kWh per inference; at 500 g/kWh that is 5e-8 kg CO2e.
    # 0.01 kg extra is repaid after 0.01 / 5e-8 = 200,000 inferences.
    assert energy.payback_inferences(0.01, 1.0, 0.64, 500) == pytest.approx(200_000)
    assert energy.payback_inferences(0.0, 1.0, 0.5, 500) == 0
    assert energy.payback_inferences(0.01, 1.0, 1.0, 500) is None  # no saving: never
    assert energy.payback_inferences(0.01, 1.0, 1.2, 500) is None


def test_account_fills_variants():
    cfg = energy.EnergyConfig(grid_intensity=500.0)
    e = {"energy_kwh": 1e-4, "emissions_kg": 5e-5, "grid_intensity_g_per_kwh": 500.0,
         "cpu_tdp_w": 8, "cpu_count": 2, "cpu_mode": "cpu_load", "mode": "estimated",
         "method": "estimated"}
    stages = [{"name": "train", "energy": e}, {"name": "prune", "energy": dict(e, emissions_kg=0.01)}]
    variants = [
        {"name": "train_float32", "stage": "train", "format": "float32", "latency_ms": {"p50": 250.0}},
        {"name": "prune_int8", "stage": "prune", "format": "int8", "latency_ms": {"p50": 160.0}},
    ]
    summary = energy.account(cfg, stages, variants, num_threads=1, baseline=variants[0])
    assert summary["grid_intensity_g_per_kwh"] == 500.0
    assert summary["training_emissions_kg"] == pytest.approx(0.01005)
    # 4 W x 0.25 s = 1 J; 4 W x 0.16 s = 0.64 J: the hand-made case above.
    assert variants[0]["joules_per_inference"] == pytest.approx(1.0)
    assert variants[1]["extra_emissions_kg"] == pytest.approx(0.01)
    assert variants[1]["payback_inferences"] == pytest.approx(200_000)
    assert "payback_inferences" not in variants[0]


def test_codecarbon_tracks_a_short_block_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("CodeCarbon tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    out = {}
    with energy.track(energy.EnergyConfig(country_iso_code="FRA"), "test", out):
        sum(i * i for i in range(3_000_000))
    assert out["seconds"] > 0
    assert out["energy_kwh"] > 0 and out["emissions_kg"] > 0
    assert out["country_iso_code"] == "FRA"
    # France's grid is low-carbon: CodeCarbon's mix gives well under 200 g/kWh.
    assert out["grid_intensity_g_per_kwh"] < 200


def test_grid_intensity_override():
    out = {}
    with energy.track(energy.EnergyConfig(grid_intensity=1000.0), "test", out):
        sum(range(1_000_000))
    assert out["grid_intensity_g_per_kwh"] == pytest.approx(1000.0, rel=1e-6)


def test_tracking_off_records_time_only():
    out = {}
    with energy.track(energy.EnergyConfig(track=False), "test", out):
        pass
    assert list(out) == ["seconds"]


def test_unknown_country_code(tmp_path):
    from pipeline import recipe
    path = tmp_path / "r.yaml"
    path.write_text("stages: {train: {}}\nenergy: {country_iso_code: XYZ}\n")
    with pytest.raises(RecipeError, match="energy: country_iso_code: got 'XYZ'; expected an "
                                          "ISO 3166 alpha-3 code CodeCarbon knows"):
        recipe.load(str(path))


class _FakeCPU:
    """Stands in for CodeCarbon's hardware.CPU (matched by class name)."""

    def __init__(self, mode, tdp, generic):
        self._mode, self._tdp, self._is_generic_tdp = mode, tdp, generic


_FakeCPU.__name__ = "CPU"


class _FakeTracker:
    def __init__(self, mode, tdp=15, generic=False):
        import types
        self._hardware = [_FakeCPU(mode, tdp, generic)]
        self.final_emissions_data = types.SimpleNamespace(
            energy_consumed=2e-4, emissions=1e-4, cpu_energy=1.5e-4, ram_energy=0.5e-4,
            cpu_power=10.0, ram_power=3.0, country_iso_code="USA", region=None,
            cpu_count=4, cpu_model="Some CPU")


@pytest.mark.parametrize("mode, generic, training_label", [
    ("intel_rapl", False, "measured"),      # a machine with RAPL
    ("cpu_load", False, "estimated"),       # no RAPL, CPU in CodeCarbon's database
    ("cpu_load", True, "estimated"),        # no RAPL, unknown CPU: generic TDP
])
def test_energy_labels_follow_how_codecarbon_got_the_power(mode, generic, training_label,
                                                          monkeypatch):
    monkeypatch.setattr(energy, "in_cpu_database", lambda model: not generic)
    figures = energy.summarize(_FakeTracker(mode, tdp=16 if generic else 15, generic=generic))
    assert figures["mode"] == training_label
    assert ("not measured" in figures["method"]) == (training_label == "estimated")
    assert figures["cpu_tdp_generic"] is generic
    stages = [{"name": "train", "energy": figures}]
    variants = [{"name": "train_float32", "stage": "train", "format": "float32",
                 "latency_ms": {"p50": 2.0}}]
    summary = energy.account(energy.EnergyConfig(), stages, variants, num_threads=1,
                             baseline=variants[0])
    # Joules per inference are a TDP share x latency, even where RAPL measured training.
    assert summary["mode"] == training_label and summary["inference_mode"] == "estimated"
    assert summary["inference_method"].startswith("an estimate, not a measurement")
    assert ("generic default" in summary["inference_method"]) is generic
    tdp = 16 if generic else 15
    assert variants[0]["joules_per_inference"] == pytest.approx(tdp / 4 * 0.002)


def test_a_cpu_missing_from_codecarbons_table_is_a_generic_tdp():
    # CodeCarbon gives such a CPU 4 W per thread without flagging it as generic.
    assert energy.in_cpu_database("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz")
    assert not energy.in_cpu_database("AMD EPYC")
    figures = energy.summarize(_FakeTracker("cpu_load", tdp=8, generic=False))  # "Some CPU"
    assert figures["cpu_tdp_generic"] is True and "generic default" in figures["cpu_tdp_source"]


def _stage(name, emissions_kg, intensity=400.0, **extra):
    return {"name": name, "energy": {
        "energy_kwh": 2e-4, "emissions_kg": emissions_kg, "grid_intensity_g_per_kwh": intensity,
        "cpu_tdp_w": 12, "cpu_count": 4, "mode": "estimated", "method": "estimated (test)",
        "cpu_tdp_source": "a table", **extra}}


def test_account_on_three_stages_and_a_language_model_bundle():
    """Every figure of the summary and of each variant against hand arithmetic: 12 W
    over 4 threads, 2 benchmark threads -> 6 W; the grid from the first stage's mix."""
    cfg = energy.EnergyConfig(country_iso_code="FRA")
    stages = [_stage("train", 1e-4), _stage("prune", 0.002), _stage("quantize", 0.003)]
    variants = [
        {"name": "train_float32", "stage": "train", "latency_ms": {"p50": 100.0}},
        {"name": "prune_float32", "stage": "prune", "latency_ms": {"p50": 50.0}},
        {"name": "quantize_int8", "stage": "quantize", "latency_ms": {"p50": 20.0},
         "generation": {"benchmark": {"threads_1": {"decode_tokens_per_s": 500.0}}}},
        {"name": "quantize_int16x8", "stage": "quantize", "error": "crashed"},
    ]
    summary = energy.account(cfg, stages, variants, num_threads=2, baseline=variants[0])
    assert summary == {
        "tracked": True, "country_iso_code": "FRA", "region": cfg.region,
        "grid_intensity_g_per_kwh": 400.0,
        "grid_intensity_source": "CodeCarbon's energy mix for FRA",
        "mode": "estimated", "inference_mode": "estimated", "cpu_tdp_generic": False,
        "training_method": "estimated (test)",
        "inference_method": "an estimate, not a measurement: median latency x 6 W, the TDP "
                            "(12 W for 4 threads, from a table) scaled to 2 interpreter "
                            "thread(s); RAM power excluded",
        "training_energy_kwh": pytest.approx(6e-4), "training_emissions_kg": pytest.approx(0.0051),
        "payback_baseline": "train_float32"}
    base, pruned, int8, failed = variants
    assert base["joules_per_inference"] == pytest.approx(0.6)        # 6 W x 0.1 s
    assert pruned["joules_per_inference"] == pytest.approx(0.3)
    assert int8["joules_per_inference"] == pytest.approx(0.12)
    # 0.12 J = 3.33e-8 kWh; x 1e6 inferences x 400 g/kWh = 13.3 g.
    assert int8["co2_g_per_million_inferences"] == pytest.approx(0.12e6 / 3.6e6 * 400)
    # The stages after the baseline's, up to each variant's own.
    assert base["extra_emissions_kg"] == 0
    assert pruned["extra_emissions_kg"] == pytest.approx(0.002)
    assert int8["extra_emissions_kg"] == pytest.approx(0.005)
    saving_kg = (0.6 - 0.12) / 3.6e6 * 400 / 1000
    assert int8["payback_inferences"] == pytest.approx(0.005 / saving_kg)
    assert "payback_inferences" not in base and "joules_per_inference" not in failed
    # One thread's share (3 W) x 2 ms per decoded token.
    assert int8["generation"]["joules_per_generated_token"] == pytest.approx(0.006)
    # No baseline: no payback; a grid the first stage did not measure: the country's.
    fresh = [{"name": "a", "stage": "train", "latency_ms": {"p50": 1.0}}]
    summary = energy.account(cfg, [_stage("train", 1e-4, intensity=None)], fresh, 1, None)
    assert summary["payback_baseline"] is None and "payback_inferences" not in fresh[0]
    assert summary["grid_intensity_g_per_kwh"] == energy.known_countries()["FRA"][1]
    untracked = [{"name": "train", "energy": {"seconds": 1.0}}]
    assert energy.account(cfg, untracked, [], 1, None) == {
        "tracked": False, "reason": "energy.track is false in the recipe"}


class _Data:
    energy_consumed, emissions, cpu_energy, ram_energy = 2e-4, 1e-4, 1.5e-4, 0.5e-4
    cpu_power, ram_power, country_iso_code, region = 12.0, 3.0, "FRA", None
    cpu_count, cpu_model = 4, "Test CPU 9000"


@pytest.mark.parametrize("mode, generic, measured", [("intel_rapl", False, True),
                                                      ("cpu_load", True, False)])
def test_summarize_reads_the_trackers_figures_and_says_how_it_got_the_power(
        monkeypatch, mode, generic, measured):
    class CPU:
        _mode, _tdp, _is_generic_tdp = mode, 12, generic
    tracker = type("Tracker", (), {"final_emissions_data": _Data(), "_hardware": [object(), CPU()]})
    monkeypatch.setattr(energy, "in_cpu_database", lambda model: True)
    got = energy.summarize(tracker)
    assert got == {
        "energy_kwh": 2e-4, "emissions_kg": 1e-4, "cpu_energy_kwh": 1.5e-4,
        "ram_energy_kwh": 0.5e-4, "cpu_power_w": 12.0, "ram_power_w": 3.0,
        "country_iso_code": "FRA", "region": None,
        "grid_intensity_g_per_kwh": pytest.approx(500.0),
        "mode": "measured" if measured else "estimated", "cpu_mode": mode, "cpu_tdp_w": 12,
        "cpu_tdp_generic": generic,
        "cpu_tdp_source": ("CodeCarbon's generic default (12 W: 'Test CPU 9000' is not in its "
                           "CPU database)" if generic else
                           "CodeCarbon's CPU database ('Test CPU 9000')"),
        "cpu_count": 4, "cpu_model": "Test CPU 9000",
        "method": (f"CPU power measured ({mode})" if measured else
                   "CPU power estimated, not measured (no RAPL here): CodeCarbon mode "
                   "'cpu_load' from a TDP of 12 W for 4 threads of 'Test CPU 9000'")}
