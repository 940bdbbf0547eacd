"""Saving and loading the models stages hand to each other and to export.

Stage models are saved as HDF5 (`model.h5`), not the native `.keras` format:
tfmot's QAT models do not round-trip through `.keras` in tf_keras 2.21
(loading fails with "Layer 'quantize_layer' expected 5 variables, but
received 3"), while `.h5` round-trips them exactly, loads in a second
process, and saves in a fraction of the time a SavedModel takes.

A model on the post-training path (a Keras 3 model that could not be
translated to tf_keras, or a SavedModel the user gave) is saved as a
TensorFlow SavedModel directory, `saved_model/`, which the converter reads.
"""
import os
import warnings


FILENAME = "model.h5"
SAVED_MODEL = "saved_model"


def save(model, directory):
    """Saves `model` as `directory/model.h5` (a tf_keras model) or `directory/saved_model/`
    (a Keras 3 model or a SavedModel source on the post-training path); returns the path."""
    from models import keras3
    if isinstance(model, keras3.SavedModelSource):
        import shutil
        path = os.path.join(directory, SAVED_MODEL)
        shutil.copytree(model.path, path)
        return path
    if is_keras3(model):
        return keras3.export_saved_model(model, os.path.join(directory, SAVED_MODEL))
    path = os.path.join(directory, FILENAME)
    with warnings.catch_warnings():
        # "HDF5 ... is considered legacy": chosen on purpose, see the module docstring.
        warnings.filterwarnings("ignore", message=".*HDF5.*legacy")
        model.save(path, save_format="h5")
    return path


def is_keras3(model):
    """True for a model of the Keras 3 package (not tf_keras)."""
    import sys
    keras3 = sys.modules.get("keras")
    return keras3 is not None and isinstance(model, keras3.Model)


def load(path, custom_objects=None):
    """Loads a model saved by `save`, with tfmot's objects in scope.

    `custom_objects`: {class name: class} of every other custom object the
    model holds (the caller's: greenlite's and the user's own layers). A
    SavedModel directory comes back as a `models.keras3.SavedModelSource`.
    """
    if os.path.isdir(path):
        from models import keras3
        return keras3.SavedModelSource(path)
    from pipeline.backend import keras, tfmot
    with tfmot.quantization.keras.quantize_scope(dict(custom_objects or {})):
        return keras.models.load_model(path, compile=False)
