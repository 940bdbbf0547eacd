"""Side environments: a library that clashes with TensorFlow 2.21 runs in a venv of its own.

tflite-runtime 2.14 needs numpy<2; tflite-support 0.4.4 needs protobuf<4 (TF
2.21 brings protobuf 7). Each gets a virtual environment under the user's
cache, made once (pip needs the package registry the first time) and driven
through a child process (export/child.py).

    python = side_env.ensure("~/.cache/greenlite/x", ["numpy<2", "pkg==1.0"], "pkg 1.0")
"""
import os
import subprocess
import sys

from pipeline.errors import GreenliteError

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "greenlite")


class SideEnvError(GreenliteError):
    """The environment cannot be made (offline, no wheel for this Python)."""


def ensure(env_dir, packages, what, hint=""):
    """Creates (once) a venv at `env_dir` holding `packages`; returns its Python.

    A marker file names the packages, so a changed list makes the
    environment again instead of trusting a stale one. Two processes asking
    at once (two runs, or a test and the run it starts) take turns on a lock
    file: the second waits and finds the environment made. `hint` is added
    to the message when pip fails (which Pythons have wheels, for instance).
    """
    python = os.path.join(env_dir, "bin", "python")
    marker = os.path.join(env_dir, ".greenlite-" + "_".join(
        p.replace("==", "-").replace("<", "lt").replace(">", "gt") for p in packages))
    if os.path.exists(marker):
        return python
    os.makedirs(os.path.dirname(os.path.abspath(env_dir)), exist_ok=True)
    with open(os.path.abspath(env_dir) + ".lock", "w") as lock:
        _lock(lock)
        if not os.path.exists(marker):
            _make(env_dir, python, packages, what, hint)
            open(marker, "w").close()
    return python


def _lock(f):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes


def _make(env_dir, python, packages, what, hint):
    # Few retries: offline (no registry) this fails in seconds, not minutes.
    steps = [[sys.executable, "-m", "venv", env_dir],
             [python, "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "20",
              "--disable-pip-version-check", *packages]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise SideEnvError(f"cannot set up {what} in {env_dir} (pip needs the package "
                               f"registry{hint}): {' '.join(step[:4])}...: {last}")
