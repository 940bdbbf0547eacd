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
Transformer uses it); `bound_attention_masks` rewrites a user's model, layer
for layer with the same weights, before int8 conversion.
"""
from pipeline.backend import keras, tf

# Measured on text_lm (benchmarks/attention_mask.py, BUILD_NOTES "Attention mask").
MASK_VALUE = -100.0


@keras.utils.register_keras_serializable(package="greenlite")
class BoundedMaskAttention(keras.layers.MultiHeadAttention):
    """MultiHeadAttention that adds `mask_value` (not -1e9) at masked positions."""

    def __init__(self, *args, mask_value=MASK_VALUE, **kwargs):
        super().__init__(*args, **kwargs)
        if not mask_value < 0:
            raise ValueError(f"mask_value: got {mask_value}; allowed: a negative number")
        self.mask_value = float(mask_value)

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
        return {**super().get_config(), "mask_value": self.mask_value}


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
