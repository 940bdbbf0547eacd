"""Bounded attention masks: same float outputs, and a full-int8 language model that holds."""
import numpy as np
import pytest

import models
from export import benchmark
from export.convert import convert
from models import saved
from pipeline import custom_objects, training
from models.attention import BoundedMaskAttention, bound_attention_masks, with_mask_value
from pipeline.backend import keras
from pipeline.data import DataConfig, load

SMALL = {"width": 32, "heads": 2, "layers": 1, "mlp_width": 64}


@pytest.fixture(scope="module")
def text():
    return load(DataConfig(source="text", sequence_length=32, max_bytes=60_000), seed=0)


@pytest.fixture(scope="module")
def user_lm(text):
    """A user's causal LM: tf_keras' own MultiHeadAttention (mask -1e9), trained a little."""
    keras.utils.set_random_seed(0)
    model = models.build("tiny_transformer", text.input_shape, text.num_classes,
                         {**SMALL, "mask_value": None})
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(text.train.x, text.train.y, epochs=6, batch_size=64, verbose=0)
    return model


def test_the_rewrite_keeps_the_float_outputs(user_lm, text):
    bounded, names = bound_attention_masks(user_lm)
    assert names == ["block1_attention"]
    assert type(bounded.get_layer("block1_attention")) is BoundedMaskAttention
    x = text.test.x[:8]
    np.testing.assert_allclose(bounded.predict(x, verbose=0), user_lm.predict(x, verbose=0),
                               atol=1e-5)
    # Nothing to rewrite: the model itself comes back; a bounded layer set
    # lower than the bound is rewritten too.
    assert bound_attention_masks(bounded) == (bounded, [])
    assert bound_attention_masks(with_mask_value(user_lm, -1e4))[1] == ["block1_attention"]


def test_bounded_attention_survives_save_and_load(text, tmp_path):
    model = models.build("tiny_transformer", text.input_shape, text.num_classes, SMALL)
    path = saved.save(model, str(tmp_path))
    loaded = saved.load(path, custom_objects.resolve())
    assert loaded.get_layer("block1_attention").mask_value == model.get_layer(
        "block1_attention").mask_value
    x = text.test.x[:2]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_a_positive_mask_is_refused():
    with pytest.raises(ValueError, match="mask_value: got 5.0; allowed: a negative number"):
        BoundedMaskAttention(2, 8, mask_value=5.0)


def test_full_int8_of_a_users_language_model_holds(user_lm, text, tmp_path):
    """The converter bounds the mask; with tf_keras' -1e9 left in, int8 falls apart."""
    _, keras_ce = training.evaluate(user_lm, text.test)
    keras_ppl = float(np.exp(keras_ce))
    representative = text.representative(64, 0)

    def int8_perplexity(model, name, bound_attention=True):
        path = tmp_path / name
        path.write_bytes(convert(model, "int8", representative, bound_attention))
        return benchmark.benchmark(str(path), (text.test.x, text.test.y), num_runs=1,
                                   warmup_runs=0)["perplexity"]

    rewritten = int8_perplexity(user_lm, "rewritten.tflite")
    kept = int8_perplexity(user_lm, "unbounded.tflite", bound_attention=False)
    # Measured: Keras 11.1, rewritten 11.2, -1e9 kept 19.0.
    assert rewritten < 1.05 * keras_ppl, (rewritten, keras_ppl)
    assert kept > 1.4 * keras_ppl, (kept, keras_ppl)
