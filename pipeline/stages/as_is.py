"""`as_is`: the model as it was given, untrained: the post-training path.

    stages:
      given: {type: as_is}
    export: {formats: [float32, dynamic_range, int8, int4_weights]}

Export, benchmark, the quantization doctor and the deploy checks then run on
the user's own model. It is the one stage a Keras 3 model without a tf_keras
translation can take (models/keras3.py): the runner saves such a model as a
SavedModel, which the converter reads.
"""
import dataclasses

from pipeline.stages.base import Stage, clone


class AsIs(Stage):
    """Returns the model unchanged (a clone of a tf_keras model, so the contract's
    'input never mutated' holds for what later stages do to it)."""

    @dataclasses.dataclass
    class Config:
        pass

    # The stage takes models no other stage can: a Keras 3 model or a SavedModel.
    takes_any_model = True

    def run(self, model, data, ctx):
        from models import saved
        from models.keras3 import SavedModelSource
        if isinstance(model, SavedModelSource) or saved.is_keras3(model):
            return model
        return clone(model)
