"""How sure an accuracy difference measured on one test split is.

Two files scored on the same examples differ only where one is right and the
other wrong; resampling the examples with each pair kept together (a paired
bootstrap) gives an interval for that difference. On a few hundred examples
one example is a third of a point: an interval says whether a 1-point goal
was decided by the file or by which examples the split happened to hold.
"""
import numpy as np


def paired_bootstrap(baseline_hits, hits, resamples=10000, seed=0):
    """(points, low, high): how many accuracy points `hits` scores below
    `baseline_hits` on the same examples, and a 95 % interval from
    `resamples` bootstrap draws of the examples (pairs kept together).

    Each argument holds per-example hits (1/0, or the fraction of an
    example's positions right for a language model). Lists of arrays are
    several splits (one per seed, say): each is resampled on its own and the
    figure is the mean of their differences. Seeded: the same inputs give the
    same interval.
    """
    if not isinstance(baseline_hits, list):
        baseline_hits, hits = [baseline_hits], [hits]
    if len(baseline_hits) != len(hits) or any(
            len(b) != len(h) or len(b) == 0 for b, h in zip(baseline_hits, hits)):
        raise ValueError("expected one pair of equal-length, non-empty hit arrays per split")
    diffs = [np.asarray(b, np.float64) - np.asarray(h, np.float64)
             for b, h in zip(baseline_hits, hits)]
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for d in diffs:
        draws += d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    draws *= 100 / len(diffs)
    points = 100 * float(np.mean([d.mean() for d in diffs]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return points, float(low), float(high)
