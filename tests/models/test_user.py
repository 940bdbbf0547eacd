"""The user's own saved model: formats, the Lambda refusal, custom layers, shape checks."""
import json
import os

import numpy as np
import pytest

import models
from models import user
from pipeline.backend import keras
from pipeline.errors import ModelError
from tests.conftest import run_pipeline

CUSTOM_LAYER = '''
from pipeline.backend import keras, tf


class Scale(keras.layers.Layer):
    """Multiplies by a constant: a custom layer a user might write."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''


def _lambda_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "saved_model_dir"])
def test_each_format_loads(trained_model, digits, tmp_path, filename):
    path = str(tmp_path / filename)
    trained_model.save(path, **({"save_format": "tf"} if filename.endswith("dir") else {}))
    model = models.build(path, (8, 8, 1), 10)
    np.testing.assert_allclose(model.predict(digits.test.x[:8], verbose=0),
                               trained_model.predict(digits.test.x[:8], verbose=0), atol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_unless_trusted(tmp_path, suffix):
    path = str(tmp_path / f"lambda{suffix}")
    _lambda_model().save(path)
    with pytest.raises(ModelError, match=r"contains Lambda layer\(s\) \['double'\], which run "
                                         r"Python code stored in the file"):
        models.build(path, (8, 8, 1), 10)
    model = models.build(path, (8, 8, 1), 10, trust_model_code=True)
    assert model.get_layer("double") is not None


def test_custom_layers_come_from_the_declared_module(tmp_path):
    module = tmp_path / "my_layers.py"
    module.write_text(CUSTOM_LAYER)
    objects = user.custom_objects_from(str(module))
    assert list(objects) == ["Scale"]
    inputs = keras.Input((8, 8, 1))
    x = objects["Scale"](3.0, name="scale")(keras.layers.Flatten()(inputs))
    path = str(tmp_path / "custom.keras")
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(path)
    with pytest.raises(ModelError, match="declare the module that defines 'Scale' in "
                                         "model.custom_objects"):
        models.build(path, (8, 8, 1), 10)
    model = models.build(path, (8, 8, 1), 10, custom_objects=objects)
    assert model.get_layer("scale").factor == 3.0


@pytest.mark.parametrize("shape, classes, message", [
    ((4, 4, 1), 10, r"takes inputs of shape \(8, 8, 1\) but the data's examples have shape \(4, 4, 1\)"),
    ((8, 8, 1), 3, "gives 10 outputs but the data has 3 classes"),
])
def test_a_model_that_does_not_fit_the_data(trained_model, tmp_path, shape, classes, message):
    path = str(tmp_path / "m.keras")
    trained_model.save(path)
    with pytest.raises(ModelError, match=message):
        models.build(path, shape, classes)


def test_a_model_of_two_inputs_or_two_outputs_is_one_line_saying_what_is_supported(tmp_path):
    """An image and a scalar in: the message counts the inputs, names each with its
    shape and says what greenlite runs (the old one said "inputs of shape None")."""
    image, scalar = keras.Input((8, 8, 1), name="image"), keras.Input((1,), name="scalar")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), scalar])
    two_in = str(tmp_path / "two_in.h5")
    keras.Model([image, scalar], keras.layers.Dense(10)(joined)).save(two_in)
    with pytest.raises(ModelError) as error:
        models.build(two_in, (8, 8, 1), 10)
    assert str(error.value) == (
        f"model.name: {two_in!r} has 2 inputs (image [8, 8, 1], scalar [1]); greenlite "
        "trains, compresses and exports models of one input (each data source gives one "
        "array per example); `greenlite benchmark` runs a converted file of several inputs")
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    two_out = str(tmp_path / "two_out.h5")
    keras.Model(inputs, [keras.layers.Dense(10)(flat), keras.layers.Dense(1)(flat)]).save(two_out)
    with pytest.raises(ModelError, match=r"has 2 outputs; greenlite trains and scores models "
                                         "of one output"):
        models.build(two_out, (8, 8, 1), 10)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ModelError, match="'/no/such/model.keras' does not exist"):
        models.build("/no/such/model.keras", (8, 8, 1), 10)
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(ModelError, match=r"is not a .keras file \(those are zip archives\): it "
                                         "is a file of 9 bytes in no model format"):
        models.build(str(fake), (8, 8, 1), 10)
    weights_only = tmp_path / "w.h5"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(str(weights_only))
    with pytest.raises(ModelError, match="without a model config"):
        models.build(str(weights_only), (2,), 1)


def test_a_users_keras_model_through_prune_qat_int8(trained_model, tmp_path):
    """The user_model recipe on a .keras file the test saves: figures land in the report."""
    path = tmp_path / "mine.keras"
    trained_model.save(str(path))
    workdir = tmp_path / "run"
    result = run_pipeline("user_model", workdir, f"model.name={path}", "finetune.epochs=1",
                          "prune.epochs=2", "quantize.epochs=1", "benchmark.num_runs=5",
                          "export.formats_by_stage={quantize: [int8]}")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    assert report["recipe"]["model"]["name"] == str(path)
    int8 = next(v for v in report["variants"] if v["format"] == "int8")
    assert int8["sparsity"] >= 0.49 and int8["accuracy"] > 0.8
    assert os.path.isfile(workdir / int8["path"])


SUBCLASSED = '''
from pipeline.backend import keras


class MyNet(keras.Model):
    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.flat = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.out = keras.layers.Dense(classes)

    def call(self, x):
        return self.out(self.hidden(self.flat(x)))

    def get_config(self):
        return {"classes": self.classes}
'''


@pytest.fixture()
def subclassed(tmp_path):
    module = tmp_path / "mynet.py"
    module.write_text(SUBCLASSED)
    net = user.custom_objects_from(str(module))["MyNet"]()
    net(np.zeros((1, 8, 8, 1), np.float32))
    path = tmp_path / "mynet.keras"
    net.save(str(path))
    return str(path), str(module)


def test_a_subclassed_model_trains_exports_and_quantizes_after_training(subclassed, tmp_path):
    path, module = subclassed
    model = models.build(path, (8, 8, 1), 10, custom_objects=user.custom_objects_from(module))
    assert model._is_graph_network and type(model.layers[-1]).__name__ == "MyNet"
    workdir = tmp_path / "run"
    result = run_pipeline("default", workdir, f"model.name={path}", f"model.custom_objects={module}",
                          "train.epochs=3", "export.formats=[float32, int8]",
                          "benchmark.check_tflite_runtime=false")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    assert all("error" not in v for v in report["variants"])
    assert {v["format"] for v in report["variants"]} == {"float32", "int8"}


def test_pruning_a_subclassed_model_says_why_not(subclassed, tmp_path):
    path, module = subclassed
    result = run_pipeline("prune_qat", tmp_path / "run", f"model.name={path}",
                          f"model.custom_objects={module}", "prune.layers=null", "train.epochs=1")
    assert result.returncode == 2
    assert ("stages.prune: no layer of the model can be pruned; skipped: 1 layer, MyNet: a "
            "subclassed model inside this one; tfmot cannot wrap the layers it holds (my_net"
            ) in result.stderr
