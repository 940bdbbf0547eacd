"""The cached forward (export/generative.py): what the model computes, one token at a time.

Each check compares logits, position by position, with the Keras window model:
an off-by-one in the cache position, the mask letting a query see its own
future (or not itself), a cache written at the wrong slot, a dropped bias or
layer-norm term, the wrong softmax scale, all change the numbers here.
"""
import numpy as np
import pytest

from export import generative
from pipeline.backend import keras


def _text_window(length, offset=0):
    from pipeline.data.text import default_text
    data = default_text().encode()[70000 + offset:70000 + offset + length]
    return np.frombuffer(data, np.uint8).astype(np.int32)[None]


@pytest.mark.parametrize("options", [
    {"embeddings": "matmul"},
    {"embeddings": "gather", "mask_value": None},  # tf_keras' own MultiHeadAttention (-1e9)
    {"embeddings": "gather", "activation": "relu", "projection": "conv1x1", "layers": 2},
])
def test_the_cached_forward_computes_the_window_model(options):
    import models
    keras.utils.set_random_seed(1)
    settings = {"width": 32, "heads": 4, "layers": 1, "mlp_width": 48, **options}
    model = models.build("tiny_transformer", (24,), 256, settings)
    # Weights away from their initial scale, so that no term is negligible.
    for w in model.weights:
        w.assign(np.random.default_rng(0).normal(0, 0.3, w.shape).astype(np.float32))
    lm = generative.CachedLM(model)
    window = _text_window(24)
    expected = model(window).numpy()
    np.testing.assert_allclose(lm.window_logits(window), expected,
                               atol=1e-4 * np.ptp(expected))


def test_the_converted_file_decodes_what_keras_computes(small_lm, tmp_path):
    """Token by token through the float32 file's decode signature, and through a
    prefill chunk then decode: each position's logits equal the window model's."""
    from export.lm_quality import position_logits
    lm = generative.CachedLM(small_lm)
    flatbuffer = generative.convert(lm, "float32", [4, 16], str(tmp_path))
    runner = generative.SignatureRunner(flatbuffer)
    assert (runner.prefill_lengths, runner.context) == ([4, 16], 32)
    windows = np.concatenate([_text_window(32), _text_window(32, 500)])
    expected = small_lm(windows).numpy().reshape(-1, 256)
    tolerance = 1e-4 * np.ptp(expected)
    np.testing.assert_allclose(position_logits(runner, windows), expected, atol=tolerance)
    # 21 tokens: prefill 16, prefill 4, then decode reads the 21st's logits.
    runner.reset()
    np.testing.assert_allclose(runner.feed(windows[0, :21]), expected[20], atol=tolerance)
    # 20 tokens are exactly two prefill chunks: the last still goes through decode.
    runner.reset()
    np.testing.assert_allclose(runner.feed(windows[0, :20]), expected[19], atol=tolerance)
    runner.reset()
    runner.feed(windows[0, :21])
    # Continuing the same cache: position 21 onwards.
    np.testing.assert_allclose(runner.feed(windows[0, 21:23]), expected[22], atol=tolerance)
    # Signature names and the cache layout LiteRT-LM reads: [1, heads, context, head_dim].
    signatures = runner.interpreter.get_signature_list()
    assert sorted(signatures) == ["decode", "prefill_16", "prefill_4"]
    assert sorted(signatures["decode"]["inputs"]) == sorted(
        ["tokens", "input_pos"] + generative.cache_names(1))
    assert sorted(signatures["decode"]["outputs"]) == sorted(
        ["logits"] + generative.cache_names(1))
    assert "logits" not in signatures["prefill_4"]["outputs"]
    shape = runner.decode.get_input_details()["kv_cache_k_0"]["shape"]
    assert list(shape) == [1, 2, 32, 16]


def test_greedy_generation_equals_keras(small_lm, tmp_path):
    lm = generative.CachedLM(small_lm)
    runner = generative.SignatureRunner(generative.convert(lm, "float32", [8], str(tmp_path)))
    prompt = list(b"The ")
    keras_tokens = generative.keras_greedy(small_lm, prompt, 20)
    assert runner.greedy(prompt, 20) == keras_tokens
    # What keras_greedy computes, by hand: the argmax after each growing prefix.
    window = np.zeros((1, 32), np.int32)
    window[0, :4] = prompt
    assert keras_tokens[0] == int(np.argmax(small_lm(window).numpy()[0, 3]))


def test_a_users_causal_lm_from_standard_layers(tmp_path):
    """No greenlite layer: keras Embedding, MultiHeadAttention(use_causal_mask=True),
    LayerNormalization, Dense with a softmax head (probabilities, not logits)."""
    keras.utils.set_random_seed(2)
    tokens = keras.Input((16,), dtype="int32")
    x = keras.layers.Embedding(40, 24)(tokens)
    h = keras.layers.LayerNormalization()(x)
    h = keras.layers.MultiHeadAttention(3, 8)(h, h, use_causal_mask=True)
    x = keras.layers.Add()([x, h])
    h = keras.layers.Dense(48, activation="relu")(keras.layers.LayerNormalization()(x))
    x = keras.layers.Add()([x, keras.layers.Dense(24)(h)])
    probabilities = keras.layers.Dense(40, activation="softmax")(x)
    model = keras.Model(tokens, probabilities)
    for w in model.weights:
        w.assign(np.random.default_rng(3).normal(0, 0.4, w.shape).astype(np.float32))
    lm = generative.CachedLM(model)
    assert (lm.context, lm.vocabulary, lm.heads, lm.head_dim) == (16, 40, 3, 8)
    window = (np.arange(16, dtype=np.int32)[None] * 7) % 40
    np.testing.assert_allclose(lm.window_logits(window), model(window).numpy(), atol=1e-5)
    runner = generative.SignatureRunner(generative.convert(lm, "dynamic_range", [4],
                                                           str(tmp_path)))
    assert len(runner.greedy([1, 2, 3], 10)) == 10


def _model(body):
    tokens = keras.Input((8,), dtype="int32")
    x = keras.layers.Embedding(20, 8)(tokens)
    return keras.Model(tokens, keras.layers.Dense(20)(body(x)))


@pytest.mark.parametrize("body, message", [
    (lambda x: keras.layers.GRU(8, return_sequences=True, name="memory")(x),
     "layer 'memory' (GRU) has no cached form"),
    (lambda x: keras.layers.Conv1D(8, 3, padding="causal", name="wide")(x),
     "layer 'wide': Conv1D with kernel size 3"),
    (lambda x: keras.layers.MultiHeadAttention(2, 4, name="sees_all")(x, x),
     "layer 'sees_all': not causal"),
    (lambda x: x, "no causal self-attention layer"),
])
def test_what_it_cannot_express_is_named(body, message):
    with pytest.raises(generative.UnsupportedLayer) as error:
        generative.CachedLM(_model(body))
    assert message in str(error.value)


def test_a_classifier_is_not_a_language_model(small_model):
    with pytest.raises(generative.UnsupportedLayer, match="not a language model"):
        generative.CachedLM(small_model)


def test_a_context_past_the_position_table_is_refused(small_lm):
    with pytest.raises(generative.ExportError, match="longer than the model's learned position"):
        generative.CachedLM(small_lm, context=33)
