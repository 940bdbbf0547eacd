"""Compiling, fitting and evaluating classifiers; shared by the training stages."""
import dataclasses
import os
import sys
from typing import Literal, Optional, Union

from pipeline.lazy_backend import keras
from pipeline.config import at_least, between
from pipeline.errors import RecipeError
from pipeline.outputs import outputs_probabilities

# Recipe names of the Keras optimizers.
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}


@dataclasses.dataclass
class FitConfig:
    """Settings every stage that trains accepts."""
    epochs: int = dataclasses.field(default=10, metadata=at_least(1))
    batch_size: int = dataclasses.field(default=32, metadata=at_least(1))
    learning_rate: float = dataclasses.field(default=1e-3, metadata=between(0, 1, low_open=True))
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    # constant: `learning_rate` throughout; cosine: from `learning_rate` down to
    # zero over the stage's epochs (Loshchilov & Hutter), so the weights a
    # stage ends with are not one noisy step of a constant rate.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # None trains for all epochs; N stops after N epochs without a better
    # validation loss and restores the best weights.
    early_stopping_patience: Optional[int] = dataclasses.field(default=None, metadata=at_least(1))
    # Moves each training image by up to this many pixels each way, per batch
    # (image inputs only; 0: no augmentation). See pipeline/augment.py.
    augment_shift: int = dataclasses.field(default=0, metadata=at_least(0))
    # Blends each training image with another of its batch, the weights drawn
    # from Beta(augment_mixup, augment_mixup) (0: none). Needs a teacher, whose
    # output is the blend's target; the labels' term keeps the larger share's
    # label. See pipeline/augment.py.
    augment_mixup: float = dataclasses.field(default=0.0, metadata=at_least(0))
    # Knowledge distillation: an earlier stage's name, or a saved model file,
    # whose model teaches this one; a list of them teaches as one ensemble
    # (their logits averaged); None trains on the labels alone.
    teacher: Optional[Union[str, list[str]]] = None
    # Weight of the labels' cross-entropy; (1 - alpha) goes to the teacher's soft targets.
    alpha: float = dataclasses.field(default=0.1, metadata=between(0, 1))
    # Softens both distributions; the KL term is scaled by T^2 (Hinton et al.).
    temperature: float = dataclasses.field(default=4.0, metadata=between(0, None, low_open=True))
    # A classifier whose validation accuracy ends at chance fails the stage
    # (pipeline/health.py) unless this is true.
    allow_chance: bool = False


def mixup_without_teacher(where, value):
    """The error for `augment_mixup` in a stage that has no teacher (checked
    when the recipe loads, and again by `fit` for callers without a recipe)."""
    return RecipeError(f"{where}.augment_mixup: got {value}, but the stage has no teacher; a "
                       "blend of two images has no label of its own, so its target is a "
                       "teacher's output (set teacher: or augment_mixup: 0)")


def no_teacher_named(where):
    """The error for `teacher: []` (checked when the recipe loads, and again
    when a teacher is resolved, for callers without a recipe)."""
    return RecipeError(f"{where}.teacher: got an empty list; name one teacher or more (or "
                       "leave teacher: unset)")


def teacher_names(teacher):
    """`teacher:` as a list of names (empty for None)."""
    if teacher is None:
        return []
    return [teacher] if isinstance(teacher, str) else list(teacher)


def resolve_teacher(teacher, ctx, where):
    """The teacher model: an earlier stage's (by name) or a saved model file;
    for a list of them, their ensemble (pipeline/distillation.py)."""
    names = teacher_names(teacher)
    if not names:
        raise no_teacher_named(where)
    models = [_one_teacher(name, ctx, where) for name in names]
    if len(models) == 1:
        return models[0]
    from pipeline import distillation
    return distillation.ensemble(models, where)


def _one_teacher(name, ctx, where):
    if name in ctx.models:
        return ctx.models[name]
    if os.path.isfile(name):
        from models import saved
        return saved.load(name, ctx.custom_objects)
    raise RecipeError(f"{where}.teacher: {name!r} is neither an earlier stage "
                      f"({', '.join(ctx.models) or 'none'}) nor a saved model file")


