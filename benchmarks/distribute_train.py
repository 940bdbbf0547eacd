"""Training steps per second for each tf.distribute strategy and replica count, on this machine.

    python benchmarks/distribute_train.py [--replicas=1,2] [--workers=2] [--steps=60] [--batch_size=64]

Each setting runs in a new process (logical CPU devices can only be made
before TensorFlow starts): the digits CNN of the default recipe, the global
batch split across the replicas, timed after a warm-up epoch. On a machine
with GPUs the replicas are GPUs. `--workers` counts run as that many local
processes of one MultiWorkerMirroredStrategy (pipeline/launcher.py), the
chief printing the figures. Prints one row per setting and the ratio to
the default strategy measured in the same run.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
strategy_name, replicas, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
from pipeline.distribute import DistributeConfig, make_strategy
cfg = DistributeConfig(strategy=strategy_name, devices=replicas if strategy_name == "mirrored" else None)
from pipeline.distribute import is_chief
strategy = make_strategy(cfg, log=lambda line: None)
import models
from pipeline.backend import keras, tf
from pipeline.data import DataConfig, load
data = load(DataConfig(), seed=0)
with strategy.scope():
    model = models.build("digits_cnn", data.input_shape, data.num_classes, {})
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x, y = data.train.x, data.train.y
dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch)
model.fit(dataset, steps_per_epoch=10, epochs=1, verbose=0)  # warm-up: tracing, allocation
start = time.perf_counter()
model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
seconds = time.perf_counter() - start
if is_chief(cfg):
    print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                      "steps_per_s": steps / seconds, "examples_per_s": steps * batch / seconds}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2", help="mirrored replica counts to time")
    parser.add_argument("--workers", default="2",
                        help="local multi-worker process counts to time ('' for none)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=64, help="the global batch")
    args = parser.parse_args()
    settings = ([("default", 1)] + [("mirrored", int(n)) for n in args.replicas.split(",")]
                + [("multi_worker", int(n)) for n in args.workers.split(",") if n])
    rows = []
    for name, replicas in settings:
        command = [sys.executable, "-c", CHILD, name, str(replicas), str(args.steps),
                   str(args.batch_size)]
        if name == "multi_worker":
            out, status = _workers(command, replicas)
        else:
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                    env=dict(os.environ, PYTHONPATH=ROOT))
            out, status = result.stdout + result.stderr, result.returncode
        figures = [line for line in out.splitlines() if '"steps_per_s"' in line]
        if status or not figures:
            print(f"{name} x{replicas}: failed: {(out.strip().splitlines() or ['no output'])[-1]}")
            continue
        rows.append({**json.loads(figures[-1][figures[-1].index("{"):]),
                     "processes": replicas if name == "multi_worker" else 1})
    base = rows[0]["steps_per_s"] if rows and rows[0]["strategy"] != "MirroredStrategy" else None
    print("| strategy | processes | replicas | steps/s | examples/s | vs default |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['steps_per_s'] / base:.2f}x" if base else ""
        print(f"| {r['strategy']} | {r['processes']} | {r['replicas']} | {r['steps_per_s']:.1f} | "
              f"{r['examples_per_s']:.0f} | {ratio} |")


def _workers(command, count):
    """(output, status) of `count` local workers running `command` as one cluster."""
    import contextlib
    import io
    sys.path.insert(0, ROOT)
    from pipeline import launcher
    out = io.StringIO()
    os.environ["PYTHONPATH"] = ROOT
    with contextlib.redirect_stderr(out):
        status = launcher.launch(command, count, out=out)
    return out.getvalue(), status


if __name__ == "__main__":
    main()
