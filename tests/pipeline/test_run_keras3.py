"""Keras 3 models through whole runs: translated and compressed, with Keras 3 copies of
the stages' models; untranslatable ones refused for training and taken down the
post-training path; TensorFlow select ops named per variant."""
import json
import os

import numpy as np
import pytest
import yaml

from models import keras3
from tests.conftest import run_pipeline
from tests.models.test_keras3_intake import TWIN_MODULE


def k3():
    return keras3.keras3_module()


@pytest.fixture(scope="module")
def digits_arrays():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.images / 16.0).astype("float32")[..., None], d.target


def _trained(model, digits_arrays, epochs=4):
    x, y = digits_arrays
    logits = model.outputs[0]._keras_history.operation.get_config().get("activation") != "softmax"
    model.compile(k3().optimizers.Adam(3e-3),
                  k3().losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def _recipe(tmp_path, name, model_path, stages, export, **model):
    recipe = {"seed": 0, "model": {"name": str(model_path), **model},
              "data": {"source": "digits"}, "stages": stages, "export": export,
              "benchmark": {"num_runs": 5, "warmup_runs": 1}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture(scope="module")
def compressed_run(tmp_path_factory, digits_arrays):
    """A Keras 3 CNN (softmax, hard-swish, BatchNorm) through fine-tune -> prune -> PQAT -> int8."""
    tmp = tmp_path_factory.mktemp("k3run")
    keras = k3()
    keras.utils.set_random_seed(0)
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.Conv2D(32, 3, padding="same", activation="hard_silu")(L.ReLU()(x))
    x = L.Dense(64, activation="relu")(L.Flatten()(L.MaxPooling2D()(x)))
    model = _trained(keras.Model(inputs, L.Dense(10, activation="softmax")(x)), digits_arrays)
    model.save(tmp / "cnn.keras")
    stages = {"finetune": {"type": "train", "epochs": 1, "learning_rate": 0.0005},
              "prune": {"target_sparsity": 0.75, "epochs": 3, "learning_rate": 0.0005},
              "quantize": {"preserve": "sparsity", "epochs": 1}}
    recipe = _recipe(tmp, "k3", tmp / "cnn.keras", stages,
                     {"formats_by_stage": {"finetune": ["float32"], "quantize": ["int8"]}})
    result = run_pipeline(recipe, tmp / "run")
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    with open(tmp / "run" / "report.json") as f:
        return tmp / "run", json.load(f), result.stdout


def test_a_keras3_model_is_translated_compressed_and_exported(compressed_run):
    run, report, log = compressed_run
    origin = report["model"]["keras3"]
    assert origin["translated"] and origin["difference"] <= keras3.TOLERANCE
    assert origin["examples"] == 32
    assert "translated to tf_keras" in log
    variants = {v["name"]: v for v in report["variants"]}
    float32, int8 = variants["finetune_float32"], variants["quantize_int8"]
    assert "error" not in float32 and "error" not in int8
    assert int8["sparsity"] >= 0.73
    assert abs(int8["accuracy"] - float32["accuracy"]) <= 0.02
    assert float32["accuracy"] >= 0.9


def test_each_plain_stage_model_comes_back_as_keras3(compressed_run):
    run, report, _ = compressed_run
    from models import saved
    stages = {s["name"]: s for s in report["stages"]}
    x = np.random.default_rng(1).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    for name in ("finetune", "prune"):
        copy = stages[name]["keras3"]
        assert copy["path"] == f"{stages[name]['dir']}/model.keras"
        reloaded = k3().saving.load_model(run / copy["path"], compile=False)
        stage_model = saved.load(str(run / stages[name]["model_path"]))
        np.testing.assert_allclose(reloaded(x), stage_model.predict_on_batch(x), atol=1e-5)
    assert "QAT model" in stages["quantize"]["keras3"]["skipped"]
    assert not os.path.exists(run / stages["quantize"]["dir"] / "model.keras")
    report_md = (run / "report.md").read_text()
    assert "its model for Keras 3 is `01_finetune/model.keras`" in report_md


@pytest.fixture(scope="module")
def untranslatable(tmp_path_factory, digits_arrays):
    """A trained Keras 3 model with a custom layer whose tf_keras twin is not declared."""
    tmp = tmp_path_factory.mktemp("k3custom")
    module = tmp / "user_layers.py"
    module.write_text(TWIN_MODULE.replace('CUSTOM_OBJECTS = {"ScaledDense": ScaledDenseTf}', ""))
    from models import user
    objects = user.custom_objects_from(str(module))
    keras = k3()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    x = objects["ScaledDense"](32, name="scaled")(x)
    model = _trained(keras.Model(inputs, keras.layers.Dense(10)(x)), digits_arrays)
    model.save(tmp / "custom.keras")
    return tmp, module, model


def test_an_untranslatable_model_is_refused_for_training_before_anything_is_written(
        untranslatable):
    tmp, module, _ = untranslatable
    workdir = tmp / "existing"
    workdir.mkdir()
    (workdir / "keep.txt").write_text("an earlier run")
    recipe = _recipe(tmp, "train", tmp / "custom.keras", {"train": {"epochs": 1}},
                     {"formats": ["float32"]}, custom_objects=str(module))
    result = run_pipeline(recipe, workdir)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "scaled: custom Keras 3 layer ScaledDense has no tf_keras twin" in message
    assert "the training stages (train) need a tf_keras model" in message
    assert "as_is" in message
    assert sorted(os.listdir(workdir)) == ["keep.txt"]
    assert not [p for p in os.listdir(tmp) if p.startswith("existing.")]


def test_an_untranslatable_model_takes_the_post_training_path(untranslatable, digits_arrays):
    tmp, module, model = untranslatable
    recipe = _recipe(tmp, "as_is", tmp / "custom.keras", {"given": {"type": "as_is"}},
                     {"formats": ["float32", "dynamic_range", "int8", "int4_weights"]},
                     custom_objects=str(module))
    result = run_pipeline(recipe, tmp / "as_is_run", "export.doctor=true")
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    with open(tmp / "as_is_run" / "report.json") as f:
        report = json.load(f)
    assert report["model"]["keras3"]["translated"] is False
    assert list(report["model"]["keras3"]["blocking"]) == ["scaled"]
    stage = report["stages"][0]
    assert stage["model_path"] == "01_given/saved_model"
    variants = {v["format"]: v for v in report["variants"]}
    assert all("error" not in v for v in variants.values()), variants
    # The stage's accuracy is the Keras 3 model's own, and the float32 file agrees.
    x, y = digits_arrays
    assert variants["float32"]["accuracy"] == pytest.approx(stage["keras_accuracy"], abs=1e-9)
    assert variants["int8"]["accuracy"] >= stage["keras_accuracy"] - 0.03
    assert variants["int8"]["doctor"]["budget"]["kind"] == "max_drop_points"
    assert "post-training only" in (tmp / "as_is_run" / "report.md").read_text()


def test_tensorflow_select_ops_are_named_per_variant(tmp_path):
    keras = k3()

    class Erf(keras.layers.Layer):
        def call(self, x):
            return keras.ops.erf(x)

    inputs = keras.Input((8, 8, 1))
    x = Erf(name="erf")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(x)).export(str(tmp_path / "exported"),
                                                          verbose=False)
    recipe = _recipe(tmp_path, "flex", tmp_path / "exported", {"given": {"type": "as_is"}},
                     {"formats": ["float32"]})
    result = run_pipeline(recipe, tmp_path / "run")
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    with open(tmp_path / "run" / "report.json") as f:
        variant = json.load(f)["variants"][0]
    assert variant["flex_ops"] == ["Erf"]
    assert "Flex delegate" in variant["error"] and "not benchmarked" in variant["error"]
    assert os.path.isfile(tmp_path / "run" / variant["path"])
    assert "not on tflite-micro or tflite-runtime" in (tmp_path / "run" / "report.md").read_text()