def fit(model, data, cfg, ctx, callbacks=(), teacher=None, seed=None):
    """Compiles and trains `model` on `data.train`, validating on `data.val`.

    The batches are shuffled (and augmented) from `seed`, by default the
    recipe's.

    The loss is cross-entropy on the labels, or, when `cfg.teacher` names a
    teacher (or `teacher` is given), the distillation loss against it
    (pipeline/distillation.py). Adds TensorBoard logs under the run directory
    and early stopping when configured. Returns the Keras History.
    """
    where = f"stages.{ctx.stage_name}"
    if cfg.augment_shift and len(data.input_shape) != 3:
        raise RecipeError(f"{where}.augment_shift: got {cfg.augment_shift}, but the inputs have "
                          f"shape {data.input_shape}; shifting needs images (height, width, "
                          "channels)")
    if teacher is None and cfg.teacher:
        teacher = resolve_teacher(cfg.teacher, ctx, where)
    if cfg.augment_mixup and teacher is None:
        raise mixup_without_teacher(where, cfg.augment_mixup)
    steps_per_epoch = -(-len(data.train) // cfg.batch_size)
    rate = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate,
                                                      decay_steps=cfg.epochs * steps_per_epoch)
    optimizer = getattr(keras.optimizers, OPTIMIZERS[cfg.optimizer])(learning_rate=rate)
    probabilities = outputs_probabilities(model)
    if teacher is None:
        model.compile(optimizer=optimizer, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities))
    else:
        from pipeline import distillation
        if tuple(teacher.output_shape[1:]) != tuple(model.output_shape[1:]):
            raise RecipeError(f"{where}.teacher: the teacher outputs {teacher.output_shape[1:]} "
                              f"but the student {model.output_shape[1:]}; they must match")
        model.compile(optimizer=optimizer, metrics=[distillation.PackedAccuracy()],
                      loss=distillation.DistillationLoss(cfg.alpha, cfg.temperature, probabilities))
    from pipeline import health
    callbacks = list(callbacks)
    chance = (health.chance_accuracy(data.val.labels, data.num_classes)
              if data.task == "classification" else None)
    callbacks.append(health.TrainingHealth(
        where, chance, steps_per_epoch=steps_per_epoch,
        allow_chance=cfg.allow_chance, log=ctx.log))
    callbacks.append(keras.callbacks.TensorBoard(log_dir=ctx.tensorboard_dir, profile_batch=0))
    if cfg.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience,
            restore_best_weights=True))
    backup = ctx.fit_backup_dir()
    if backup:
        # First, so that the weights and the epoch are restored before any
        # other callback reads them.
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup))
        if os.path.isfile(os.path.join(backup, "chief", "checkpoint")):
            ctx.log(f"{where}: found the interrupted run's checkpoint ({backup}); resuming it")
    # A progress bar per batch on a terminal, one line per epoch in logs.
    common = dict(epochs=cfg.epochs, callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    history = _fit(model, data, cfg, ctx.seed if seed is None else seed, teacher, common)
    if history.epoch and history.epoch[0] > 0:
        ctx.log(f"{where}: resumed at epoch {history.epoch[0] + 1} of {cfg.epochs}; epochs "
                f"1-{history.epoch[0]} were restored from the checkpoint, not trained again")
        ctx.metrics["resumed_at_epoch"] = history.epoch[0] + 1
    return history


def _fit(model, data, cfg, seed, teacher, common):
    from pipeline import distillation
    if data.streamed or cfg.augment_shift or cfg.augment_mixup:
        train = train_batches(data, cfg, seed)
        val = data.val.batches(cfg.batch_size)
        if teacher is not None:
            # Per batch, after augmentation: the teacher labels exactly the
            # images the student sees (consistent teaching, Beyer et al. 2022).
            train, val = (d.map(distillation.packer(teacher)) for d in (train, val))
        return model.fit(train, validation_data=val, **common)
    # Arrays in memory go to Keras as arrays (it shuffles them itself); the
    # teacher's logits are then computed once, not every epoch.
    y_train, y_val = data.train.y, data.val.y
    if teacher is not None:
        y_train = distillation.pack(y_train, distillation.logits_of(teacher, data.train.x))
        y_val = distillation.pack(y_val, distillation.logits_of(teacher, data.val.x))
    return model.fit(data.train.x, y_train, validation_data=(data.val.x, y_val),
                     batch_size=cfg.batch_size, shuffle=True, **common)


def train_batches(data, cfg, seed):
    """The training split as tf.data batches of (x, y), shuffled from `seed`
    and augmented as `cfg` says: shifted, then blended."""
    train = data.train.batches(cfg.batch_size, shuffle=True, seed=seed)
    if cfg.augment_shift:
        from pipeline.augment import shifted
        train = shifted(train, cfg.augment_shift, seed)
    if cfg.augment_mixup:
        from pipeline.augment import mixed
        train = mixed(train, cfg.augment_mixup, seed)
    return train


def accuracy(model, split, batch_size=256):
    """Top-1 accuracy of `model` on a data split, as a fraction (per token for sequences)."""
    return evaluate(model, split, batch_size)[0]


def evaluate(model, split, batch_size=256):
    """(top-1 accuracy, mean cross-entropy in nats) of `model` on a data split.

    The split is read batch by batch (a streamed split is never held whole).
    y holds a class per example, or per position for language models.
    """
    from export.benchmark import score
    probabilities = outputs_probabilities(model)
    hits = nats = count = 0
    for x, y in split.batches(batch_size).as_numpy_iterator():
        batch_hits, batch_nats, n = score(model.predict_on_batch(x), y, probabilities)
        hits, nats, count = hits + batch_hits, nats + batch_nats, count + n
    return hits / count, nats / count
