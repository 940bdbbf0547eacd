"""The edge zoo recipes end to end on synthetic data the tests make."""
import json
import os

import pytest

from pipeline.data import synthetic
from tests.conftest import SLOW_MARKS, run_pipeline


# kws_ds_cnn runs end to end in tests/pipeline/test_deploy.py, with its deploy checks.
@pytest.mark.parametrize("recipe, data_flag, make, overrides", [
    # The image-folder recipe's streamed path with a small CNN in place of
    # MobileNetV2 (whose training and int8 conversion take 80 s here; it runs
    # below when GREENLITE_SLOW_TESTS=1).
    ("mobilenet_v2_images", "data.path", lambda d: synthetic.shape_images(str(d / "shapes"), per_class=12, size=32),
     ["train.epochs=1", "data.image_size=[32, 32]", "train.allow_chance=true",
      "export.formats=[int8]", "model.name=digits_cnn", "model.options={width: 0.25}"]),
    pytest.param(
        "mobilenet_v2_images", "data.path",
        lambda d: synthetic.shape_images(str(d / "shapes"), per_class=12, size=32),
        ["train.epochs=1", "data.image_size=[32, 32]", "train.allow_chance=true",
         "export.formats=[int8]"],
        marks=SLOW_MARKS, id="mobilenet_v2"),
])
def test_edge_recipe_runs_end_to_end(tmp_path, recipe, data_flag, make, overrides):
    # A few epochs on tiny data can end at chance: this test is about the mechanics.
    path = make(tmp_path)
    workdir = tmp_path / "run"
    # 20 calibration samples: calibrating MobileNetV2 on the default 200 took
    # most of this test's time.
    result = run_pipeline(recipe, workdir, f"{data_flag}={path}", "benchmark.num_runs=5",
                          "benchmark.warmup_runs=1", "data.representative_samples=20",
                          *overrides)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    formats = {v["format"]: v for v in report["variants"]}
    assert "int8" in formats and all("error" not in v for v in report["variants"])
    if "float32" in formats:  # a 16-filter DS-CNN: its graph, not its weights, fills the file
        assert formats["int8"]["size_bytes"] < formats["float32"]["size_bytes"]
    # The image folder streams; its whole test split is scored in every file.
    assert report["data"]["streamed"] == (recipe == "mobilenet_v2_images")
    assert all(v["num_examples"] == report["data"]["test"] for v in report["variants"])
