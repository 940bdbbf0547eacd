"""`low_rank`: factorize Dense and Conv2D kernels by truncated SVD, then fine-tune."""
import dataclasses
from typing import Optional

import numpy as np

from pipeline import factorize
from pipeline import layers as layers_lib
from pipeline.lazy_backend import keras
from pipeline.config import at_least, between
from pipeline.errors import RecipeError
from pipeline.stages.base import Stage
from pipeline.training import FitConfig, fit


class LowRank(Stage):
    """Replaces each selected kernel by two thinner layers of rank r (see pipeline/factorize.py).

    The rank is the smallest that keeps `rank_energy` of the squared singular
    values (default 0.9), or `rank_ratio` of the full rank, or an explicit
    `rank`. A layer is factorized only when that lowers its parameters and MACs.
    `epochs` of fine-tuning follow (0: none), with a `teacher` if given. The
    report gets, per layer, the rank, parameters and MACs before and after,
    and the relative reconstruction error of the kernel.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        rank_energy: Optional[float] = dataclasses.field(default=None, metadata=between(0, 1, low_open=True))
        rank_ratio: Optional[float] = dataclasses.field(default=None, metadata=between(0, 1, low_open=True))
        rank: Optional[int] = dataclasses.field(default=None, metadata=at_least(1))
        layers: Optional[list[str]] = None
        layer_types: Optional[list[str]] = None
        # Fine-tuning after the factorization; 0 keeps the SVD weights as they are.
        epochs: int = dataclasses.field(default=5, metadata=at_least(0))

        def validate(self):
            given = [k for k in ("rank_energy", "rank_ratio", "rank") if getattr(self, k) is not None]
            if len(given) > 1:
                raise ValueError(f"give one of rank_energy, rank_ratio, rank; got {', '.join(given)}")

        @property
        def energy(self):
            if self.rank_ratio is None and self.rank is None:
                return 0.9 if self.rank_energy is None else self.rank_energy
            return None

    @classmethod
    def notes(cls, name, metrics):
        return [f"stage `{name}` factorized `{layer}` ({f['kind']}): rank {f['rank']} of "
                f"{f['full_rank']}, parameters {f['params_before']:,} -> {f['params_after']:,}, "
                f"MACs {f['macs_before']:,} -> {f['macs_after']:,}, relative reconstruction "
                f"error {f['reconstruction_error']:.3f}"
                for layer, f in (metrics.get("factorized_layers") or {}).items()
                ] + super().notes(name, metrics)

    def run(self, model, data, ctx):
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        selected, skipped = layers_lib.select(model, layers_lib.FACTORIZE, cfg.layers,
                                              cfg.layer_types, where)
        factors, report = {}, {}
        for name in selected:
            layer = model.get_layer(name)
            kind = type(layer).__name__
            if len(layer._inbound_nodes) != 1 or getattr(layer, "groups", 1) != 1:
                skipped[name] = "shared or grouped layer: not factorized"
                continue
            kernel = layer.kernel.numpy()
            matrix = kernel.reshape(-1, kernel.shape[-1])
            full_rank = min(matrix.shape)
            if cfg.rank is not None and cfg.rank > full_rank:
                raise RecipeError(f"{where}.rank: got {cfg.rank}, larger than min(m, n) = "
                                  f"{full_rank} for layer {name!r} ({matrix.shape[0]}x"
                                  f"{matrix.shape[1]})")
            singular = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
            r = factorize.choose_rank(singular, cfg.energy, cfg.rank_ratio, cfg.rank)
            positions = int(np.prod(layer.output_shape[1:3])) if kind == "Conv2D" else 1
            (params, macs), (params_r, macs_r) = factorize.costs(kind, kernel.shape, r, positions)
            if params_r >= params or macs_r >= macs:
                skipped[name] = (f"rank {r} of {full_rank} would not lower its parameters "
                                 f"({params_r:,} >= {params:,})")
                continue
            a, b, error, _ = factorize.factor(matrix, r)
            factors[name] = (a, b)
            report[name] = {"kind": kind, "rank": r, "full_rank": full_rank,
                            "params_before": params, "params_after": params_r,
                            "macs_before": macs, "macs_after": macs_r,
                            "reconstruction_error": error}
        if not factors:
            raise RecipeError(f"{where}: no layer would get smaller at this rank setting; "
                              f"skipped: {skipped}")
        ctx.log("low_rank: " + "; ".join(
            f"{n} rank {v['rank']}/{v['full_rank']} params {v['params_before']:,}->"
            f"{v['params_after']:,} error {v['reconstruction_error']:.3f}" for n, v in report.items()))
        result = factorize.replace_layers(model, factors)
        if cfg.epochs:
            keras.utils.set_random_seed(ctx.seed)
            fit(result, data, cfg, ctx)
        ctx.metrics.update(factorized_layers=report, skipped_layers=skipped)
        return result
