"""The one place greenlite imports TensorFlow.

tfmot 0.8 works only with Keras 2 (the `tf_keras` package); Keras 3 objects
are rejected by its wrappers. TensorFlow picks its Keras when it is first
imported, so `TF_USE_LEGACY_KERAS=1` must be set before that, here, and every
module that needs TensorFlow, Keras or tfmot imports them from this module.

TensorFlow's C++ start-up lines ("All log messages before
absl::InitializeLog()", "failed call to cuInit" on a machine without a GPU)
are written by absl before TF_CPP_MIN_LOG_LEVEL is read, so they are muted
here by pointing file descriptor 2 at /dev/null during the import and the
first device probe. `GREENLITE_VERBOSE=1` (the CLI's --verbose) keeps them.
"""
import contextlib
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "TensorFlow was imported before pipeline.backend, without "
        "TF_USE_LEGACY_KERAS=1; import pipeline.backend first so that tfmot "
        "gets Keras 2 (tf_keras).")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
VERBOSE = os.environ.get("GREENLITE_VERBOSE") == "1"
# C++ INFO/WARNING/ERROR lines (oneDNN, missing CUDA) drown the progress output on CPUs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if VERBOSE else "3")


@contextlib.contextmanager
def _stderr_muted(mute):
    """Sends file descriptor 2 (C++ logging included) to /dev/null inside the block."""
    if not mute:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _stderr_muted(not VERBOSE):
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402
    import tensorflow_model_optimization as tfmot  # noqa: E402
    tf.config.list_physical_devices("GPU")  # probes CUDA now, while muted

__all__ = ["tf", "keras", "tfmot"]


class _NoRetracingNotes:
    """Drops TensorFlow's "N out of the last N calls to <function ...> triggered
    tf.function retracing" warnings: Keras' predict/evaluate on data of a new
    shape or a fresh model retraces by design in a pipeline that makes many
    models, and the advice in the warning is for hand-written tf.functions."""

    @staticmethod
    def filter(record):
        return "triggered tf.function retracing" not in record.getMessage()


if not VERBOSE:
    tf.get_logger().addFilter(_NoRetracingNotes)
    # TensorFlow's Python INFO lines (a "Sharding callback duration" per
    # checkpoint that BackupAndRestore writes every epoch) are noise in a run's log.
    tf.get_logger().setLevel("WARNING")
    from absl import logging as absl_logging  # they reach absl's handler under app.run
    absl_logging.set_verbosity(absl_logging.WARNING)
