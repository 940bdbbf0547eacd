"""A run owns its directory: replaced whole, debris of a killed run cleaned, no orphans."""
import json
import os
import signal
import subprocess
import sys
import time

from pipeline import rundir
from tests.conftest import ROOT, run_pipeline

FAST = ["train.epochs=2", "benchmark.num_runs=5", "benchmark.warmup_runs=0",
        "benchmark.check_tflite_runtime=false", "data.representative_samples=20",
        "deploy.micro=false", "deploy.metadata=false"]


def _state_and_parent(pid):
    """(state letter, parent pid) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # pid (comm) state ppid ...: comm may hold spaces, so split after it.
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
    except OSError:
        return None
    return state, int(ppid)


def _alive(pid):
    """The process exists and is not a zombie."""
    found = _state_and_parent(pid)
    return found is not None and found[0] != "Z"


def _converters_of(parent):
    """Live (not zombie) converter processes whose parent is `parent`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        stat = _state_and_parent(pid)
        if stat and stat[0] != "Z" and stat[1] == parent and "export.convert" in cmdline:
            found.append(int(pid))
    return found


def test_kill_9_during_export_leaves_no_process_and_resume_redoes_the_export(tmp_path):
    workdir = tmp_path / "killed"
    marker = f"--workdir={workdir}"
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--recipe=recipes/default.yaml", marker]
        + [a for o in FAST + ["export.formats=[float32, float16, int8]"] for a in ("--set", o)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in run.stdout:
        if "converting 3 variant(s)" in line:
            break
    time.sleep(1.0)  # the converter child is running now
    staging = [f for f in os.listdir(tmp_path) if f.startswith(".tmp-killed-")]
    assert len(staging) == 1
    children = _converters_of(run.pid)
    assert children, "expected the run's converter child"
    run.send_signal(signal.SIGKILL)
    run.wait()
    # An orphaned converter would finish its work and write the file; one that
    # died with the run writes nothing.
    deadline = time.time() + 60
    while any(map(_alive, children)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, children))
    assert not (tmp_path / staging[0] / "export" / "train_float32.tflite").exists()
    assert not workdir.exists()  # nothing was swapped in

    # --resume: the trained stage is reused, the export done again (a plain
    # rerun removes the debris instead: test_debris_of_a_live_run_is_left_alone;
    # a rerun over a finished run replaces it whole: tests/pipeline/test_run.py).
    again = run_pipeline("default", workdir, *FAST, "export.formats=[float32, int8]",
                         resume=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resume: taking over the killed run's directory" in again.stdout
    assert "[stage 1/1] train: reused from the earlier run" in again.stdout
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".tmp-", ".old-"))]
    # Only this run's exports: the killed run's float16 is gone with its export directory.
    assert sorted(f for f in os.listdir(workdir / "export") if f.endswith(".tflite")) == [
        "train_float32.tflite", "train_int8.tflite"]
    events = [f for _, _, files in os.walk(workdir / "tensorboard") for f in files]
    assert len([f for f in events if "tfevents" in f]) == 2  # the reused stage's logs stay
    bench = json.loads((workdir / "export" / "train_int8.benchmark.json").read_text())
    assert bench["model"] == os.path.join("export", "train_int8.tflite")


def test_a_run_failing_midway_leaves_the_previous_run_untouched(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "report.json").write_text('{"earlier": true}')
    # One epoch of a fresh model is at chance: bad input found mid-run.
    result = run_pipeline("prune_qat", workdir, "train.epochs=1",
                          "train.early_stopping_patience=null", "train.learning_rate=0.00001",
                          "prune.epochs=1", *FAST[1:])
    assert result.returncode == 2
    assert "validation accuracy ended at" in result.stderr and "Traceback" not in result.stderr
    assert sorted(os.listdir(workdir)) == ["report.json"]
    assert (workdir / "report.json").read_text() == '{"earlier": true}'


def test_debris_of_a_live_run_is_left_alone(tmp_path):
    live = tmp_path / ".tmp-run-live"
    dead = tmp_path / ".tmp-run-dead"
    for path, pid in ((live, os.getppid()), (dead, 2 ** 22 + 7)):
        path.mkdir()
        (path / rundir.PID_FILE).write_text(str(pid))
    removed = rundir.clean_debris(str(tmp_path / "run"), log=lambda line: None)
    assert removed == [str(dead)] and live.exists()


def test_a_run_killed_mid_swap_leaves_old_debris_the_next_run_removes(tmp_path):
    """A kill between the two renames of `commit` leaves `.old-<name>-*` (the previous
    run, moved aside) as well as `.tmp-*`: both are cleared, a live run's kept, and
    another run's (`.old-other-*`) is not ours to touch."""
    old = tmp_path / ".old-run-abc123"
    staged = tmp_path / ".tmp-run-def456"
    other = tmp_path / ".old-other-xyz"
    for path in (old, staged, other):
        path.mkdir()
        (path / "report.json").write_text("{}")
    with rundir.RunDirectory(str(tmp_path / "run"), log=lambda line: None) as run:
        (tmp_path / run.path / "report.json").write_text('{"new": true}')
        run.commit()
    assert sorted(os.listdir(tmp_path)) == [".old-other-xyz", "run"]
    assert (tmp_path / "run" / "report.json").read_text() == '{"new": true}'
