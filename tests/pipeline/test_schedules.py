"""Pruning schedules derived from the steps trained, and the ones that would never fire."""
import pytest

from pipeline.errors import RecipeError
from pipeline.schedules import derive


def test_polynomial_decay_is_derived_from_the_data():
    s = derive("polynomial_decay", examples=1167, batch_size=32, epochs=10)
    assert (s.steps_per_epoch, s.total_steps) == (37, 370)
    assert s.begin_step == 0
    # Ramp over 3/4 of the 369 steps (277), ~20 updates: frequency 13, the last
    # update lands exactly on end_step.
    assert s.frequency == 13 and s.end_step == 273 and s.end_step % s.frequency == 0


def test_constant_sparsity_runs_to_the_last_step():
    s = derive("constant_sparsity", examples=100, batch_size=10, epochs=3)
    assert (s.begin_step, s.end_step, s.total_steps) == (0, 29, 30)
    assert s.frequency == 1


def test_given_values_are_kept():
    s = derive("polynomial_decay", 1000, 10, 5, begin_step=100, end_step=400, frequency=50)
    assert (s.begin_step, s.end_step, s.frequency) == (100, 400, 50)


@pytest.mark.parametrize("kwargs, message", [
    # tfmot's default frequency (100) on 2 epochs of the digits: one update, at 0% sparsity.
    (dict(frequency=100), "frequency: got 100, more than the 55 steps from begin_step to "
                          "end_step: the mask would be updated at most once"),
    (dict(begin_step=80), "begin_step: got 80, but training has only 74 steps "
                          "(2 epochs x 37 steps): pruning would never start"),
    (dict(end_step=500), "end_step: got 500, past the last training step 73"),
    (dict(begin_step=10, end_step=5), "end_step: got 5; it must be after begin_step (10)"),
    (dict(end_step=50, frequency=7), "end_step - begin_step = 50 is not a multiple of frequency 7"),
])
def test_schedules_that_would_not_prune_are_errors(kwargs, message):
    with pytest.raises(RecipeError) as e:
        derive("polynomial_decay", examples=1167, batch_size=32, epochs=2, **kwargs)
    assert message in str(e.value)
