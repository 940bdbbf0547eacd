"""Starting ranges for QAT's activation quantizers, measured on training data.

tfmot starts every activation quantizer at [-6, 6] and moves it towards each
batch's range by an exponential moving average with decay 0.999: about a
thousand training steps to forget the start (tensorflow/model-optimization
#368). A short fine-tune of a trained model keeps much of it. On the
search_digits students (logits from -21 to 22), 296 steps of QAT ended with
the logits clipped to [-8.4, 7.1], where the top two classes of a confident
digit can tie, and a third to a half of each ReLU's 256 levels on negative
values it never produces; the QAT model lost 7-10 of 1,620 validation digits
that the float model had right (BUILD_NOTES.md, "QAT's starting ranges").

NNCF measures its quantizers' ranges on data before QAT starts ("range
init"); this does the same for tfmot's. The statistic is what tfmot's moving
average itself converges to: the mean over batches of each batch's minimum
and maximum, with 0 inside the range (TFLite needs 0 representable); for
tfmot's all-values quantizers (the model's input), the widest range seen. The
values come from the float model the QAT model was made from, whose layers
keep their names inside tfmot's wrappers. Training then moves the ranges on
from there, as before.

Not where the float model's BatchNorm moving statistics do not describe its
inputs (a BatchNorm input's variance on the examples more than 10x off its
moving variance): its inference-mode activations are then not what QAT's
training steps compute, and every quantizer is left at tfmot's start, with why.
"""
import numpy as np

from pipeline.lazy_backend import keras, tfmot


