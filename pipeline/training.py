"""Compiling, fitting and evaluating classifiers; shared by the training stages."""
import dataclasses
import sys
from typing import Literal, Optional

import numpy as np

from pipeline.backend import keras
from pipeline.config import at_least, between

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@dataclasses.dataclass
class FitConfig:
    """Settings every stage that trains accepts."""
    epochs: int = dataclasses.field(default=10, metadata=at_least(1))
    batch_size: int = dataclasses.field(default=32, metadata=at_least(1))
    learning_rate: float = dataclasses.field(default=1e-3, metadata=between(0, 1, low_open=True))
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    # None trains for all epochs; N stops after N epochs without a better
    # validation loss and restores the best weights.
    early_stopping_patience: Optional[int] = dataclasses.field(default=None, metadata=at_least(1))


def outputs_probabilities(model):
    """True when the model ends in a softmax, False when it outputs logits."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax


def compile_classifier(model, cfg):
    """Compiles `model` for sparse categorical cross-entropy with `cfg`'s optimizer."""
    model.compile(
        optimizer=OPTIMIZERS[cfg.optimizer](learning_rate=cfg.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"])


def fit(model, data, cfg, ctx, callbacks=()):
    """Trains a compiled `model` on `data.train`, validating on `data.val`.

    Adds TensorBoard logs under the run directory and early stopping when
    configured. Returns the Keras History.
    """
    callbacks = list(callbacks)
    callbacks.append(keras.callbacks.TensorBoard(log_dir=ctx.tensorboard_dir, profile_batch=0))
    if cfg.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience,
            restore_best_weights=True))
    return model.fit(
        data.x_train, data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
        callbacks=callbacks,
        # A progress bar per batch on a terminal, one line per epoch in logs.
        verbose=1 if sys.stdout.isatty() else 2)


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of `model` on (x, y), as a fraction."""
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == y))
