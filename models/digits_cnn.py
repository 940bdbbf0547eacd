"""A small CNN for 8x8 (or similar small) grayscale images such as the digits.

Two 3x3 convolutions, a max-pool and a Dense head: about 151k parameters at
width 1.0 on 8x8 inputs. Most weights sit in the first Dense layer, which is
what pruning, clustering and low-rank factorization act on.
"""
from pipeline.lazy_backend import keras


def build(input_shape, num_classes, width=1.0, dense_units=128, dropout=0.3):
    """Returns an uncompiled functional CNN ending in logits.

    Args:
      input_shape: (height, width, channels) of one example.
      num_classes: number of output logits.
      width: multiplies the number of convolution filters (32 and 64).
      dense_units: units of the hidden Dense layer.
      dropout: dropout rate before the output layer.
    """
    if width <= 0 or dense_units < 1 or not 0 <= dropout < 1:
        raise ValueError("expected width > 0, dense_units >= 1 and dropout in [0, 1)")
    filters = [max(1, round(32 * width)), max(1, round(64 * width))]
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense1")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")
