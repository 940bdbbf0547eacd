"""The default run against the same work written by hand: paired, whole process.

    python benchmarks/default_vs_script.py [--pairs=3]

The hand-written script trains the same digits CNN on the same split with the
default recipe's settings (30 epochs, batch 32, Adam 1e-3, early stopping on
val_loss with patience 5), converts it to the four formats with the TFLite
converter (int8 calibrated on 100 training examples) and runs each file once
over the test split in LiteRT. greenlite's run does that and all its checks
(100 timed runs per file, the doctor, tflite-micro, metadata, Vela, board
estimates, the tflite-runtime gate, energy, the report). Each pair runs both
commands back to back in fresh processes, alternating which goes first; the
script prints each run's wall and CPU seconds (the children's included), the
medians, their ratio, and greenlite's phase times from its log's timestamps.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BY_HAND = r'''
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
import models
from pipeline.data import DataConfig, load

keras.utils.set_random_seed(0)
data = load(DataConfig(source="digits"), seed=0)
model = models.build("digits_cnn", data.input_shape, data.num_classes)
model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(data.train.x, data.train.y, validation_data=(data.val.x, data.val.y), epochs=30,
          batch_size=32, verbose=0, callbacks=[keras.callbacks.EarlyStopping(
              monitor="val_loss", patience=5, restore_best_weights=True)])
representative = data.representative(100, 0).astype(np.float32)
for fmt in ("float32", "float16", "dynamic_range", "int8"):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if fmt == "int8":
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    hits = 0
    for x, y in zip(data.test.x, data.test.y):
        x = x[None].astype(np.float32)
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        hits += int(interpreter.get_tensor(out["index"]).argmax() == y)
    print(fmt, hits / len(data.test.y))
'''


def timed(args, cwd):
    """(wall s, CPU s of the process and its children, stdout+stderr) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=ROOT)  # the script imports greenlite's data and model
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"default_vs_script: error: {args[1:3]} failed: {result.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout + result.stderr


PHASES = [("start-up, data, model", r"\] model: "), ("train", r"\[stage 1/1\] train done"),
          ("convert", r"\[convert \d+/\d+\] .*$"), ("benchmark", r"\[export \d+/\d+\] .*bytes"),
          ("doctor", r"within the budget|outside the budget"), ("deploy (micro, metadata)",
                                                                 r"on tflite-micro"),
          ("npu (Vela) and boards", r"per inference, battery"),
          ("runtime gate", r"on tflite-runtime"), ("report", r"report: ")]


def phases(log):
    """[(phase, seconds)] from the run log's '[   12.3s]' stamps: each phase ends at
    the last line matching its pattern."""
    stamps = [(float(m.group(1)), line) for line in log.splitlines()
              for m in [re.match(r"\[\s*([\d.]+)s\] ", line)] if m]
    out, previous = [], 0.0
    for name, pattern in PHASES:
        ends = [t for t, line in stamps if re.search(pattern, line)]
        if ends:
            out.append((name, max(ends) - previous))
            previous = max(ends)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    python = sys.executable
    runs = {"greenlite": [], "by hand": []}
    logs = []
    with tempfile.TemporaryDirectory(prefix="greenlite-paired-") as tmp:
        script = os.path.join(tmp, "by_hand.py")
        with open(script, "w") as f:
            f.write(BY_HAND)
        commands = {"greenlite": [python, "-m", "pipeline", "--recipe=recipes/default.yaml"],
                    "by hand": [python, script]}
        for pair in range(args.pairs):
            order = ["greenlite", "by hand"] if pair % 2 == 0 else ["by hand", "greenlite"]
            for name in order:
                extra = ([f"--workdir={os.path.join(tmp, f'run{pair}')}"]
                         if name == "greenlite" else [])
                wall, cpu, log = timed(commands[name] + extra, ROOT)
                runs[name].append((wall, cpu))
                if name == "greenlite":
                    logs.append(log)
                print(f"pair {pair + 1} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    median = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
              for name, r in runs.items()}
    print("\n| | wall s (median) | CPU s (median) |\n|---|---:|---:|")
    for name, (wall, cpu) in median.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
    print(f"\nratio greenlite / by hand: wall {median['greenlite'][0] / median['by hand'][0]:.2f}x,"
          f" CPU {median['greenlite'][1] / median['by hand'][1]:.2f}x")
    print("\ngreenlite's phases (last pair's log):\n\n| phase | seconds |\n|---|---:|")
    for name, seconds in phases(logs[-1]):
        print(f"| {name} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
