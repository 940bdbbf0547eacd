"""The one place greenlite imports TensorFlow.

tfmot 0.8 works only with Keras 2 (the `tf_keras` package); Keras 3 objects
are rejected by its wrappers. TensorFlow picks its Keras when it is first
imported, so `TF_USE_LEGACY_KERAS=1` must be set before that, here, and every
module that needs TensorFlow, Keras or tfmot imports them from this module.
"""
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "TensorFlow was imported before pipeline.backend, without "
        "TF_USE_LEGACY_KERAS=1; import pipeline.backend first so that tfmot "
        "gets Keras 2 (tf_keras).")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# C++ INFO lines (oneDNN, missing CUDA) drown the progress output on CPUs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

__all__ = ["tf", "keras", "tfmot"]
