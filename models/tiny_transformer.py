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


def build(input_shape, num_classes, width=64, heads=2, layers=2, mlp_width=128, dropout=0.0,
          mask_value=MASK_VALUE, activation="gelu", projection="dense"):
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
      projection: the MLP's and the logits' position-wise projections as
        "dense" (Dense) or "conv1x1" (Conv1D with kernel size 1, the same
        function). Dense on a sequence lowers to a tensordot whose dynamic
        reshape needs SHAPE, REDUCE_PROD and PACK, and tflite-micro has no
        REDUCE_PROD kernel; a 1x1 convolution lowers to CONV_2D.
        activation="relu", projection="conv1x1" make a microcontroller model.
    """
    if activation not in ("gelu", "relu"):
        raise ValueError(f"activation: got {activation!r}; allowed: gelu, relu")
    if projection not in ("dense", "conv1x1"):
        raise ValueError(f"projection: got {projection!r}; allowed: dense, conv1x1")
    project = (keras.layers.Dense if projection == "dense"
               else functools.partial(keras.layers.Conv1D, kernel_size=1))
    if len(input_shape) != 1 or width % heads or layers < 1:
        raise ValueError("expected input_shape (length,), width divisible by heads, layers >= 1")
    tokens = keras.Input(shape=input_shape, dtype="int32", name="tokens")
    x = keras.layers.Embedding(num_classes, width, name="token_embedding")(tokens)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(1, layers + 1):
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        attention = (keras.layers.MultiHeadAttention if mask_value is None else
                     functools.partial(BoundedMaskAttention, mask_value=mask_value))
        h = attention(heads, width // heads, dropout=dropout,
                      name=f"block{i}_attention")(h, h, use_causal_mask=True)
        x = keras.layers.Add(name=f"block{i}_add1")([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln2")(x)
        h = project(mlp_width, activation=activation, name=f"block{i}_mlp1")(h)
        h = project(width, name=f"block{i}_mlp2")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block{i}_dropout")(h)
        x = keras.layers.Add(name=f"block{i}_add2")([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    logits = project(num_classes, name="logits")(x)
    return keras.Model(tokens, logits, name="tiny_transformer")
