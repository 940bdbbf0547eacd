"""The model zoo: one model per file, picked by name in the recipe.

Each model is a function `build(input_shape, num_classes, **options)` that
returns an *uncompiled* functional keras.Model ending in logits. To add one,
write `models/<name>.py` and add it to `MODELS`.
"""
import dataclasses
import importlib
import inspect
import os
from typing import Optional

import numpy as np

from pipeline.lazy_backend import keras
from models import keras3 as keras3_lib
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


@dataclasses.dataclass
class Intake:
    """The model a run starts from.

    `model` is the tf_keras model every stage can train, or None when a Keras 3
    model could not be translated (`keras3.blocking` says why): then `source`
    (the Keras 3 model, or a SavedModel directory's `SavedModelSource`) can
    still take the post-training path (an `as_is` stage, then export).
    """
    model: object
    keras3: Optional["keras3_lib.Keras3Origin"] = None
    source: object = None

    @property
    def usable(self):
        """The model the run goes on with: the tf_keras one, else the source."""
        return self.model if self.model is not None else self.source


def build(name, input_shape, num_classes, options=None, trust_model_code=False,
          custom_objects=None, batchnorm_momentum=None, sample=None):
    """Builds zoo model `name`, or loads the user's saved model at that path.

    A saved model must take the data's input shape and give `num_classes`
    outputs. See models/user.py for the safety checks on loading, and
    models/keras3.py for models written by Keras 3 (translated to tf_keras and
    checked on `sample`, or on random inputs without one).

    Raises:
      ModelError: for an unknown name (listing the known ones), an option
        the model does not take (listing the ones it does), or a saved model
        that is unsafe, unreadable, does not fit the data or (Keras 3) has
        layers without a tf_keras twin.
    """
    result = intake(name, input_shape, num_classes, options, trust_model_code, custom_objects,
                    batchnorm_momentum, sample)
    if result.model is None:
        raise ModelError(untranslatable_message(name, result.keras3))
    return result.model


def untranslatable_message(name, origin, stages=None):
    """One line: why a Keras 3 model cannot be trained, and what still works."""
    what = ("is a TensorFlow SavedModel (Keras 3's model.export): it holds no layer graph"
            if origin.keras_version == "saved_model" else
            f"(Keras {origin.keras_version}) has layers tf_keras cannot rebuild: "
            + keras3_lib.summary(origin.blocking))
    return (f"model.name: {name!r} {what}; "
            + (f"the training stages ({', '.join(stages)}) need a tf_keras model. "
               if stages else "training needs a tf_keras model. ")
            + "Give each custom layer a tf_keras twin (model.custom_objects), or take the "
              "post-training path: a single stage of type as_is, then export")


def intake(name, input_shape, num_classes, options=None, trust_model_code=False,
           custom_objects=None, batchnorm_momentum=None, sample=None):
    """As `build`, but a Keras 3 model that cannot be translated is returned as
    `Intake(model=None, source=...)` instead of refused, and the Keras 3
    translation is described (`Intake.keras3`)."""
    if name not in MODELS and user.is_model_path(name):
        version = keras3_lib.written_by(name) if os.path.exists(name) else None
        if version:
            result = _intake_keras3(name, version, input_shape, num_classes, options,
                                    trust_model_code, custom_objects, sample)
            if result.model is not None and _number(batchnorm_momentum):
                set_batchnorm_momentum(result.model, batchnorm_momentum)
            return result
    model = _build(name, input_shape, num_classes, options, trust_model_code, custom_objects)
    if _number(batchnorm_momentum):
        set_batchnorm_momentum(model, batchnorm_momentum)
    return Intake(model)


def _number(momentum):
    """A momentum to set (the recipe's `auto` and `keep` are the runner's business)."""
    return isinstance(momentum, (int, float)) and not isinstance(momentum, bool)


def _intake_keras3(name, version, input_shape, num_classes, options, trust_model_code,
                   custom_objects, sample):
    if options:
        raise ModelError("model.options: only zoo models take options; "
                         f"{name!r} is a saved model")
    if version == "saved_model":
        source = keras3_lib.SavedModelSource(name)
        _check_fits(source, name, input_shape, num_classes)
        return Intake(None, keras3_lib.Keras3Origin(name, version, translated=False, blocking={
            name: "a SavedModel holds no layer graph"}), source)
    keras3_lib.check_file(name, version)
    user.refuse_lambdas(name, trust_model_code)
    objects = dict(custom_objects or {})
    source = keras3_lib.load(name, keras3_lib.keras3_classes(objects), trust_model_code)
    _check_fits(source, name, input_shape, num_classes)
    blocking = keras3_lib.blockers(source, objects)
    if blocking:
        return Intake(None, keras3_lib.Keras3Origin(name, version, translated=False,
                                                    blocking=blocking), source)
    translation = keras3_lib.to_tf_keras(source, objects)
    if sample is None:
        sample = np.random.default_rng(0).uniform(0, 1, (8,) + tuple(input_shape))
    sample = np.asarray(sample)[:32]
    if not np.issubdtype(sample.dtype, np.integer):
        sample = sample.astype("float32")
    difference = keras3_lib.verify(source, translation, sample)
    return Intake(translation.model, keras3_lib.Keras3Origin(
        name, version, translated=True, difference=difference, examples=len(sample)), source)


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


def _tensor_name(tensor, k):
    name = getattr(tensor, "name", "") or f"input_{k + 1}"
    return name.split(":")[0]


def _check_fits(model, name, input_shape, num_classes):
    """The model (tf_keras, Keras 3 or a SavedModel's source) fits the data."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1:
        described = ", ".join(f"{_tensor_name(t, k)} {list(t.shape[1:])}"
                              for k, t in enumerate(inputs))
        raise ModelError(f"model.name: {name!r} has {len(inputs)} inputs ({described}); "
                         "greenlite trains, compresses and exports models of one input (each "
                         "data source gives one array per example); `greenlite benchmark` "
                         "runs a converted file of several inputs")
    if len(outputs) != 1:
        raise ModelError(f"model.name: {name!r} has {len(outputs)} outputs; greenlite "
                         "trains and scores models of one output (the class or next-token "
                         "scores)")
    got_in = tuple(inputs[0].shape[1:])
    if got_in != tuple(input_shape):
        raise ModelError(f"model.name: {name!r} takes inputs of shape {got_in} but the data's "
                         f"examples have shape {tuple(input_shape)}")
    got_out = outputs[0].shape[-1] if len(outputs) == 1 else None
    if got_out != num_classes:
        raise ModelError(f"model.name: {name!r} gives {got_out} outputs but the data has "
                         f"{num_classes} classes")
