"""A tiny causal Transformer language model over bytes (or any token ids).

Token and learned position embeddings, `layers` pre-norm blocks of causal
multi-head self-attention and an MLP, a final layer norm and logits over the
vocabulary at every position (input (L,) int token ids -> (L, vocabulary)).
Attention masks with a bounded constant (pipeline/attention.py) so the model
survives full-int8 conversion.
"""
import functools

from pipeline.attention import MASK_VALUE, BoundedMaskAttention
from pipeline.backend import keras, tf


@keras.utils.register_keras_serializable(package="greenlite")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each position to a (batch, length, width) input."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            "positions", shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + tf.cast(self.positions, x.dtype)[tf.newaxis]


@keras.utils.register_keras_serializable(package="greenlite")
class UnfusedLayerNormalization(keras.layers.LayerNormalization):
    """LayerNormalization through tf.nn.moments instead of the fused batch-norm kernel.

    Same function; tf_keras' fused path reshapes with a dynamic shape
    (SHAPE, REDUCE_PROD, PACK in the TFLite graph), and tflite-micro has no
    REDUCE_PROD kernel. The unfused path converts to MEAN, SQUARED_DIFFERENCE,
    RSQRT, MUL and ADD, which it has.
    """

    def _fused_can_be_used(self, ndims):  # pylint: disable=unused-argument
        return False


def build(input_shape, num_classes, width=64, heads=2, layers=2, mlp_width=128, dropout=0.0,
          mask_value=MASK_VALUE, activation="gelu", fused_norm=True):
    """Returns an uncompiled functional causal Transformer ending in logits.

    Args:
      input_shape: (sequence length,) of int token ids.
      num_classes: the vocabulary size (256 for bytes).
      width: model width (embedding and residual stream).
      heads: attention heads (key width = width / heads).
      layers: Transformer blocks.
      mlp_width: hidden width of each block's MLP.
      dropout: dropout after attention and MLP.
      mask_value: what attention adds at masked (future) positions; None
        keeps tf_keras' MultiHeadAttention and its -1e9, which int8 cannot hold.
      activation: of the MLP, "gelu" or "relu" (tflite-micro has no GELU kernel).
      fused_norm: False builds LayerNormalization without tf_keras' fused
        kernel (whose dynamic reshape needs REDUCE_PROD, which tflite-micro
        lacks). activation="relu", fused_norm=False make a microcontroller model.
    """
    if activation not in ("gelu", "relu"):
        raise ValueError(f"activation: got {activation!r}; allowed: gelu, relu")
    norm = keras.layers.LayerNormalization if fused_norm else UnfusedLayerNormalization
    if len(input_shape) != 1 or width % heads or layers < 1:
        raise ValueError("expected input_shape (length,), width divisible by heads, layers >= 1")
    tokens = keras.Input(shape=input_shape, dtype="int32", name="tokens")
    x = keras.layers.Embedding(num_classes, width, name="token_embedding")(tokens)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(1, layers + 1):
        h = norm(epsilon=1e-5, name=f"block{i}_ln1")(x)
        attention = (keras.layers.MultiHeadAttention if mask_value is None else
                     functools.partial(BoundedMaskAttention, mask_value=mask_value))
        h = attention(heads, width // heads, dropout=dropout,
                      name=f"block{i}_attention")(h, h, use_causal_mask=True)
        x = keras.layers.Add(name=f"block{i}_add1")([x, h])
        h = norm(epsilon=1e-5, name=f"block{i}_ln2")(x)
        h = keras.layers.Dense(mlp_width, activation=activation, name=f"block{i}_mlp1")(h)
        h = keras.layers.Dense(width, name=f"block{i}_mlp2")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block{i}_dropout")(h)
        x = keras.layers.Add(name=f"block{i}_add2")([x, h])
    x = norm(epsilon=1e-5, name="final_ln")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(tokens, logits, name="tiny_transformer")
