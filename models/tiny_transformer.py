"""A tiny causal Transformer language model over bytes (or any token ids).

Token and learned position embeddings, `layers` pre-norm blocks of causal
multi-head self-attention and an MLP, a final layer norm and logits over the
vocabulary at every position (input (L,) int token ids -> (L, vocabulary)).
Attention masks with a bounded constant (models/attention.py) so the model
survives full-int8 conversion.

`embeddings="matmul"` expresses the token and position tables as one-hot
matrix products, which the converter lowers to FULLY_CONNECTED: weight
quantizers then store them at 4 or 8 bits like any kernel (ai-edge-quantizer
leaves a GATHER's table float32), and positions and the causal mask are
computed from the input at run time instead of stored as constants. On
text_lm that is what takes an int4 file from 0.40x to under 0.2x of float32
(BUILD_NOTES "int4 at a fifth of float32").
"""
import functools

from models.attention import MASK_VALUE, BoundedMaskAttention, positions_of
from pipeline.backend import keras, tf


def one_hot_by_comparison(ids, depth, dtype):
    """tf.one_hot(ids, depth) as EQUAL and CAST ops.

    Not tf.one_hot: full-int8 conversion of its ONE_HOT op gives garbage (a
    random-weight text_lm: int8 top-1 agreement with float 0.03 with ONE_HOT,
    0.88 with this, as with a GATHER), and EQUAL/CAST quantize like any op.
    """
    return tf.cast(tf.equal(ids[..., tf.newaxis], tf.range(depth, dtype=ids.dtype)), dtype)


@keras.utils.register_keras_serializable(package="greenlite")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding of each position to a (batch, length, width) input.

    as_matmul: look the rows up as one_hot(positions) @ table with the
      positions computed from the input, so the table stays a weight of a
      FULLY_CONNECTED (quantizable) instead of a folded float32 constant.
    """

    def __init__(self, as_matmul=False, **kwargs):
        super().__init__(**kwargs)
        self.as_matmul = bool(as_matmul)

    def build(self, input_shape):
        self.positions = self.add_weight(
            "positions", shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        table = tf.cast(self.positions, x.dtype)
        if self.as_matmul:
            one_hot = one_hot_by_comparison(positions_of(x), table.shape[0], x.dtype)
            return x + tf.tensordot(one_hot, table, [[2], [0]])
        return x + table[tf.newaxis]

    def matmul_weights(self):
        """[(weight, input axes)] this layer multiplies as a kernel (pipeline/int4_grid.py)."""
        return [(self.positions, 1)] if self.as_matmul else []

    def get_config(self):
        return {**super().get_config(), "as_matmul": self.as_matmul}


@keras.utils.register_keras_serializable(package="greenlite")
class OneHotEmbedding(keras.layers.Layer):
    """keras.layers.Embedding computed as one_hot(ids) @ table (the same values).

    The converter lowers it to ONE_HOT and FULLY_CONNECTED, whose weight the
    int4/int8 weight quantizers store at low precision; a GATHER's table stays
    float32 in an ai-edge-quantizer file. Costs vocabulary x width MACs per
    token, so it suits small vocabularies (bytes: 256).
    """

    def __init__(self, input_dim, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            "embeddings", shape=(self.input_dim, self.output_dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, ids):
        one_hot = one_hot_by_comparison(ids, self.input_dim, self.embeddings.dtype)
        return tf.tensordot(one_hot, self.embeddings, [[len(ids.shape)], [0]])

    def matmul_weights(self):
        """[(weight, input axes)] this layer multiplies as a kernel (pipeline/int4_grid.py)."""
        return [(self.embeddings, 1)]

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}


def build(input_shape, num_classes, width=64, heads=2, layers=2, mlp_width=128, dropout=0.0,
          mask_value=MASK_VALUE, activation="gelu", projection="dense", embeddings="gather"):
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
      embeddings: "gather" (keras.layers.Embedding; positions and the causal
        mask folded into constants) or "matmul" (`OneHotEmbedding`, positions
        and mask computed at run time; needs a bounded mask_value): what
        int4 export needs to store the tables at 4 bits (module doc).
    """
    if activation not in ("gelu", "relu"):
        raise ValueError(f"activation: got {activation!r}; allowed: gelu, relu")
    if projection not in ("dense", "conv1x1"):
        raise ValueError(f"projection: got {projection!r}; allowed: dense, conv1x1")
    if embeddings not in ("gather", "matmul"):
        raise ValueError(f"embeddings: got {embeddings!r}; allowed: gather, matmul")
    if embeddings == "matmul" and mask_value is None:
        raise ValueError("embeddings: matmul computes the causal mask at run time, which needs "
                         "a bounded mask_value (a negative number), not None")
    matmul = embeddings == "matmul"
    project = (keras.layers.Dense if projection == "dense"
               else functools.partial(keras.layers.Conv1D, kernel_size=1))
    if len(input_shape) != 1 or width % heads or layers < 1:
        raise ValueError("expected input_shape (length,), width divisible by heads, layers >= 1")
    tokens = keras.Input(shape=input_shape, dtype="int32", name="tokens")
    embedding = OneHotEmbedding if matmul else keras.layers.Embedding
    x = embedding(num_classes, width, name="token_embedding")(tokens)
    x = PositionEmbedding(as_matmul=matmul, name="position_embedding")(x)
    for i in range(1, layers + 1):
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        attention = (keras.layers.MultiHeadAttention if mask_value is None else
                     functools.partial(BoundedMaskAttention, mask_value=mask_value,
                                       runtime_mask=matmul))
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
