"""Microcontroller fit: an int8 file run in tflite-micro, its arena measured, its ops checked.

    python -m export.micro --model=export/train_int8.tflite --data=export/test_data \
        [--max_examples=1000] [--json=out.json]

Runs the file in TensorFlow Lite for Microcontrollers' own interpreter (the
`tflite-micro` pip package: the TFLM C++ runtime with its reference
kernels) and reports
  - the tensor arena it needs: the smallest size (in 16-byte steps) at which
    the interpreter allocates and invokes, confirmed by a run at that size
    and a failure 16 bytes below, beside what TFLM's recording allocator
    prints for a generous arena (it has no Python getter: read from the C
    library's stderr);
  - flash: the file's bytes (the model array a TFLM project compiles in);
  - operators the installed micro runtime does not register, named;
  - accuracy (perplexity for language models) from the micro runtime on the
    data, beside LiteRT's on the same examples, and the largest difference
    between their outputs.

Needs only numpy, tflite-micro and (for the comparison) ai-edge-litert: no
TensorFlow. The runner runs it in a child process (export/child.py), as a
malformed file may crash the C++ runtime. `write_c_array` writes the file as
the aligned C array TFLM projects include (`<name>_model_data.cc` / `.h`).

The arena measured here is the Python build's (reference kernels). Optimized
kernels on a device (CMSIS-NN, ESP-NN) may ask for some scratch memory more;
leave a margin (pipeline/deploy.py reports it against each target).
"""
import argparse
import contextlib
import json
import os
import re
import sys
import tempfile

import numpy as np

from export import tflite_file
from pipeline.errors import GreenliteError, command
from export.benchmark import (BenchmarkError, dequantize_output, load_eval_data,
                              quantize_input, score, write_json)

ALIGNMENT = 16  # TFLM aligns arena allocations to 16 bytes
# Far above any microcontroller's RAM: a file that needs more is not a micro model.
MAX_ARENA = 64 * 1024 * 1024


class MicroError(GreenliteError):
    """Bad input, or a file the micro runtime cannot take (one line, exit status 2)."""


def _runtime():
    try:
        from tflite_micro import runtime
    except ImportError:
        raise MicroError("tflite-micro is not installed: pip install tflite-micro") from None
    return runtime


def registered_ops():
    """Builtin operator names the installed micro runtime registers.

    TFLM has no Python call that lists them; its kernels are registered by C++
    functions `tflite::micro::Register_<OP>()`, whose mangled names are read
    from the runtime's shared library. A failing load still names the op it
    could not find, so a name this misses is caught there.
    """
    import tflite_micro
    directory = os.path.join(os.path.dirname(tflite_micro.__file__), "python", "tflite_micro")
    names = set()
    for entry in os.listdir(directory):
        if entry.startswith("_runtime") and entry.endswith(".so"):
            with open(os.path.join(directory, entry), "rb") as f:
                names.update(m.decode() for m in re.findall(rb"Register_([A-Z0-9_]+)Ev", f.read()))
    return names


def missing_ops(path):
    """Operators of the file that the micro runtime lacks, sorted."""
    have = registered_ops()
    return sorted({op for op, _ in tflite_file.operators(path)} - have) if have else []


@contextlib.contextmanager
def _stderr_to(path):
    """Sends file descriptor 2 (the C library's stderr) to `path` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _details(interpreter, get, index=0):
    """An input/output detail in the form export/benchmark.py's helpers take."""
    d = get(index)
    q = d.get("quantization_parameters", {})
    scales, zero_points = q.get("scales", []), q.get("zero_points", [])
    scale = float(scales[0]) if len(scales) else 0.0
    zero_point = int(zero_points[0]) if len(zero_points) else 0
    return {"dtype": d["dtype"], "shape": tuple(int(s) for s in d["shape"]),
            "quantization": (scale, zero_point)}


def _first_error_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip() and "RecordingMicroAllocator" not in l]
    return lines[0] if lines else ""


def _try(model_bytes, arena, example, log_path):
    """Allocates and invokes once at `arena` bytes; returns (it ran, the runtime's stderr).

    Each probe runs in a forked process: TFLM can crash (SIGSEGV) instead of
    failing cleanly when a kernel's Prepare cannot get its scratch memory
    (seen at some sizes between the ones that fail and the ones that work),
    and a crash must mean "does not run at this size", not a dead check.
    """
    if not hasattr(os, "fork"):
        return _try_here(model_bytes, arena, example, log_path), _read(log_path)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: no Python cleanup, only an exit status
        try:
            import faulthandler
            faulthandler.disable()  # a crash here is an answer, not a report
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
            os._exit(0 if _try_here(model_bytes, arena, example, log_path) else 1)
        except BaseException:  # pylint: disable=broad-except
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    text = _read(log_path)
    if os.WIFSIGNALED(status):
        text += f"\nthe micro runtime crashed (signal {os.WTERMSIG(status)}) at this arena size"
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, text


