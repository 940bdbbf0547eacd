"""lowbit: ternary and binary kernels against a NumPy rendering of the paper's rule."""
import numpy as np
import pytest

from pipeline import lowbit


def _reference(w, mode):
    """Per output channel (last axis), as in the module docstring."""
    out = np.empty_like(w)
    for c in range(w.shape[-1]):
        col = w[..., c]
        if mode == "binary":
            alpha = np.abs(col).mean()
            out[..., c] = np.where(col >= 0, alpha, -alpha)
        else:
            delta = 0.7 * np.abs(col).mean()
            keep = np.abs(col) > delta
            alpha = np.abs(col[keep]).mean() if keep.any() else 0.0
            out[..., c] = np.sign(col) * keep * alpha
    return out


@pytest.mark.parametrize("mode, levels", [("ternary", 3), ("binary", 2)])
def test_low_bit_kernels_follow_the_rule_per_channel(mode, levels):
    w = np.random.default_rng(0).normal(0, 1, (3, 3, 4, 6)).astype(np.float32)
    w[..., 0] *= 10  # channels of different scales get their own alpha
    got = lowbit.low_bit(w, mode).numpy()
    np.testing.assert_allclose(got, _reference(w, mode), rtol=1e-5, atol=1e-6)
    for c in range(w.shape[-1]):
        assert len(np.unique(got[..., c])) <= levels
    assert abs(got[..., 0]).max() > 5 * abs(got[..., 1]).max()


def test_binary_maps_zero_to_plus_alpha_and_ternary_keeps_zeros():
    w = np.array([[0.0, 0.0], [1.0, -2.0], [-1.0, 4.0]], np.float32)
    assert (lowbit.low_bit(w, "binary").numpy()[0] > 0).all()
    ternary = lowbit.low_bit(w, "ternary").numpy()
    assert (ternary[0] == 0).all()


def test_unknown_mode():
    with pytest.raises(ValueError, match=r"mode: got 'quaternary'; expected one of \('ternary', 'binary'\)"):
        lowbit.LowBitQuantizer("quaternary")
