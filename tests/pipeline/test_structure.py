"""structure: the claims check, in Keras weights and in a real exported file.

Breaking changes these catch: `Claims.violations` never reporting a
shortfall, the tolerance widened, the zero cluster always allowed, and
`verify_file` reading the wrong axis or the claimed value instead of the file.
"""
import numpy as np
import pytest

from export.tflite_file import kernel_stats
from pipeline.backend import keras
from pipeline.structure import TOLERANCE, Claims, keras_stats, overall_sparsity, verify_file


def _stats(sparsity=0.0, max_unique=100, size=1000):
    return {"size": size, "sparsity": sparsity, "unique": max_unique,
            "max_unique_per_channel": max_unique, "entropy_bits": 1.0}


def test_sparsity_two_points_short_is_a_violation():
    claims = Claims(sparsity={"conv": 0.75})
    assert claims.violations({"conv": _stats(0.75)}) == []
    assert claims.violations({"conv": _stats(0.75 - TOLERANCE + 0.001)}) == []
    problems = claims.violations({"conv": _stats(0.73)})
    assert problems == ["conv: sparsity 0.7300 is more than 1 point below the target 0.75"]


def test_too_many_clusters_is_a_violation_and_the_zero_cluster_needs_preserve_zero():
    assert Claims(clusters={"dense": 8}).violations({"dense": _stats(max_unique=8)}) == []
    assert Claims(clusters={"dense": 8}).violations({"dense": _stats(max_unique=9)}) == [
        "dense: 9 unique values in a channel, more than the 8 clusters allow"]
    assert Claims(clusters={"dense": 8}, preserve_zero=True).violations(
        {"dense": _stats(max_unique=9)}) == []
    assert Claims(clusters={"dense": 8}, preserve_zero=True).violations(
        {"dense": _stats(max_unique=10)}) != []


def test_a_claimed_kernel_missing_from_the_file_is_a_violation():
    problems = Claims(sparsity={"gone": 0.5}, clusters={"gone": 4}).violations({})
    assert problems == ["gone: kernel not found, sparsity target 0.50 unverified",
                        "gone: kernel not found, 4 clusters unverified"]


def test_claims_round_trip_through_json_values():
    claims = Claims(sparsity={"a": 0.5}, clusters={"b": 4}, preserve_zero=True)
    assert Claims.from_dict(claims.to_dict()) == claims
    assert Claims.from_dict(None) == Claims() and not Claims()
    assert claims.layers == ["a", "b"]


def test_overall_sparsity_is_size_weighted():
    stats = {"big": _stats(0.9, size=900), "small": _stats(0.0, size=100)}
    assert overall_sparsity(stats, ["big", "small"]) == pytest.approx(0.81)
    assert overall_sparsity(stats, []) is None


def _model_with_known_kernels():
    """Dense 16 -> 8 whose kernel is 50 % zeros and holds 3 values per output channel."""
    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(8, name="dense")(inputs))
    rng = np.random.default_rng(0)
    kernel = rng.choice(np.float32([0.5, -0.5, 0.25]), size=(16, 8))
    kernel[rng.permutation(16 * 8).reshape(16, 8) < 64] = 0  # exactly half
    model.get_layer("dense").kernel.assign(kernel)
    return model, kernel


@pytest.fixture(scope="module")
def known_file(tmp_path_factory, digits):
    model, kernel = _model_with_known_kernels()
    path = tmp_path_factory.mktemp("structure") / "known_float32.tflite"
    from pipeline.files import atomic_write_bytes
    from export.convert import convert
    atomic_write_bytes(path, convert(model, "float32", np.zeros((4, 16), np.float32)))
    return str(path), model, kernel


def test_verify_file_reads_the_file_not_the_claims(known_file):
    path, model, kernel = known_file
    check = verify_file(path, Claims(sparsity={"dense": 0.5}))
    assert check.problems == []
    assert check.sparsity == pytest.approx((kernel == 0).mean()) == pytest.approx(0.5)
    assert check.weights["dense"]["dtype"] == "float32"
    # The file holds 50 %: a claim of 52 % (2 points more) fails in the file.
    short = verify_file(path, Claims(sparsity={"dense": 0.52}))
    assert short.problems == ["dense: sparsity 0.5000 is more than 1 point below the target 0.52"]
    assert short.sparsity == pytest.approx(0.5)


def test_verify_file_counts_unique_values_per_output_channel(known_file):
    path, model, kernel = known_file
    per_channel = max(len(np.unique(kernel[:, c])) for c in range(kernel.shape[1]))
    check = verify_file(path, Claims(clusters={"dense": per_channel}))
    assert check.problems == []
    assert check.max_unique_per_channel == per_channel
    assert verify_file(path, Claims(clusters={"dense": per_channel - 1})).problems != []
    # Keras measures the same kernel on its own (last) axis.
    assert keras_stats(model, ["dense"])["dense"] == kernel_stats(kernel, axis=-1)


def test_verify_file_without_claims_reads_nothing(known_file):
    check = verify_file(known_file[0], Claims())
    assert check.weights == {} and check.problems == [] and check.sparsity is None
