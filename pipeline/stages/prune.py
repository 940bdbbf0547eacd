"""`prune`: magnitude pruning with tfmot schedules, or structured M:N sparsity."""
import dataclasses
from typing import Literal, Optional

from pipeline import layers as layers_lib
from pipeline import schedules, structure
from pipeline.lazy_backend import tfmot
from pipeline.config import at_least, between
from pipeline.errors import GreenliteError, RecipeError
from pipeline.stages.base import Stage, wrap_fit_strip
from pipeline.training import FitConfig


class Prune(Stage):
    """Prunes the selected layers to a target sparsity while fine-tuning.

    With `sparsity_m_by_n: [m, n]` (tfmot's convention: m zeros in every n
    consecutive weights along the input axis, e.g. [2, 4]) the sparsity is
    structured and its target is m/n. The stage strips tfmot's wrappers,
    measures every pruned kernel and fails if any is more than 1 point below
    the target.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        schedule: Literal["polynomial_decay", "constant_sparsity"] = "polynomial_decay"
        target_sparsity: float = dataclasses.field(default=0.8, metadata=between(0, 1, high_open=True))
        initial_sparsity: float = dataclasses.field(default=0.0, metadata=between(0, 1, high_open=True))
        # Derived from epochs and steps per epoch when not given (see pipeline/schedules.py).
        begin_step: Optional[int] = dataclasses.field(default=None, metadata=at_least(0))
        end_step: Optional[int] = dataclasses.field(default=None, metadata=at_least(1))
        frequency: Optional[int] = dataclasses.field(default=None, metadata=at_least(1))
        sparsity_m_by_n: Optional[list[int]] = None
        # Glob patterns on layer names and layer class names; default: every prunable layer.
        layers: Optional[list[str]] = None
        layer_types: Optional[list[str]] = None
        # `xnnpack_latency`: tfmot's PruneForLatencyOnXNNPack policy prunes
        # only the 1x1 convolutions, for XNNPACK's sparse inference; its check
        # of the model (a 3x3 stride-2 stem on 3 channels ... global pooling)
        # is logged, not enforced. Export the stage as `float32_sparse`.
        policy: Literal["all", "xnnpack_latency"] = "all"

        def validate(self):
            if self.early_stopping_patience is not None:
                raise ValueError("early_stopping_patience: not allowed here; restoring the best "
                                 "epoch would bring back weights from before the final sparsity")
            if self.initial_sparsity > self.target_sparsity:
                raise ValueError(f"initial_sparsity {self.initial_sparsity} exceeds "
                                 f"target_sparsity {self.target_sparsity}")
            if self.sparsity_m_by_n is not None:
                m_n = self.sparsity_m_by_n
                if len(m_n) != 2 or not 0 < m_n[0] < m_n[1]:
                    raise ValueError(f"sparsity_m_by_n: got {m_n}; expected [m, n] with "
                                     "0 < m < n (m zeros in every n weights), e.g. [2, 4]")

        @property
        def target(self):
            if self.sparsity_m_by_n:
                return self.sparsity_m_by_n[0] / self.sparsity_m_by_n[1]
            return self.target_sparsity

    def run(self, model, data, ctx):
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        steps = schedules.derive(cfg.schedule, len(data.train), cfg.batch_size, cfg.epochs,
                                 cfg.begin_step, cfg.end_step, cfg.frequency, where)
        selected, skipped = layers_lib.select(model, layers_lib.PRUNE, cfg.layers,
                                              cfg.layer_types, where)
        if cfg.policy == "xnnpack_latency":
            selected, skipped, check = self._xnnpack_policy(model, selected, skipped, where,
                                                            ctx.log)
            ctx.metrics["xnnpack_model_check"] = check or "passed"
        if not selected:
            raise RecipeError(f"{where}: no layer of the model can be pruned; skipped: "
                              + "; ".join(layers_lib.describe_skipped(skipped)))
        if cfg.sparsity_m_by_n:
            schedule = tfmot.sparsity.keras.ConstantSparsity(
                cfg.target, steps.begin_step, steps.end_step, steps.frequency)
        elif cfg.schedule == "constant_sparsity":
            schedule = tfmot.sparsity.keras.ConstantSparsity(
                cfg.target_sparsity, steps.begin_step, steps.end_step, steps.frequency)
        else:
            schedule = tfmot.sparsity.keras.PolynomialDecay(
                cfg.initial_sparsity, cfg.target_sparsity, steps.begin_step, steps.end_step,
                frequency=steps.frequency)
        ctx.log(f"prune: {len(selected)} layer(s) to sparsity {cfg.target:.2f} "
                f"({cfg.schedule if not cfg.sparsity_m_by_n else 'm_by_n %s' % cfg.sparsity_m_by_n}"
                f", steps {steps.begin_step}..{steps.end_step} every {steps.frequency} "
                f"of {steps.total_steps}); skipped: "
                f"{'; '.join(layers_lib.describe_skipped(skipped)) or 'none'}")

        def wrap(layer):
            try:
                return tfmot.sparsity.keras.prune_low_magnitude(
                    layer, pruning_schedule=schedule,
                    sparsity_m_by_n=tuple(cfg.sparsity_m_by_n) if cfg.sparsity_m_by_n else None)
            except ValueError as e:
                raise RecipeError(f"{where}: tfmot cannot prune layer {layer.name!r}: "
                                  f"{str(e).splitlines()[0]}") from None

        result = wrap_fit_strip(model, selected, wrap, tfmot.sparsity.keras.strip_pruning,
                                data, cfg, ctx, callbacks=[
                                    tfmot.sparsity.keras.UpdatePruningStep(),
                                    tfmot.sparsity.keras.PruningSummaries(
                                        log_dir=ctx.tensorboard_dir)])

        # Every sparse layer: this stage's and those an earlier stage pruned. The
        # clusters are dropped: fine-tuning moved the clustered weights.
        claims = structure.Claims(sparsity={**ctx.claims.sparsity,
                                            **{n: cfg.target for n in selected}})
        stats = structure.keras_stats(result, claims.sparsity)
        ctx.output_claims = claims
        ctx.metrics.update(
            schedule=dataclasses.asdict(steps), pruned_layers=selected,
            skipped_layers=skipped, target_sparsity=cfg.target,
            keras_sparsity={n: stats[n]["sparsity"] for n in selected if n in stats},
            keras_overall_sparsity=structure.overall_sparsity(stats, selected))
        ctx.metrics["policy"] = cfg.policy
        short = claims.violations(stats)
        if short:
            raise GreenliteError(
                f"{where}: pruning fell short of {cfg.target:.2f} in {len(short)} layer(s): "
                f"{'; '.join(short[:5])}{' ...' if len(short) > 5 else ''}. The schedule ends at "
                f"step {steps.end_step} of {steps.total_steps}: raise {where}.epochs or lower "
                f"{where}.end_step so it is reached, or leave these layers out with "
                f"{where}.layers / {where}.layer_types")
        return result

    @staticmethod
    def _xnnpack_policy(model, selected, skipped, where, log):
        """tfmot's PruneForLatencyOnXNNPack: its choice of layers (1x1 Conv2D),
        and its model check, whose verdict is logged and kept, not enforced:
        the check wants the stem as Keras layers (ZeroPadding2D(1) + a VALID
        3x3 stride-2 Conv2D), while XNNPACK judges the converted graph, where a
        SAME-padded stem on odd-sized inputs (keras.applications' MobileNetV2)
        is the same thing. The report's latency verdict says what happened."""
        policy = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
        check = None
        try:
            policy.ensure_model_supports_pruning(model)
        except ValueError as e:
            check = str(e).splitlines()[0]
            log(f"prune: {where}.policy xnnpack_latency: tfmot's model check fails ({check}); "
                "pruning the 1x1 convolutions anyway: the report measures whether XNNPACK's "
                "sparse path engages")
        kept = [name for name in selected if policy.allow_pruning(model.get_layer(name))]
        skipped = {**skipped, **{name: "not a 1x1 Conv2D (policy xnnpack_latency)"
                                 for name in selected if name not in kept}}
        return kept, skipped, check
