"""Attention that full int8 can hold: a bounded additive mask in place of tf_keras' -1e9.

tf_keras' Softmax masks attention by adding -1e9 at the masked positions. The
int8 converter calibrates the attention-score tensor after that addition, so
its range is about 1e9 and every real score rounds to zero: attention becomes
uniform and a causal language model's int8 perplexity explodes (text_lm:
53 against 3.9 in float). Adding a bounded constant instead (`MASK_VALUE`)
keeps the masked positions' softmax weight at exp(MASK_VALUE) of the largest
score, which is nothing in float, while the tensor's range stays that of the
real scores plus |MASK_VALUE|. `benchmarks/attention_mask.py` measures the
choice of constant.

`BoundedMaskAttention` is a drop-in `MultiHeadAttention` (the zoo's
Transformer uses it); with `runtime_mask=True` it computes the causal mask
from the input at run time instead of letting the converter fold it into a
float32 constant of 4·L² bytes (16 KB at L = 64, 1 MB at L = 512); `bound_attention_masks` rewrites a user's model, layer
for layer with the same weights, before int8 conversion.
"""
from pipeline.backend import keras, tf

# Measured on text_lm (benchmarks/attention_mask.py, BUILD_NOTES "Attention mask").
MASK_VALUE = -100.0


@keras.utils.register_keras_serializable(package="greenlite")
class BoundedMaskAttention(keras.layers.MultiHeadAttention):
    """MultiHeadAttention that adds `mask_value` (not -1e9) at masked positions.

    runtime_mask: compute `use_causal_mask`'s mask from the query's positions
      at run time (a comparison of two position vectors) rather than as
      tf_keras' constant lower triangle, which the converter stores as an
      (L, L) float32 tensor in the file. The same mask either way.
    """

    def __init__(self, *args, mask_value=MASK_VALUE, runtime_mask=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not mask_value < 0:
            raise ValueError(f"mask_value: got {mask_value}; allowed: a negative number")
        self.mask_value = float(mask_value)
        self.runtime_mask = bool(runtime_mask)

    def _compute_causal_mask(self, query, value=None):
        if not self.runtime_mask:
            return super()._compute_causal_mask(query, value)
        # Positions counted along the (dynamic-batch) input: nothing here is
        # constant, so the converter keeps the comparison as ops.
        query_positions = positions_of(query)
        value_positions = query_positions if value is None else positions_of(value)
        return query_positions[:, :, tf.newaxis] >= value_positions[:, tf.newaxis, :]

    def _masked_softmax(self, attention_scores, attention_mask=None):
        if attention_mask is not None:
            # As MultiHeadAttention does: the mask gains the heads axis.
            axis = -len(self._attention_axes) * 2 - 1
            for _ in range(len(attention_scores.shape) - len(attention_mask.shape)):
                attention_mask = tf.expand_dims(attention_mask, axis=axis)
            keep = tf.cast(attention_mask, attention_scores.dtype)
            attention_scores = attention_scores + (1.0 - keep) * self.mask_value
        return self._softmax(attention_scores)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value,
                "runtime_mask": self.runtime_mask}


def positions_of(sequence):
    """0, 1, ..., L-1 for every example of a (batch, L, ...) tensor, as (batch, L) int32,
    computed from the tensor so that a converter cannot fold it into a constant."""
    ones = tf.ones_like(sequence[:, :, 0], dtype=tf.int32) if len(sequence.shape) > 2 \
        else tf.ones_like(sequence, dtype=tf.int32)
    return tf.cumsum(ones, axis=1) - 1


def unbounded_attention_layers(model, mask_value=MASK_VALUE):
    """Names of `model`'s attention layers that mask with a constant more negative than
    `mask_value`: tf_keras' MultiHeadAttention (-1e9), and bounded ones set lower."""
    return [l.name for l in model.layers
            if type(l) is keras.layers.MultiHeadAttention  # subclasses may mask their own way
            or isinstance(l, BoundedMaskAttention) and l.mask_value < mask_value]


def bound_attention_masks(model, mask_value=MASK_VALUE):
    """A copy of `model` whose attention layers mask with `mask_value` where they
    masked with a more negative constant (`unbounded_attention_layers`).

    Returns (model, names of the layers rewritten); `model` itself when it has
    none. Weights are copied layer by layer, so the float outputs differ only
    where a masked position's weight exp(mask_value) is not already zero.
    """
    names = set(unbounded_attention_layers(model, mask_value))
    if not names:
        return model, []
    return _with_masks(model, names, mask_value), sorted(names)


def with_mask_value(model, mask_value):
    """A copy of `model` whose attention layers all mask with `mask_value` (-1e9
    included): for measuring the choice of constant."""
    return _with_masks(model, {l.name for l in model.layers
                               if isinstance(l, keras.layers.MultiHeadAttention)}, mask_value)


def _with_masks(model, names, mask_value):
    def clone(layer):
        config = layer.get_config()
        if layer.name in names:
            return BoundedMaskAttention.from_config({**config, "mask_value": mask_value})
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for source, target in zip(model.layers, copy.layers):
        target.set_weights(source.get_weights())
    return copy
