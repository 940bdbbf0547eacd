"""The model zoo: one model per file, picked by name in the recipe.

Each model is a function `build(input_shape, num_classes, **options)` that
returns an *uncompiled* functional keras.Model ending in logits. To add one,
write `models/<name>.py` and add it to `MODELS`.
"""
import importlib
import inspect

from pipeline.lazy_backend import keras
from models import user
from pipeline.errors import ModelError

# Zoo name -> the module whose `build` makes it (imported when built, so that
# naming a model needs no TensorFlow).
MODELS = {
    "digits_cnn": "models.digits_cnn",
    "mobilenet_v2": "models.mobilenet_v2",
    "mlp": "models.mlp",
    "ds_cnn": "models.ds_cnn",
    "resnet8": "models.resnet8",
    "tiny_transformer": "models.tiny_transformer",
}


def build(name, input_shape, num_classes, options=None, trust_model_code=False,
          custom_objects=None, batchnorm_momentum=None):
    """Builds zoo model `name`, or loads the user's saved model at that path.

    A saved model must take the data's input shape and give `num_classes`
    outputs. See models/user.py for the safety checks on loading.

    Raises:
      ModelError: for an unknown name (listing the known ones), an option
        the model does not take (listing the ones it does), or a saved model
        that is unsafe, unreadable or does not fit the data.
    """
    model = _build(name, input_shape, num_classes, options, trust_model_code, custom_objects)
    if batchnorm_momentum is not None:
        set_batchnorm_momentum(model, batchnorm_momentum)
    return model


def set_batchnorm_momentum(model, momentum):
    """Sets the momentum of every BatchNormalization layer, nested models included;
    returns how many layers changed. Clones keep it (it is in the layer config)."""
    changed = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            changed += set_batchnorm_momentum(layer, momentum)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
    return changed


def _build(name, input_shape, num_classes, options, trust_model_code, custom_objects):
    if name not in MODELS and user.is_model_path(name):
        if options:
            raise ModelError("model.options: only zoo models take options; "
                             f"{name!r} is a saved model")
        model = user.load(name, trust_model_code, custom_objects)
        if not model._is_graph_network and not isinstance(model, keras.Sequential):
            model = _functional_shell(model, name, input_shape)
        _check_fits(model, name, input_shape, num_classes)
        return model
    if name not in MODELS:
        raise ModelError(f"model.name: unknown model {name!r}; known models: "
                         f"{', '.join(sorted(MODELS))}")
    builder = importlib.import_module(MODELS[name]).build
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


def _functional_shell(model, name, input_shape):
    """Wraps a subclassed model in a functional model of one layer.

    Training, export and post-training quantization then work as for any
    model; tfmot cannot wrap the layers inside a subclassed model, so prune,
    cluster and low-rank stages report it as a layer they skip, and QAT
    leaves it in float.
    """
    try:
        inputs = keras.Input(shape=tuple(input_shape), name="input")
        return keras.Model(inputs, model(inputs), name=f"{model.name}_functional")
    except (ValueError, TypeError) as e:
        raise ModelError(f"model.name: {name!r} is a subclassed model that does not accept the "
                         f"data's inputs of shape {tuple(input_shape)}: "
                         f"{' '.join(str(e).split())[:200]}") from None


def _check_fits(model, name, input_shape, num_classes):
    got_in = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if got_in != tuple(input_shape):
        raise ModelError(f"model.name: {name!r} takes inputs of shape {got_in} but the data's "
                         f"examples have shape {tuple(input_shape)}")
    got_out = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
    if got_out != num_classes:
        raise ModelError(f"model.name: {name!r} gives {got_out} outputs but the data has "
                         f"{num_classes} classes")
