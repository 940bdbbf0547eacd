"""Small builds of the Keras architectures users bring, for tests and benchmarks.

Each builder returns an uncompiled tf_keras model made the way a user makes
it: `keras.applications` with `weights=None` and the library's defaults
(BatchNorm momentum 0.999 included), or a Sequential / functional model of
the kind tutorials write. Sizes are cut down (input, width, depth) where the
library allows it, so the whole family runs in seconds; the layer patterns
(depthwise convolutions, hard-swish, squeeze-excite, residual Adds,
concatenations, BatchNorm after every convolution) are the library's own.

`ARCHITECTURES` maps a name to (builder, what it exercises). The builders
whose code is the same in both Kerases take `keras=`, the module to build
with (tf_keras by default; benchmarks/architectures_keras3.py passes Keras 3).
"""
from pipeline.backend import keras as tf_keras


def mobilenet_v2(input_shape, classes, softmax=True, keras=tf_keras):
    return keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=0.35, weights=None, classes=classes,
        classifier_activation="softmax" if softmax else None)


def mobilenet_v3_small(input_shape, classes, softmax=True, keras=tf_keras, preprocessing=False):
    # include_preprocessing=False by default: greenlite's data is already scaled to [0, 1].
    return keras.applications.MobileNetV3Small(
        input_shape=input_shape, alpha=0.75, weights=None, classes=classes,
        include_preprocessing=preprocessing,
        classifier_activation="softmax" if softmax else None)


def efficientnet_b0(input_shape, classes, softmax=True, keras=tf_keras):
    return keras.applications.EfficientNetB0(
        input_shape=input_shape, weights=None, classes=classes,
        classifier_activation="softmax" if softmax else None)


def resnet(input_shape, classes, softmax=True):
    """ResNet50's bottleneck blocks and stem (keras.applications.resnet), 2 stages of 1-2 blocks."""
    from tf_keras.src.applications import resnet as resnet_lib

    def stack_fn(x):
        x = resnet_lib.stack1(x, 16, 2, stride1=1, name="conv2")
        return resnet_lib.stack1(x, 32, 1, name="conv3")

    return resnet_lib.ResNet(stack_fn, False, True, "resnet_small", weights=None,
                             input_shape=input_shape, classes=classes,
                             classifier_activation="softmax" if softmax else None)


def densenet(input_shape, classes, softmax=True):
    """DenseNet121's dense blocks and transitions (keras.applications.densenet), blocks [2, 2, 2, 2]."""
    from tf_keras.src.applications import densenet as densenet_lib
    return densenet_lib.DenseNet([2, 2, 2, 2], weights=None, input_shape=input_shape,
                                 classes=classes,
                                 classifier_activation="softmax" if softmax else None)


def sequential(input_shape, classes, softmax=True, keras=tf_keras):
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


def functional_logits(input_shape, classes, softmax=False, keras=tf_keras):
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="functional_logits")


CUSTOM_LAYER_MODULE = '''
"""A user's custom layer, declared to greenlite through model.custom_objects."""
import tf_keras as keras


@keras.utils.register_keras_serializable("user")
class ScaledDense(keras.layers.Layer):
    """Dense with a learnt per-unit output scale."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
        self.scale = self.add_weight("scale", (self.units,), initializer="ones")

    def call(self, x):
        return keras.activations.relu(x @ self.kernel * self.scale)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
'''


def custom_layer(input_shape, classes, softmax=True, module=None, keras=tf_keras):
    """A CNN with a user-defined layer; `module.ScaledDense` is its class (for `keras`)."""
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    x = module.ScaledDense(32, name="scaled_dense")(x)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, outputs, name="custom_layer_cnn")


ARCHITECTURES = {
    "mobilenet_v2": (mobilenet_v2, "keras.applications MobileNetV2 (depthwise, ReLU6, residual)"),
    "mobilenet_v3_small": (mobilenet_v3_small, "MobileNetV3Small (hard-swish, squeeze-excite)"),
    "efficientnet_b0": (efficientnet_b0, "EfficientNetB0 (swish, squeeze-excite, dropout)"),
    "resnet": (resnet, "ResNet50's bottleneck blocks (residual Add)"),
    "densenet": (densenet, "DenseNet121's dense blocks (Concatenate)"),
    "sequential": (sequential, "a Sequential CNN ending in softmax"),
    "functional_logits": (functional_logits, "a functional CNN ending in logits"),
    "custom_layer": (custom_layer, "a custom layer declared in model.custom_objects"),
}


def save(name, path, input_shape, classes, custom_module_path=None):
    """Builds architecture `name` and saves it as a .keras file; returns its parameter count."""
    builder = ARCHITECTURES[name][0]
    if name == "custom_layer":
        from models import user
        module = user.custom_objects_from(str(custom_module_path))
        model = builder(tuple(input_shape), classes,
                        module=type("M", (), {"ScaledDense": module["ScaledDense"]}))
    else:
        model = builder(tuple(input_shape), classes)
    model.save(str(path))
    return model.count_params()


def main():
    import argparse
    parser = argparse.ArgumentParser(description="Save one of the architectures as a .keras file.")
    parser.add_argument("name", choices=sorted(ARCHITECTURES))
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument("--input_shape", default="96,96,3")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--custom_module", help="a .py file holding CUSTOM_LAYER_MODULE (custom_layer)")
    parser.add_argument("--keras", type=int, choices=(2, 3), default=2,
                        help="build with tf_keras (2) or Keras 3 (benchmarks/architectures_keras3.py)")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.input_shape.split(","))
    if args.keras == 3:
        from benchmarks import architectures_keras3
        params = architectures_keras3.save(args.name, args.out, shape, args.classes,
                                           args.custom_module)
    else:
        params = save(args.name, args.out, shape, args.classes, args.custom_module)
    print(f"wrote {args.out}: {args.name}, input {shape}, {args.classes} classes, {params:,} parameters")


if __name__ == "__main__":
    main()
