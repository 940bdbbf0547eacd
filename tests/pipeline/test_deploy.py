"""Deploy checks on a real run: tflite-micro fit, C arrays, labels, Android metadata, the report block.

The run is the kws_ds_cnn edge recipe (small) on synthetic keyword
features, so it also stands for that recipe's end-to-end test.
"""
import dataclasses
import json
import os

import pytest

from export import metadata
from pipeline import boards, verdicts
from pipeline import recipe as recipe_lib
from pipeline.errors import RecipeError
from tests.conftest import ROOT, run_cli, run_pipeline

NAMES = ["yes", "no", "up", "down"]
FAST = ["train.epochs=3", "export.formats=[float32, int8]", "benchmark.num_runs=3",
        "benchmark.warmup_runs=0", "data.representative_samples=50", "energy.track=false"]
KWS = ["train.epochs=3", "quantize.epochs=1", "model.options.filters=16", "model.options.blocks=2",
       "train.allow_chance=true", "quantize.allow_chance=true", "benchmark.num_runs=5",
       "benchmark.warmup_runs=1", "data.representative_samples=20", "energy.track=false"]


def test_fit_verdicts_on_hand_made_figures():
    board = boards.Target("board", ram_kb=16, flash_kb=64)
    measured = {"runs": True, "arena_bytes": 10_000, "flash_bytes": 60_000, "missing_ops": []}
    verdict = verdicts.fit(measured, board)
    assert verdict["fits"] and verdict["ram_margin_bytes"] == 16 * 1024 - 10_000
    assert verdict["flash_margin_bytes"] == 64 * 1024 - 60_000
    too_big = verdicts.fit({**measured, "arena_bytes": 16 * 1024 + 1}, board)
    assert not too_big["fits"] and too_big["ram_margin_bytes"] == -1
    assert "arena 16,385 B > RAM 16,384 B" in too_big["why"]
    assert not verdicts.fit({**measured, "flash_bytes": 70_000}, board)["fits"]
    lacking = verdicts.fit({"runs": False, "reason": "no GELU", "flash_bytes": 10,
                          "missing_ops": ["GELU"]}, board)
    assert not lacking["fits"] and "lacks GELU" in lacking["why"]


def test_an_npu_board_is_judged_on_velas_figures_for_its_own_accelerator():
    board = boards.Target("npu-board", ram_kb=32, flash_kb=64, npu="ethos-u55-128")
    cpu = {"runs": True, "arena_bytes": 40_000, "flash_bytes": 50_000, "missing_ops": []}
    vela = {"ethos-u55-128": {"compiled": True, "sram_bytes": 20_000, "flash_bytes": 30_000,
                              "dram_bytes": 0},
            "ethos-u85-256": {"compiled": True, "sram_bytes": 1, "flash_bytes": 0,
                              "dram_bytes": 70_000}}
    verdict = verdicts.fit(cpu, board, vela)
    # The CPU path's arena (40,000 B) would not fit 32 KiB; the NPU build's does.
    assert verdict["fits"] and verdict["basis"] == "Vela ethos-u55-128"
    assert verdict["ram_margin_bytes"] == 32 * 1024 - 20_000
    assert verdict["flash_margin_bytes"] == 64 * 1024 - 30_000
    assert verdicts.fit_text(verdict).endswith("on Vela ethos-u55-128's figures)")
    # A U85 build keeps its weights in DRAM: those are the model's bytes there.
    u85 = verdicts.fit(cpu, dataclasses.replace(board, npu="ethos-u85-256"), vela)
    assert not u85["fits"] and u85["flash_margin_bytes"] == 64 * 1024 - 70_000
    # Vela could not compile it: the board's CPU runs the file, as tflite-micro measured.
    failed = {"ethos-u55-128": {"compiled": False, "reason": "RESHAPE x1 unsupported"}}
    on_cpu = verdicts.fit(cpu, board, failed)
    assert not on_cpu["fits"] and on_cpu["ram_margin_bytes"] == 32 * 1024 - 40_000
    assert on_cpu["basis"] == "tflite-micro on the CPU (ethos-u55-128: RESHAPE x1 unsupported)"
    # A board without an NPU never reads Vela's figures.
    plain = verdicts.fit(cpu, boards.Target("plain", 32, 64), vela)
    assert plain["basis"] == "tflite-micro" and not plain["fits"]


