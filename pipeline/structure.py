"""Structure a compression stage promises, and its verification in weights.

A stage that prunes or clusters records *claims* about its output model:

    {"sparsity": {"dense1": 0.9, ...}, "clusters": {"dense1": 16, ...}}

The runner passes the claims on to the next stage (which keeps, re-states or
drops them) and verifies them twice: in the Keras weights after the stage, and
in the weight buffers of every exported TFLite file. Falling more than
`TOLERANCE` below a sparsity target, or holding more unique values per channel
than clusters, fails the run.
"""
import numpy as np

from export.tflite_file import kernel_stats
from pipeline import layers as layers_lib

# One percentage point, the promise the report makes about sparsity.
TOLERANCE = 0.01


def keras_stats(model, layer_names):
    """{layer: kernel_stats} of the named layers' kernels in a Keras model.

    Accepts the original names of layers that QAT wrapped as `quant_<name>`.
    """
    by_name = {l.name: l for l in model.layers}
    out = {}
    for name in layer_names:
        layer = by_name.get(name) or by_name.get("quant_" + name)
        weights = layers_lib.kernel(layer) if layer is not None else None
        if weights is not None:
            # Keras keeps output channels on the last axis.
            out[name] = kernel_stats(np.asarray(weights.numpy()), axis=-1)
    return out


def overall_sparsity(stats, layer_names):
    """Fraction of zeros over all the named kernels together (size-weighted)."""
    sizes = [stats[n]["size"] for n in layer_names if n in stats]
    zeros = [stats[n]["sparsity"] * stats[n]["size"] for n in layer_names if n in stats]
    return float(sum(zeros) / sum(sizes)) if sizes else None


def violations(claims, stats):
    """Human-readable failures of `stats` against `claims` (empty when all hold).

    Args:
      claims: {"sparsity": {layer: target}, "clusters": {layer: n},
        "preserve_zero": bool}. Sparsity-preserving clustering keeps exact
        zeros beside the n centroids, so `preserve_zero` allows one more
        unique value per channel.
      stats: {layer: kernel_stats}.
    """
    allow_zero_cluster = bool(claims.get("preserve_zero"))
    problems = []
    for layer, target in sorted((claims.get("sparsity") or {}).items()):
        if layer not in stats:
            problems.append(f"{layer}: kernel not found, sparsity target {target:.2f} unverified")
        elif stats[layer]["sparsity"] < target - TOLERANCE:
            problems.append(f"{layer}: sparsity {stats[layer]['sparsity']:.4f} is more than "
                            f"1 point below the target {target:.2f}")
    for layer, clusters in sorted((claims.get("clusters") or {}).items()):
        allowed = clusters + (1 if allow_zero_cluster else 0)
        if layer not in stats:
            problems.append(f"{layer}: kernel not found, {clusters} clusters unverified")
        elif stats[layer]["max_unique_per_channel"] > allowed:
            problems.append(f"{layer}: {stats[layer]['max_unique_per_channel']} unique values in "
                            f"a channel, more than the {allowed} clusters allow")
    return problems


def claimed_layers(claims):
    """Every layer named by any claim."""
    return sorted(set(claims.get("sparsity") or {}) | set(claims.get("clusters") or {}))
