"""Structure a compression stage promises, and its verification in weights.

A stage that prunes or clusters states `Claims` about its output model:

    Claims(sparsity={"dense1": 0.9}, clusters={"dense1": 16}, preserve_zero=True)

The runner hands them to the next stage (which keeps, re-states or drops
them) and verifies them twice: in the Keras weights after the stage
(`keras_stats` + `Claims.violations`), and in the weight buffers of every
exported TFLite file (`verify_file`). Falling more than `TOLERANCE` below a
sparsity target, or holding more unique values per channel than clusters,
fails the run.
"""
import dataclasses
from typing import Mapping, Optional

import numpy as np

from export.tflite_file import kernel_stats, kernels_by_layer
from pipeline import layers as layers_lib

# One percentage point, the promise the report makes about sparsity.
TOLERANCE = 0.01


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a stage promises about its output model's kernels.

    Attributes:
      sparsity: {layer: fraction of zeros it holds at least (within TOLERANCE)}.
      clusters: {layer: most unique values in any output channel}.
      preserve_zero: sparsity-preserving clustering keeps exact zeros beside
        the centroids, so one more unique value per channel is allowed.
    """
    sparsity: Mapping[str, float] = dataclasses.field(default_factory=dict)
    clusters: Mapping[str, int] = dataclasses.field(default_factory=dict)
    preserve_zero: bool = False

    @property
    def layers(self):
        """Every layer named by any claim, sorted."""
        return sorted(set(self.sparsity) | set(self.clusters))

    def __bool__(self):
        return bool(self.sparsity or self.clusters)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Plain values for metrics.json and report.json."""
        return {"sparsity": dict(self.sparsity), "clusters": dict(self.clusters),
                "preserve_zero": self.preserve_zero}

    @classmethod
    def from_dict(cls, d):
        d = d or {}
        return cls(sparsity=dict(d.get("sparsity") or {}), clusters=dict(d.get("clusters") or {}),
                   preserve_zero=bool(d.get("preserve_zero")))

    def violations(self, stats):
        """Human-readable failures of `stats` ({layer: kernel_stats}) against these
        claims; empty when all hold."""
        problems = []
        for layer, target in sorted(self.sparsity.items()):
            if layer not in stats:
                problems.append(f"{layer}: kernel not found, sparsity target {target:.2f} unverified")
            elif stats[layer]["sparsity"] < target - TOLERANCE:
                problems.append(f"{layer}: sparsity {stats[layer]['sparsity']:.4f} is more than "
                                f"1 point below the target {target:.2f}")
        for layer, clusters in sorted(self.clusters.items()):
            allowed = clusters + (1 if self.preserve_zero else 0)
            if layer not in stats:
                problems.append(f"{layer}: kernel not found, {clusters} clusters unverified")
            elif stats[layer]["max_unique_per_channel"] > allowed:
                problems.append(f"{layer}: {stats[layer]['max_unique_per_channel']} unique values "
                                f"in a channel, more than the {allowed} clusters allow")
        return problems


@dataclasses.dataclass
class FileCheck:
    """The claimed layers' kernels as one exported file holds them.

    Attributes:
      weights: {layer: {dtype, size, sparsity, unique, max_unique_per_channel,
        entropy_bits}} read from the file's buffers.
      sparsity: zeros over the sparsity-claimed kernels together (size-weighted).
      max_unique_per_channel: the most over the cluster-claimed kernels.
      entropy_bits_per_weight: over the cluster-claimed kernels (size-weighted).
      problems: the claims that do not hold in the file.
    """
    weights: dict
    sparsity: Optional[float]
    max_unique_per_channel: Optional[int]
    entropy_bits_per_weight: Optional[float]
    problems: list


def verify_file(tflite_path, claims):
    """Measures the claimed layers' kernels in a .tflite file and checks `claims`."""
    kernels = kernels_by_layer(tflite_path, claims.layers) if claims.layers else {}
    # TFLite keeps output channels on the first axis.
    stats = {n: kernel_stats(t.values, axis=0) for n, t in kernels.items()}
    clustered = [n for n in claims.clusters if n in stats]
    sizes = sum(stats[n]["size"] for n in clustered)
    return FileCheck(
        weights={n: {"dtype": kernels[n].dtype, **st} for n, st in stats.items()},
        sparsity=overall_sparsity(stats, claims.sparsity) if claims.sparsity else None,
        max_unique_per_channel=max((stats[n]["max_unique_per_channel"] for n in clustered),
                                   default=None),
        entropy_bits_per_weight=(sum(stats[n]["entropy_bits"] * stats[n]["size"]
                                     for n in clustered) / sizes) if sizes else None,
        problems=claims.violations(stats))


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
