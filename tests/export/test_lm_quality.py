"""KL divergence and top-1 agreement (export/lm_quality.py) against values computed by hand."""
import numpy as np
import pytest

from export import lm_quality


def test_kl_is_float_to_quantized_in_nats():
    p = np.array([[0.7, 0.2, 0.1]])
    q = np.array([[0.5, 0.25, 0.25]])
    by_hand = 0.7 * np.log(0.7 / 0.5) + 0.2 * np.log(0.2 / 0.25) + 0.1 * np.log(0.1 / 0.25)
    assert lm_quality.kl_divergence(np.log(p), np.log(q))[0] == pytest.approx(by_hand, rel=1e-9)
    # KL is not symmetric: the reference (float) is the first argument.
    reverse = 0.5 * np.log(0.5 / 0.7) + 0.25 * np.log(0.25 / 0.2) + 0.25 * np.log(0.25 / 0.1)
    assert lm_quality.kl_divergence(np.log(q), np.log(p))[0] == pytest.approx(reverse, rel=1e-9)
    assert abs(by_hand - reverse) > 0.01


def test_logits_are_turned_into_probabilities_stably():
    # Shifted logits are the same distribution; huge logits do not overflow.
    logits = np.array([[1000.0, 999.0, 990.0]])
    assert lm_quality.kl_divergence(logits, logits - 1000.0)[0] == pytest.approx(0.0, abs=1e-12)
    probabilities = np.exp(lm_quality.log_softmax(logits))
    e = np.exp([0.0, -1.0, -10.0])
    np.testing.assert_allclose(probabilities[0], e / e.sum(), rtol=1e-12)


def test_top1_agreement_and_the_summary():
    reference = np.array([[3.0, 1.0], [0.0, 2.0], [5.0, 4.0], [1.0, 0.0]])
    other = np.array([[2.0, 1.0], [2.0, 0.0], [5.0, 4.5], [0.0, 1.0]])
    assert lm_quality.top1_agreement(reference, other) == 0.5
    summary = lm_quality.compare(reference, other)
    kl = lm_quality.kl_divergence(reference, other)
    assert summary == {"mean_kl": pytest.approx(kl.mean()), "max_kl": pytest.approx(kl.max()),
                       "top1_agreement": 0.5, "positions": 4}
    assert summary["max_kl"] == pytest.approx(kl[1])  # the row whose argmax flipped hardest
