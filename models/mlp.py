"""A Dense-heavy multilayer perceptron: the natural target of low-rank factorization."""
from pipeline.lazy_backend import keras


def build(input_shape, num_classes, units=(512, 512, 256), dropout=0.2, activation="relu"):
    """Returns an uncompiled functional MLP ending in logits.

    Args:
      input_shape: any shape; it is flattened.
      num_classes: number of output logits.
      units: widths of the hidden Dense layers (dense1, dense2, ...).
      dropout: dropout rate after each hidden layer.
      activation: activation of the hidden layers.
    """
    if not units or min(units) < 1 or not 0 <= dropout < 1:
        raise ValueError("expected units >= 1 and dropout in [0, 1)")
    inputs = keras.Input(shape=input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(units, 1):
        x = keras.layers.Dense(width, activation=activation, name=f"dense{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp")
