"""Which layers each technique acts on: one table, and selection by name or class.

`POLICY` maps Keras layer classes that hold weights to the techniques
greenlite applies to them. Weightless layers (pooling, reshapes, activations,
adds) have nothing to prune or cluster; for QAT, tfmot's default 8-bit
registry decides whether they get activation quantizers. Layers outside the
table are left alone by prune and cluster and reported as skipped; QAT
leaves them in float.
"""
import fnmatch

import numpy as np

from pipeline.backend import keras, tfmot
from pipeline.errors import RecipeError

PRUNE, CLUSTER, QUANTIZE, FACTORIZE = "prune", "cluster", "quantize", "factorize"

_CONV = {PRUNE, CLUSTER, QUANTIZE}
POLICY = {
    "Dense": {PRUNE, CLUSTER, QUANTIZE, FACTORIZE},
    "Conv2D": {PRUNE, CLUSTER, QUANTIZE, FACTORIZE},
    "Conv1D": _CONV,
    "DepthwiseConv2D": _CONV,
    "SeparableConv2D": _CONV,
    "Conv2DTranspose": {PRUNE, CLUSTER, QUANTIZE},
    "Embedding": {PRUNE, CLUSTER},
    "BatchNormalization": {QUANTIZE},
    # tfmot has no QuantizeConfig for attention or normalization across features.
    "MultiHeadAttention": set(),
    "LayerNormalization": set(),
}

# Human words for the report.
_VERBS = {PRUNE: "prune", CLUSTER: "cluster", QUANTIZE: "quantize-aware train",
          FACTORIZE: "factorize"}


def supports(layer, technique):
    """True when greenlite applies `technique` to `layer`."""
    name = type(layer).__name__
    if name in POLICY and type(layer).__module__.startswith(("tf_keras", "keras")):
        return technique in POLICY[name]
    if technique == PRUNE:
        return isinstance(layer, tfmot.sparsity.keras.PrunableLayer)
    if technique == CLUSTER:
        return isinstance(layer, tfmot.clustering.keras.ClusterableLayer)
    if technique == QUANTIZE:
        return _quantize_registry().supports(layer)
    return False


def has_weights(layer):
    return bool(layer.weights)


def kernel(layer):
    """The main weight variable of a layer, or None.

    Looked up among the layer's variables by name, not as `layer.kernel`:
    tfmot's QAT wrapper replaces the inner layer's `kernel` attribute with a
    symbolic fake-quantized tensor.
    """
    candidates = [w for w in layer.weights
                  if w.name.split("/")[-1].split(":")[0] in _KERNEL_NAMES]
    return max(candidates, key=lambda w: int(np.prod(w.shape)), default=None)


_KERNEL_NAMES = ("kernel", "depthwise_kernel", "embeddings")


def select(model, technique, names=None, types=None, where="stages", names_key="layers"):
    """Chooses the layers of `model` that `technique` acts on.

    Args:
      model: a functional or Sequential keras.Model.
      technique: PRUNE, CLUSTER, QUANTIZE or FACTORIZE.
      names: optional glob patterns (fnmatch: `dense*`, `conv?`) on layer names.
      types: optional layer class names (`Dense`, `Conv2D`).
      where: the recipe path of the stage, for messages.
      names_key: the stage's key that holds `names`, for messages.
    Returns:
      (selected layer names, {skipped layer name: reason}) where the skipped
      are the layers with weights that the technique leaves alone.
    Raises:
      RecipeError: when a pattern or class matches no layer, or matches only
        layers the technique cannot act on.
    """
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    by_class = {type(l).__name__ for l in layers}
    for t in types or []:
        if t not in by_class:
            raise RecipeError(f"{where}.layer_types: no layer of class {t!r} in the model; "
                              f"its classes: {', '.join(sorted(by_class))}")
    for pattern in names or []:
        matched = [l for l in layers if fnmatch.fnmatchcase(l.name, pattern)]
        if not matched:
            raise RecipeError(f"{where}.{names_key}: pattern {pattern!r} matches no layer; layers: "
                              f"{', '.join(l.name for l in layers)}")
        if not any(supports(l, technique) and _acts_on(l, technique) for l in matched):
            raise RecipeError(
                f"{where}.{names_key}: pattern {pattern!r} matches only layers greenlite cannot "
                f"{_VERBS[technique]}: {', '.join(l.name for l in matched)}")

    selected, skipped = [], {}
    for layer in layers:
        wanted = ((not names or any(fnmatch.fnmatchcase(layer.name, p) for p in names))
                  and (not types or type(layer).__name__ in types))
        if wanted and supports(layer, technique) and _acts_on(layer, technique):
            selected.append(layer.name)
        elif has_weights(layer):
            skipped[layer.name] = _skip_reason(layer, technique)
    return selected, skipped


def _skip_reason(layer, technique):
    if isinstance(layer, keras.Model):
        return (f"{type(layer).__name__}: a subclassed model inside this one; tfmot cannot "
                "wrap the layers it holds")
    return f"{type(layer).__name__}: not supported" if not supports(layer, technique) else "not selected"


def _acts_on(layer, technique):
    # Pruning and clustering need weights; QAT also annotates weightless layers.
    return technique == QUANTIZE or has_weights(layer)


_REGISTRY = []


def default_8bit_registry():
    """tfmot's default 8-bit QuantizeRegistry (which layers QAT supports, and how)."""
    return _quantize_registry()


def _quantize_registry():
    if not _REGISTRY:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry)
        _REGISTRY.append(default_8bit_quantize_registry.Default8BitQuantizeRegistry())
    return _REGISTRY[0]
