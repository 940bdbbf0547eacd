"""`prune_channels`: structured pruning that removes whole filters and units, then fine-tunes."""
import dataclasses
import fnmatch
from typing import Literal, Optional

from pipeline import channels
from pipeline.config import at_least, between
from pipeline.errors import RecipeError
from pipeline.stages.base import Stage
from pipeline.training import FitConfig, fit


class PruneChannels(Stage):
    """Removes the least important filters (Conv2D) and units (Dense), with the
    matching input channels of every layer that reads them, and fine-tunes.

    The result is a plain, smaller Keras model: fewer parameters, fewer MACs
    and a smaller .tflite file, unlike magnitude pruning, whose zeros only
    shrink the gzip size (see pipeline/channels.py for what it follows).
    `rounds` > 1 prunes gradually: each round removes part of the channels
    (the kept fraction shrinks geometrically) and fine-tunes `epochs`.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        # Fraction of each prunable layer's channels to remove.
        ratio: float = dataclasses.field(default=0.5, metadata=between(0, 1, high_open=True))
        # {glob pattern of layer names: ratio}, overriding `ratio` for those layers.
        ratios: Optional[dict] = None
        # Glob patterns of the Conv2D/Dense layers to prune (default: every prunable one).
        layers: Optional[list[str]] = None
        criterion: Literal["l1", "l2", "bn_gamma"] = "l1"
        # `layer`: each layer loses its own weakest channels; `global`: the
        # weakest across layers (scores relative to each layer's mean).
        ranking: Literal["layer", "global"] = "layer"
        min_channels: int = dataclasses.field(default=4, metadata=at_least(1))
        rounds: int = dataclasses.field(default=1, metadata=at_least(1))
        epochs: int = dataclasses.field(default=5, metadata=at_least(1))

        def validate(self):
            for pattern, value in (self.ratios or {}).items():
                if not isinstance(value, (int, float)) or not 0 <= value < 1:
                    raise ValueError(f"ratios.{pattern}: got {value!r}; allowed: a number in "
                                     "[0, 1)")

    @classmethod
    def notes(cls, name, metrics):
        out = super().notes(name, metrics)
        if metrics.get("channels"):
            out.append(f"stage `{name}` kept channels: " + ", ".join(
                f"`{n}` {kept}/{total}" for n, (kept, total) in metrics["channels"].items()))
        if metrics.get("left_whole"):
            out.append(f"stage `{name}` left whole: " + "; ".join(
                f"`{n}` ({why})" for n, why in metrics["left_whole"].items()))
        return out

    def run(self, model, data, ctx):
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        analysis = channels.analyze(model)
        targets = self._targets(analysis, where)
        original = {p: analysis.groups[r].size for r in targets for p in analysis.groups[r].producers}
        params_before = model.count_params()
        ctx.log(f"prune_channels: {len(original)} layer(s) in {len(targets)} group(s), "
                f"{cfg.criterion} / {cfg.ranking} ranking, {cfg.rounds} round(s)")
        current = model
        for k in range(1, cfg.rounds + 1):
            analysis = channels.analyze(current)
            ratios = {}
            for producer, size in original.items():
                root = analysis.group_of(producer)
                want = max(min(size, cfg.min_channels),
                           round(size * (1 - self._ratio(producer)) ** (k / cfg.rounds)))
                have = analysis.groups[root].size
                ratios[root] = max(ratios.get(root, 0.0), 1 - want / have)
            keep = channels.choose(analysis, ratios, cfg.criterion, cfg.ranking, cfg.min_channels)
            current, _ = channels.shrink(analysis, keep)
            ctx.log(f"prune_channels: round {k}/{cfg.rounds}: {current.count_params():,} "
                    f"parameters (from {params_before:,}); fine-tuning {cfg.epochs} epoch(s)")
            fit(current, data, cfg, ctx)
        final = {l.name: l for l in current.layers}
        ctx.metrics.update(
            channels={p: [int(final[p].get_weights()[0].shape[-1]), size]
                      for p, size in original.items()},
            left_whole=channels.analyze(model).unprunable(),
            params_before=int(params_before), params_after=int(current.count_params()),
            criterion=cfg.criterion, ranking=cfg.ranking, rounds=cfg.rounds)
        return current

    def _ratio(self, producer):
        for pattern, value in (self.config.ratios or {}).items():
            if fnmatch.fnmatchcase(producer, pattern):
                return value
        return self.config.ratio

    def _targets(self, analysis, where):
        """The prunable groups the recipe selects (a group goes if any of its layers is chosen)."""
        groups = analysis.prunable()
        blocked = analysis.unprunable()
        if not groups:
            raise RecipeError(f"{where}: no layer can lose channels; "
                              + "; ".join(f"{n}: {why}" for n, why in blocked.items()))
        patterns = self.config.layers
        if not patterns:
            return groups
        chosen = {}
        for pattern in patterns:
            matched = {r for r, g in groups.items()
                       if any(fnmatch.fnmatchcase(p, pattern) for p in g.producers)}
            if not matched:
                why = [f"{n} ({blocked[n]})" for n in blocked if fnmatch.fnmatchcase(n, pattern)]
                raise RecipeError(
                    f"{where}.layers: pattern {pattern!r} matches no prunable Conv2D or Dense "
                    "layer" + (f"; it matches {', '.join(why)}" if why else "")
                    + f"; prunable: {', '.join(p for g in groups.values() for p in g.producers)}")
            chosen.update({r: groups[r] for r in matched})
        return chosen
