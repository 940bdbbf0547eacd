"""`train`: ordinary supervised training of the (float) model."""
import dataclasses

from pipeline.lazy_backend import keras
from pipeline.stages.base import Stage, clone
from pipeline.training import FitConfig, fit


class Train(Stage):
    """Trains a clone of the model on the training split.

    Seeded from the recipe's seed, so two runs of the same recipe give the same
    weights on the same machine. Logs go to TensorBoard under the run directory.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        pass

    def run(self, model, data, ctx):
        keras.utils.set_random_seed(ctx.seed)
        model = clone(model)
        history = fit(model, data, self.config, ctx)
        ctx.metrics["epochs_trained"] = len(history.epoch)
        return model
