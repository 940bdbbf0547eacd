"""Runs converter and benchmark work in a child process, so a crash fails one variant.

The TFLite converter can abort (SIGABRT) and a malformed or hostile .tflite
file can crash an interpreter (SIGSEGV); either would take the whole pipeline
down in-process. The child's failure comes back as one line of text.

A child dies with its parent: on Linux it asks the kernel for SIGKILL when
the parent goes (prctl PR_SET_PDEATHSIG), so a run killed with kill -9 leaves
no converter behind to write into its run directory afterwards.

`run` starts a child for one piece of work; `Server` keeps one for many
requests, so that a process making many runs (a search, the tests) pays the
child's start-up (a TensorFlow import: seconds) once, with each request still
isolated: a crash fails the request it hit, and the next starts a fresh child.
"""
import ctypes
import ctypes.util
import functools
import json
import os
import select
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

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
    try:
        result = subprocess.run([python or sys.executable] + list(args), capture_output=True,
                                text=True, timeout=timeout, env=_env(), cwd=cwd,
                                preexec_fn=functools.partial(die_with_parent, os.getpid()))
    except subprocess.TimeoutExpired:
        return None, f"{what} ran past {timeout} s and was stopped"
    if result.returncode == 0:
        return result.stdout, None
    return None, _reason(result.returncode, result.stderr, what)


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _reason(returncode, stderr, what):
    """One line: why a child that exited with `returncode` failed."""
    if returncode < 0:
        return f"{what} process crashed ({signal.Signals(-returncode).name})"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return f"{what} process exited with status {returncode}"
    if "Traceback (most recent call last):" in lines:
        # A tool's uncaught exception (Vela's RuntimeError): its message may span
        # several lines, the last of which alone says little ("Failed to parse
        # TFLite file"). Keep the whole message, as one line, without the class.
        after = lines[len(lines) - lines[::-1].index("Traceback (most recent call last):"):]
        first = next((i for i, line in enumerate(after) if _EXCEPTION.match(line)), None)
        if first is not None:
            message = [_EXCEPTION.sub("", after[first])] + after[first + 1:]
            return " ".join(" ".join(line.split()) for line in message)
    return lines[-1].removeprefix("greenlite: error: ").removeprefix("benchmark: error: ")


# "RuntimeError: ..." / "ethosu.vela.errors.VelaError: ..." at a traceback's end.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): ")


class Server:
    """A child process kept for many requests: `python <args> --reply_fd=N`.

    Each request is one JSON line on the child's stdin; the child answers
    with one JSON line on its own pipe (fd N), see `serve`. Its stdout and
    stderr go to an unnamed temporary file, read back for the reason of a
    failure. A child that crashed, was stopped or is gone (it dies with the
    thread that started it) is started afresh at the next request.
    """

    def __init__(self, args, what, python=None, cwd=None):
        """`python`: another environment's interpreter (a side environment's); `cwd`: the
        child's working directory (default: this one's)."""
        self.args, self.what = list(args), what
        self.python, self.cwd = python, cwd
        self._proc = None
        self._lock = threading.Lock()

    def start(self):
        """Starts the child now, if it is not running (else at the first request)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def request(self, payload, timeout):
        """Sends `payload`; returns (the reply, None) or (None, why the child failed)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            since = os.fstat(self._log.fileno()).st_size
            try:
                self._proc.stdin.write((json.dumps(payload) + "\n").encode())
                self._proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died: the read below says how
            reply, deadline = b"", time.monotonic() + timeout
            while not reply.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                    self.stop()
                    return None, f"{self.what} ran past {timeout} s and was stopped"
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:  # the child is gone
                    returncode = self._proc.wait()
                    size = os.fstat(self._log.fileno()).st_size
                    stderr = os.pread(self._log.fileno(), size - since, since).decode(
                        errors="replace")
                    self.stop()
                    return None, _reason(returncode, stderr, self.what)
                reply += chunk
            return json.loads(reply), None

    def _start(self):
        self.stop()
        read_end, write_end = os.pipe()
        # Appending: the child's writes go to the end whatever the parent reads.
        self._log = tempfile.TemporaryFile("a+b")
        try:
            self._proc = subprocess.Popen(
                [self.python or sys.executable] + self.args + [f"--reply_fd={write_end}"],
                stdin=subprocess.PIPE, stdout=self._log, stderr=self._log, env=_env(),
                cwd=self.cwd,
                pass_fds=(write_end,),
                preexec_fn=functools.partial(die_with_parent, os.getpid()))
        finally:
            os.close(write_end)
        self._replies = read_end

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Stops the child, if any (the next request starts another)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdin.close()
        os.close(self._replies)
        self._log.close()
        self._proc = None


def serve(handle, reply_fd):
    """The child's side of `Server`: `handle(request)` for each request line on
    stdin, its (JSON) result written to `reply_fd`; returns at end of input."""
    with os.fdopen(reply_fd, "wb", buffering=0) as replies:
        for line in sys.stdin.buffer:
            if line.strip():
                replies.write((json.dumps(handle(json.loads(line))) + "\n").encode())
