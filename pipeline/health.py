"""Training health: a Keras callback that catches a run going nowhere.

* A loss that becomes NaN or infinite stops the stage at the end of that
  epoch with a clear message (Keras' TerminateOnNaN would stop silently and let the run go on).
* Validation accuracy stuck at chance while training accuracy rises is
  reported as soon as it is seen, with its likely causes: most often
  BatchNormalization layers with a momentum near 1 (keras.applications uses
  0.999) and few steps per epoch, whose moving statistics have not caught up
  with the weights, so inference-mode outputs are garbage.
* A classifier whose validation accuracy *ends* at chance fails the stage
  unless the stage sets `allow_chance: true`.
"""
import math

import numpy as np

from pipeline.backend import keras
from pipeline.errors import GreenliteError

# Validation accuracy within this many points of chance counts as "at chance".
CHANCE_MARGIN = 0.05
# Training accuracy this far above chance counts as "learning".
LEARNING_MARGIN = 0.2


def chance_accuracy(labels, num_classes):
    """Accuracy of always answering the most common class (1/num_classes if unknown)."""
    if labels is None or len(labels) == 0:
        return 1.0 / num_classes
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    return float(counts.max() / counts.sum())


def batchnorm_momenta(model):
    """The momentum of every BatchNormalization layer (nested models and wrappers included)."""
    found = []
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(float(layer.momentum))
    return found


# BatchNorm's moving statistics are judged settled after this many time
# constants (1 / (1 - momentum) steps each): the diagnosis below and `auto` agree.
SETTLING_CONSTANTS = 10
# `auto` lowers a momentum no further than this (Keras' own default is 0.99).
LOWEST_AUTO_MOMENTUM = 0.9


def settle_batchnorm(model, steps, stage):
    """model.batchnorm_momentum: auto. Lowers the momentum of BatchNorm layers whose
    moving statistics would not settle within `steps` (the first training stage's),
    before any step; returns the line saying what it found and did, or None."""
    import models
    momenta = batchnorm_momenta(model)
    if not momenta or not steps:
        return None
    slowest = max(momenta)
    if steps >= SETTLING_CONSTANTS / (1 - slowest):
        return None
    chosen = round(max(LOWEST_AUTO_MOMENTUM, 1 - SETTLING_CONSTANTS / steps), 4)
    if chosen >= slowest:
        return None
    changed = models.set_batchnorm_momentum(model, chosen)
    note = (f"{changed} BatchNormalization layer(s) had momentum {slowest:g}, whose moving "
            f"statistics need about {int(round(SETTLING_CONSTANTS / (1 - slowest))):,} steps "
            f"to settle; stage {stage} trains {steps:,}: momentum set to {chosen:g} "
            "(model.batchnorm_momentum: auto; a number sets it, keep keeps the model's)")
    if steps < SETTLING_CONSTANTS / (1 - chosen):
        note += f"; even at {chosen:g} they settle only after about " \
                f"{int(round(SETTLING_CONSTANTS / (1 - chosen)))} steps: train longer"
    return note


class TrainingHealth(keras.callbacks.Callback):
    """Checks the loss every batch and validation accuracy every epoch.

    Args:
      where: the stage's recipe path, for messages ("stages.train").
      chance: validation accuracy of guessing (None: not a classifier, no check).
      steps_per_epoch: training steps per epoch, for the BatchNorm diagnosis.
      allow_chance: accept a model that ends at chance.
      log: prints one line.
    """

    def __init__(self, where, chance, steps_per_epoch, allow_chance=False, log=print):
        super().__init__()
        self.where, self.chance, self.steps = where, chance, steps_per_epoch
        self.allow_chance, self.log = allow_chance, log
        self.warned = False
        self.epoch = 0
        self.last = {}

    def on_epoch_end(self, epoch, logs=None):
        # Checked per epoch, not per batch: reading the loss every batch would
        # synchronise every step. A NaN in any batch makes the epoch's mean NaN.
        self.epoch = epoch + 1
        self.last = dict(logs or {})
        loss = self.last.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise GreenliteError(
                f"{self.where}: the training loss became {float(loss)} in epoch {epoch + 1}; "
                "the stage stopped (earlier stages are kept). Lower "
                f"{self.where}.learning_rate, or check the inputs for NaN or infinite values")
        val_loss = self.last.get("val_loss")
        if val_loss is not None and not math.isfinite(float(val_loss)):
            # The epoch's training loss is the mean over its steps, taken before
            # the last update: weights that the last step made NaN show only here.
            raise GreenliteError(
                f"{self.where}: the validation loss became {float(val_loss)} in epoch "
                f"{epoch + 1} (training loss {float(loss):.4g}); {self.nonfinite_weights()}. "
                "The stage stopped (earlier stages are kept)")
        if self.chance is None or self.warned:
            return
        val, train = self.last.get("val_accuracy"), self.last.get("accuracy")
        if val is None or train is None:
            return
        if val <= self.chance + CHANCE_MARGIN and train >= self.chance + LEARNING_MARGIN:
            self.warned = True
            self.log(f"WARNING {self.where}: validation accuracy {val:.4f} is at chance "
                     f"({self.chance:.4f}) while training accuracy reached {train:.4f} "
                     f"(epoch {epoch + 1}). {self.diagnosis()}")

    def on_train_end(self, logs=None):
        val = self.last.get("val_accuracy")
        if self.chance is None or val is None or self.allow_chance:
            return
        if val <= self.chance + CHANCE_MARGIN:
            raise GreenliteError(
                f"{self.where}: validation accuracy ended at {val:.4f}, at chance "
                f"({self.chance:.4f}) after {self.epoch} epoch(s). {self.diagnosis()} "
                f"Set {self.where}.allow_chance: true to accept such a model")

    def nonfinite_weights(self):
        """Where the model's weights went NaN or infinite, with what to change."""
        bad = [layer.name for layer in getattr(self.model, "layers", ())
               if any(not np.isfinite(w.numpy()).all() for w in layer.weights)]
        if not bad:
            return ("the weights are finite, so the validation inputs hold NaN or infinite "
                    "values")
        # Not "lower the learning rate" alone: EfficientNetB0's QAT went NaN at 1e-6
        # as at 1e-4 (its gradients overflowed, and Adam turns an infinite gradient
        # into a NaN step at any rate).
        return (f"the weights of {len(bad)} layer(s) are no longer finite ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}): a training step overflowed (its "
                f"gradients, or its update: a lower {self.where}.learning_rate helps with the "
                "second)")

    def diagnosis(self):
        """Likely causes, with the setting that fixes each."""
        momenta = batchnorm_momenta(self.model) if self.model is not None else []
        slow = [m for m in momenta if m >= 0.99]
        causes = []
        if slow and self.steps * self.epoch < SETTLING_CONSTANTS / (1 - max(slow)):
            causes.append(
                f"{len(slow)} BatchNormalization layer(s) have momentum {max(slow):g} and "
                f"training ran {self.steps} steps per epoch: their moving statistics need about "
                f"{int(round(3 / (1 - max(slow))))} steps to settle, so inference uses stale "
                "ones; set model.batchnorm_momentum: 0.9 (or train longer)")
        causes.append(f"a learning rate too high for fine-tuning ({self.where}.learning_rate)")
        causes.append("validation data unlike the training data (preprocessing, label order)")
        return "Likely causes: " + "; ".join(causes) + "."
