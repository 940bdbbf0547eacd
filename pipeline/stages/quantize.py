"""`quantize`: quantization-aware training (QAT) with tfmot, selective and collaborative."""
import dataclasses
from typing import Literal, Optional

from pipeline import layers as layers_lib
from pipeline import structure
from pipeline.backend import keras, tfmot
from pipeline.config import at_least, between
from pipeline.errors import GreenliteError, RecipeError
from pipeline.stages.base import Stage, clone
from pipeline.training import FitConfig, fit

# Kernels sparser than this count as pruned for `preserve: sparsity`.
MIN_SPARSITY = 0.05
# Without an earlier cluster stage, kernels with at most this many unique
# values (and at most 1/16 as many as weights) count as clustered.
MAX_CLUSTERS = 256


class Quantize(Stage):
    """Fine-tunes the model with fake quantization so full-int8 export keeps its accuracy.

    Selective: layers tfmot's default 8-bit scheme cannot quantize
    (MultiHeadAttention, LayerNormalization, custom layers) and layers named in
    `keep_float` stay float and are reported; the rest are annotated.
    `preserve` picks tfmot's collaborative schemes so the input's structure
    survives QAT: `sparsity` (PQAT), `clusters` (CQAT) or `both` (PCQAT).
    The returned model is the QAT model; export converts it to int8.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        preserve: Literal["none", "sparsity", "clusters", "both"] = "none"
        # Glob patterns of layer names to leave in float.
        keep_float: Optional[list[str]] = None
        epochs: int = dataclasses.field(default=3, metadata=at_least(1))
        # QAT starts from trained weights: a small rate keeps them.
        learning_rate: float = dataclasses.field(default=1e-4, metadata=between(0, 1, low_open=True))

    def run(self, model, data, ctx):
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        selected, _ = layers_lib.select(model, layers_lib.QUANTIZE, where=where)
        kept = set(layers_lib.select(model, layers_lib.QUANTIZE, cfg.keep_float, where=where,
                                     names_key="keep_float")[0]) if cfg.keep_float else set()
        annotate = [n for n in selected if n not in kept]
        float_layers = {l.name: ("kept in float by keep_float" if l.name in kept else
                                 f"{type(l).__name__}: not supported by tfmot's 8-bit scheme")
                        for l in model.layers
                        if l.name not in annotate and not isinstance(l, keras.layers.InputLayer)}
        claims = self._claims_to_preserve(model, ctx, where)
        scheme = self._scheme()
        ctx.log(f"quantize: QAT on {len(annotate)} layer(s), scheme "
                f"{type(scheme).__name__}; float: {float_layers or 'none'}")

        keras.utils.set_random_seed(ctx.seed)
        copy = clone(model)
        clustered = set(claims.get("clusters") or {})
        default_configs = layers_lib.default_8bit_registry()

        def annotate_layer(layer):
            if layer.name not in annotate:
                return layer
            config = None
            if clustered and layer.weights and layer.name not in clustered:
                # tfmot's cluster-preserving scheme treats every layer as clustered
                # (a 288-weight kernel becomes 288 "centroids") and switches sparsity
                # preservation off for the layers after one without zeros; layers
                # with no cluster claim get the plain default 8-bit config instead.
                config = default_configs.get_quantize_config(layer)
            return tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=config)

        annotated = keras.models.clone_model(copy, clone_function=annotate_layer)
        with tfmot.quantization.keras.quantize_scope():
            qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
        fit(qat, data, cfg, ctx)
        if clustered:
            # Writes the clustered weights back into the kernels and drops the
            # centroid/index variables, which do not survive save and load.
            qat = tfmot.experimental.combine.strip_clustering_cqat(qat)

        stats = structure.keras_stats(qat, structure.claimed_layers(claims))
        ctx.metrics.update(structure=claims, quantized_layers=annotate, float_layers=float_layers,
                           scheme=type(scheme).__name__)
        problems = structure.violations(claims, stats)
        if problems:
            raise GreenliteError(f"{where}: QAT did not preserve the structure: "
                                 f"{'; '.join(problems)}")
        return qat

    def _scheme(self):
        preserve = self.config.preserve
        if preserve == "sparsity":
            return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        if preserve in ("clusters", "both"):
            return tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=preserve == "both")
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()

    def _claims_to_preserve(self, model, ctx, where):
        """The input's claims this QAT keeps, after checking the input has that structure."""
        preserve = self.config.preserve
        claims = {}
        kernels = [l.name for l in model.layers if layers_lib.kernel(l) is not None]
        stats = structure.keras_stats(model, kernels)
        if preserve in ("sparsity", "both"):
            sparse = {n: s["sparsity"] for n, s in stats.items() if s["sparsity"] >= MIN_SPARSITY}
            if not sparse:
                raise RecipeError(
                    f"{where}.preserve: {preserve!r}, but no kernel of the input model is sparse "
                    f"(all below {MIN_SPARSITY:.0%} zeros); prune before, or use preserve: none")
            # Keep the earlier stage's targets where it set them, else what is there now.
            targets = ctx.structure.get("sparsity") or {}
            claims["sparsity"] = {n: targets.get(n, round(s - structure.TOLERANCE / 2, 4))
                                  for n, s in sparse.items()}
        if preserve in ("clusters", "both"):
            # An earlier cluster stage says which layers it clustered; a model
            # without such claims (a user's) is measured instead.
            clustered = dict(ctx.structure.get("clusters") or {}) or {
                n: s["max_unique_per_channel"] for n, s in stats.items()
                if s["unique"] <= min(MAX_CLUSTERS, s["size"] // 16)}
            if not clustered:
                raise RecipeError(
                    f"{where}.preserve: {preserve!r}, but no kernel of the input model is "
                    f"clustered (none has at most {MAX_CLUSTERS} unique values, and at most 1/16 "
                    "as many as weights); cluster before, or use preserve: none")
            claims["clusters"] = clustered
            claims["preserve_zero"] = bool(ctx.structure.get("preserve_zero"))
        return claims
