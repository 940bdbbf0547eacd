"""Keras 3 files at the door: detection, custom layers with and without a tf_keras twin,
SavedModels from `model.export`, and one clear line for every file that will not do."""
import json
import os
import zipfile

import numpy as np
import pytest

import models
from benchmarks.architectures_keras3 import CUSTOM_LAYER_MODULE
from models import keras3, user
from pipeline.errors import ModelError

# A user's module: a Keras 3 custom layer, its tf_keras twin, and the line naming both.
TWIN_MODULE = CUSTOM_LAYER_MODULE


def k3():
    return keras3.keras3_module()


@pytest.fixture(scope="module")
def twin_module(tmp_path_factory):
    path = tmp_path_factory.mktemp("custom") / "user_layers.py"
    path.write_text(TWIN_MODULE)
    return str(path)


def _custom_model(module_path, seed=0):
    objects = user.custom_objects_from(module_path)
    keras = k3()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    x = objects["ScaledDense (Keras 3)"](16, name="scaled")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _cnn(seed=0, classes=10, shape=(8, 8, 1)):
    keras = k3()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes)(keras.layers.Flatten()(x)))


def test_keras3_files_are_told_from_tf_keras_ones(tmp_path):
    from pipeline.backend import keras as tf_keras
    _cnn().save(tmp_path / "k3.keras")
    _cnn().save(tmp_path / "k3.h5")
    _cnn().export(str(tmp_path / "exported"), verbose=False)
    inputs = tf_keras.Input((4,))
    tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs)).save(tmp_path / "tfk.keras")
    version = k3().__version__
    assert keras3.written_by(str(tmp_path / "k3.keras")) == version
    assert keras3.written_by(str(tmp_path / "k3.h5")) == version
    assert keras3.written_by(str(tmp_path / "exported")) == "saved_model"
    assert keras3.written_by(str(tmp_path / "tfk.keras")) is None
    for name in ("k3.keras", "k3.h5"):
        result = models.intake(str(tmp_path / name), (8, 8, 1), 10)
        assert result.keras3.translated and result.keras3.difference <= keras3.TOLERANCE
        assert result.model.count_params() == _cnn().count_params()


def test_a_custom_layer_with_a_declared_twin_translates(twin_module, tmp_path):
    path = tmp_path / "custom.keras"
    _custom_model(twin_module).save(path)
    objects = user.custom_objects_from(twin_module)
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype("float32")
    result = models.intake(str(path), (8, 8, 1), 10, custom_objects=objects, sample=x)
    assert type(result.model.get_layer("scaled")).__name__ == "ScaledDenseTf"
    np.testing.assert_allclose(result.model.predict_on_batch(x), result.source(x), atol=1e-5)


def test_a_custom_layer_without_a_twin_names_itself_and_keeps_the_source(twin_module, tmp_path):
    path = tmp_path / "custom.keras"
    _custom_model(twin_module).save(path)
    objects = {k: v for k, v in user.custom_objects_from(twin_module).items()
               if k != "ScaledDense"}  # the Keras 3 class only: no twin declared
    result = models.intake(str(path), (8, 8, 1), 10, custom_objects=objects)
    assert result.model is None and list(result.keras3.blocking) == ["scaled"]
    assert "custom Keras 3 layer ScaledDense has no tf_keras twin" in result.keras3.blocking["scaled"]
    assert result.usable is result.source
    with pytest.raises(ModelError, match="scaled: custom Keras 3 layer ScaledDense"):
        models.build(str(path), (8, 8, 1), 10, custom_objects=objects)


def test_a_savedmodel_from_model_export_is_a_post_training_source(tmp_path):
    model = _cnn()
    model.export(str(tmp_path / "exported"), verbose=False)
    result = models.intake(str(tmp_path / "exported"), (8, 8, 1), 10)
    assert result.model is None and isinstance(result.source, keras3.SavedModelSource)
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(result.source.predict_on_batch(x), model(x), atol=1e-6)
    assert result.source.count_params() == model.count_params()
    assert result.source.outputs_probabilities() is False


def _edited_zip(source, target, edit):
    with zipfile.ZipFile(source) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    edit(entries)
    with zipfile.ZipFile(target, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def test_files_that_will_not_do_get_one_line_each(tmp_path):
    good = tmp_path / "good.keras"
    _cnn().save(good)

    def newer(entries):
        entries["metadata.json"] = json.dumps({"keras_version": "3.99.0"}).encode()

    _edited_zip(good, tmp_path / "newer.keras", newer)
    _edited_zip(good, tmp_path / "no_weights.keras", lambda e: e.pop("model.weights.h5"))
    with zipfile.ZipFile(tmp_path / "torch.keras", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02")
        z.writestr("archive/version", b"3")
    (tmp_path / "noise.keras").write_bytes(os.urandom(256))
    cases = {
        "newer.keras": "written by Keras 3.99.0, newer than the installed Keras",
        "no_weights.keras": "without its weights",
        "torch.keras": "a PyTorch checkpoint",
        "noise.keras": "is not a .keras file",
    }
    for name, expected in cases.items():
        with pytest.raises(ModelError) as error:
            models.intake(str(tmp_path / name), (8, 8, 1), 10)
        assert expected in str(error.value), (name, str(error.value))
        assert "custom_objects" not in str(error.value)  # no class is missing here
        assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match=r"takes inputs of shape \(16, 16, 3\)"):
        _cnn(shape=(16, 16, 3)).save(tmp_path / "wide.keras")
        models.intake(str(tmp_path / "wide.keras"), (8, 8, 1), 10)
    with pytest.raises(ModelError, match="gives 4 outputs but the data has 10 classes"):
        _cnn(classes=4).save(tmp_path / "four.keras")
        models.intake(str(tmp_path / "four.keras"), (8, 8, 1), 10)
