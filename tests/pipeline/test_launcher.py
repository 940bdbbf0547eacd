"""The local multi-worker launcher, with stand-in workers (a real run: tests/pipeline/test_distribute.py)."""
import io
import json
import os
import sys
import time

import pytest

from pipeline import launcher

# A stand-in worker: prints its TF_CONFIG task, then worker 1 fails and the
# others would wait for it forever (as a real worker waits in a collective op).
WORKER = """
import json, os, signal, sys, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
print("task", task["index"], json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"], flush=True)
if task["index"] == 1:
    print("ValueError: worker one met bad data", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)
open(os.path.join(sys.argv[1], f"alive-{os.getpid()}"), "w").close()
time.sleep(120)
"""


@pytest.mark.parametrize("how, status, why", [("exit", 3, "exit status 3"),
                                              ("kill", 2, "killed by signal 9")])
def test_a_failing_worker_stops_the_others_and_is_named(how, status, why, tmp_path, capsys):
    out = io.StringIO()
    start = time.perf_counter()
    assert launcher.launch([sys.executable, "-c", WORKER, str(tmp_path), how], 3, out=out) == status
    assert time.perf_counter() - start < 60  # not the survivors' 120 s
    lines = out.getvalue().splitlines()
    assert any(line.startswith("[worker 0] task 0 ['localhost:") for line in lines)
    assert "[worker 1] ValueError: worker one met bad data" in lines
    error = capsys.readouterr().err
    assert error.count("greenlite: error:") == 1
    assert (f"worker 1 failed ({why}): ValueError: worker one met bad data; "
            "stopped worker(s)") in error
    for marker in tmp_path.iterdir():  # the survivors are gone
        pid = int(marker.name.split("-")[1])
        deadline = time.time() + 10
        while time.time() < deadline and _alive(pid):
            time.sleep(0.1)
        assert not _alive(pid)


def test_every_worker_gets_its_own_index_in_one_cluster():
    out = io.StringIO()
    code = "import os; print(os.environ['TF_CONFIG'])"
    assert launcher.launch([sys.executable, "-c", code], 2, ports=[4001, 4002], out=out) == 0
    configs = sorted((json.loads(line.split("] ", 1)[1]) for line in out.getvalue().splitlines()
                      if line.startswith("[worker")), key=lambda c: c["task"]["index"])
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0},
                                            {"type": "worker", "index": 1}]
    assert all(c["cluster"] == {"worker": ["localhost:4001", "localhost:4002"]} for c in configs)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split()[2] != "Z"
