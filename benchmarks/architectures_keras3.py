"""The architectures of benchmarks/architectures.py, built with Keras 3 (`import keras`).

The same names, sizes and defaults as the tf_keras builds, made the way a
2026 user makes them: `keras.applications` of Keras 3 with `weights=None`,
Sequential and functional models of `keras.layers`, and a custom Keras 3
layer whose tf_keras twin its module declares (CUSTOM_LAYER_MODULE).
greenlite translates each to tf_keras (models/keras3.py).
"""
from benchmarks import architectures
from models.keras3 import keras3_module


def _keras():
    return keras3_module()


def _shared(builder):
    """The tf_keras build's code, with Keras 3's layers (the same API there)."""
    def build(input_shape, classes, softmax=builder.__defaults__[0], **options):
        return builder(input_shape, classes, softmax, keras=_keras(), **options)
    build.__name__, build.__doc__ = builder.__name__, builder.__doc__
    return build


mobilenet_v2 = _shared(architectures.mobilenet_v2)
mobilenet_v3_small = _shared(architectures.mobilenet_v3_small)
efficientnet_b0 = _shared(architectures.efficientnet_b0)
sequential = _shared(architectures.sequential)
functional_logits = _shared(architectures.functional_logits)


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
    shadowed = type("M", (), {"ScaledDense": module["ScaledDense (Keras 3)"]})
    return architectures.custom_layer(input_shape, classes, softmax, module=shadowed,
                                      keras=_keras())


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
