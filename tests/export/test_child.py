"""Child processes: a crash comes back as a reason, not as the pipeline's death."""
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


def test_a_hang_is_stopped():
    _, error = child.run(["-c", "import time; time.sleep(30)"], timeout=1, what="the converter")
    assert error == "the converter ran past 1 s and was stopped"
