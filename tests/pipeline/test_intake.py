"""What the run foresees about the model before training: its own input scaling."""
import json

import pytest

from pipeline import intake
from pipeline import recipe as recipe_lib
from pipeline.backend import keras
from tests.conftest import ROOT, run_pipeline


def _model(path, rescaling, classes=2):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="own_preprocessing")(inputs) \
        if rescaling else inputs
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(classes)(x)).save(path)
    return str(path)


def _recipe(model, *overrides):
    return recipe_lib.load(f"{ROOT}/recipes/mobilenet_v2_images.yaml",
                           [f"model.name={model}", "model.options={}", "data.path=.",
                            "data.scale=null", *overrides])


def test_a_model_that_rescales_its_own_pixels_gets_them_undivided(tmp_path):
    model = _model(tmp_path / "own.keras", rescaling=True)
    scale, note = intake.input_scale(_recipe(model))
    assert scale == 1.0
    assert note.startswith("the model's first layer `own_preprocessing` (Rescaling scale "
                           "0.007843, offset -1) expects pixels 0..255: data.scale set to 1")
    # An explicit 255 is kept, and the double scaling said.
    scale, note = intake.input_scale(_recipe(model, "data.scale=255"))
    assert scale == 255.0 and "the model sees its input 255 times too small" in note


def test_a_model_without_it_gets_pixels_in_0_1(tmp_path):
    model = _model(tmp_path / "plain.keras", rescaling=False)
    assert intake.input_scale(_recipe(model)) == (255.0, None)
    assert intake.input_scale(_recipe(model, "data.scale=100")) == (100.0, None)


def test_the_run_reads_the_folder_at_the_models_scale_and_says_so(tmp_path):
    from pipeline.data import synthetic
    synthetic.shape_images(str(tmp_path / "shapes"), per_class=12, size=16)
    model = _model(tmp_path / "own.keras", rescaling=True, classes=3)
    workdir = tmp_path / "run"
    result = run_pipeline("mobilenet_v2_images", workdir, f"model.name={model}",
                          "model.options={}", f"data.path={tmp_path / 'shapes'}",
                          "data.image_size=[16, 16]", "data.scale=null", "train.epochs=1",
                          "train.allow_chance=true", "export.formats=[float32]")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data.scale set to 1" in result.stdout
    report = json.loads((workdir / "report.json").read_text())
    assert report["data"]["preprocessing"].endswith("divide by 1")
    assert any("expects pixels 0..255" in n for n in report["model"]["notes"])