def _try_here(model_bytes, arena, example, log_path):
    runtime = _runtime()
    with _stderr_to(log_path):
        try:
            interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
            detail = _details(interpreter, interpreter.get_input_details)
            interpreter.set_input(_example_input(example, detail), 0)
            interpreter.invoke()
            return True
        except (RuntimeError, ValueError):
            return False


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _example_input(x, detail):
    if x is None:
        return np.zeros(detail["shape"], detail["dtype"])
    return quantize_input(np.asarray(x), detail).reshape(detail["shape"])


def measure_arena(model_bytes, example=None):
    """The smallest arena (a multiple of 16 bytes) at which the model allocates and runs.

    Returns {"arena_bytes", "fails_at_bytes", "recorded_bytes"}: `fails_at` is
    arena_bytes - 16 (confirmed to fail), `recorded` what TFLM's recording
    allocator reports for a generous arena. Raises MicroError with the
    runtime's own message when the model does not run at any size.
    """
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "stderr.txt")
        high = max(64 * 1024, 16 * len(model_bytes))
        ran, text = _try(model_bytes, high, example, log)
        while not ran and high < MAX_ARENA and "allocate" in text.lower():
            high *= 4
            ran, text = _try(model_bytes, high, example, log)
        if not ran:
            raise MicroError(f"tflite-micro cannot run the file: "
                             f"{_first_error_line(text) or 'it failed without a message'}")
        recorded = _recorded_arena(model_bytes, high, log)
        # Bisection between a size that fails (0) and one that works (high).
        low = 0
        high = -(-high // ALIGNMENT) * ALIGNMENT
        if recorded:  # a good first guess: the first probes bracket it closely
            guess = -(-recorded // ALIGNMENT) * ALIGNMENT
            if _try(model_bytes, guess, example, log)[0]:
                high = guess
                low = max(0, guess - 64 * ALIGNMENT)
                if _try(model_bytes, low, example, log)[0]:
                    low = 0
        while high - low > ALIGNMENT:
            middle = (low + high) // 2 // ALIGNMENT * ALIGNMENT
            if _try(model_bytes, middle, example, log)[0]:
                high = middle
            else:
                low = middle
        fails = not _try(model_bytes, high - ALIGNMENT, example, log)[0]
        if not _try(model_bytes, high, example, log)[0] or not fails:
            raise MicroError("the arena search found no stable minimum (the runtime "
                             "succeeded and failed at the same size)")
        return {"arena_bytes": int(high), "fails_at_bytes": int(high - ALIGNMENT),
                "recorded_bytes": recorded}


def _recorded_arena(model_bytes, arena, log):
    """What TFLM's recording allocator reports at `arena` bytes (a size that ran)."""
    interpreter = _runtime().Interpreter.from_bytes(model_bytes, arena_size=arena)
    with _stderr_to(log):
        interpreter.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", _read(log))
    return int(found.group(1)) if found else None


def _litert(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def evaluate(path, x, y, arena_bytes, max_examples=1000):
    """Scores the file in the micro runtime and in LiteRT on the same first examples.

    Returns accuracy and perplexity of each, the count, the largest absolute
    difference between their dequantized outputs and the share of top-1
    answers (per example, or per position of a language model) that agree.
    """
    runtime = _runtime()
    with open(path, "rb") as f:
        model_bytes = f.read()
    micro = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
    m_in = _details(micro, micro.get_input_details)
    m_out = _details(micro, micro.get_output_details)
    litert = _litert(path)
    count = min(len(x), max_examples)
    totals = {"micro": [0, 0.0, 0], "litert": [0, 0.0, 0]}
    max_diff, same_top1, positions = 0.0, 0, 0
    probabilities = ends_in_softmax(path)
    for i in range(count):
        example = np.asarray(x[i:i + 1])
        micro.set_input(quantize_input(example, m_in).reshape(m_in["shape"]), 0)
        micro.invoke()
        m = dequantize_output(micro.get_output(0), m_out)
        _add(totals["micro"], score(m, y[i], probabilities))
        if litert is not None:
            l_in, l_out = litert.get_input_details()[0], litert.get_output_details()[0]
            litert.set_tensor(l_in["index"], quantize_input(example, l_in))
            litert.invoke()
            l = dequantize_output(litert.get_tensor(l_out["index"]), l_out)
            _add(totals["litert"], score(l, y[i], probabilities))
            max_diff = max(max_diff, float(np.max(np.abs(m - l))))
            # Per prediction: one per example, or one per position of a language model.
            agree = m.reshape(-1, m.shape[-1]).argmax(-1) == l.reshape(-1, l.shape[-1]).argmax(-1)
            same_top1 += int(agree.sum())
            positions += agree.size
    result = {"examples": count}
    for name, (hits, nats, n) in totals.items():
        if n:
            result[name] = {"accuracy": hits / n, "perplexity": float(np.exp(nats / n))}
    if litert is not None:
        result.update(max_abs_diff=max_diff, top1_agreement=same_top1 / max(positions, 1))
    return result


def _add(total, scored):
    hits, nats, n = scored
    total[0] += hits
    total[1] += nats
    total[2] += n


def ends_in_softmax(path):
    """True when the file's last op is a SOFTMAX (its output: probabilities)."""
    ops = tflite_file.operators(path)
    return bool(ops) and ops[-1][0] == "SOFTMAX"


def check(path, data=None, max_examples=1000):
    """Everything this module measures for one file, as a dict (see the module doc)."""
    if not os.path.isfile(path):
        raise MicroError(f"--model: {path!r} does not exist")
    with open(path, "rb") as f:
        model_bytes = f.read()
    if model_bytes[4:8] != b"TFL3":
        raise MicroError(f"--model: {path!r} is not a TFLite model (no 'TFL3' identifier)")
    result = {"flash_bytes": len(model_bytes), "missing_ops": missing_ops(path)}
    x = y = None
    if data:
        try:
            x, y = load_eval_data(data)
        except BenchmarkError as e:
            raise MicroError(str(e)) from None
    try:
        result.update(measure_arena(model_bytes, None if x is None else x[:1]))
    except MicroError as e:
        result.update(runs=False, reason=str(e))
        named = re.search(r"opcode '([A-Z0-9_]+)'", str(e))
        if named and named.group(1) not in result["missing_ops"]:
            result["missing_ops"] = sorted(result["missing_ops"] + [named.group(1)])
        return result
    result["runs"] = True
    if x is not None:
        result.update(evaluate(path, x, y, result["arena_bytes"], max_examples))
    return result


def c_symbol(name):
    """A C identifier for the model array of variant `name`."""
    return "g_" + re.sub(r"\W", "_", name) + "_model_data"


def c_array_text(model_bytes, symbol, header_name):
    """(.cc text, .h text) holding `model_bytes` as a 16-byte-aligned array and its length."""
    guard = re.sub(r"\W", "_", header_name).upper() + "_"
    header = (f"// Generated by greenlite (export/micro.py) from a TFLite file.\n"
              f"#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char {symbol}[];\n"
              f"extern const unsigned int {symbol}_len;\n\n#endif  // {guard}\n")
    rows = [", ".join(f"0x{b:02x}" for b in model_bytes[i:i + 12])
            for i in range(0, len(model_bytes), 12)]
    body = (f"// Generated by greenlite (export/micro.py) from a TFLite file.\n"
            f'#include "{header_name}"\n\n'
            "// TFLM reads the flatbuffer in place: it must be aligned (16 bytes).\n"
            f"alignas(16) const unsigned char {symbol}[] = {{\n  "
            + ",\n  ".join(rows) + "\n};\n"
            f"const unsigned int {symbol}_len = {len(model_bytes)};\n")
    return body, header


def write_c_array(tflite_path, out_dir, name):
    """Writes `<name>_model_data.cc` and `.h` into out_dir (atomically); returns both paths."""
    from pipeline.files import atomic_write_text
    with open(tflite_path, "rb") as f:
        model_bytes = f.read()
    header_name = f"{name}_model_data.h"
    body, header = c_array_text(model_bytes, c_symbol(name), header_name)
    paths = (os.path.join(out_dir, f"{name}_model_data.cc"), os.path.join(out_dir, header_name))
    atomic_write_text(paths[1], header)
    atomic_write_text(paths[0], body)
    return paths


def serve_one(request):
    """A `--serve` request {model, data, max_examples}: {"result": check's} or {"error": why}."""
    try:
        return {"result": check(request["model"], request.get("data"),
                                request.get("max_examples", 1000))}
    except MicroError as e:
        return {"error": str(e)}


@command("micro")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an int8 .tflite file")
    parser.add_argument("--data", help="x.npy/y.npy directory or .npz to score the file on")
    parser.add_argument("--max_examples", type=int, default=1000,
                        help="score on at most this many examples (reference kernels are slow)")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--serve", action="store_true",
                        help="check the file of each JSON request line on stdin, answering on "
                             "--reply_fd (export/child.py's Server): one process for a run")
    parser.add_argument("--reply_fd", type=int, help="with --serve: the reply pipe")
    args = parser.parse_args(argv)
    if args.serve:
        from export import child
        child.serve(serve_one, args.reply_fd)
        return 0
    if not args.model:
        parser.error("give --model (or --serve)")
    if args.max_examples < 1:
        raise MicroError(f"--max_examples: got {args.max_examples}; must be at least 1")
    result = check(args.model, args.data, args.max_examples)
    if args.json:
        write_json(args.json, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
