"""Which layers each technique acts on, decided by what the library will really change.

A layer is prunable only if tfmot's prune registry (or the layer itself, as a
`PrunableLayer`) names at least one weight to prune, clusterable only if the
clustering registry names one, quantizable if tfmot's default 8-bit registry
supports it, and factorizable (greenlite's own low-rank stage) if it is a
Dense or Conv2D layer. tfmot's registries "support" some layers whose
weights they leave alone (DepthwiseConv2D and BatchNormalization map to no
weights): selecting those would promise a sparsity the file never gets, so
they are skipped with that reason.

`OVERRIDES` is the one table where greenlite departs from the registries.
"""
import collections
import fnmatch
import weakref

import numpy as np

from pipeline.errors import RecipeError

PRUNE, CLUSTER, QUANTIZE, FACTORIZE = "prune", "cluster", "quantize", "factorize"

FACTORIZABLE = ("Dense", "Conv2D")
# Layer class -> {technique: why greenlite leaves it alone although tfmot would take it}.
OVERRIDES = {
    # tfmot's 8-bit scheme has no QuantizeConfig for these; stated for the report.
    "MultiHeadAttention": {QUANTIZE: "tfmot's 8-bit scheme has no QuantizeConfig for attention"},
    "BoundedMaskAttention": {QUANTIZE: "tfmot's 8-bit scheme has no QuantizeConfig for attention"},
    "LayerNormalization": {QUANTIZE: "tfmot's 8-bit scheme has no QuantizeConfig for it"},
}

# Human words for messages.
_VERBS = {PRUNE: "prune", CLUSTER: "cluster", QUANTIZE: "quantize-aware train",
          FACTORIZE: "factorize"}
_NOT_SELECTED = "not selected"


def unsupported_reason(layer, technique, model=None):
    """Why `technique` cannot act on `layer` of `model` (None when it can).

    `model` is needed for QAT of BatchNormalization, which depends on the
    layer feeding it; without it such a layer counts as unsupported.
    """
    from pipeline.backend import keras
    kind = type(layer).__name__
    if isinstance(layer, keras.Model):
        return f"{kind}: a subclassed model inside this one; tfmot cannot wrap the layers it holds"
    override = OVERRIDES.get(kind, {}).get(technique)
    if override:
        return f"{kind}: {override}"
    if technique == QUANTIZE:
        if _quantize_registry().supports(layer):
            return None
        if isinstance(layer, keras.layers.BatchNormalization):
            # tfmot's layout transforms fold a BatchNormalization into the
            # convolution or Dense layer before it; anywhere else it has no config.
            feeding = producers(model, layer.name) if model is not None else {}
            if feeding and set(feeding.values()) <= set(FOLDS_BATCHNORM):
                # tfmot's fold matches a convolution without its own activation only.
                activated = [p for p in feeding
                             if getattr(getattr(model.get_layer(p), "activation", None),
                                        "__name__", "linear") != "linear"]
                if activated:
                    return (f"{kind}: its {feeding[activated[0]]} applies an activation "
                            "first, so tfmot's 8-bit scheme cannot fold it")
                # The fold needs the convolution's output to go to this layer only.
                if all(_consumer_count(model, p) == 1 for p in feeding):
                    return None
                return (f"{kind}: its convolution's output also feeds other layers, so "
                        "tfmot's 8-bit scheme cannot fold it")
            return (f"{kind}: not after a convolution or Dense layer, so tfmot's 8-bit scheme "
                    "cannot fold it")
        return f"{kind}: not supported by tfmot's 8-bit scheme"
    if technique == FACTORIZE:
        return None if kind in FACTORIZABLE else f"{kind}: low rank handles Dense and Conv2D only"
    weights = _weights_tfmot_changes(layer, technique)
    if weights is None:
        return f"{kind}: not in tfmot's {technique} registry"
    if not weights:
        return f"{kind}: tfmot {'prunes' if technique == PRUNE else 'clusters'} none of its weights"
    return None


FOLDS_BATCHNORM = ("Conv2D", "DepthwiseConv2D", "Dense")


_CONFIGS = weakref.WeakKeyDictionary()


def _graph(model):
    """[(layer name, class name, [inbound layer names])] from the model's own config.

    Read from the config: layer objects are shared between a model, its
    clones and tfmot's wrapped copies, so a layer's inbound nodes also point
    into those other graphs. A Sequential model's layers each take the one before.
    """
    if model not in _CONFIGS:
        config = model.get_config()
        entries = config.get("layers", [])
        graph = []
        for k, entry in enumerate(entries):
            name = entry["config"].get("name")
            if "inbound_nodes" not in entry:  # Sequential
                inbound = [entries[k - 1]["config"].get("name")] if k > 0 else []
            else:
                inbound = [i[0] for node in entry.get("inbound_nodes", []) for i in node
                           if isinstance(i, (list, tuple)) and i]
            graph.append((name, entry["class_name"], inbound))
        _CONFIGS[model] = graph
    return _CONFIGS[model]


