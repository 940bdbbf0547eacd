"""The model zoo: one model per file, picked by name in the recipe.

Each model is a function `build(input_shape, num_classes, **options)` that
returns an *uncompiled* functional keras.Model ending in logits. To add one,
write `models/<name>.py` and add it to `MODELS`.
"""
import inspect

from models import digits_cnn, mlp, mobilenet_v2
from pipeline.errors import ModelError

MODELS = {
    "digits_cnn": digits_cnn.build,
    "mobilenet_v2": mobilenet_v2.build,
    "mlp": mlp.build,
}


def build(name, input_shape, num_classes, options=None):
    """Builds zoo model `name` for the data's input shape and class count.

    Raises:
      ModelError: for an unknown name (listing the known ones) or an option
        the model does not take (listing the ones it does).
    """
    if name not in MODELS:
        raise ModelError(f"model.name: unknown model {name!r}; known models: "
                         f"{', '.join(sorted(MODELS))}")
    builder = MODELS[name]
    options = dict(options or {})
    allowed = [p for p in inspect.signature(builder).parameters
               if p not in ("input_shape", "num_classes")]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ModelError(f"model.options.{unknown[0]}: {name} has no such option; "
                         f"its options: {', '.join(allowed) or 'none'}")
    try:
        return builder(input_shape=tuple(input_shape), num_classes=num_classes, **options)
    except ValueError as e:
        raise ModelError(f"model.options: {name} rejected {options}: {e}") from None
