"""Saving and loading the models stages hand to each other and to export.

Stage models are saved as HDF5 (`model.h5`), not the native `.keras` format:
tfmot's QAT models do not round-trip through `.keras` in tf_keras 2.21
(loading fails with "Layer 'quantize_layer' expected 5 variables, but
received 3"), while `.h5` round-trips them exactly, loads in a second
process, and saves in a fraction of the time a SavedModel takes.
"""
import os
import warnings


FILENAME = "model.h5"


def save(model, directory):
    """Saves `model` as `directory/model.h5`; returns the path."""
    path = os.path.join(directory, FILENAME)
    with warnings.catch_warnings():
        # "HDF5 ... is considered legacy": chosen on purpose, see the module docstring.
        warnings.filterwarnings("ignore", message=".*HDF5.*legacy")
        model.save(path, save_format="h5")
    return path


def load(path, custom_objects=None):
    """Loads a model saved by `save`, with tfmot's objects in scope.

    `custom_objects`: {class name: class} of every other custom object the
    model holds (the caller's: greenlite's and the user's own layers).
    """
    from pipeline.backend import keras, tfmot
    with tfmot.quantization.keras.quantize_scope(dict(custom_objects or {})):
        return keras.models.load_model(path, compile=False)
