"""Keras 3 models rebuilt as tf_keras ones: each architecture users bring, built with
`import keras`, saved as .keras, translated, and checked for equal outputs.

Weights are perturbed before saving (BatchNorm's moving statistics, biases,
gammas all away from their initial values) and the outputs are logits where
the architecture allows it: a translation that swaps two weights of a layer,
drops a setting or computes an activation another way then gives outputs
that differ, which untrained, softmax-squashed outputs could hide.
"""
import os

import numpy as np
import pytest

from models import keras3
from models.keras3_layers import UntranslatableError
from pipeline.errors import ModelError

SHAPE = (16, 16, 3)


def k3():
    return keras3.keras3_module()


def _perturbed(model, seed=0):
    """`model` with every weight moved by noise of its own scale (variances kept > 0)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([np.abs(w + rng.normal(0, 0.2, w.shape)).astype(w.dtype) + 0.1
                               if "variance" in v.path else
                               (w + rng.normal(0, 0.2 * (np.std(w) + 0.1), w.shape)).astype(w.dtype)
                               for w, v in zip(weights, layer.weights)])
    return model


def sequential():
    L = k3().layers
    return k3().Sequential([
        k3().Input(SHAPE), L.Conv2D(8, 3, padding="same", use_bias=False),
        L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(8, 3, activation="hard_silu"), L.GlobalAveragePooling2D(), L.Dropout(0.2),
        L.Dense(4, activation="softmax")], name="k3_sequential")


def every_layer():
    """One functional model holding each layer and activation the issue names."""
    keras = k3()
    L = keras.layers
    inputs = keras.Input(SHAPE)
    x = L.Rescaling(1 / 2.0, offset=-0.1)(inputs)
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 0.5])(x)
    x = L.Resizing(12, 12)(x)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="silu")(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="gelu")(x)
    y = L.Conv2D(8, 1)(x)
    x = L.Add()([x, y])
    x = L.Multiply()([x, L.Activation("hard_sigmoid")(x)])
    x = L.BatchNormalization()(x)
    x = L.LayerNormalization()(x)
    x = L.GroupNormalization(groups=2, name="group_norm")(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(1)(x)
    x = L.UpSampling2D()(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="leaky_relu")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.SpatialDropout2D(0.1)(x)
    x = L.Concatenate()([x, x * 2.0])
    x = L.Reshape((-1, 8))(x)
    x = L.Permute((2, 1))(x)
    x = L.Conv1D(4, 3, activation="tanh")(x)
    x = L.DepthwiseConv1D(3, activation="sigmoid")(x)
    x = L.LeakyReLU(negative_slope=0.05)(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="hard_swish")(x)
    return keras.Model(inputs, L.Dense(4)(x), name="k3_every_layer")


def attention():
    keras = k3()
    L = keras.layers
    inputs = keras.Input((12,), dtype="int32")
    x = L.Embedding(50, 16)(inputs)
    x = L.LayerNormalization()(x + L.MultiHeadAttention(2, 8)(x, x, use_causal_mask=True))
    x = L.EinsumDense("abc,cd->abd", output_shape=(None, 16), bias_axes="d",
                      activation="relu")(x)
    x = keras.ops.mean(x, axis=1)
    return keras.Model(inputs, L.Dense(50)(x), name="k3_attention")


def nested():
    keras = k3()
    backbone = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(4, 3),
                                 keras.layers.GlobalMaxPooling2D()], name="backbone")
    inputs = keras.Input(SHAPE)
    return keras.Model(inputs, keras.layers.Dense(4)(backbone(inputs) + 1.0), name="k3_nested")


def _application(name, **options):
    from benchmarks import architectures_keras3
    builder = architectures_keras3.ARCHITECTURES[name]
    return lambda: builder((32, 32, 3), 4, softmax=False, **options)


ARCHITECTURES = {
    **{f.__name__: f for f in (sequential, every_layer, attention, nested)},
    # keras.applications: MobileNetV3 with its own preprocessing (a Rescaling
    # expecting 0-255) and hard-swish made of keras.ops.
    **{name: _application(name) for name in ("mobilenet_v2", "efficientnet_b0", "resnet",
                                             "densenet")},
    "mobilenet_v3_small": _application("mobilenet_v3_small", preprocessing=True),
}


def _inputs(model, seed, count=6):
    spec = model.inputs[0]
    rng = np.random.default_rng(seed)
    shape = (count,) + tuple(spec.shape[1:])
    if "int" in str(spec.dtype):
        return rng.integers(0, 50, shape).astype("int32")
    high = 255.0 if model.name.lower().startswith("mobilenetv3") else 1.0
    return rng.uniform(0, high, shape).astype("float32")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_architecture_translates_to_equal_outputs(name, tmp_path):
    path = tmp_path / f"{name}.keras"
    _perturbed(ARCHITECTURES[name]()).save(path)
    assert keras3.written_by(str(path)) == k3().__version__
    source = keras3.load(str(path))
    translation = keras3.to_tf_keras(source)
    from pipeline.backend import keras as tf_keras
    assert isinstance(translation.model, tf_keras.Model)
    assert keras3.verify(source, translation, _inputs(source, 0)) <= keras3.TOLERANCE
    # Inputs the check did not see, compared independently of `verify`.
    x = _inputs(source, 1)
    expected = np.asarray(source(x, training=False), np.float64)
    got = translation.model.predict_on_batch(x).astype(np.float64)
    assert np.std(expected) > 1e-3  # outputs that vary, so a wrong weight would show
    assert np.max(np.abs(expected - got)) <= 1e-4 * (np.ptp(expected) + 1e-9)
    assert translation.model.count_params() == source.count_params()


def test_activations_that_differ_between_the_two_kerases():
    """Keras 3's hard_sigmoid is relu6(x+3)/6 and its leaky_relu slope 0.2; tf_keras'
    hard_sigmoid is clip(0.2x+0.5) and its LeakyReLU slope 0.3. Each must come out as
    Keras 3 computes it."""
    keras = k3()
    x = np.linspace(-6, 6, 49, dtype="float32")[:, None]
    for activation in ("hard_sigmoid", "hard_silu", "leaky_relu", "relu6", "gelu", "silu",
                       "log_softmax"):
        inputs = keras.Input((1,))
        model = keras.Model(inputs, keras.layers.Activation(activation)(
            keras.layers.Dense(3, kernel_initializer="ones", activation=activation)(inputs)))
        translated = keras3.to_tf_keras(model).model
        np.testing.assert_allclose(translated.predict_on_batch(x), model(x), atol=1e-6,
                                   err_msg=activation)


def test_a_mistranslated_layer_is_named():
    source = every_layer()
    translation = keras3.to_tf_keras(source)
    layer = translation.model.get_layer("group_norm")
    layer.set_weights([w * 1.5 + 0.3 for w in layer.get_weights()])
    with pytest.raises(ModelError, match=r"first layer whose outputs differ: group_norm$"):
        keras3.verify(source, translation, _inputs(source, 0))


def test_settings_tf_keras_cannot_hold_are_refused_by_name():
    keras = k3()
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, lora_rank=2, name="dense")(inputs)
    x = keras.layers.LayerNormalization(rms_scaling=True, name="layer_normalization")(x)
    model = keras.Model(inputs, keras.layers.Activation("softsign")(x))
    found = keras3.blockers(model)
    assert "lora" in found["dense"].lower()
    assert "rms_scaling=True" in found["layer_normalization"]
    assert "softsign" not in found  # an activation both compute alike
    with pytest.raises(UntranslatableError, match="dense: Dense has lora_rank=2"):
        keras3.to_tf_keras(model)


def test_a_shared_layer_stays_one_layer():
    keras = k3()
    shared = keras.layers.Dense(3, name="shared")
    a, b = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([a, b], keras.layers.Add()([shared(a), shared(b)]))
    translated = keras3.to_tf_keras(model).model
    assert [l.name for l in translated.layers].count("shared") == 1
    x = [np.ones((2, 4), "float32"), np.arange(8, dtype="float32").reshape(2, 4)]
    np.testing.assert_allclose(translated.predict_on_batch(x), model(x), atol=1e-6)


def test_intake_refuses_a_translation_that_computes_otherwise(monkeypatch, tmp_path):
    """The near-miss a table could hold: tf_keras' hard_sigmoid taken for Keras 3's.
    The check on data catches it and names the layer, before any stage runs."""
    import models
    from models import keras3_layers
    keras = k3()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(4, activation="hard_sigmoid", name="gate")(
        keras.layers.Flatten()(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(tmp_path / "gate.keras")
    monkeypatch.setitem(keras3_layers.SAME_ACTIVATIONS, "hard_sigmoid", "hard_sigmoid")
    sample = np.random.default_rng(0).uniform(0, 4, (16, 8, 8, 1)).astype("float32")
    with pytest.raises(ModelError, match=r"differs from the original by .* first layer whose "
                                         r"outputs differ: gate$"):
        models.intake(str(tmp_path / "gate.keras"), (8, 8, 1), 10, sample=sample)


def test_a_keras3_copy_that_computes_otherwise_is_not_written(monkeypatch, tmp_path):
    from models import keras3_layers
    from pipeline.backend import keras as tf_keras
    inputs = tf_keras.Input((4,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3, activation="hard_sigmoid")(inputs))
    x = np.random.default_rng(0).uniform(-4, 4, (8, 4)).astype("float32")
    with pytest.raises(UntranslatableError, match="hard_sigmoid.*computes differently"):
        keras3.save_keras3(model, str(tmp_path / "m.keras"), x)
    monkeypatch.setitem(keras3_layers.SAME_ACTIVATIONS_BACK, "hard_sigmoid", "hard_sigmoid")
    with pytest.raises(ModelError, match="Keras 3 copy of .* differs from it"):
        keras3.save_keras3(model, str(tmp_path / "m.keras"), x)
    assert not os.path.exists(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []  # nothing half-written beside it either
