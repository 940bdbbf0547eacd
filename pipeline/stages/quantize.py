"""`quantize`: quantization-aware training (QAT) with tfmot, selective and collaborative."""
import dataclasses
import fnmatch
from typing import Literal, Optional

from pipeline import layers as layers_lib
from pipeline import structure
from pipeline.lazy_backend import keras, tfmot
from pipeline.config import at_least, between
from pipeline.errors import GreenliteError, RecipeError
from pipeline.stages.base import Stage, rewrap
from pipeline.training import FitConfig, fit

# Kernels sparser than this count as pruned for `preserve: sparsity`.
MIN_SPARSITY = 0.05
# TFLite's int8 average pool needs the same scale on its input and output
# (tensorflow#49133), but tfmot's default scheme gives these layers an output
# quantizer of their own, so the converter failed with "violate the same
# scale constraint" (DenseNet's transitions). They get no quantizer of their
# own, as tfmot already does for MaxPooling2D: the converter gives the output
# the input's scale.
SAME_SCALE_LAYERS = ("AveragePooling1D", "AveragePooling2D")
# Without an earlier cluster stage, kernels with at most this many unique
# values (and at most 1/16 as many as weights) count as clustered.
MAX_CLUSTERS = 256
# Training examples the activation ranges are measured on (`init_ranges: data`).
RANGE_EXAMPLES = 512