def initialize(float_model, qat_model, x, batch_size):
    """Sets the ranges of `qat_model`'s activation quantizers from `float_model`'s
    activations on the examples `x` (in batches of `batch_size`).

    Returns (set, left): `set` maps each quantizer set, as "layer/kind", to its
    (min, max); `left` names the quantizers left at tfmot's start, with why
    (a layer tfmot made that the float model does not have, a layer called
    more than once, a per-channel or non-moving-average quantizer, a constant
    activation).
    """
    targets, left = _targets(float_model, qat_model)
    tensors, pre_layers, measured = [], {}, []
    for target in targets:
        layer = float_model.get_layer(target.layer)
        if target.kind == "pre_activation":
            # The layer again without its activation, fed the layer's input.
            if target.layer not in pre_layers:
                try:
                    pre_layers[target.layer] = _without_activation(layer)
                except (TypeError, ValueError) as error:
                    left[target.key] = f"its pre-activation cannot be computed ({error})"
                    continue
            tensors.append(layer.get_input_at(_own_node(float_model, layer)))
        else:
            tensors.append(layer.get_output_at(_own_node(float_model, layer)))
        measured.append(target)
    targets = measured
    if not targets:
        return {}, left
    norms, norm_inputs = _batchnorms(float_model)
    probe = keras.Model(float_model.inputs, tensors + norm_inputs)
    lows = [[] for _ in targets]
    highs = [[] for _ in targets]
    variances = [[] for _ in norms]
    for start in range(0, len(x), batch_size):
        values = probe(x[start:start + batch_size], training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for i, value in enumerate(values[len(targets):]):
            value = np.asarray(value)
            variances[i].append(value.reshape(-1, value.shape[-1]).var(axis=0))
        for i, (target, value) in enumerate(zip(targets, values)):
            if target.kind == "pre_activation":
                value = pre_layers[target.layer](value, training=False)
            value = np.asarray(value)
            lows[i].append(min(float(value.min()), 0.0))
            highs[i].append(max(float(value.max()), 0.0))
    stale = _stale_batchnorm(norms, variances)
    if stale:
        # Inference-mode activations of such a model are not what QAT's training
        # steps see (BatchNorm then uses each batch's statistics): ranges measured
        # on them were 1/1000 of the training-mode values on EfficientNetB0 after
        # two steps an epoch, and its QAT weights went NaN at the second step.
        why = f"BatchNorm statistics not settled ({stale}): tfmot's start is safer"
        return {}, {**left, **{t.key: why for t in targets}}
    ranges = {}
    for target, low, high in zip(targets, lows, highs):
        if isinstance(target.quantizer, tfmot.quantization.keras.quantizers.AllValuesQuantizer):
            # It keeps the widest range it has seen.
            low, high = float(np.min(low)), float(np.max(high))
        else:
            low, high = float(np.mean(low)), float(np.mean(high))
        if high - low <= 1e-6:
            left[target.key] = "constant activation on the calibration examples"
            continue
        if target.quantizer.symmetric:
            high = max(-low, high)
            low = -high
        target.variables["min_var"].assign(low)
        target.variables["max_var"].assign(high)
        ranges[target.key] = (low, high)
    return ranges, left


# A BatchNorm whose input's variance on the examples is this many times its moving
# variance, or this fraction of it, has moving statistics that do not describe its
# input: the model's inference-mode outputs are not what training computes.
STALE_VARIANCE_RATIO = 10.0


def _batchnorms(model):
    """([BatchNormalization layer], [its input tensor]) for those the model calls once
    (their inputs can be probed)."""
    norms, inputs = [], []
    for layer in model.layers:
        node = (_own_node(model, layer) if isinstance(layer, keras.layers.BatchNormalization)
                else None)
        tensor = layer.get_input_at(node) if node is not None else None
        if tensor is not None and not isinstance(tensor, (list, tuple)):
            norms.append(layer)
            inputs.append(tensor)
    return norms, inputs


def _stale_batchnorm(norms, variances):
    """'layer: input variance N x its moving variance' for the first BatchNorm whose
    moving variance is off by more than STALE_VARIANCE_RATIO (median over its
    channels), else ''."""
    for layer, batches in zip(norms, variances):
        if not batches:
            continue
        seen = np.mean(batches, axis=0)
        moving = np.asarray(layer.moving_variance)
        if seen.shape != moving.shape:
            continue
        ratio = float(np.median((seen + 1e-12) / (moving + 1e-12)))
        if ratio > STALE_VARIANCE_RATIO or ratio < 1 / STALE_VARIANCE_RATIO:
            return f"{layer.name}: input variance {ratio:.3g}x its moving variance"
    return ""


class _Target:
    """One activation quantizer: the float layer whose output (or pre-activation)
    it quantizes, its quantizer and its min/max variables."""

    def __init__(self, layer, kind, quantizer, variables):
        self.layer, self.kind = layer, kind
        self.quantizer, self.variables = quantizer, variables
        self.key = f"{layer}/{kind}"


def _targets(float_model, qat_model):
    """The activation quantizers of `qat_model` this can measure, and those it cannot."""
    float_names = {l.name for l in float_model.layers}
    found, left = [], {}
    for layer in qat_model.layers:
        candidates = []
        if isinstance(layer, tfmot.quantization.keras.QuantizeWrapper):
            name = layer.layer.name
            for activation in layer._quantize_activations:
                for kind in ("pre_activation", "post_activation"):
                    variables = getattr(activation, f"_{kind}_vars", None)
                    if variables:
                        candidates.append((name, kind, activation.quantizer, variables))
            if layer._output_quantizers:
                candidates.append((name, "output", layer._output_quantizers[0],
                                   layer._output_quantizer_vars))
        elif type(layer).__name__ == "QuantizeLayer" and getattr(layer, "quantizer", None):
            # It quantizes its input: the output of the layer before it.
            source = layer._inbound_nodes[0].inbound_layers
            source = source[0] if isinstance(source, (list, tuple)) else source
            name = getattr(source, "layer", source).name
            candidates.append((name, "output", layer.quantizer, layer.quantizer_vars))
        for name, kind, quantizer, variables in candidates:
            key = f"{name}/{kind}"
            why = _why_not(float_model, float_names, name, quantizer)
            if why:
                left[key] = why
            else:
                found.append(_Target(name, kind, quantizer, variables))
    return found, left


def _why_not(float_model, float_names, name, quantizer):
    quantizers = tfmot.quantization.keras.quantizers
    if not isinstance(quantizer, (quantizers.MovingAverageQuantizer, quantizers.AllValuesQuantizer)):
        return f"{type(quantizer).__name__}, not a moving-average or all-values quantizer"
    if quantizer.per_axis:
        return "a per-channel activation quantizer"
    if name not in float_names:
        return "a layer tfmot made, not in the float model"
    layer = float_model.get_layer(name)
    node = _own_node(float_model, layer)
    if node is None or isinstance(layer.get_output_at(node), (list, tuple)):
        return "a layer called more than once in the model, or with several outputs"
    return None


def _own_node(model, layer):
    """The index of `layer`'s one call in `model`'s graph; None when the model
    calls it more than once.

    A layer object can also be called in other models: a stage's clone and
    tfmot's wrapped copy share the layers a stage leaves unwrapped (prune
    and cluster with `layers:`). Those calls are not this model's; counting
    them left the convolutions and the logits of every search_digits trial
    made in one process at tfmot's [-6, 6] start (BUILD_NOTES.md, "QAT's
    starting ranges, when layers are shared").
    """
    keys = getattr(model, "_network_nodes", None)
    nodes = range(len(layer._inbound_nodes))
    # A functional model names its nodes "<layer>_ib-<index>" (tf_keras' _make_node_key).
    own = [i for i in nodes if keys is None or f"{layer.name}_ib-{i}" in keys]
    return own[0] if len(own) == 1 else None


def _without_activation(layer):
    """A copy of `layer` with the same weights and a linear activation."""
    copy = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def set_weight_ranges(qat_model, x):
    """Sets the ranges of `qat_model`'s weight quantizers from the weights, as
    QAT's first training step would; `x`: one batch of inputs.

    tfmot's weight quantizers start at [-6, 6] too and take each weight's range
    on every training step, so a model quantized without training (`epochs:
    0`) would keep that start where the converter reads it: int8 steps of 0.05
    for weights of about +-1. One forward pass in training mode sets them,
    through each quantizer's own code (per channel or not, symmetric,
    clustered). Every other variable the pass moves (activation ranges,
    BatchNorm statistics, the input's all-values range) is put back.
    """
    weight_quantizer_variables = {
        id(v) for layer in qat_model.layers
        for _, _, variables in getattr(layer, "_weight_vars", ())
        for v in variables.values() if hasattr(v, "assign")}
    kept = [(v, v.numpy()) for v in qat_model.variables if id(v) not in weight_quantizer_variables]
    qat_model(x, training=True)
    for variable, value in kept:
        variable.assign(value)
