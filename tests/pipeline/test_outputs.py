"""Probabilities or logits, read from the graph through every wrapper a stage puts on."""
import pytest

from pipeline.backend import keras, tfmot
from pipeline.outputs import output_op, outputs_probabilities


def _model(kind):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    if kind == "dense_softmax":
        outputs = keras.layers.Dense(10, activation="softmax")(x)
    elif kind == "activation_layer":
        outputs = keras.layers.Activation("softmax")(keras.layers.Dense(10)(x))
    elif kind == "softmax_layer":
        outputs = keras.layers.Softmax()(keras.layers.Dense(10)(x))
    else:
        outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


def _wrapped(model, wrapper):
    if wrapper == "none":
        return model
    if wrapper == "pruned":
        return tfmot.sparsity.keras.prune_low_magnitude(model)
    if wrapper == "clustered":
        return tfmot.clustering.keras.cluster_weights(
            model, number_of_clusters=4,
            cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR)
    if wrapper == "qat":
        return tfmot.quantization.keras.quantize_model(model)
    if wrapper == "functional_shell":
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, model(inputs))
    raise ValueError(wrapper)


@pytest.mark.parametrize("wrapper", ["none", "pruned", "clustered", "qat", "functional_shell"])
@pytest.mark.parametrize("kind, probabilities", [
    ("dense_softmax", True), ("activation_layer", True), ("softmax_layer", True),
    ("logits", False)])
def test_softmax_or_logits_under_every_wrapper(kind, probabilities, wrapper):
    # A check of model.layers[-1].activation fails here for every wrapper but "none".
    assert outputs_probabilities(_wrapped(_model(kind), wrapper)) is probabilities


def test_sequential_and_keras_applications():
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    assert outputs_probabilities(sequential)
    mobilenet = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, weights=None, classes=3)
    assert output_op(mobilenet) == "Softmax"
    logits = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, weights=None, classes=3,
                                            classifier_activation=None)
    assert not outputs_probabilities(logits)
