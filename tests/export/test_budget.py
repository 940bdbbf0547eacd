"""One budget rule, checked against hand-computed losses of both kinds."""
import pytest

from export.budget import Budget, BudgetError, losses


def test_accuracy_points_below_the_reference():
    budget = Budget("max_drop_points", 1.0)
    # 0.9750 -> 0.9667: 0.83 points, within 1; 0.9750 -> 0.9639: 1.11 points, not.
    assert budget.loss({"accuracy": 0.9667}, {"accuracy": 0.9750}) == pytest.approx(0.83)
    assert budget.within({"accuracy": 0.9667}, {"accuracy": 0.9750})
    assert not budget.within({"accuracy": 0.9639}, {"accuracy": 0.9750})
    # Better than the reference: a negative loss, within any budget.
    assert budget.loss({"accuracy": 0.98}, {"accuracy": 0.97}) == pytest.approx(-1.0)
    # The margin narrows it: 0.83 points is not within 1 less a 0.5 margin.
    assert not budget.within({"accuracy": 0.9667}, {"accuracy": 0.9750}, margin=0.5)


def test_perplexity_percent_above_the_reference():
    budget = Budget("max_rise_percent", 5.0)
    # 3.862 -> 4.050: +4.87 %, within 5; 3.862 -> 4.060: +5.13 %, not.
    assert budget.loss({"perplexity": 4.050}, {"perplexity": 3.862}) == pytest.approx(4.868, abs=1e-3)
    assert budget.within({"perplexity": 4.050}, {"perplexity": 3.862})
    assert not budget.within({"perplexity": 4.060}, {"perplexity": 3.862})
    assert budget.metric == "perplexity" and budget.unit == "%"


def test_a_file_exactly_at_its_budget_is_within_it():
    # 100 * (0.97 - 0.95) is 2.0000000000000018 in floating point.
    assert Budget("max_drop_points", 2.0).within({"accuracy": 0.95}, {"accuracy": 0.97})
    assert not Budget("max_drop_points", 2.0).within({"accuracy": 0.9499}, {"accuracy": 0.97})


def test_agreement_is_two_sided():
    budget = Budget("max_drop_points", 1.0)
    assert not budget.agrees({"accuracy": 0.99}, {"accuracy": 0.97})  # 2 points better
    assert budget.agrees({"accuracy": 0.965}, {"accuracy": 0.97})


def test_both_shapes_parse_and_bad_budgets_are_refused():
    assert Budget.parse({"max_drop_points": 2}) == Budget.parse({"kind": "max_drop_points",
                                                                 "value": 2})
    assert Budget.for_task("language_model").to_dict() == {"kind": "max_rise_percent", "value": 5.0}
    assert Budget.for_task("classification", max_drop_points=1).kind == "max_drop_points"
    for bad in ({"max_drop_points": -1}, {"max_loss": 1}, {}, {"max_drop_points": True}):
        with pytest.raises(BudgetError):
            Budget.parse(bad)
    assert losses({"accuracy": 0.9, "perplexity": 2.2}, {"accuracy": 0.95, "perplexity": 2.0}) \
        == pytest.approx({"accuracy": 0.9, "perplexity": 2.2, "drop_points": 5.0,
                          "rise_percent": 10.0})


def test_the_refusals_name_the_value_and_what_is_allowed():
    with pytest.raises(BudgetError) as kind:
        Budget("max_loss", 1)
    assert str(kind.value) == ("budget: got 'max_loss'; allowed: max_drop_points, "
                               "max_rise_percent")
    with pytest.raises(BudgetError) as value:
        Budget("max_drop_points", -0.5)
    assert str(value.value) == "max_drop_points: got -0.5; allowed: a number >= 0"
    with pytest.raises(BudgetError) as shape:
        Budget.parse({"max_drop_points": 1, "max_rise_percent": 2})
    assert str(shape.value) == ("budget: got {'max_drop_points': 1, 'max_rise_percent': 2}; "
                                "give one of max_drop_points, max_rise_percent, e.g. "
                                "{max_drop_points: 1}")


def test_the_edges_of_within_and_agrees_are_inclusive():
    from export.budget import ROUNDING
    budget = Budget("max_drop_points", 1.0)
    assert budget.allows(1.0 + ROUNDING) and not budget.allows(1.0 + 3 * ROUNDING)
    # 1/128 is exact in binary: a loss of exactly the budget agrees.
    exact = Budget("max_drop_points", 100 / 128)
    assert exact.agrees({"accuracy": 0.5 + 1 / 128}, {"accuracy": 0.5})
    assert Budget.for_task("classification").to_dict() == {"kind": "max_drop_points",
                                                            "value": 2.0}
