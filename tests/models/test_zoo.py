"""The model zoo registry."""
import pytest

import models
from pipeline.errors import ModelError


# A small input each zoo model accepts.
INPUTS = {"digits_cnn": (8, 8, 1), "mobilenet_v2": (32, 32, 3), "mlp": (8, 8, 1),
          "ds_cnn": (49, 10, 1), "resnet8": (32, 32, 3), "tiny_transformer": (16,)}


def test_every_zoo_model_has_a_test_input():
    assert sorted(INPUTS) == sorted(models.MODELS)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_model_is_an_uncompiled_functional_model_ending_in_logits(name):
    from pipeline.backend import keras
    model = models.build(name, INPUTS[name], 10)
    assert isinstance(model, keras.Model) and model._is_graph_network  # functional
    assert model.optimizer is None
    assert model.output_shape[-1] == 10 and model.output_shape[0] is None
    assert model.layers[-1].activation is keras.activations.linear


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError, match="unknown model 'resnet'; known models: digits_cnn, "
                                         "ds_cnn, mlp, mobilenet_v2, resnet8, tiny_transformer"):
        models.build("resnet", (8, 8, 1), 10)


def test_unknown_option_lists_the_options():
    with pytest.raises(ModelError, match="model.options.depth: digits_cnn has no such option; "
                                         "its options: width, dense_units, dropout"):
        models.build("digits_cnn", (8, 8, 1), 10, {"depth": 3})


def test_bad_option_value():
    with pytest.raises(ModelError, match="rejected"):
        models.build("digits_cnn", (8, 8, 1), 10, {"width": -1})


def test_mobilenet_v2_rejects_tiny_inputs():
    with pytest.raises(ModelError, match="needs \\(h, w, c\\) images of at least 32x32"):
        models.build("mobilenet_v2", (8, 8, 1), 10)


# Trained, converted to int8 and run in the interpreter elsewhere, so not
# again here (each costs 20-70 s of the suite): mobilenet_v2 in
# tests/pipeline/test_run_edge_recipes.py (mobilenet_v2_images), ds_cnn in
# tests/pipeline/test_deploy.py (the kws_ds_cnn recipe), tiny_transformer in
# tests/pipeline/test_attention.py and tests/pipeline/test_run_text.py.
COVERED_ELSEWHERE = {"mobilenet_v2", "ds_cnn", "tiny_transformer"}


@pytest.mark.parametrize("name", sorted(set(models.MODELS) - COVERED_ELSEWHERE))
def test_zoo_model_trains_exports_and_runs_in_the_interpreter(name, tmp_path):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from export.convert import convert
    from pipeline.backend import keras
    keras.utils.set_random_seed(0)
    model = models.build(name, INPUTS[name], 4)
    rng = np.random.default_rng(0)
    if name == "tiny_transformer":  # token ids in, a target per position
        x = rng.integers(0, 4, (8,) + INPUTS[name]).astype(np.int32)
        y = rng.integers(0, 4, (8,) + INPUTS[name])
    else:
        x = rng.random((8,) + INPUTS[name], dtype=np.float32)
        y = np.arange(8) % 4
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # one step
    for fmt in ("float32", "int8"):
        interpreter = Interpreter(model_content=convert(model, fmt, x))
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        feed = x[:1]
        if fmt == "int8" and detail["dtype"] == np.int8:
            scale, zero_point = detail["quantization"]
            feed = np.clip(np.round(feed / scale + zero_point), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert out.shape == (1,) + model.output_shape[1:], (name, fmt)
        if fmt == "float32":
            np.testing.assert_allclose(out, model.predict(x[:1], verbose=0), atol=1e-3)
