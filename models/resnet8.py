"""ResNet-8 for small images (MLPerf Tiny image classification, CIFAR-10 sized).

A 3x3 stem, three residual stacks of two 3x3 convolutions each (16, 32 and
64 filters; the last two stride 2 with a 1x1 projection shortcut), average
pooling and a Dense head.
"""
from pipeline.lazy_backend import keras

# Keras' default 0.99 needs hundreds of steps before the moving statistics
# are usable; on small edge datasets (13 steps per epoch) evaluation then
# sits at chance while training accuracy is 100%. 0.9 settles in ~50 steps.
BN_MOMENTUM = 0.9


def build(input_shape, num_classes, filters=(16, 32, 64)):
    """Returns an uncompiled functional ResNet-8 ending in logits.

    Args:
      input_shape: (height, width, channels), 32x32x3 in MLPerf Tiny.
      num_classes: number of output logits.
      filters: channels of the stem/first stack and the two strided stacks.
    """
    if len(input_shape) != 3 or len(filters) != 3 or min(filters) < 1:
        raise ValueError("expected input_shape (h, w, c) and three filter counts >= 1")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i, (f, stride) in enumerate(zip(filters, (1, 2, 2)), 1):
        x = _residual(x, f, stride, f"stack{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def _residual(x, filters, stride, name):
    shortcut = x
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_shortcut")(x)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu2")(y)
