"""Training health: stuck at chance, NaN loss, and the BatchNorm momentum fix."""
import numpy as np
import pytest

import models
from pipeline.backend import keras
from pipeline.data import Data
from pipeline.errors import GreenliteError
from tests.conftest import run_stage


def _stuck_model(momentum):
    # Inputs far from mean 0 / variance 1 and a first BatchNormalization whose
    # moving statistics start at (0, 1): training uses batch statistics and
    # learns, inference uses moving ones that a 0.9999 momentum barely moves.
    # Seeded: the outcome must not depend on the tests that ran before.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def offset_digits(digits):
    shift = lambda split: (split.x * 40 + 300, split.y)
    return Data.from_arrays(*shift(digits.train), *shift(digits.val), *shift(digits.test),
                            class_names=digits.class_names)


def test_a_model_stuck_at_chance_is_diagnosed_and_fails(offset_digits, tmp_path):
    lines = []
    with pytest.raises(GreenliteError, match=r"stages.train: validation accuracy ended at 0\.\d+, "
                                             r"at chance .*model.batchnorm_momentum: 0.9.*"
                                             r"stages.train.allow_chance: true"):
        run_stage("train", {"epochs": 4, "learning_rate": 0.003}, _stuck_model(0.9999),
                  offset_digits, tmp_path, log=lines.append)
    warning = [line for line in lines if line.startswith("WARNING stages.train")]
    assert warning and "BatchNormalization layer(s) have momentum 0.9999" in warning[0]


def test_the_batchnorm_momentum_setting_fixes_it(offset_digits, tmp_path):
    model = _stuck_model(0.9999)
    assert models.set_batchnorm_momentum(model, 0.9) == 1
    trained, _ = run_stage("train", {"epochs": 4, "learning_rate": 0.003}, model,
                           offset_digits, tmp_path)
    from pipeline import training
    assert training.accuracy(trained, offset_digits.test) > 0.5


def test_allow_chance_accepts_it(offset_digits, tmp_path):
    run_stage("train", {"epochs": 1, "allow_chance": True}, _stuck_model(0.9999),
              offset_digits, tmp_path)


def test_a_nan_loss_stops_the_stage(digits, tmp_path):
    x = digits.train.x.copy()
    x[5, 0, 0, 0] = np.nan
    data = Data.from_arrays(x, digits.train.y, digits.val.x, digits.val.y, digits.test.x,
                            digits.test.y, class_names=digits.class_names)
    # No ReLU between the input and the loss: whether ReLU passes a NaN on or
    # makes it 0 depends on the CPU's kernels (one machine here gave a finite
    # loss and a dead model, which the chance check then caught).
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    linear = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    with pytest.raises(GreenliteError, match=r"stages.train: the training loss became nan in "
                                             r"epoch 1; the stage stopped"):
        run_stage("train", {"epochs": 2}, linear, data, tmp_path)


@pytest.mark.parametrize("loss", [float("inf"), float("-inf"), float("nan")])
def test_a_loss_that_is_not_finite_stops_the_stage(loss):
    """NaN *or infinite*, as the README says: an overflowing loss is infinite long
    before it is NaN, and a check for NaN alone would train on."""
    from pipeline.health import TrainingHealth
    health = TrainingHealth("stages.train", chance=None, steps_per_epoch=10)
    health.on_epoch_end(0, {"loss": 2.3})  # a finite loss goes on
    with pytest.raises(GreenliteError, match=rf"stages.train: the training loss became "
                                             rf"{loss} in epoch 2"):
        health.on_epoch_end(1, {"loss": loss})


def test_weights_the_last_step_made_nan_stop_the_stage_naming_the_layer():
    """The epoch's training loss is the mean before its last update, so weights that
    the last step made NaN show first in the validation loss (EfficientNetB0's QAT on
    two steps an epoch did this, and a NaN model went on to int8)."""
    from pipeline.health import TrainingHealth
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="first")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="second")(hidden))
    health = TrainingHealth("stages.quantize", chance=None, steps_per_epoch=2)
    health.set_model(model)
    with pytest.raises(GreenliteError, match=r"the weights are finite, so the validation "
                                             r"inputs hold NaN"):
        health.on_epoch_end(0, {"loss": 1.4, "val_loss": float("nan")})
    kernel = model.get_layer("second").kernel
    kernel.assign(np.where(np.arange(6).reshape(3, 2) == 4, np.inf, kernel.numpy()))
    with pytest.raises(GreenliteError, match=r"^stages.quantize: the validation loss became inf "
                                             r"in epoch 3 \(training loss 1.4\); the weights "
                                             r"of 1 layer\(s\) are no longer finite \(second\): "
                                             r"a training step overflowed"):
        health.on_epoch_end(2, {"loss": 1.4, "val_loss": float("inf")})
    health.on_epoch_end(3, {"loss": 1.4, "val_loss": 1.2})  # finite goes on


def test_auto_momentum_settles_within_the_planned_steps_and_then_trains(offset_digits,
                                                                        tmp_path):
    """The failure above, foreseen: before the first step, `auto` sees 0.9999 needs
    ~100,000 steps and the stage trains 4 x 19 = 76, and lowers it (to its floor,
    0.9, which still needs ~100: the note says to train longer)."""
    from pipeline import health
    model = _stuck_model(0.9999)
    steps = 4 * -(-len(offset_digits.train) // 64)
    note = health.settle_batchnorm(model, steps, "train")
    assert health.batchnorm_momenta(model) == [0.9]
    assert note.startswith("1 BatchNormalization layer(s) had momentum 0.9999, whose moving "
                           f"statistics need about 100,000 steps to settle; stage train trains "
                           f"{steps:,}: momentum set to 0.9")
    trained, _ = run_stage("train", {"epochs": 4, "learning_rate": 0.003}, model,
                           offset_digits, tmp_path)
    from pipeline import training
    assert training.accuracy(trained, offset_digits.test) > 0.5


def test_auto_picks_the_momentum_that_settles_and_leaves_a_fast_one_alone():
    from pipeline import health
    model = _stuck_model(0.999)
    # 5,000 planned steps: 1 - 10 / 5000 = 0.998 settles in 5,000.
    note = health.settle_batchnorm(model, 5000, "finetune")
    assert health.batchnorm_momenta(model) == [0.998] and "set to 0.998" in note
    fast = _stuck_model(0.9)
    assert health.settle_batchnorm(fast, 5000, "finetune") is None
    assert health.batchnorm_momenta(fast) == [0.9]


def test_a_number_or_keep_in_the_recipe_wins_over_auto(tmp_path, digits):
    from pipeline import intake
    from pipeline import recipe as recipe_lib
    from tests.conftest import ROOT
    path = tmp_path / "stuck.h5"
    _stuck_model(0.9999).save(path)
    for setting, expected in (("0.95", 0.95), ("keep", 0.9999), ("auto", 0.9)):
        recipe = recipe_lib.load(f"{ROOT}/recipes/default.yaml",
                                 [f"model.name={path}", f"model.batchnorm_momentum={setting}",
                                  "train.epochs=2"])
        model, _, notes = intake.prepare(recipe, digits, {}, None, log=lambda line: None)
        from pipeline import health
        assert health.batchnorm_momenta(model) == [pytest.approx(expected)], setting
        assert bool(notes) is (setting == "auto")
