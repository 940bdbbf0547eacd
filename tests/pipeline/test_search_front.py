"""The search's front and pick (pipeline/search_front.py), on trial rows alone."""
import types

from pipeline.search_front import choose, clears_margin, pareto_front


def _row(number, size, loss, cross_entropy=None):
    return {"number": number, "loss": loss,
            "figures": {"size_bytes": size, "loss": loss, "cross_entropy": cross_entropy}}


def _config(**settings):
    return types.SimpleNamespace(**{"budget": {"max_drop_points": 1.0}, "select_margin": 0.0,
                                    "limits": {}, "objectives": ["size_bytes"],
                                    "select": "smallest", **settings})


def test_the_front_keeps_what_no_other_trial_beats_on_size_and_loss():
    rows = [_row(0, 100, 0.5), _row(1, 200, 0.0), _row(2, 150, 0.7), _row(3, 100, 0.5),
            _row(4, 50, 9.0)]
    # 2 is beaten by 0 (smaller and better); 0 and 3 tie, neither beats the other.
    assert pareto_front(rows, ["size_bytes"]) == {0, 1, 3, 4}


def test_best_is_the_smallest_or_the_most_accurate_within_budget_and_limits():
    rows = [_row(0, 100, 0.8), _row(1, 200, 0.2), _row(2, 300, 0.0), _row(3, 50, 4.0)]
    assert choose(rows, _config())["number"] == 0
    assert choose(rows, _config(select="most_accurate"))["number"] == 2
    assert choose(rows, _config(select="most_accurate",
                                limits={"size_bytes": 250}))["number"] == 1
    assert choose(rows, _config(select_margin=0.5))["number"] == 1
    assert choose(rows, _config(limits={"size_bytes": 60})) is None


def test_when_none_clears_the_margin_best_is_the_least_loss_within_budget_flagged():
    """Not the smallest: inside the margin the safest file is the one to ship."""
    rows = [_row(0, 100, 0.9), _row(1, 200, 0.6), _row(2, 300, 1.5)]
    config = _config(select_margin=0.5)
    best = choose(rows, config)
    assert best["number"] == 1 and not clears_margin(best, config)
    assert choose(rows, _config(select_margin=0.5, select="most_accurate"))["number"] == 1
    assert clears_margin(_row(5, 10, 0.5), config)


def test_most_accurate_breaks_a_tie_in_loss_by_the_validation_cross_entropy():
    """Three files at the same validation loss: the most confident is shipped,
    whatever its size; without cross-entropies, the smallest."""
    rows = [_row(0, 4912, -0.37, 0.060), _row(1, 5488, -0.37, 0.055),
            _row(2, 10752, -0.37, 0.041)]
    config = _config(select="most_accurate", select_margin=0.5)
    assert choose(rows, config)["number"] == 2
    assert choose([_row(r["number"], r["figures"]["size_bytes"], r["loss"]) for r in rows],
                  config)["number"] == 0
    # The loss still comes first: a less confident file with less loss wins.
    assert choose(rows + [_row(3, 9000, -0.74, 0.09)], config)["number"] == 3


def test_an_unmeasured_objective_ranks_last():
    """A trial whose first objective was not measured (None) is never the smallest."""
    import dataclasses

    from pipeline.search_front import choose

    @dataclasses.dataclass
    class Config:
        budget: dict
        limits: dict
        objectives: list
        select: str = "smallest"
        select_margin: float = 0.0

    rows = [{"number": 0, "loss": 0.1, "figures": {"npu_cycles": None}},
            {"number": 1, "loss": 0.5, "figures": {"npu_cycles": 90_000}}]
    best = choose(rows, Config({"max_drop_points": 1}, {}, ["npu_cycles"]))
    assert best["number"] == 1
