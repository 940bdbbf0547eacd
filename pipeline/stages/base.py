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
"""
import dataclasses

from pipeline.lazy_backend import keras


class Stage:
    """Base class of pipeline stages.

    Subclasses set `Config` to a dataclass and implement `run`.
    """

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def run(self, model, data, ctx):
        """Returns a new model derived from `model`.

        Args:
          model: the previous stage's keras.Model (or the freshly built one).
          data: a `pipeline.data.Data`.
          ctx: the `pipeline.context.RunContext` of this stage.
        Returns:
          A keras.Model with the same input and output shapes.
        """
        raise NotImplementedError


def clone(model):
    """A copy of `model` with new layer objects and the same weights.

    Every stage trains a clone: tfmot's wrappers and Keras' fit() would
    otherwise change the layers the previous stage returned.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
