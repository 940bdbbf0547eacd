"""The stage contract.

A stage is a small class with a `Config` dataclass (validated by
`pipeline.config.build`) and `run(model, data, ctx) -> keras.Model`.

Contract, checked for every stage by tests/pipeline/stages/test_contract.py:
  * `run` never mutates its input model: tfmot wrappers reuse layer objects,
    so a stage clones before it trains (see `clone`);
  * the returned model keeps the input and output shapes;
  * the returned model is free of training-only wrappers, or the stage says in
    `ctx.metrics` what export must know;
  * stages never touch `tf.lite`: `export/` owns conversion.

A new stage is three files: `pipeline/stages/<name>.py`, its entry in
`pipeline/stages/__init__.py`'s STAGES, and its tests:

    @dataclasses.dataclass
    class Config(FitConfig):
        ratio: float = dataclasses.field(default=0.5, metadata=between(0, 1))

    class Shrink(Stage):
        Config = Config

        def run(self, model, data, ctx):
            model = clone(model)
            ...
            return model
"""
import dataclasses
from typing import Optional

from pipeline.lazy_backend import keras


class Stage:
    """Base class of pipeline stages.

    Subclasses set `Config` to a dataclass and implement `run`.
    """

    @dataclasses.dataclass
    class Config:
        pass

    # False: the stage trains, so it needs a tf_keras model; only `as_is` takes a
    # Keras 3 model without a tf_keras translation (or a SavedModel).
    takes_any_model = False

    def __init__(self, config: Optional[object] = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def notes(cls, name: str, metrics: dict) -> list:
        """The report's note lines (inline Markdown) about a finished stage of this
        type, from the `metrics` it recorded. Subclasses add their own."""
        from pipeline.layers import describe_skipped
        if metrics.get("skipped_layers"):
            return [f"stage `{name}` skipped: "
                    + "; ".join(describe_skipped(metrics["skipped_layers"]))]
        return []

    def run(self, model: "keras.Model", data: "pipeline.data.Data",
            ctx: "pipeline.context.RunContext") -> "keras.Model":
        """Returns a new model derived from `model`.

        Args:
          model: the previous stage's keras.Model (or the freshly built one).
          data: a `pipeline.data.Data`.
          ctx: the `pipeline.context.RunContext` of this stage.
        Returns:
          A keras.Model with the same input and output shapes.
        """
        raise NotImplementedError


def clone(model: "keras.Model") -> "keras.Model":
    """A copy of `model` with new layer objects and the same weights.

    Every stage trains a clone: tfmot's wrappers and Keras' fit() would
    otherwise change the layers the previous stage returned.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def rewrap(model, selected, wrap, seed):
    """A clone of `model` (new layer objects, same weights) in which every layer
    named in `selected` is replaced by `wrap(layer)`; seeded with `seed`.

    tfmot wraps the very layer objects it is given, so they must be the
    clone's, never the input model's (see `clone`).
    """
    keras.utils.set_random_seed(seed)
    copy = clone(model)
    return keras.models.clone_model(
        copy, clone_function=lambda layer: wrap(layer) if layer.name in selected else layer)


def wrap_fit_strip(model, selected, wrap, strip, data, cfg, ctx, callbacks=()):
    """The sequence prune and cluster share: `rewrap` the selected layers, fit
    the wrapped model with the stage's FitConfig, and return `strip(wrapped)`
    (a plain Keras model, the training-only wrappers removed)."""
    from pipeline.training import fit
    wrapped = rewrap(model, selected, wrap, ctx.seed)
    fit(wrapped, data, cfg, ctx, callbacks=callbacks)
    return strip(wrapped)
