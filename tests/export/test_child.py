"""Child processes: a crash comes back as a reason, not as the pipeline's death."""
import os
import signal

from export import child


def test_success_returns_stdout():
    out, error = child.run(["-c", "print('ok')"], timeout=60, what="the test")
    assert (out.strip(), error) == ("ok", None)


def test_a_crash_is_reported_with_its_signal():
    out, error = child.run(["-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                           timeout=60, what="the benchmark")
    assert out is None and error == "the benchmark process crashed (SIGSEGV)"


def test_an_error_line_is_passed_on():
    _, error = child.run(["-c", "import sys; print('benchmark: error: bad file', file=sys.stderr);"
                                " sys.exit(2)"], timeout=60, what="the benchmark")
    assert error == "bad file"


def test_a_tools_exception_is_its_whole_message_on_one_line():
    """An uncaught exception whose message spans lines (Vela's RuntimeError ends with
    'Failed to parse TFLite file', which alone says nothing): all of it, one line,
    without the class name; a message printed after the traceback is not taken."""
    code = ("import sys; print('noise', file=sys.stderr); "
            "raise RuntimeError('Compilation failed: RESHAPE x is invalid\\n"
            " - elements must match\\nFailed to parse TFLite file')")
    _, error = child.run(["-c", code], timeout=60, what="Vela")
    assert error == ("Compilation failed: RESHAPE x is invalid - elements must match "
                     "Failed to parse TFLite file")


def test_a_hang_is_stopped():
    _, error = child.run(["-c", "import time; time.sleep(30)"], timeout=1, what="the converter")
    assert error == "the converter ran past 1 s and was stopped"


# A Server's child: answers each request with what it asks for.
SERVED = """
import os, signal, sys, time
from export import child

def handle(request):
    if request == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if request == "exit":
        print("greenlite: error: bad request", file=sys.stderr)
        sys.exit(2)
    if request == "hang":
        time.sleep(30)
    return os.getpid() if request == "pid" else request

child.serve(handle, int(sys.argv[1].removeprefix("--reply_fd=")))
"""


def test_a_server_keeps_its_child_and_a_failure_fails_only_its_request():
    server = child.Server(["-c", SERVED], "the converter")
    try:
        first, error = server.request("pid", timeout=60)
        assert error is None and server.request("pid", timeout=60) == (first, None)  # kept
        assert server.request({"jobs": [1, 2]}, timeout=60) == ({"jobs": [1, 2]}, None)
        assert server.request("crash", timeout=60) == (
            None, "the converter process crashed (SIGSEGV)")
        second, _ = server.request("pid", timeout=60)  # a fresh child
        assert second != first
        assert server.request("exit", timeout=60) == (None, "bad request")
        assert server.request("hang", timeout=1) == (
            None, "the converter ran past 1 s and was stopped")
        third, _ = server.request("pid", timeout=60)
        assert third not in (first, second, None)
        # A child gone between requests (killed, or with the thread that
        # started it) is replaced before the next request, which then succeeds.
        os.kill(third, signal.SIGKILL)
        server._proc.wait()
        fourth, error = server.request("pid", timeout=60)
        assert error is None and fourth not in (first, second, third)
    finally:
        server.stop()


def test_a_started_server_is_running_before_its_first_request(tmp_path):
    """`start` spawns the child at once (the converter imports TensorFlow while the
    stages train); the first request then finds it running, and is answered."""
    script = tmp_path / "echo.py"
    script.write_text("import sys\nfrom export import child\n"
                      "child.serve(lambda r: {'echo': r}, int(sys.argv[1].split('=')[1]))\n")
    server = child.Server([str(script)], "the echo")
    try:
        server.start()
        pid = server._proc.pid
        assert server._proc.poll() is None
        server.start()  # a no-op while it runs
        assert server._proc.pid == pid
        assert server.request({"x": 1}, timeout=60) == ({"echo": {"x": 1}}, None)
        assert server._proc.pid == pid
    finally:
        server.stop()
