"""Properties where the space is large and the rule simple (hypothesis draws the cases).

- an input quantized for an int8/uint8 input comes back within half a step;
- a derived pruning schedule always fires: begin <= end, a frequency that fits
  the ramp, and end - begin a multiple of it;
- the search's `best` is never over the budget or a limit, and exists whenever
  some trial is within both;
- the resume hash moves, from the changed stage on, whenever a setting it
  covers changes, and never otherwise;
- channel pruning of a random small graph equals the full graph with the
  dropped channels zeroed, for random kept sets.
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export.benchmark import dequantize_output, quantize_input

FAST = settings(max_examples=200, deadline=None)


@FAST
@given(scale=st.floats(1e-4, 10.0), zero_point=st.integers(-128, 127),
       values=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=16),
       dtype=st.sampled_from([np.int8, np.uint8, np.int16]))
def test_input_quantization_round_trip(scale, zero_point, values, dtype):
    info = np.iinfo(dtype)
    zero_point = int(np.clip(zero_point, info.min, info.max))
    detail = {"dtype": dtype, "quantization": (scale, zero_point)}
    # Values inside what the type can hold at this scale.
    low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    x = np.clip(np.asarray(values, np.float32) * max(abs(low), abs(high)), low, high)
    q = quantize_input(x, detail)
    assert q.dtype == dtype
    back = dequantize_output(q, detail)
    assert np.all(np.abs(back - x) <= scale / 2 + 1e-6 * max(1.0, np.max(np.abs(x))))
    # Beyond the range: clipped to the type's ends, never wrapped around.
    far = quantize_input(np.array([high + 100 * scale, low - 100 * scale], np.float32), detail)
    assert far.tolist() == [info.max, info.min]


@FAST
@given(examples=st.integers(1, 5000), batch_size=st.integers(1, 512), epochs=st.integers(1, 30),
       schedule=st.sampled_from(["polynomial_decay", "constant_sparsity"]))
def test_a_derived_schedule_always_fires(examples, batch_size, epochs, schedule):
    """Derived from the steps trained, a schedule updates the mask more than once and
    (polynomial decay) lands its last update on end_step; a training too short for any
    says so, naming the steps, instead of blaming an end_step nobody set."""
    from pipeline import schedules
    from pipeline.errors import RecipeError
    per_epoch = -(-examples // batch_size)
    try:
        steps = schedules.derive(schedule, examples, batch_size, epochs)
    except RecipeError as e:
        assert per_epoch * epochs <= 2 and "too few for a pruning schedule" in str(e)
        return
    assert steps.steps_per_epoch == per_epoch and steps.total_steps == per_epoch * epochs
    assert 0 <= steps.begin_step < steps.end_step <= steps.total_steps - 1
    assert 1 <= steps.frequency <= steps.end_step - steps.begin_step
    if schedule == "polynomial_decay":
        assert (steps.end_step - steps.begin_step) % steps.frequency == 0
        updates = (steps.end_step - steps.begin_step) // steps.frequency
        assert updates >= min(schedules.UPDATES, steps.end_step - steps.begin_step) // 2


@dataclasses.dataclass
class _Search:
    budget: dict
    limits: dict
    objectives: list
    select: str = "smallest"
    select_margin: float = 0.0


_rows = st.lists(st.fixed_dictionaries({
    "loss": st.floats(-3, 6), "size_bytes": st.integers(1000, 100_000),
    "cross_entropy": st.floats(0.01, 2)}), min_size=1, max_size=12)


@FAST
@given(rows=_rows, budget=st.floats(0, 4), limit=st.integers(1000, 100_000),
       margin=st.floats(0, 1), select=st.sampled_from(["smallest", "most_accurate"]))
def test_best_is_within_the_budget_and_the_limits_whenever_one_is(rows, budget, limit, margin,
                                                                  select):
    from pipeline.search_front import choose
    margin = min(margin, budget)
    rows = [{"number": k, "loss": r["loss"],
             "figures": {"size_bytes": r["size_bytes"], "cross_entropy": r["cross_entropy"]}}
            for k, r in enumerate(rows)]
    config = _Search({"max_drop_points": budget}, {"size_bytes": limit}, ["size_bytes"], select,
                     margin)
    best = choose(rows, config)
    feasible = [r for r in rows if r["loss"] <= budget + 1e-9
                and r["figures"]["size_bytes"] <= limit]
    if not feasible:
        assert best is None
        return
    assert best is not None and best["loss"] <= budget + 1e-9
    assert best["figures"]["size_bytes"] <= limit
    clear = [r for r in feasible if r["loss"] <= budget - margin + 1e-9]
    if clear and select == "smallest":
        assert best["figures"]["size_bytes"] == min(r["figures"]["size_bytes"] for r in clear)


_STAGE_FIELDS = {"train": ["epochs", "learning_rate", "batch_size"],
                 "prune": ["target_sparsity", "epochs", "learning_rate"],
                 "quantize": ["epochs", "learning_rate"]}


@settings(max_examples=40, deadline=None)
@given(stage=st.sampled_from(["train", "prune", "quantize"]), data=st.data())
def test_the_resume_hash_moves_from_a_changed_stage_on(stage, data):
    from pipeline import recipe as recipe_lib
    from pipeline import resume
    from tests.conftest import ROOT
    path = f"{ROOT}/recipes/prune_qat.yaml"
    base = resume.stage_hashes(recipe_lib.load(path, []))
    field = data.draw(st.sampled_from(_STAGE_FIELDS[stage]))
    value = {"epochs": data.draw(st.integers(1, 40)), "batch_size": data.draw(st.integers(8, 256)),
             "learning_rate": data.draw(st.floats(1e-5, 0.1)),
             "target_sparsity": data.draw(st.floats(0.1, 0.95))}[field]
    recipe = recipe_lib.load(path, [f"{stage}.{field}={value!r}"])
    index = [s.name for s in recipe.stages].index(stage)
    before = getattr(recipe_lib.load(path, []).stages[index].config, field)
    changed = resume.stage_hashes(recipe)
    assert changed[:index] == base[:index]
    if value == before:
        assert changed == base
    else:
        assert all(a != b for a, b in zip(base[index:], changed[index:]))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(widths=st.lists(st.integers(2, 6), min_size=1, max_size=3), residual=st.booleans(),
       data=st.data())
def test_channel_pruning_equals_the_masked_model(widths, residual, data):
    from pipeline import channels
    from pipeline.backend import keras
    L = keras.layers
    keras.utils.set_random_seed(len(widths))
    inputs = keras.Input((5, 5, 2))
    x = inputs
    for k, width in enumerate(widths):
        y = L.Conv2D(width, 3, padding="same", activation="relu", name=f"c{k}")(x)
        if residual and k > 0 and widths[k - 1] == width:
            y = L.Add(name=f"add{k}")([x, y])
        x = y
    x = L.Dense(4, activation="relu", name="d")(L.Flatten()(x))
    model = keras.Model(inputs, L.Dense(3, name="out")(x))
    analysis = channels.analyze(model)
    keep = {}
    for root, group in analysis.prunable().items():
        count = data.draw(st.integers(1, group.size), label=f"keep of {root}")
        keep[root] = sorted(data.draw(st.permutations(range(group.size)))[:count])
    small, _ = channels.shrink(analysis, keep)
    from tests.pipeline.test_channels import masked
    reference = masked(model, analysis.prunable(), keep)
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 2)).astype("float32")
    np.testing.assert_allclose(small.predict_on_batch(x), reference.predict_on_batch(x),
                               rtol=1e-4, atol=1e-4)
