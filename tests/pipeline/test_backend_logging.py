"""Runs' logs carry no TensorFlow retracing notes unless --verbose (GREENLITE_VERBOSE=1)."""
import os
import subprocess
import sys

from tests.conftest import ROOT

# Five differently shaped inputs to one tf.function: TensorFlow's own retracing
# warning, printed to stderr by its logger.
SCRIPT = """
from pipeline.backend import tf
f = tf.function(lambda x: x * 2)
for n in range(1, 8):
    f(tf.zeros([n]))
m = tf.function(lambda x: x + 1)
for n in range(1, 8):
    m(tf.ones([n, 2]))
print("done")
"""


def _stderr(verbose):
    env = dict(os.environ, PYTHONPATH=ROOT, GREENLITE_VERBOSE="1" if verbose else "0",
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.stdout.strip() == "done", result.stderr[-2000:]
    return result.stderr


def test_retracing_notes_are_muted_and_verbose_keeps_them():
    assert "triggered tf.function retracing" in _stderr(verbose=True)
    assert "triggered tf.function retracing" not in _stderr(verbose=False)
