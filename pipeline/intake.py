"""The model a run starts from: built or loaded, translated from Keras 3, and fitted to
the recipe's training before the first step.

    model, origin, notes = intake.prepare(recipe, data, custom_objects, sample, log)

What can be known before training is checked here, each as one line in the
log and the report (`notes`), never as a failure after minutes:
  - a Keras 3 model that tf_keras cannot rebuild is refused for the training
    stages, naming each layer (the post-training path stays open);
  - model.batchnorm_momentum: auto lowers a BatchNorm momentum whose moving
    statistics would not settle within the first training stage's steps;
  - data.scale: auto leaves an image folder's pixels at 0..255 when the model's
    first layer rescales them itself (`input_scale`, before the data is read).
"""
import math

from pipeline.errors import GreenliteError


def prepare(recipe, data, custom_objects, sample, log=print):
    """(the model the stages start from, its Keras 3 origin or None, [note lines])."""
    import models
    intake = models.intake(recipe.model.name, data.input_shape, data.num_classes,
                           recipe.model.options, recipe.model.trust_model_code,
                           custom_objects, recipe.model.batchnorm_momentum, sample=sample)
    if intake.model is None:
        training = [s.name for s in recipe.stages if not type(s.make()).takes_any_model]
        if training:
            raise GreenliteError(models.untranslatable_message(
                recipe.model.name, intake.keras3, training))
    model = intake.usable
    log(f"model: {recipe.model.name}, {model.count_params():,} parameters")
    notes = []
    if intake.keras3:
        notes.append(intake.keras3.describe())
    if recipe.model.batchnorm_momentum == "auto" and intake.model is not None:
        from pipeline import health
        stage, steps = first_training_steps(recipe, len(data.train))
        note = health.settle_batchnorm(model, steps, stage)
        if note:
            notes.append(note)
    for note in notes:
        log(f"model: {note}")
    return model, intake.keras3, notes


def first_training_steps(recipe, train_examples):
    """(name, steps) of the first stage that trains (None, 0 when none does)."""
    for spec in recipe.stages:
        cfg = spec.config
        epochs, batch = getattr(cfg, "epochs", 0), getattr(cfg, "batch_size", None)
        if epochs and batch:
            return spec.name, math.ceil(train_examples / batch) * epochs
    return None, 0


# A leading Rescaling that divides by at least this much expects raw 8-bit pixels
# (keras.applications: 1/255 for EfficientNet, 1/127.5 with offset -1 for MobileNetV3).
RAW_PIXEL_SCALE = 1 / 100


def input_scale(recipe):
    """(data.scale for the run, the note saying why, or None) for image folders: `auto`
    (None) becomes 1 when the model's first layer rescales raw pixels itself, else 255;
    an explicit 255 before such a layer is kept, with a note that it scales twice."""
    data = recipe.data
    if data.source != "image_folder":
        return data.scale, None
    layer = _leading_rescaling(recipe.model.name)
    if layer is None:
        return (255.0 if data.scale is None else data.scale), None
    name, scale, offset = layer
    seen = f"the model's first layer `{name}` (Rescaling scale {scale:.4g}, offset {offset:g}) " \
           "expects pixels 0..255"
    if data.scale is None:
        return 1.0, (f"{seen}: data.scale set to 1, the images are not divided (data.scale: "
                     "auto; a number sets it)")
    if data.scale > 1:
        return data.scale, (f"{seen}, and data.scale {data.scale:g} divides them first: the "
                            f"model sees its input {data.scale:g} times too small; leave "
                            "data.scale unset (auto) or set it to 1")
    return data.scale, None


def _leading_rescaling(name):
    """(layer name, scale, offset) of a Rescaling before the first layer with weights in
    the saved model `name`'s stored config, or None (a zoo model, or none there)."""
    import os

    from models import MODELS, user
    if name in MODELS or not os.path.exists(name) or os.path.isdir(name):
        return None
    try:
        config = user.stored_config(name)
    except GreenliteError:
        return None  # the model's loading says what is wrong with the file
    for cls, layer in _first_layers(config):
        if cls == "Rescaling":
            scale = layer.get("scale")
            scale = scale[0] if isinstance(scale, list) and scale else scale
            if isinstance(scale, (int, float)) and abs(scale) <= RAW_PIXEL_SCALE:
                offset = layer.get("offset", 0.0)
                offset = offset[0] if isinstance(offset, list) and offset else offset
                return layer.get("name", "rescaling"), float(scale), float(offset or 0.0)
        if cls in ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D", "Conv1D",
                   "Functional", "Model", "Sequential"):
            break
    return None


def _first_layers(config):
    """(class name, layer config) in the order a stored model config lists them, nested
    models' own layers in place (keras.applications nets sit inside a user's model)."""
    layers = (config.get("config") or {}).get("layers", [])
    for entry in layers:
        cls = entry.get("class_name")
        if cls in ("Functional", "Model", "Sequential") and "layers" in entry.get("config", {}):
            yield from _first_layers(entry)
            return
        yield cls, entry.get("config", {})
