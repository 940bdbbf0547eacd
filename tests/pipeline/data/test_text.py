"""Text for language models, and a language model's perplexity measured in TFLite."""
import numpy as np
import pytest

from pipeline.data import DataConfig, load
from pipeline.errors import DataError


def test_default_text_is_pythons_own_help():
    data = load(DataConfig(source="text", sequence_length=32, max_bytes=20_000), seed=0)
    assert data.task == "language_model" and data.num_classes == 256
    assert data.train.x.dtype == np.int32 and data.train.x.shape[1] == 32
    # The target of each position is the next byte.
    np.testing.assert_array_equal(data.train.x[0, 1:], data.train.y[0, :-1])
    assert "pydoc_data.topics" in data.description


def test_a_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo wörld, " * 400, encoding="utf-8")
    data = load(DataConfig(source="text", path=str(path), sequence_length=16), seed=0)
    assert data.train.x.max() > 127  # UTF-8 bytes of é and ö


@pytest.mark.parametrize("content, message", [
    (b"   \n", "is empty; a language model needs text"),
    (b"caf\xe9 latin-1", "is not UTF-8 text (byte 3: invalid continuation byte)"),
])
def test_bad_text(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        load(DataConfig(source="text", path=str(path)), seed=0)
    assert message in str(e.value)


def test_too_little_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("short text " * 20)
    with pytest.raises(DataError, match="too few bytes"):
        load(DataConfig(source="text", path=str(path), sequence_length=64), seed=0)


def test_language_model_perplexity_in_tflite_matches_keras(tmp_path):
    import models
    from export import benchmark
    from export.convert import convert
    from pipeline import training
    from pipeline.backend import keras
    data = load(DataConfig(source="text", sequence_length=32, max_bytes=30_000), seed=0)
    keras.utils.set_random_seed(0)
    model = models.build("tiny_transformer", data.input_shape, data.num_classes,
                         {"width": 32, "heads": 2, "layers": 1, "mlp_width": 64})
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train.x, data.train.y, epochs=2, batch_size=64, verbose=0)
    keras_acc, keras_ce = training.evaluate(model, data.test)
    assert keras_ce < np.log(256)  # it learned something about the bytes
    path = tmp_path / "lm.tflite"
    path.write_bytes(convert(model, "float32"))
    r = benchmark.benchmark(str(path), (data.test.x, data.test.y), num_runs=2)
    assert r["perplexity"] == pytest.approx(np.exp(keras_ce), rel=1e-3)
    assert r["accuracy"] == pytest.approx(keras_acc, abs=1e-3)
