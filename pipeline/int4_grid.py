"""Weights on ai-edge-quantizer's int4 grid, and training that keeps them there.

ai-edge-quantizer (0.10) stores a FULLY_CONNECTED or CONV_2D weight in 4 bits
as clip(round(w / s), -8, 7) with a symmetric scale s = max|w| / 7, taken per
output channel ("channelwise": the int4_weights and int4_dynamic formats) or
per block of 32 consecutive input weights of each output channel, the scale
rounded to bfloat16 ("blockwise_32": int4_blockwise; FULLY_CONNECTED only)
(ai_edge_quantizer/algorithms/uniform_quantize/uniform_quantize_tensor.py).
A weight that already lies on that grid comes out of the quantizer exactly as
it went in, so a model trained on the grid loses nothing at export.

`straight_through` is that training: a Keras callback that keeps a float
master copy of every such weight, lets the model compute on the master's grid
values, and adds each optimizer step's change to the master (the straight-
through estimator of Courbariaux et al., BinaryConnect). Why a callback and
not tfmot: tfmot's quantize_model has no QuantizeConfig for
MultiHeadAttention's EinsumDense kernels, and its FakeQuant nudges ranges
onto a grid that is not ai-edge-quantizer's; the callback works with any
layer whose kernel maps to a FULLY_CONNECTED and with `fit` as it is
(validation, early stopping, distribution).
"""
import functools
import math

import numpy as np

from export import formats as formats_lib
from pipeline.lazy_backend import keras, tf

# Recipe names of the granularities, their block sizes, and the export formats each matches.
BLOCK = {"channelwise": None, "blockwise_32": 32}
FORMATS = {g: formats_lib.names(int4_granularity=g) for g in BLOCK}
QMIN, QMAX = -8, 7


def targets(model, granularity):
    """[(weight name, weight, input axes)] that int4 export at `granularity` quantizes.

    A weight's leading `input axes` are its input channels, the rest its
    output channels (a Dense kernel (in, out): 1). Dense and EinsumDense
    kernels (attention's projections) become FULLY_CONNECTED weights; Conv1D/
    Conv2D kernels become CONV_2D, which only channelwise covers; layers with
    a `matmul_weights()` method (the zoo Transformer's one-hot embeddings)
    name their own. Blockwise skips weights whose input size is not a
    multiple of the block.
    """
    block = BLOCK[granularity]
    found = []
    for layer in _layers(model):
        for weight, input_axes in _kernels(layer, convolutions=block is None):
            inputs = math.prod(int(d) for d in weight.shape[:input_axes])
            if block and inputs % block:
                continue
            found.append((weight.name.split(":")[0], weight, input_axes))
    return found


def on_grid(weight, input_axes, granularity):
    """`weight` (a tensor) rounded onto the int4 grid ai-edge-quantizer would store."""
    block = BLOCK[granularity]
    shape = weight.shape
    inputs = math.prod(int(d) for d in shape[:input_axes])
    columns = tf.reshape(weight, (inputs, -1))
    if block:
        blocks = tf.reshape(columns, (inputs // block, block, -1))
        scale = _scale(tf.reduce_max(tf.abs(blocks), axis=1, keepdims=True))
        # ai-edge-quantizer keeps blockwise scales with a 7-bit mantissa.
        scale = tf.cast(tf.cast(scale, tf.bfloat16), tf.float32)
        grid = tf.clip_by_value(tf.round(blocks / scale), QMIN, QMAX) * scale
    else:
        scale = _scale(tf.reduce_max(tf.abs(columns), axis=0, keepdims=True))
        grid = tf.clip_by_value(tf.round(columns / scale), QMIN, QMAX) * scale
    return tf.reshape(grid, shape)


def off_grid(targets_, granularity):
    """The largest |w - grid(w)| over `targets_` (0.0 when every weight is on the grid)."""
    return max((float(np.max(np.abs(w.numpy() - on_grid(w, axes, granularity).numpy())))
                for _, w, axes in targets_), default=0.0)


def straight_through(targets_, granularity):
    """A Keras callback that trains `targets_` on the int4 grid with straight-through
    gradients (module doc).

    Outside the optimizer's step every target weight holds its master's grid
    value, so validation, early stopping's saved weights and the model that
    `fit` returns are all int4 models. Exact for optimizers whose step does
    not depend on the weight's value (SGD, Adam, RMSprop without weight decay).
    """
    return _straight_through_class()(targets_, granularity)


@functools.cache
def _straight_through_class():
    # Defined on first use: subclassing keras.callbacks.Callback imports
    # TensorFlow, which a recipe check must not wait for.
    class StraightThrough(keras.callbacks.Callback):
        def __init__(self, targets_, granularity):
            super().__init__()
            self.targets = targets_
            self.granularity = granularity
            self.masters = None
            self.grids = None

        def on_train_begin(self, logs=None):
            if self.masters is None:
                self.masters = [tf.Variable(w, trainable=False) for _, w, _ in self.targets]
                self.grids = [tf.Variable(w, trainable=False) for _, w, _ in self.targets]
            else:  # a second fit() continues from the weights as they are now
                for master, (_, w, _) in zip(self.masters, self.targets):
                    master.assign(w)
            self._project()
            # Traced here, not on the first batch (Keras warns of a slow batch-end
            # callback otherwise); with every weight on its grid the step adds 0.
            self._step()

        def on_train_batch_end(self, batch, logs=None):
            self._step()

        @tf.function
        def _step(self):
            for master, grid, (_, w, _) in zip(self.masters, self.grids, self.targets):
                master.assign_add(w - grid)  # the optimizer's change, made at the grid value
            self._project()

        def _project(self):
            for master, grid, (_, w, axes) in zip(self.masters, self.grids, self.targets):
                grid.assign(on_grid(master, axes, self.granularity))
                w.assign(grid)

    return StraightThrough


def _scale(bound):
    # ai-edge-quantizer: bound = max(|min|, |max|, 1e-9); scale = bound / qmax.
    return tf.maximum(bound, 1e-9) / QMAX


def _layers(model):
    seen = set()
    for module in model.submodules:
        if isinstance(module, keras.layers.Layer) and id(module) not in seen:
            seen.add(id(module))
            yield module


def _kernels(layer, convolutions):
    """[(weight, input axes)] of `layer` that become a quantizable op's weight."""
    if hasattr(layer, "matmul_weights"):
        return list(layer.matmul_weights())
    if isinstance(layer, keras.layers.Dense) and getattr(layer, "kernel", None) is not None:
        return [(layer.kernel, 1)]
    if isinstance(layer, keras.layers.EinsumDense) and getattr(layer, "kernel", None) is not None:
        axes = _einsum_input_axes(layer.equation)
        return [(layer.kernel, axes)] if axes else []
    if (convolutions and isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D))
            and not isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
                                       keras.layers.Conv2DTranspose))
            and getattr(layer, "groups", 1) == 1):
        # (kh, kw, in, out): every axis but the last is an input axis of CONV_2D's
        # per-output-channel scale.
        return [(layer.kernel, len(layer.kernel.shape) - 1)]
    return []


def _einsum_input_axes(equation):
    """How many leading kernel axes an EinsumDense contracts: "abc,cde->abde" -> 1.

    None when the contracted axes are not the kernel's leading ones (the
    converter's FULLY_CONNECTED weight would then order them differently).
    """
    inputs, output = equation.split("->")
    kernel = inputs.split(",")[1]
    contracted = [letter for letter in kernel if letter not in output]
    if not contracted or kernel[:len(contracted)] != "".join(contracted):
        return None
    return len(contracted)