class Quantize(Stage):
    """Fine-tunes the model with fake quantization so full-int8 export keeps its accuracy.

    Selective: layers tfmot's default 8-bit scheme cannot quantize
    (MultiHeadAttention, LayerNormalization, custom layers) and layers named in
    `keep_float` stay float and are reported; the rest are annotated.
    `preserve` picks tfmot's collaborative schemes so the input's structure
    survives QAT: `sparsity` (PQAT), `clusters` (CQAT) or `both` (PCQAT);
    `auto` preserves what the input has (a search that may skip pruning or
    clustering, a user's model of unknown history) and says what it chose.
    The returned model is the QAT model; export converts it to int8.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        preserve: Literal["none", "sparsity", "clusters", "both", "auto"] = "none"
        # int8 weights, or ternary (-a, 0, +a) / binary (-a, +a) per output channel,
        # stored on the int8 grid (pipeline/lowbit.py).
        weights: Literal["int8", "ternary", "binary"] = "int8"
        # Glob patterns of the Dense/Conv2D layers that get low-bit weights
        # (default: all of them); the others keep int8 weights.
        low_bit_layers: Optional[list[str]] = None
        # Glob patterns of layer names to leave in float.
        keep_float: Optional[list[str]] = None
        # Where the activation quantizers' ranges start: `data`, measured on up
        # to RANGE_EXAMPLES training examples (pipeline/qat_ranges.py), or
        # `tfmot`, its own [-6, 6], which a short fine-tune does not forget.
        init_ranges: Literal["data", "tfmot"] = "data"
        # 0: no fine-tuning: the measured activation ranges and the weights'
        # own are the int8 file's (post-training quantization, through
        # tfmot's graph so that `preserve` and low-bit weights still apply).
        epochs: int = dataclasses.field(default=3, metadata=at_least(0))
        # QAT starts from trained weights: a small rate keeps them.
        learning_rate: float = dataclasses.field(default=1e-4, metadata=between(0, 1, low_open=True))

        def validate(self):
            if self.weights == "binary" and self.preserve in ("sparsity", "both"):
                raise ValueError("weights: binary has no zero, so it cannot preserve sparsity; "
                                 "use ternary, or preserve: none/clusters")
            if self.low_bit_layers and self.weights == "int8":
                raise ValueError("low_bit_layers: only with weights: ternary or binary")
            if self.epochs == 0 and self.init_ranges != "data":
                raise ValueError("epochs: 0 needs init_ranges: data (without training, tfmot's "
                                 "[-6, 6] start would be the int8 file's ranges)")

    @classmethod
    def notes(cls, name, metrics):
        out = super().notes(name, metrics)
        if metrics.get("masks_reapplied"):
            out.append(f"stage `{name}`: tfmot's sparsity-preserving QAT lost the zeros of "
                       + ", ".join(f"`{n}`" for n in metrics["masks_reapplied"])
                       + "; their pruning masks were re-applied after training")
        return out

    def run(self, model, data, ctx):
        from pipeline import lowbit
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        selected, _ = layers_lib.select(model, layers_lib.QUANTIZE, where=where)
        kept = set(layers_lib.select(model, layers_lib.QUANTIZE, cfg.keep_float, where=where,
                                     names_key="keep_float")[0]) if cfg.keep_float else set()
        annotate = [n for n in selected if n not in kept]
        float_layers = {l.name: ("kept in float by keep_float" if l.name in kept else
                                 layers_lib.unsupported_reason(l, layers_lib.QUANTIZE, model))
                        for l in model.layers
                        if l.name not in annotate and not isinstance(l, keras.layers.InputLayer)}
        input_stats = structure.keras_stats(
            model, [l.name for l in model.layers if layers_lib.kernel(l) is not None])
        preserve = self._preserve(input_stats, ctx)
        claims = self._claims_to_preserve(input_stats, ctx, where, preserve)
        low_bit = self._low_bit_layers(model, annotate, where)
        if low_bit:
            levels = 3 if cfg.weights == "ternary" else 2
            claims = claims.replace(clusters={**claims.clusters, **{n: levels for n in low_bit}})
        scheme = self._scheme(preserve)
        ctx.log(f"quantize: QAT on {len(annotate)} layer(s), scheme "
                f"{type(scheme).__name__}; float: "
                f"{'; '.join(layers_lib.describe_skipped(float_layers)) or 'none'}")

        clustered = set(claims.clusters) - set(low_bit)
        default_configs = layers_lib.default_8bit_registry()
        # Convolutions followed by a BatchNormalization: tfmot folds the pair only
        # when the convolution carries no quantize config of its own (with one, the
        # BatchNorm is left without any and quantize_apply stops). Such a layer goes
        # to the scheme as it is: depthwise kernels it never clusters; an unclustered
        # Conv2D's distinct values become its "centroids", which changes nothing, and
        # the claims check after training catches any zeros lost.
        folded_into_batchnorm = {
            producer for l in model.layers if isinstance(l, keras.layers.BatchNormalization)
            for producer, kind in layers_lib.producers(model, l.name).items()
            if kind in layers_lib.FOLDS_BATCHNORM} if clustered else set()
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_configs as default_8bit_configs)

        def annotate_layer(layer):
            config = None
            if type(layer).__name__ in SAME_SCALE_LAYERS:
                config = default_8bit_configs.NoOpQuantizeConfig()
            elif layer.name in low_bit:
                config = lowbit.LowBitWeightsConfig(
                    cfg.weights, preserve_sparsity=preserve in ("sparsity", "both"))
            elif (clustered and layer.weights and layer.name not in clustered
                  and layer.name not in folded_into_batchnorm
                  and default_configs.supports(layer)):
                # tfmot's cluster-preserving scheme treats every layer as clustered
                # (a 288-weight kernel becomes 288 "centroids") and switches sparsity
                # preservation off for the layers after one without zeros; layers
                # with no cluster claim get the plain default 8-bit config instead.
                # A BatchNormalization has none of its own (the registry refuses it):
                # the scheme's transforms fold it into its convolution, as without
                # clusters (DS-CNN's PCQAT stopped here).
                config = default_configs.get_quantize_config(layer)
            return tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=config)

        annotated = rewrap(model, set(annotate), annotate_layer, ctx.seed)
        with tfmot.quantization.keras.quantize_scope(lowbit.CUSTOM_OBJECTS):
            qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
        # Training examples for the ranges; `epochs: 0` needs them (validate).
        examples = (data.train.sample(RANGE_EXAMPLES, ctx.seed)[0]
                    if cfg.init_ranges == "data" else None)
        ranges = self._init_ranges(model, qat, examples, ctx)
        if cfg.epochs:
            fit(qat, data, cfg, ctx)
        else:
            from pipeline import qat_ranges
            qat_ranges.set_weight_ranges(qat, examples[:cfg.batch_size])
            ctx.log("quantize: epochs: 0, no fine-tuning (post-training quantization with "
                    "the measured ranges)")
        if clustered:
            # Writes the clustered weights back into the kernels and drops the
            # centroid/index variables, which do not survive save and load.
            qat = tfmot.experimental.combine.strip_clustering_cqat(qat)
        if low_bit:
            lowbit.bake(qat, low_bit, cfg.weights)

        restored = _reapply_lost_zeros(model, qat, claims.sparsity)
        if restored:
            ctx.log(f"quantize: tfmot's sparsity-preserving QAT lost the zeros of "
                    f"{len(restored)} layer(s) ({', '.join(restored[:5])}"
                    f"{', ...' if len(restored) > 5 else ''}); their pruning masks were "
                    "re-applied after training")
        stats = structure.keras_stats(qat, claims.layers)
        ctx.output_claims = claims
        ctx.metrics.update(quantized_layers=annotate, float_layers=float_layers,
                           masks_reapplied=restored,
                           scheme=type(scheme).__name__, preserve=preserve, weights=cfg.weights,
                           low_bit_layers=sorted(low_bit), initial_ranges=ranges)
        problems = claims.violations(stats)
        if problems:
            raise GreenliteError(f"{where}: QAT did not preserve the structure: "
                                 f"{'; '.join(problems)}")
        return qat

    def _init_ranges(self, model, qat, x, ctx):
        """Measures the starting ranges of `qat`'s activation quantizers on the
        training examples `x` (None: `init_ranges: tfmot`, nothing measured);
        returns them by quantizer."""
        if x is None:
            return {}
        from pipeline import qat_ranges
        ranges, left = qat_ranges.initialize(model, qat, x, self.config.batch_size)
        widest = max(ranges.items(), key=lambda item: item[1][1] - item[1][0], default=None)
        ctx.log(f"quantize: the ranges of {len(ranges)} activation quantizer(s) start from "
                f"{len(x)} training examples, not tfmot's [-6, 6]"
                + (f"; widest: {widest[0]} [{widest[1][0]:.2f}, {widest[1][1]:.2f}]"
                   if widest else "")
                + (f"; left at tfmot's start: {len(left)} ("
                   + "; ".join(f"{k}: {v}" for k, v in list(left.items())[:3])
                   + ("; ..." if len(left) > 3 else "") + ")" if left else ""))
        return {k: [round(low, 4), round(high, 4)] for k, (low, high) in ranges.items()}

    def _low_bit_layers(self, model, annotate, where):
        """The Dense/Conv2D layers that get ternary or binary weights."""
        if self.config.weights == "int8":
            return set()
        names = self.config.low_bit_layers
        if names:
            layers_lib.select(model, layers_lib.QUANTIZE, names, where=where,
                              names_key="low_bit_layers")
        chosen = {l.name for l in model.layers if type(l).__name__ in ("Dense", "Conv2D")
                  and l.name in annotate
                  and (not names or any(fnmatch.fnmatchcase(l.name, p) for p in names))}
        if not chosen:
            raise RecipeError(f"{where}.low_bit_layers: no Dense or Conv2D layer selected "
                              f"for {self.config.weights} weights")
        return chosen

    def _preserve(self, stats, ctx):
        """The structure this QAT preserves: the recipe's, or for `auto` what the
        input has (`stats`: its kernels' structure.keras_stats)."""
        if self.config.preserve != "auto":
            return self.config.preserve
        # Binary weights have no zero to keep.
        sparse = self.config.weights != "binary" and any(
            s["sparsity"] >= MIN_SPARSITY for s in stats.values())
        clustered = bool(ctx.claims.clusters) or any(_looks_clustered(s) for s in stats.values())
        chosen = {(True, True): "both", (True, False): "sparsity", (False, True): "clusters",
                  (False, False): "none"}[sparse, clustered]
        ctx.log(f"quantize: preserve: auto -> {chosen} (the input model is "
                f"{'sparse' if sparse else 'not sparse'} and "
                f"{'clustered' if clustered else 'not clustered'})")
        return chosen

    def _scheme(self, preserve):
        if preserve == "sparsity":
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        elif preserve in ("clusters", "both"):
            scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=preserve == "both")
        else:
            return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
        return _guarded(scheme)

    def _claims_to_preserve(self, stats, ctx, where, preserve):
        """The input's claims this QAT keeps, after checking the input has that
        structure (`stats`: its kernels' structure.keras_stats)."""
        claims = structure.Claims()
        if preserve in ("sparsity", "both"):
            sparse = {n: s["sparsity"] for n, s in stats.items() if s["sparsity"] >= MIN_SPARSITY}
            if not sparse:
                raise RecipeError(
                    f"{where}.preserve: {preserve!r}, but no kernel of the input model is sparse "
                    f"(all below {MIN_SPARSITY:.0%} zeros); prune before, or use preserve: none")
            # Keep the earlier stage's targets where it set them, else what is there now.
            targets = ctx.claims.sparsity
            claims = claims.replace(sparsity={
                n: targets.get(n, round(s - structure.TOLERANCE / 2, 4)) for n, s in sparse.items()})
        if preserve in ("clusters", "both"):
            # An earlier cluster stage says which layers it clustered; a model
            # without such claims (a user's) is measured instead.
            clustered = dict(ctx.claims.clusters) or {
                n: s["max_unique_per_channel"] for n, s in stats.items() if _looks_clustered(s)}
            if not clustered:
                raise RecipeError(
                    f"{where}.preserve: {preserve!r}, but no kernel of the input model is "
                    f"clustered (none has at most {MAX_CLUSTERS} unique values, and at most 1/16 "
                    "as many as weights); cluster before, or use preserve: none")
            claims = claims.replace(clusters=clustered, preserve_zero=ctx.claims.preserve_zero)
        return claims


