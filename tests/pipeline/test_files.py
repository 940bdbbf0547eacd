"""pipeline.files: a reader sees the old file or the new one, never a partial one.

The interruption tests kill a real writer (SIGKILL) while its bytes are going
to disk. Writing in place (open(path, "wb")) fails them: the target is caught
half-written.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.files import atomic_directory, atomic_write_bytes, atomic_write_text
from tests.conftest import ROOT

SIZE = 256 * 1024 * 1024  # big enough that the write takes a while

WRITER = """
import sys
from pipeline.files import atomic_write_bytes
data = b"N" * int(sys.argv[2])
print("ready", flush=True)
atomic_write_bytes(sys.argv[1], data)
"""


def _kill_while_writing(target, directory):
    """Starts a writer of SIZE bytes into `target` and SIGKILLs it as soon as a file
    in `directory` (the target or a temporary beside it) is partly written."""
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(SIZE)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    caught = False
    while time.monotonic() < deadline and child.poll() is None:
        sizes = [entry.stat().st_size for entry in os.scandir(directory) if entry.is_file()]
        if any(0 < s < SIZE for s in sizes):
            child.send_signal(signal.SIGKILL)
            caught = True
            break
    child.wait()
    if not caught:
        pytest.skip("the writer finished before it could be caught mid-write")
    assert child.returncode == -signal.SIGKILL


def test_a_write_killed_midway_leaves_the_old_file(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old model")
    _kill_while_writing(target, tmp_path)
    assert target.read_bytes() == b"old model"


def test_a_write_killed_midway_leaves_no_file_where_there_was_none(tmp_path):
    target = tmp_path / "report.json"
    _kill_while_writing(target, tmp_path)
    assert not target.exists()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")

    class Unwritable:
        def __len__(self):
            return 1

    with pytest.raises(TypeError):
        atomic_write_bytes(target, Unwritable())
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["report.md"]


def test_write_replaces_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "notes.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second ✓")
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert sorted(os.listdir(target.parent)) == ["notes.txt"]


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "01_train"
    with atomic_directory(target) as tmp:
        (open(os.path.join(tmp, "model.h5"), "w")).write("v1")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (open(os.path.join(tmp, "model.h5"), "w")).write("half")
            raise RuntimeError("the stage failed")
    assert (target / "model.h5").read_text() == "v1"
    with atomic_directory(target) as tmp:
        (open(os.path.join(tmp, "other.txt"), "w")).write("v2")
    assert sorted(os.listdir(target)) == ["other.txt"]  # nothing of v1 left
    assert sorted(os.listdir(tmp_path)) == ["01_train"]  # no .tmp- or .old- debris
