"""`--workers=N`: N local worker processes of one multi-worker run.

Starts N copies of a command with their TF_CONFIG (a cluster of N workers on
free localhost ports; worker 0 is the chief, which alone writes the run
directory), prints their output line by line prefixed `[worker i]`, and
when one of them fails stops the others (a worker left alone would wait
for its peers' collective ops forever) and says which one failed and why.
On a cluster the same recipe runs with one process per machine and the
TF_CONFIG the scheduler gives it (README, "Several machines").
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(count):
    """`count` TCP ports on localhost that nothing listens on now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """TF_CONFIG of worker `index` in a cluster of localhost workers on `ports`."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def launch(command, workers, ports=None, out=None, poll_seconds=0.2):
    """Runs `command` (an argv list) as `workers` local workers; returns the exit status.

    0 when every worker exits 0; otherwise the failing worker's status (or 2),
    after the others are stopped. Each worker's lines are printed to `out`
    (default stdout) with its prefix; the last line of the one that failed is
    repeated in the final message.
    """
    out = out or sys.stdout
    ports = ports or free_ports(workers)
    lock = threading.Lock()
    last_lines = {}

    def relay(index, stream):
        for line in stream:
            line = line.rstrip("\n")
            if line.strip():
                last_lines[index] = line
            with lock:
                print(f"[worker {index}] {line}", file=out, flush=True)

    processes, relays = [], []
    for index in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index)}
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        processes.append(process)
        relays.append(threading.Thread(target=relay, args=(index, process.stdout), daemon=True))
        relays[-1].start()
    with lock:
        print(f"greenlite: {workers} local workers on ports "
              f"{', '.join(str(p) for p in ports)} (worker 0 is the chief)", file=out, flush=True)
    failed = None
    try:
        while failed is None and any(p.poll() is None for p in processes):
            for index, process in enumerate(processes):
                if process.poll() not in (None, 0):
                    failed = index
                    break
            time.sleep(poll_seconds)
        if failed is None:
            failed = next((i for i, p in enumerate(processes) if p.returncode), None)
    finally:
        for process in processes:
            if process.poll() is None:
                _stop(process)
        for thread in relays:
            thread.join(timeout=5)
    if failed is None:
        return 0
    status = processes[failed].returncode
    why = (f"killed by signal {-status}" if status < 0 else f"exit status {status}")
    stopped = [str(i) for i, p in enumerate(processes) if i != failed and p.returncode != 0]
    with lock:
        print(f"greenlite: error: worker {failed} failed ({why}): "
              f"{last_lines.get(failed, 'no output')}"
              + (f"; stopped worker(s) {', '.join(stopped)}" if stopped else ""),
              file=sys.stderr, flush=True)
    return status if status > 0 else 2


def _stop(process):
    """SIGTERM to the worker's process group, SIGKILL if it is still there 10 s later."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