def test_npu_board_presets_and_their_sources():
    npu_boards = {n: p for n, p in boards.PRESETS.items() if "npu" in p}
    assert {"alif-e7-rtss-hp", "alif-e7-rtss-he", "corstone-300-u55"} <= set(npu_boards)
    from export.vela import ACCELERATORS
    assert all(p["npu"] in ACCELERATORS and p["source"] for p in npu_boards.values())
    [he] = boards.parse_targets(["alif-e7-rtss-he"])
    assert (he.ram_kb, he.flash_kb, he.npu) == (2560, 0x47F000 / 1024, "ethos-u55-128")
    assert boards.accelerators(boards.parse_targets(
        ["alif-e7-rtss-hp", "corstone-300-u55", "sparkfun-edge", "alif-e7-rtss-he"])) == [
        "ethos-u55-256", "ethos-u55-128"]
    assert boards.parse_target_argument("mine:512:2048:ethos-u85-256").npu == "ethos-u85-256"


@pytest.mark.parametrize("targets, message", [
    (["no-such-board"], "unknown board preset 'no-such-board'; presets: alif-e7-rtss-he, alif-e7-rtss-hp, "
                      "arduino-nano-33-ble"),
    ([{"name": "b", "ram_kb": 0, "flash_kb": 64}], "'b': ram_kb got 0; expected a positive"),
    ([{"name": "b", "ram_kb": 8, "flash_kb": -1}], "'b': flash_kb got -1; expected a positive"),
    ([{"name": "b", "ram_kb": 8}], "expected a preset name or {name, ram_kb, flash_kb}"),
    (["sparkfun-edge", "sparkfun-edge"], "names a board twice"),
    ([{"name": "b", "ram_kb": 8, "flash_kb": 64, "npu": "ethos-u99"}],
     "'b': npu got 'ethos-u99'; expected one of ethos-u55-32"),
])
def test_bad_targets_are_one_recipe_error(targets, message):
    with pytest.raises(RecipeError, match="^deploy: targets: ") as e:
        recipe_lib.load(os.path.join(ROOT, "recipes", "default.yaml"),
                        [f"deploy.targets={json.dumps(targets)}"])
    assert message in str(e.value)


def test_a_target_on_the_command_line():
    assert boards.parse_target_argument("my-board:192:512") == boards.Target("my-board", 192, 512)
    assert boards.parse_target_argument("sparkfun-edge").ram_kb == 384
    with pytest.raises(ValueError, match="NAME:RAM_KB:FLASH_KB"):
        boards.parse_target_argument("a:1")


def test_labels_whose_count_differs_stop_the_run_before_training(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    workdir = tmp_path / "run"
    result = run_pipeline("default", workdir, f"deploy.labels={labels}", *FAST)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"greenlite: error: deploy.labels: {str(labels)!r} holds 3 labels but the data has 10 "
        "classes; give one label per class, in label order")
    assert not workdir.exists()


@pytest.fixture(scope="module")
def metadata_env():
    """The tflite-support environment under this session's temporary HOME
    (tests/conftest.py), made in a thread while the run trains (pip mostly
    waits on the download); the run's own request waits on its lock."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield pool.submit(metadata.ensure_env)


@pytest.fixture(scope="module")
def metadata_python(metadata_env):
    """The environment's Python; it needs the package registry once."""
    try:
        return metadata_env.result()
    except metadata.MetadataError as e:
        pytest.skip(f"the tflite-support environment cannot be built here: {e}")


@pytest.fixture(scope="module")
def deployed_run(tmp_path_factory, metadata_env):
    """The run, with metadata where the environment could be made (offline the
    run records why it wrote none, and the metadata tests skip)."""
    from pipeline.data import synthetic
    directory = tmp_path_factory.mktemp("runs")
    data = synthetic.keyword_features(str(directory / "kws.npz"), per_class=40)
    workdir = directory / "deployed"
    result = run_pipeline("kws_ds_cnn", workdir, f"data.path={data}", "deploy.micro=true",
                          "deploy.metadata=true", f"data.class_names={json.dumps(NAMES)}",
                          "deploy.targets=[arduino-nano-33-ble, alif-e7-rtss-he, "
                          "{name: tiny, ram_kb: 2, flash_kb: 4096}]", *KWS)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(workdir / "report.json") as f:
        return workdir, json.load(f)


