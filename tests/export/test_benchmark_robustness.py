"""The benchmark answers every input with a result or one line: token-id models, malformed files."""
import os

import numpy as np
import pytest

from export import benchmark
from tests.conftest import ROOT, run_cli


def _token_model(tmp_path, embedding=True):
    from export.convert import convert
    from pipeline.backend import keras
    from pipeline.files import atomic_write_bytes
    inputs = keras.Input((6,), dtype="int32")
    if embedding:
        x = keras.layers.Embedding(37, 4)(inputs)
        x = keras.layers.Flatten()(x)
    else:
        x = keras.layers.Dense(4)(keras.layers.Lambda(lambda t: keras.backend.cast(t, "float32"))(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    path = tmp_path / f"tokens_{embedding}.tflite"
    atomic_write_bytes(path, convert(model, "float32"))
    return str(path)


def test_a_token_id_model_runs_without_data(tmp_path):
    path = _token_model(tmp_path)
    result = benchmark.benchmark(path, num_runs=2, warmup_runs=0)
    assert result["input"]["dtype"] == "int32" and result["latency_ms"]["p50"] > 0


def test_a_token_id_model_with_integer_data(tmp_path):
    path = _token_model(tmp_path)
    x = np.random.default_rng(0).integers(0, 37, (5, 6)).astype(np.int64)
    result = benchmark.benchmark(path, (x, np.zeros(5, np.int64)), num_runs=1, warmup_runs=0)
    assert result["num_examples"] == 5


def test_an_integer_input_of_unknown_range_asks_for_data(tmp_path):
    path = _token_model(tmp_path, embedding=False)
    with pytest.raises(benchmark.BenchmarkError, match="--data: required; the model takes int32 "
                                                       "inputs"):
        benchmark.benchmark(path, num_runs=1)


def test_a_damaged_name_and_joined_messages_read_as_one_plain_line():
    """Byte-mutated files gave 'could not be run: UnicodeDecodeError: 'utf-8' codec
    can't decode byte 0xda ...' and '... in XNNPACK delegateunsupported datatype'."""
    damaged = UnicodeDecodeError("utf-8", b"conv\xda2d", 4, 5, "invalid continuation byte")
    assert benchmark._first_line(damaged) == (
        "a name or string in the file is not valid UTF-8 (byte 0xda at offset 4 of a 7-byte "
        "string): the file is damaged")
    joined = RuntimeError("Failed to apply XNNPACK delegateunsupported datatype (INT4) of "
                          "tensor 3\nNode number 2 (CONV_2D) failed to prepare.")
    assert benchmark._first_line(joined) == ("Failed to apply XNNPACK delegate; unsupported "
                                             "datatype (INT4) of tensor 3")
    assert benchmark._first_line(RuntimeError("")) == "the interpreter stopped without saying why"


def test_type_numbers_are_named():
    assert benchmark.name_types("Unsupported type: got 7.") == "Unsupported type: got INT16 (7)."


FUZZ = r'''
import contextlib, io, re, sys
import numpy as np
from export import benchmark
source, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
original = open(source, "rb").read()
rng = np.random.default_rng(0)
codes = {}
for i in range(count):
    data = bytearray(original)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(8, len(data)))  # keep the TFL3 header
        data[position] = int(rng.integers(0, 256))
    path = f"{out}/m{i}.tflite"
    open(path, "wb").write(bytes(data))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = benchmark.main([f"--model={path}", "--num_runs=1", "--warmup_runs=0"])
    lines = [l for l in err.getvalue().splitlines() if l.strip()]
    assert code in (0, 2) and len(lines) <= 1, (i, code, lines)
    # The line says what is wrong in the file: no Python exception class or codec
    # text, and the interpreter's joined messages kept apart.
    for line in lines:
        assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b|codec|delegate[a-z]",
                             line.replace("benchmark: error:", "")), (i, line)
    codes[code] = codes.get(code, 0) + 1
print(codes)
'''


def test_mutated_files_give_a_result_or_one_line(exported, tmp_path):
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    result = run_cli([str(script), exported["int8"], "300", str(tmp_path)],
                     env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    codes = eval(result.stdout.strip().splitlines()[-1])  # {exit code: count}
    assert sum(codes.values()) == 300 and set(codes) <= {0, 2}


def test_a_file_with_two_inputs_is_fed_both(tmp_path):
    """As benchmark_model does: each input gets made-up values of its own type and shape
    (an image and a scalar here); --data, which holds one x, says it cannot score it."""
    from export.convert import convert
    from pipeline.backend import keras
    image, scalar = keras.Input((8, 8, 1), name="image"), keras.Input((1,), name="scalar")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(image), scalar])
    model = keras.Model([image, scalar], keras.layers.Dense(3)(x))
    path = tmp_path / "two.tflite"
    path.write_bytes(convert(model, "float32"))
    result = benchmark.benchmark(str(path), num_runs=3, warmup_runs=0)
    assert result["num_inputs"] == 2 and result["latency_ms"]["count"] == 3
    assert result["macs"] == 3 * 65  # the Dense layer: 64 pixels and the scalar, 3 outputs
    with pytest.raises(benchmark.BenchmarkError, match=r"--data: the model has 2 inputs "
                                                       r"\((?=.*image)(?=.*scalar).*\); --data "
                                                       r"scores files of one input"):
        benchmark.benchmark(str(path), (np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, int)))


def _stateful_file(tmp_path):
    """A streaming model in the microWakeWord style: a state variable each call reads
    and updates (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE: an op with no output)."""
    from pipeline.backend import tf

    class Streaming(tf.Module):
        def __init__(self):
            self.state = tf.Variable(tf.zeros([1, 4]))
            self.kernel = tf.constant(np.random.default_rng(0).normal(size=(4, 4)), tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            new = tf.nn.relu(tf.matmul(x + self.state, self.kernel))
            self.state.assign(new)
            return new

    module = Streaming()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    path = tmp_path / "streaming.tflite"
    path.write_bytes(converter.convert())
    return str(path)


def test_a_stateful_streaming_file_is_benchmarked(tmp_path):
    from export.tflite_file import operators
    path = _stateful_file(tmp_path)
    ops = {name for name, _ in operators(path)}
    assert {"VAR_HANDLE", "ASSIGN_VARIABLE"} <= ops
    result = benchmark.benchmark(path, num_runs=5, warmup_runs=1)
    assert result["latency_ms"]["count"] == 5 and result["macs"] == 16
