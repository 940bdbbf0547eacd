"""`int4_aware`: fine-tune with the weights on the grid int4 export stores (pipeline/int4_grid.py)."""
import dataclasses
from typing import Literal

from pipeline import int4_grid
from pipeline.config import at_least
from pipeline.errors import RecipeError
from pipeline.lazy_backend import keras
from pipeline.stages.base import Stage, clone
from pipeline.training import FitConfig, fit


class Int4Aware(Stage):
    """Fine-tunes a clone of the model with every weight that int4 export
    quantizes held on ai-edge-quantizer's 4-bit grid, straight-through.

    Export the stage as the format its `granularity` matches (blockwise_32:
    int4_blockwise; channelwise: int4_weights, int4_dynamic) and the file
    holds the trained weights exactly; post-training int4 instead rounds
    weights the model never saw (text_lm: +11 to +17 % perplexity). The
    optimizer must not decay weights (Adam, SGD and RMSprop here do not).
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        epochs: int = dataclasses.field(default=3, metadata=at_least(1))
        granularity: Literal["blockwise_32", "channelwise"] = "blockwise_32"

    @classmethod
    def notes(cls, name, metrics):
        info = metrics.get("int4_grid")
        if not info:
            return super().notes(name, metrics)
        formats = " or ".join(f"`{f}`" for f in int4_grid.FORMATS[info["granularity"]])
        kernels = info.get("kernels", info.get("layers", []))  # "layers" before 2026-11-29
        return [f"stage `{name}` trained {len(kernels)} kernels ({info['weights']:,} "
                f"values) on the int4 {info['granularity']} grid (straight-through); "
                f"{formats} stores them exactly; off the grid at the end: {info['off_grid']:.1e}"
                ] + super().notes(name, metrics)

    def run(self, model, data, ctx):
        cfg = self.config
        keras.utils.set_random_seed(ctx.seed)
        model = clone(model)
        targets = int4_grid.targets(model, cfg.granularity)
        if not targets:
            raise RecipeError(
                f"stages.{ctx.stage_name}: the model has no weight int4 export quantizes at "
                f"{cfg.granularity} (Dense, EinsumDense{', Conv1D/Conv2D' if cfg.granularity == 'channelwise' else ''} "
                "kernels, or the zoo Transformer's matmul embeddings); nothing to train on the grid")
        ctx.log(f"int4_aware: {len(targets)} kernels on the {cfg.granularity} grid "
                f"({sum(int(w.shape.num_elements()) for _, w, _ in targets):,} values)")
        history = fit(model, data, cfg, ctx,
                      callbacks=[int4_grid.straight_through(targets, cfg.granularity)])
        ctx.metrics["epochs_trained"] = len(history.epoch)
        ctx.metrics["int4_grid"] = {
            "granularity": cfg.granularity,
            "kernels": sorted(name for name, _, _ in targets),
            "weights": sum(int(w.shape.num_elements()) for _, w, _ in targets),
            "off_grid": int4_grid.off_grid(targets, cfg.granularity)}
        return model