def test_the_kws_recipe_runs_end_to_end(deployed_run):
    _, report = deployed_run
    formats = {v["format"]: v for v in report["variants"]}
    assert sorted(formats) == ["float32", "int8"]
    assert all("error" not in v for v in report["variants"])
    # A 16-filter DS-CNN: its graph, not its weights, fills the file.
    assert formats["int8"]["size_bytes"] < formats["float32"]["size_bytes"]
    assert all(v["num_examples"] == report["data"]["test"] for v in report["variants"])


def test_labels_come_from_the_data(deployed_run):
    workdir, _ = deployed_run
    assert (workdir / "export" / "labels.txt").read_text().splitlines() == NAMES


def test_the_int8_variant_runs_on_the_micro_runtime_with_a_verdict_per_target(deployed_run):
    workdir, report = deployed_run
    v = {v["name"]: v for v in report["variants"]}["quantize_int8"]
    m = v["micro"]
    assert m["runs"] and m["micro"]["accuracy"] == pytest.approx(v["accuracy"], abs=0.005)
    assert m["flash_bytes"] == os.path.getsize(workdir / v["path"])
    verdicts = {t["target"]: t for t in m["targets"]}
    assert verdicts["arduino-nano-33-ble"]["fits"]
    assert not verdicts["tiny"]["fits"] and "> RAM 2,048 B" in verdicts["tiny"]["why"]
    assert v["deploy"]["micro_fit"]["tiny"].startswith("does NOT fit")
    assert any(b.startswith("tiny: arena") for b in v["deploy"]["blockers"])
    # The Ethos-U board: Vela ran for its accelerator although deploy.npu is [] here
    # (tests/conftest.py), and its verdict reads that build's SRAM and flash.
    assert list(v["npu"]) == ["ethos-u55-128"] and v["npu"]["ethos-u55-128"]["compiled"]
    alif, built = verdicts["alif-e7-rtss-he"], v["npu"]["ethos-u55-128"]
    assert alif["basis"] == "Vela ethos-u55-128" and alif["fits"]
    assert alif["ram_margin_bytes"] == 2560 * 1024 - built["sram_bytes"]
    assert alif["flash_margin_bytes"] == 0x47F000 - built["flash_bytes"]
    assert built["sram_bytes"] != m["arena_bytes"] and built["flash_bytes"] != m["flash_bytes"]
    assert verdicts["arduino-nano-33-ble"]["basis"] == "tflite-micro"
    assert "Vela ethos-u55-128's figures" in v["deploy"]["micro_fit"]["alif-e7-rtss-he"]
    with open(workdir / v["c_array"]["source"], encoding="utf-8") as f:
        assert f"{v['c_array']['symbol']}_len = {m['flash_bytes']};" in f.read()
    float32 = {v["name"]: v for v in report["variants"]}["train_float32"]
    assert not float32["micro"]["checked"] and "tflite-micro" in float32["deploy"]["runtimes"]
    text = (workdir / "report.md").read_text()
    assert "## Deployment" in text and "| quantize_int8 | yes |" in text


