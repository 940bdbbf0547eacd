"""Pruning schedules derived from the data, checked so that they actually fire.

tfmot prunes at step s when begin_step <= s <= end_step and
(s - begin_step) % frequency == 0. Its default frequency is 100: on a dataset
of 37 batches per epoch trained for 2 epochs, polynomial decay updates the mask
once, at begin_step, with the initial sparsity (0), and silently prunes
nothing. So greenlite derives begin/end/frequency from the steps actually
trained, and rejects a schedule that cannot reach its target.
"""
import dataclasses
import math

from pipeline.errors import RecipeError

# Polynomial decay reaches the target at 3/4 of training, so the last quarter
# fine-tunes the surviving weights at the final sparsity.
RAMP_FRACTION = 0.75
# About this many mask updates along the ramp: smooth enough, cheap enough.
UPDATES = 20


@dataclasses.dataclass(frozen=True)
class Steps:
    """A resolved schedule."""
    begin_step: int
    end_step: int
    frequency: int
    total_steps: int
    steps_per_epoch: int


def derive(schedule, examples, batch_size, epochs, begin_step=None, end_step=None,
           frequency=None, where="stages.prune"):
    """Resolves the pruning steps for `epochs` over `examples` in batches.

    Args:
      schedule: "polynomial_decay" or "constant_sparsity".
      examples, batch_size, epochs: what the stage trains on.
      begin_step, end_step, frequency: the recipe's values, or None to derive.
    Returns:
      Steps.
    Raises:
      RecipeError: when the schedule would never prune, or never reach its target.
    """
    steps_per_epoch = math.ceil(examples / batch_size)
    total = steps_per_epoch * epochs
    last = total - 1  # steps are numbered from 0
    begin = 0 if begin_step is None else begin_step
    if begin > last:
        raise RecipeError(
            f"{where}.begin_step: got {begin}, but training has only {total} steps "
            f"({epochs} epochs x {steps_per_epoch} steps): pruning would never start; "
            f"use a begin_step below {total} or more epochs")
    if schedule == "constant_sparsity":
        end = last if end_step is None else end_step
        freq = frequency or max(1, (end - begin) // UPDATES)
    elif end_step is None:
        end = begin + max(1, round(RAMP_FRACTION * (last - begin)))
        freq = frequency or max(1, (end - begin) // UPDATES)
        # Land the last mask update exactly on end_step, where the target is reached.
        snapped = begin + ((end - begin) // freq) * freq
        if snapped > begin:
            end = snapped
    else:
        end = end_step
        freq = frequency or max(1, (end - begin) // UPDATES)
    if end_step is None and (end <= begin or end > last):
        # Derived, not asked for: the training is too short for any schedule.
        raise RecipeError(
            f"{where}: training runs {total} step(s) ({epochs} epochs x {steps_per_epoch} "
            f"steps), too few for a pruning schedule from step {begin}: it needs at least 2 "
            "steps after begin_step; train more epochs or use a smaller batch_size")
    if end <= begin:
        raise RecipeError(f"{where}.end_step: got {end}; it must be after begin_step ({begin})")
    if end > last:
        raise RecipeError(
            f"{where}.end_step: got {end}, past the last training step {last} "
            f"({epochs} epochs x {steps_per_epoch} steps): the schedule would never reach "
            "its target; lower end_step or train more epochs")
    if freq > end - begin:
        raise RecipeError(
            f"{where}.frequency: got {freq}, more than the {end - begin} steps from begin_step "
            f"to end_step: the mask would be updated at most once, at the initial sparsity, "
            f"so nothing would be pruned; use a frequency <= {max(1, (end - begin) // UPDATES)}")
    if schedule == "polynomial_decay" and (end - begin) % freq:
        raise RecipeError(
            f"{where}: end_step - begin_step = {end - begin} is not a multiple of frequency "
            f"{freq}: the last mask update would fall short of the target sparsity")
    return Steps(begin, end, freq, total, steps_per_epoch)
