"""Recipe loading, validation and --set overrides."""
import glob
import os

import pytest
import yaml

from pipeline import recipe as recipe_lib
from pipeline.errors import RecipeError
from tests.conftest import ROOT


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


def test_default_recipe_loads_into_typed_configs():
    r = recipe_lib.load(os.path.join(ROOT, "recipes", "default.yaml"))
    assert r.name == "default"
    assert r.model.name == "digits_cnn"
    assert r.data.source == "digits"
    assert [s.name for s in r.stages] == ["train"]
    assert r.stages[0].config.epochs == 30
    assert r.export.formats == ["float32", "float16", "dynamic_range", "int8"]
    assert r.export_jobs == [("train", f) for f in r.export.formats]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "recipes", "*.yaml"))))
def test_every_shipped_recipe_is_valid_and_documents_its_command(path):
    recipe = recipe_lib.load(path)
    header = open(path).read().split("\n\n")[0]
    command = "python -m pipeline.search" if recipe.search else "python -m pipeline"
    assert f"{command} --recipe=recipes/{os.path.basename(path)}" in header


def test_overrides_apply_before_validation(tmp_path):
    path = write(tmp_path, "stages: {train: {epochs: 5}}\n")
    r = recipe_lib.load(path, ["train.epochs=3", "stages.train.optimizer=sgd",
                               "export.formats=[int8]", "model.options.width=0.5", "seed=7"])
    assert r.stages[0].config.epochs == 3
    assert r.stages[0].config.optimizer == "sgd"
    assert r.export.formats == ["int8"]
    assert r.model.options == {"width": 0.5}
    assert r.seed == 7


def test_stage_type_defaults_to_its_name_and_can_repeat(tmp_path):
    path = write(tmp_path, "stages: {train: {epochs: 2}, finetune: {type: train, epochs: 1}}\n")
    r = recipe_lib.load(path)
    assert [(s.name, s.type) for s in r.stages] == [("train", "train"), ("finetune", "train")]
    assert r.export_jobs == [("finetune", f) for f in r.export.formats]


@pytest.mark.parametrize("text, overrides, message", [
    ("stages: {train: {epoch: 3}}", [],
     "stages.train.epoch: unknown key; allowed keys: epochs, batch_size, learning_rate, "
     "optimizer, lr_schedule, early_stopping_patience"),
    ("stages: {train: {epochs: -1}}", [], "stages.train.epochs: got -1; expected an integer >= 1"),
    ("stages: {train: {epochs: ten}}", [], "stages.train.epochs: got 'ten'; expected an integer >= 1"),
    ("stages: {train: {learning_rate: 0}}", [],
     "stages.train.learning_rate: got 0; expected a number in (0, 1]"),
    ("stages: {trian: {}}", [], "stages.trian: unknown stage type 'trian'; known stage types:"),
    ("stages: {}", [], "stages: got {}; expected a mapping of stage names to settings"),
    ("stages: {train: {}}\nepochs: 3", [], "epochs: unknown key; allowed keys: stages, name, seed, deterministic"),
    ("stages: {train: {}}\nexport: {formats: [int4]}", [],
     "export.formats[0]: got 'int4'; allowed values: 'float32', 'float16', 'dynamic_range', 'int8'"),
    ("stages: {train: {}}\nexport: {stages: [prune]}", [],
     "export.stages: 'prune' is not a stage of this recipe; stages: train"),
    ("stages: {train: {}}\ndata: {source: npz}", [], "data: path: required for source 'npz'"),
    ("stages: {train: {}}\nbenchmark: {num_runs: 0}", [],
     "benchmark.num_runs: got 0; expected an integer >= 1"),
    ("stages: {train: {}}", ["train.epochs=-2"], "stages.train.epochs: got -2; expected an integer >= 1"),
    ("stages: {train: {}}", ["trian.epochs=2"], "--set 'trian.epochs=2': 'trian' is neither"),
    ("stages: {train: {}}", ["train.epochs"], "--set 'train.epochs': expected key.path=value"),
    ("stages: {train: {}}\nseed: 0", ["seed.x=1"], "--set 'seed.x=1': seed is 0, not a mapping"),
    ("stages: {train: {augment_mixup: 1.0}}", [],
     "stages.train.augment_mixup: got 1.0, but the stage has no teacher; a blend of two images"),
    # An ONNX file keeps its names: strip refuses it even when it is exported, and
    # names a .tflite format that is not exported.
    ("stages: {train: {}}\nexport: {formats: [int8, onnx_float32], strip: [onnx_float32]}", [],
     "export: strip: onnx_float32 is not a .tflite format; strip takes the TFLite formats"),
    ("stages: {train: {}}\nexport: {formats: [int8], strip: [float16]}", [],
     "export: strip: float16 is not exported; exported formats: int8"),
    ("- a list", [], "must hold a mapping"),
    ("stages: [train", [], "cannot read"),
])
def test_bad_recipes_are_rejected_with_one_clear_message(tmp_path, text, overrides, message):
    with pytest.raises(RecipeError) as e:
        recipe_lib.load(write(tmp_path, text), overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_recipe_file():
    with pytest.raises(RecipeError, match="does not exist"):
        recipe_lib.load("/nonexistent/recipe.yaml")


def test_to_dict_round_trips(tmp_path):
    r = recipe_lib.load(os.path.join(ROOT, "recipes", "default.yaml"))
    again = recipe_lib.from_dict(yaml.safe_load(yaml.safe_dump(r.to_dict())))
    assert again.to_dict() == r.to_dict()


def test_mixup_in_distill_needs_no_teacher_setting(tmp_path):
    """distill's teacher is the model it is given, so augment_mixup needs no `teacher:` there."""
    text = ("stages: {train: {epochs: 1}, distill: {student: digits_cnn, augment_mixup: 0.5}}")
    recipe = recipe_lib.load(write(tmp_path, text), [])
    assert recipe.stages[1].config.augment_mixup == 0.5


def test_exponent_numbers_read_as_numbers(tmp_path):
    """`learning_rate: 1e-4` is a number, in a recipe and in --set (PyYAML alone reads
    YAML 1.1, where it is the string '1e-4', and the recipe was refused)."""
    from pipeline import recipe as recipe_lib
    path = tmp_path / "r.yaml"
    path.write_text("stages:\n  train: {epochs: 1, learning_rate: 1e-4}\n")
    assert recipe_lib.load(str(path), []).stages[0].config.learning_rate == 1e-4
    loaded = recipe_lib.load(str(path), ["train.learning_rate=2E-3", "seed=1_0"])
    assert loaded.stages[0].config.learning_rate == 2e-3 and loaded.seed == 10
    assert recipe_lib.load(str(path), ["name=1e4x"]).name == "1e4x"  # not a number: kept