def _looks_clustered(stats):
    """Whether a kernel's measured values look clustered (a model without cluster claims)."""
    return stats["unique"] <= min(MAX_CLUSTERS, stats["size"] // 16)


def _guarded(scheme):
    """`scheme` whose registry supports only what tfmot's default 8-bit registry supports.

    tfmot's prune- and cluster-preserving registries claim every layer without
    trainable weights (TFOpLambda included: MobileNetV3's hard-swish, `x * y`
    in user code), then ask the default 8-bit registry for its config, which
    raises "get_quantize_config() called on an unsupported layer". Such a
    layer is left in float instead, as the plain scheme leaves it.
    """
    default = layers_lib.default_8bit_registry()
    make_registry = scheme.get_quantize_registry

    def get_quantize_registry():
        registry = make_registry()
        supports = registry.supports
        registry.supports = lambda layer: supports(layer) and default.supports(layer)
        return registry

    scheme.get_quantize_registry = get_quantize_registry
    return scheme


def _reapply_lost_zeros(before, after, sparsity_claims):
    """Zeroes again, in `after`, the kernel entries that were zero in `before`, for
    the claimed layers whose sparsity QAT lost; returns their names.

    tfmot's prune-preserving quantizer keeps most kernels' zeros, but not all:
    on MobileNetV3 the squeeze-excite 1x1 convolutions (followed by TFOpLambda
    ops the scheme cannot quantize) came out of QAT with 0-9% zeros left of 75%.
    """
    sources = {l.name: l for l in before.layers}
    by_name = {l.name: l for l in after.layers}
    restored = []
    for name, target in sorted(sparsity_claims.items()):
        source = sources.get(name)
        layer = by_name.get(name) or by_name.get("quant_" + name)
        if source is None or layer is None:
            continue
        old, new = layers_lib.kernel(source), layers_lib.kernel(layer)
        if old is None or new is None or old.shape != new.shape:
            continue
        values = new.numpy()
        if (values == 0).mean() >= target - structure.TOLERANCE:
            continue
        values[old.numpy() == 0] = 0
        new.assign(values)
        restored.append(name)
    return restored
