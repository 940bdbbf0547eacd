"""MobileNetV2 from tf_keras' applications, with random or local weights (never downloaded)."""
import os

from pipeline.lazy_backend import keras


def build(input_shape, num_classes, alpha=0.35, weights_path=None, dropout=0.0, bn_momentum=0.9):
    """Returns an uncompiled MobileNetV2 classifier ending in logits.

    Args:
      input_shape: (height, width, 3); 96x96 to 224x224 are the usual edge sizes.
      num_classes: number of output logits.
      alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
      weights_path: an optional local .h5 of weights for this exact architecture;
        nothing is ever fetched from the internet.
      dropout: dropout rate before the classifier.
      bn_momentum: batch-norm momentum (see below).
    """
    if len(input_shape) != 3 or min(input_shape[:2]) < 32:
        raise ValueError(f"input_shape {tuple(input_shape)}: MobileNetV2 needs (h, w, c) "
                         "images of at least 32x32")
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"weights_path {weights_path!r} does not exist")
    base = keras.applications.MobileNetV2(
        input_shape=tuple(input_shape), alpha=alpha, include_top=False, weights=None,
        pooling="avg")
    x = base.output
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(base.input, outputs, name=f"mobilenet_v2_{alpha}")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # keras.applications uses 0.999, which takes thousands of steps to
            # settle: on small datasets evaluation then sits at chance.
            layer.momentum = bn_momentum
    if weights_path:
        model.load_weights(weights_path)
    return model
