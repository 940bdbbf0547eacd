"""Runs converter and benchmark work in a child process, so a crash fails one variant.

The TFLite converter can abort (SIGABRT) and a malformed or hostile .tflite
file can crash an interpreter (SIGSEGV); either would take the whole pipeline
down in-process. The child's failure comes back as one line of text.

A child dies with its parent: on Linux it asks the kernel for SIGKILL when
the parent goes (prctl PR_SET_PDEATHSIG), so a run killed with kill -9 leaves
no converter behind to write into its run directory afterwards.
"""
import ctypes
import ctypes.util
import functools
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
# Looked up once, here in the parent: find_library may run ldconfig or a
# compiler, which must not happen in a forked child before exec.
_PRCTL = (ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
          if sys.platform.startswith("linux") else None)


def die_with_parent(parent_pid):
    """In a child, before exec: SIGKILL when the parent exits (Linux; a no-op elsewhere)."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, timeout, what, python=None, cwd=None):
    """Runs `python <args>` with greenlite importable.

    Args:
      args: arguments after the Python executable.
      timeout: seconds before the child is stopped.
      what: a noun for messages ("the converter", "the benchmark").
      python: another environment's interpreter (default: this one).
      cwd: the child's working directory (default: this one's).
    Returns:
      (stdout, None) on success, or (None, the reason it failed).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        result = subprocess.run([python or sys.executable] + list(args), capture_output=True,
                                text=True, timeout=timeout, env=env, cwd=cwd,
                                preexec_fn=functools.partial(die_with_parent, os.getpid()))
    except subprocess.TimeoutExpired:
        return None, f"{what} ran past {timeout} s and was stopped"
    if result.returncode == 0:
        return result.stdout, None
    if result.returncode < 0:
        return None, f"{what} process crashed ({signal.Signals(-result.returncode).name})"
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if not lines:
        return None, f"{what} process exited with status {result.returncode}"
    return None, lines[-1].removeprefix("greenlite: error: ").removeprefix("benchmark: error: ")