def producers(model, name):
    """{name: class name} of the layers feeding layer `name` in `model`."""
    classes = {n: type(l).__name__ for n, l in ((l.name, l) for l in model.layers)}
    return {i: classes[i] for n, _, inbound in _graph(model) if n == name
            for i in inbound if i in classes}


def _consumer_count(model, name):
    """How many times layer `name`'s output is an input of another layer."""
    return sum(inbound.count(name) for _, _, inbound in _graph(model))


def supports(layer, technique, model=None):
    """True when greenlite applies `technique` to `layer` (of `model`)."""
    return unsupported_reason(layer, technique, model) is None


def _weights_tfmot_changes(layer, technique):
    """Names of the weights tfmot's wrapper would prune/cluster; None if it refuses the layer."""
    from pipeline.backend import tfmot
    if technique == PRUNE:
        from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
            PruneRegistry as registry)
        if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
            return [w.name for w in layer.get_prunable_weights()]
    else:
        from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
            ClusteringRegistry as registry)
        if isinstance(layer, tfmot.clustering.keras.ClusterableLayer):
            return [w.name for w in layer.get_clusterable_weights()]
        if not layer.weights:
            return []  # weightless layers pass through clustering untouched
    if not registry.supports(layer):
        return None
    if layer.__class__ in registry._LAYERS_WEIGHTS_MAP:  # pylint: disable=protected-access
        return list(registry._LAYERS_WEIGHTS_MAP[layer.__class__])  # pylint: disable=protected-access
    # RNN and attention layers: tfmot collects their cells' or projections' kernels.
    return [w.name for w in layer.weights]


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
      are the layers with weights that the technique leaves alone; a reason
      reads "<class>: <why>" or "not selected".
    Raises:
      RecipeError: when a pattern or class matches no layer, or matches only
        layers the technique cannot act on (saying why, grouped by class).
    """
    from pipeline.backend import keras
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    by_class = {type(l).__name__ for l in layers}
    for t in types or []:
        if t not in by_class:
            raise RecipeError(f"{where}.layer_types: no layer of class {t!r} in the model; "
                              f"its classes: {', '.join(sorted(by_class))}")
        matched = [l for l in layers if type(l).__name__ == t]
        if not any(_acts_on(l, technique, model) for l in matched):
            raise RecipeError(f"{where}.layer_types: greenlite cannot {_VERBS[technique]} "
                              f"{t} layers ({unsupported_reason(matched[0], technique, model)}); "
                              f"classes it can: "
                              f"{', '.join(_capable_classes(layers, technique, model))}")
    for pattern in names or []:
        matched = [l for l in layers if fnmatch.fnmatchcase(l.name, pattern)]
        if not matched:
            raise RecipeError(f"{where}.{names_key}: pattern {pattern!r} matches no layer; layers: "
                              f"{_abbreviated([l.name for l in layers], 30)}")
        if not any(_acts_on(l, technique, model) for l in matched):
            reasons = {l.name: (unsupported_reason(l, technique, model) or _NOT_SELECTED)
                       if has_weights(l) else f"{type(l).__name__}: has no weights"
                       for l in matched}
            raise RecipeError(
                f"{where}.{names_key}: pattern {pattern!r} matches only layers greenlite cannot "
                f"{_VERBS[technique]}: {'; '.join(describe_skipped(reasons))}")

    selected, skipped = [], {}
    for layer in layers:
        wanted = ((not names or any(fnmatch.fnmatchcase(layer.name, p) for p in names))
                  and (not types or type(layer).__name__ in types))
        if wanted and _acts_on(layer, technique, model):
            selected.append(layer.name)
        elif has_weights(layer):
            skipped[layer.name] = unsupported_reason(layer, technique, model) or _NOT_SELECTED
    return selected, skipped


def describe_skipped(skipped, names_shown=3):
    """Groups {layer: reason} by reason: ["17 layers, DepthwiseConv2D: tfmot prunes none
    of its weights (block_1_depthwise, block_2_depthwise, ... and 15 more)", ...]."""
    groups = collections.defaultdict(list)
    for layer, reason in skipped.items():
        groups[reason].append(layer)
    return [f"{len(layers)} layer{'s' if len(layers) > 1 else ''}, {reason} "
            f"({_abbreviated(layers, names_shown)})"
            for reason, layers in sorted(groups.items(), key=lambda kv: -len(kv[1]))]


def _abbreviated(names, shown):
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, ... and {len(names) - shown} more"


def _capable_classes(layers, technique, model):
    return sorted({type(l).__name__ for l in layers if _acts_on(l, technique, model)}) or ["none"]


def _acts_on(layer, technique, model):
    # Pruning, clustering and factorizing need weights; QAT also annotates weightless layers.
    if technique != QUANTIZE and not has_weights(layer):
        return False
    return supports(layer, technique, model)


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
