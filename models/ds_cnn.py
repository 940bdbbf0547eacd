"""DS-CNN for keyword spotting (Zhang et al., "Hello Edge", 2017; MLPerf Tiny KWS).

Input: MFCC-like features, (49 frames, 10 coefficients, 1) in MLPerf Tiny.
A strided first convolution, then depthwise-separable blocks (3x3 depthwise,
1x1 pointwise, each with batch norm and ReLU), average pooling and a Dense head.
"""
from pipeline.lazy_backend import keras

# Keras' default 0.99 needs hundreds of steps before the moving statistics
# are usable; on small edge datasets (13 steps per epoch) evaluation then
# sits at chance while training accuracy is 100%. 0.9 settles in ~50 steps.
BN_MOMENTUM = 0.9


def build(input_shape, num_classes, filters=64, blocks=4, first_kernel=(10, 4), dropout=0.2):
    """Returns an uncompiled functional DS-CNN ending in logits.

    Args:
      input_shape: (time, features, 1).
      num_classes: number of keywords (MLPerf Tiny: 12).
      filters: channels of every block (64 is the "small" DS-CNN).
      blocks: depthwise-separable blocks after the first convolution.
      first_kernel: kernel of the first, stride-2 convolution.
      dropout: dropout before the classifier.
    """
    if len(input_shape) != 3 or filters < 1 or blocks < 0:
        raise ValueError("expected input_shape (time, features, channels), filters >= 1, blocks >= 0")
    inputs = keras.Input(shape=input_shape, name="features")
    x = keras.layers.Conv2D(filters, first_kernel, strides=2, padding="same", use_bias=False,
                            name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for i in range(1, blocks + 1):
        x = _separable_block(x, filters, f"block{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def _separable_block(x, filters, name):
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_dw_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(x)
    return keras.layers.ReLU(name=f"{name}_pw_relu")(x)
