"""pipeline.stats: how sure an accuracy difference on one test split is."""
import numpy as np
import pytest

from pipeline.stats import paired_bootstrap


def _hits(n, misses):
    hits = np.ones(n, dtype=np.int64)
    hits[list(misses)] = 0
    return hits


def test_the_same_hits_lose_nothing_with_certainty():
    hits = _hits(360, range(7))
    assert paired_bootstrap(hits, hits) == (0.0, 0.0, 0.0)


def test_a_pick_that_misses_four_more_digits_is_about_one_point_below():
    baseline = _hits(360, range(4))
    pick = _hits(360, range(8))
    points, low, high = paired_bootstrap(baseline, pick)
    assert points == pytest.approx(400 / 360)
    # Never better than the baseline on any digit: no resample is below zero.
    assert 0.0 <= low < points < high


def test_pairs_are_resampled_together():
    # Both files miss the same seven digits and the pick one more: resampled
    # as pairs, only that digit moves the figure. Resampled apart, each
    # file's own misses would swing it by about a point either way.
    baseline = _hits(360, range(7))
    pick = _hits(360, range(8))
    _, low, high = paired_bootstrap(baseline, pick)
    assert low >= 0.0 and high <= 100 * 3 / 360


def test_several_splits_give_the_mean_of_their_losses():
    one = (_hits(360, range(2)), _hits(360, range(6)))   # 4 digits
    two = (_hits(300, []), _hits(300, range(3)))          # 3 digits
    points, low, high = paired_bootstrap([one[0], two[0]], [one[1], two[1]])
    assert points == pytest.approx((400 / 360 + 300 / 300) / 2)
    assert low < points < high


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        paired_bootstrap([np.ones(3)], [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(0), np.ones(0))
