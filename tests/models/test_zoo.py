"""The model zoo registry."""
import pytest

import models
from pipeline.errors import ModelError


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_model_is_an_uncompiled_functional_model_ending_in_logits(name):
    from pipeline.backend import keras
    model = models.build(name, (8, 8, 1), 10)
    assert isinstance(model, keras.Model) and model._is_graph_network  # functional
    assert model.optimizer is None
    assert model.output_shape == (None, 10)
    assert model.layers[-1].activation is keras.activations.linear


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError, match="unknown model 'resnet'; known models: digits_cnn"):
        models.build("resnet", (8, 8, 1), 10)


def test_unknown_option_lists_the_options():
    with pytest.raises(ModelError, match="model.options.depth: digits_cnn has no such option; "
                                         "its options: width, dense_units, dropout"):
        models.build("digits_cnn", (8, 8, 1), 10, {"depth": 3})


def test_bad_option_value():
    with pytest.raises(ModelError, match="rejected"):
        models.build("digits_cnn", (8, 8, 1), 10, {"width": -1})