def test_android_metadata_round_trips(deployed_run, metadata_python):
    workdir, report = deployed_run
    for v in report["variants"]:
        path = str(workdir / v["path"])
        assert v["metadata"]["written"] and v["deploy"]["metadata"]
        assert v["size_bytes"] == os.path.getsize(path)  # the figures are the shipped file's
        shown = metadata.read(metadata_python, path)
        assert shown["associated_files"] == ["labels.txt"]
        md = shown["metadata"]
        assert md["name"] == f"ds_cnn ({v['name']})" and md["min_parser_version"]
        tensor = md["subgraph_metadata"][0]["input_tensor_metadata"][0]
        # npz features: no scaling, and the training inputs' range.
        assert tensor["content"]["content_properties_type"] == "FeatureProperties"
        assert tensor["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
        norm = report["deploy_data"]["normalization"]
        assert tensor["stats"] == {"max": [pytest.approx(norm["max"])],
                                   "min": [pytest.approx(norm["min"])]}
    # The file still runs and scores as before (metadata is not part of the graph).
    from export import benchmark
    int8 = {v["name"]: v for v in report["variants"]}["quantize_int8"]
    figures = benchmark.benchmark(
        str(workdir / int8["path"]),
        benchmark.load_eval_data(str(workdir / "export" / "test_data")), num_runs=1)
    assert figures["accuracy"] == int8["accuracy"]


def test_image_metadata_names_its_color_space(deployed_run, metadata_python, tmp_path):
    """The image form of the metadata (image folders, digits), written on a copy."""
    workdir, report = deployed_run
    path = tmp_path / "image.tflite"
    path.write_bytes((workdir / "export" / "quantize_int8.tflite").read_bytes())
    spec = {"name": "n", "description": "d", "version": "int8", "kind": "image",
            "color_space": "GRAYSCALE", "mean": [0.0], "std": [16.0], "min": 0, "max": 16}
    metadata.write(metadata_python, str(path), str(workdir / "export" / "labels.txt"), spec)
    tensor = metadata.read(metadata_python, str(path))["metadata"]["subgraph_metadata"][0][
        "input_tensor_metadata"][0]
    assert tensor["content"]["content_properties"]["color_space"] == "GRAYSCALE"
    assert tensor["process_units"][0]["options"] == {"mean": [0.0], "std": [16.0]}
    assert tensor["stats"] == {"max": [16.0], "min": [0.0]}
    # Reproducible: the same model and labels, written later, are the same
    # bytes (the labels' zip entry carried the time it was written, which
    # ticks in 2-second steps: the wait makes the two writes' times differ).
    import time
    time.sleep(2.1)
    again = tmp_path / "again.tflite"
    again.write_bytes((workdir / "export" / "quantize_int8.tflite").read_bytes())
    metadata.write(metadata_python, str(again), str(workdir / "export" / "labels.txt"), spec)
    assert again.read_bytes() == path.read_bytes()


def test_deploy_cli_bad_input_leaves_the_run_alone(deployed_run, tmp_path):
    workdir, _ = deployed_run
    before = (workdir / "report.json").read_bytes()
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    for args, message in [
        (["--target=nope"], "targets: unknown board preset 'nope'"),
        (["--target=b:0:10"], "targets: 'b': ram_kb got 0.0; expected a positive number"),
        (["--variant=train_float32"], "'train_float32' is a float32 file; the micro runtime "
                                      "takes full-integer files"),
        ([f"--labels={labels}"], "holds 3 labels but the model has 4 outputs"),
    ]:
        result = run_cli(["-m", "pipeline.deploy", f"--workdir={workdir}"] + args)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, args
        assert (workdir / "report.json").read_bytes() == before


def test_deploy_cli_checks_a_finished_run_against_a_new_board(deployed_run, metadata_python):
    workdir, _ = deployed_run
    result = run_cli(["-m", "pipeline.deploy", f"--workdir={workdir}", "--variant=quantize_int8",
                      "--target=arduino-nano-33-iot", "--target=npu-board:512:1024:ethos-u65-256"])
    assert result.returncode == 0, result.stderr
    with open(workdir / "report.json") as f:
        report = json.load(f)
    v = {v["name"]: v for v in report["variants"]}["quantize_int8"]
    assert [t["target"] for t in v["micro"]["targets"]] == ["arduino-nano-33-iot", "npu-board"]
    # The run had not compiled for the U65: the command did, beside the U55 build it kept.
    assert sorted(v["npu"]) == ["ethos-u55-128", "ethos-u65-256"]
    board = v["micro"]["targets"][1]
    assert board["basis"] == "Vela ethos-u65-256"
    assert board["ram_margin_bytes"] == 512 * 1024 - v["npu"]["ethos-u65-256"]["sram_bytes"]
    assert v["metadata"]["written"]  # written again, not packed twice
