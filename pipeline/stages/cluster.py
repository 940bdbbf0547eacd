"""`cluster`: weight clustering (weight sharing) with tfmot."""
import dataclasses
from typing import Literal, Optional

import numpy as np

from pipeline import layers as layers_lib
from pipeline import structure
from pipeline.lazy_backend import tf, tfmot
from pipeline.config import at_least, between
from pipeline.errors import GreenliteError, RecipeError
from pipeline.stages.base import Stage, wrap_fit_strip
from pipeline.training import FitConfig

_INIT = {
    "kmeans_plus_plus": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "density_based": "DENSITY_BASED",
    "random": "RANDOM",
}


class Cluster(Stage):
    """Clusters each selected kernel to `number_of_clusters` shared values, then fine-tunes.

    On a pruned input (the previous stage claims sparsity) tfmot's
    sparsity-preserving clustering keeps the zeros, unless `preserve_sparsity`
    says otherwise. After stripping, every clustered kernel is checked to hold
    no more unique values per channel than clusters (plus zero when sparsity is
    preserved).
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        number_of_clusters: int = dataclasses.field(default=16, metadata=at_least(2))
        centroid_init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = (
            "kmeans_plus_plus")
        # Cluster each output channel separately (tfmot supports this for Conv2D).
        per_channel: bool = False
        # None: preserve sparsity when the input model is pruned.
        preserve_sparsity: Optional[bool] = None
        layers: Optional[list[str]] = None
        layer_types: Optional[list[str]] = None
        epochs: int = dataclasses.field(default=5, metadata=at_least(1))
        # Fine-tuning: centroids move, a small rate keeps the accuracy.
        learning_rate: float = dataclasses.field(default=1e-4, metadata=between(0, 1, low_open=True))

        def validate(self):
            if self.early_stopping_patience is not None:
                raise ValueError("early_stopping_patience: not allowed here; restoring the best "
                                 "epoch would bring back weights that are not clustered")

    def run(self, model, data, ctx):
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        selected, skipped = layers_lib.select(model, layers_lib.CLUSTER, cfg.layers,
                                              cfg.layer_types, where)
        if not selected:
            raise RecipeError(f"{where}: no layer of the model can be clustered; skipped: "
                              + "; ".join(layers_lib.describe_skipped(skipped)))
        sparsity = dict(ctx.claims.sparsity)
        preserve = bool(sparsity) if cfg.preserve_sparsity is None else cfg.preserve_sparsity
        if preserve and not sparsity:
            raise RecipeError(f"{where}.preserve_sparsity: true, but the input model is not "
                              "pruned (no earlier prune stage claims sparsity)")
        ctx.log(f"cluster: {len(selected)} layer(s) to {cfg.number_of_clusters} clusters "
                f"({cfg.centroid_init}{', per channel' if cfg.per_channel else ''}"
                f"{', preserving sparsity' if preserve else ''}); skipped: "
                f"{'; '.join(layers_lib.describe_skipped(skipped)) or 'none'}")

        for name in selected:
            kernel = np.asarray(model.get_layer(name).weights[0])
            points = int(np.count_nonzero(kernel)) if preserve else kernel.size
            if points < cfg.number_of_clusters:
                raise RecipeError(
                    f"{where}.number_of_clusters: {cfg.number_of_clusters} is more than the "
                    f"{points}{' nonzero' if preserve else ''} weights of layer {name!r}; "
                    f"lower it, or leave the layer out with {where}.layers")
        init = getattr(tfmot.clustering.keras.CentroidInitialization, _INIT[cfg.centroid_init])
        def wrap(layer):
            try:
                return tfmot.clustering.keras.cluster_weights(
                    layer, number_of_clusters=cfg.number_of_clusters,
                    cluster_centroids_init=init, preserve_sparsity=preserve,
                    cluster_per_channel=cfg.per_channel)
            except ValueError as e:
                raise RecipeError(f"{where}: tfmot cannot cluster layer {layer.name!r}: "
                                  f"{str(e).splitlines()[0]}") from None
            except tf.errors.InvalidArgumentError as e:
                # k-means++ draws its first centroids from the layer's weights
                # (with preserve_sparsity, from its nonzero ones, per sign).
                if "num_to_sample" not in str(e):
                    raise
                raise RecipeError(
                    f"{where}.number_of_clusters: {cfg.number_of_clusters} is more than layer "
                    f"{layer.name!r} has weights to start from"
                    f"{' (nonzero, of each sign)' if preserve else ''}; lower it, or leave the "
                    f"layer out with {where}.layers") from None

        result = wrap_fit_strip(model, selected, wrap, tfmot.clustering.keras.strip_clustering,
                                data, cfg, ctx)

        claims = structure.Claims(sparsity=sparsity if preserve else {},
                                  clusters={n: cfg.number_of_clusters for n in selected},
                                  preserve_zero=preserve)
        stats = structure.keras_stats(result, claims.layers)
        ctx.output_claims = claims
        ctx.metrics.update(
            clustered_layers=selected, skipped_layers=skipped,
            number_of_clusters=cfg.number_of_clusters, preserve_sparsity=preserve,
            keras_max_unique_per_channel={n: stats[n]["max_unique_per_channel"]
                                          for n in selected if n in stats})
        problems = claims.violations(stats)
        if problems:
            raise GreenliteError(f"{where}: clustering did not hold: {'; '.join(problems)}")
        return result
