"""Training steps per second for each tf.distribute strategy and replica count, on this machine.

    python benchmarks/distribute_train.py [--replicas=1,2] [--steps=60] [--batch_size=64]

Each setting runs in a new process (logical CPU devices can only be made
before TensorFlow starts): the digits CNN of the default recipe, the global
batch split across the replicas, timed after a warm-up epoch. On a machine
with GPUs the replicas are GPUs. Prints one row per setting and the ratio to
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
print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                  "steps_per_s": steps / seconds, "examples_per_s": steps * batch / seconds}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2", help="mirrored replica counts to time")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=64, help="the global batch")
    args = parser.parse_args()
    settings = [("default", 1)] + [("mirrored", int(n)) for n in args.replicas.split(",")]
    rows = []
    for name, replicas in settings:
        result = subprocess.run([sys.executable, "-c", CHILD, name, str(replicas),
                                 str(args.steps), str(args.batch_size)],
                                capture_output=True, text=True, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT))
        if result.returncode:
            print(f"{name} x{replicas}: failed: {result.stderr.strip().splitlines()[-1]}")
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    base = rows[0]["steps_per_s"] if rows and rows[0]["strategy"] != "MirroredStrategy" else None
    print("| strategy | replicas | steps/s | examples/s | vs default |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['steps_per_s'] / base:.2f}x" if base else ""
        print(f"| {r['strategy']} | {r['replicas']} | {r['steps_per_s']:.1f} | "
              f"{r['examples_per_s']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
