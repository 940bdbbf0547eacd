"""`train`: ordinary supervised training of the (float) model."""
import dataclasses

from pipeline.config import at_least
from pipeline.lazy_backend import keras
from pipeline.stages.base import Stage, clone
from pipeline.training import FitConfig, fit


class Train(Stage):
    """Trains a clone of the model on the training split.

    Seeded from the recipe's seed (plus `seed_offset`), so two runs of the same
    recipe give the same weights on the same machine. With `reinitialize`,
    the clone starts from new initial weights rather than the model's: a
    second, independently trained model, e.g. for an ensemble of teachers
    (`teacher: [train, train_b]`). Logs go to TensorBoard under the run
    directory.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        # Train from freshly drawn initial weights (the architecture kept),
        # not from the weights this stage receives.
        reinitialize: bool = False
        # Added to the recipe's seed for this stage's initial weights, batch
        # order and augmentation: two stages that differ only here train two
        # different models.
        seed_offset: int = dataclasses.field(default=0, metadata=at_least(0))

    def run(self, model, data, ctx):
        cfg = self.config
        seed = ctx.seed + cfg.seed_offset
        keras.utils.set_random_seed(seed)
        if cfg.reinitialize:
            # clone_model builds new layers from their initializers (drawn
            # from the seed just set) and copies no weights.
            model = keras.models.clone_model(model)
        else:
            model = clone(model)
        history = fit(model, data, cfg, ctx, seed=seed)
        ctx.metrics["epochs_trained"] = len(history.epoch)
        return model
