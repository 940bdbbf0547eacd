"""The architectures of benchmarks/architectures.py, built with Keras 3 (`import keras`).

The same names, sizes and defaults as the tf_keras builds, made the way a
2026 user makes them: `keras.applications` of Keras 3 with `weights=None`,
Sequential and functional models of `keras.layers`, and a custom Keras 3
layer whose tf_keras twin its module declares (CUSTOM_LAYER_MODULE).
greenlite translates each to tf_keras (models/keras3.py).
"""
from models.keras3 import keras3_module


def _keras():
    return keras3_module()


def mobilenet_v2(input_shape, classes, softmax=True):
    return _keras().applications.MobileNetV2(
        input_shape=input_shape, alpha=0.35, weights=None, classes=classes,
        classifier_activation="softmax" if softmax else None)


def mobilenet_v3_small(input_shape, classes, softmax=True, preprocessing=False):
    # include_preprocessing=False by default: greenlite's data is already scaled to [0, 1].
    return _keras().applications.MobileNetV3Small(
        input_shape=input_shape, alpha=0.75, weights=None, classes=classes,
        include_preprocessing=preprocessing, classifier_activation="softmax" if softmax else None)


def efficientnet_b0(input_shape, classes, softmax=True):
    return _keras().applications.EfficientNetB0(
        input_shape=input_shape, weights=None, classes=classes,
        classifier_activation="softmax" if softmax else None)


def resnet(input_shape, classes, softmax=True):
    """ResNet50's bottleneck blocks and stem (keras.applications.resnet), 2 stages of 1-2 blocks."""
    from keras.src.applications import resnet as resnet_lib

    def stack_fn(x):
        x = resnet_lib.stack_residual_blocks_v1(x, 16, 2, stride1=1, name="conv2")
        return resnet_lib.stack_residual_blocks_v1(x, 32, 1, name="conv3")

    return resnet_lib.ResNet(stack_fn, False, True, name="resnet_small", weights=None,
                             input_shape=input_shape, classes=classes,
                             classifier_activation="softmax" if softmax else None)


def densenet(input_shape, classes, softmax=True):
    """DenseNet121's dense blocks and transitions (keras.applications.densenet), blocks [2, 2, 2, 2]."""
    from keras.src.applications import densenet as densenet_lib
    return densenet_lib.DenseNet([2, 2, 2, 2], weights=None, input_shape=input_shape,
                                 classes=classes,
                                 classifier_activation="softmax" if softmax else None)


def sequential(input_shape, classes, softmax=True):
    keras = _keras()
    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(16, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.2),
        layers.Dense(classes, activation="softmax" if softmax else None),
    ], name="sequential_cnn")


def functional_logits(input_shape, classes, softmax=False):
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="functional_logits")


CUSTOM_LAYER_MODULE = '''
"""A user's custom Keras 3 layer and its tf_keras twin, declared through model.custom_objects."""
import keras
import tf_keras


@keras.saving.register_keras_serializable("user")
class ScaledDense(keras.layers.Layer):
    """Dense with a learnt per-unit output scale (Keras 3)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

    def call(self, x):
        return keras.ops.relu(keras.ops.matmul(x, self.kernel) * self.scale)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@tf_keras.utils.register_keras_serializable("user")
class ScaledDenseTf(tf_keras.layers.Layer):
    """The same layer for tf_keras: the twin greenlite trains and converts."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
        self.scale = self.add_weight("scale", (self.units,), initializer="ones")

    def call(self, x):
        return tf_keras.activations.relu(x @ self.kernel * self.scale)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


CUSTOM_OBJECTS = {"ScaledDense": ScaledDenseTf}
'''


def custom_layer(input_shape, classes, softmax=True, module=None):
    """A CNN with a user-defined Keras 3 layer; `module`: {name: class} of CUSTOM_LAYER_MODULE."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    x = module["ScaledDense (Keras 3)"](32, name="scaled_dense")(x)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="custom_layer_cnn")


ARCHITECTURES = {
    "mobilenet_v2": mobilenet_v2, "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0, "resnet": resnet, "densenet": densenet,
    "sequential": sequential, "functional_logits": functional_logits,
    "custom_layer": custom_layer,
}


def save(name, path, input_shape, classes, custom_module_path=None):
    """Builds architecture `name` with Keras 3 and saves it as a .keras file; returns its
    parameter count."""
    builder = ARCHITECTURES[name]
    if name == "custom_layer":
        from models import user
        model = builder(tuple(input_shape), classes,
                        module=user.custom_objects_from(str(custom_module_path)))
    else:
        model = builder(tuple(input_shape), classes)
    model.save(str(path))
    return model.count_params()
