"""Reading operators and weight tensors of real exported files."""
import numpy as np
import pytest

from export import tflite_file


def test_operators_of_an_exported_file(exported):
    ops = tflite_file.operators(exported["int8"])
    names = [name for name, _ in ops]
    assert names.count("CONV_2D") == 2 and names.count("FULLY_CONNECTED") == 2
    assert "MAX_POOL_2D" in names
    assert all(isinstance(v, int) and v >= 1 for _, v in ops)
    assert "DEQUANTIZE" in [n for n, _ in tflite_file.operators(exported["float16"])]


def test_kernels_map_back_to_keras_layers(exported, trained_model):
    kernels = tflite_file.kernels_by_layer(exported["float32"], ["conv1", "conv2", "dense1", "logits"])
    assert sorted(kernels) == ["conv1", "conv2", "dense1", "logits"]
    dense = trained_model.get_layer("dense1").kernel.numpy()
    # TFLite stores FULLY_CONNECTED weights as [out, in].
    np.testing.assert_array_equal(kernels["dense1"].values, dense.T)
    int8 = tflite_file.kernels_by_layer(exported["int8"], ["dense1"])["dense1"]
    assert int8.dtype == "int8" and int8.scale is not None


def test_kernel_stats():
    values = np.array([[0, 0, 1, 2], [3, 3, 0, 3]], dtype=np.int8)
    stats = tflite_file.kernel_stats(values, axis=0)
    entropy = stats.pop("entropy_bits")
    assert stats == {"size": 8, "sparsity": 3 / 8, "unique": 4, "max_unique_per_channel": 3}
    # Values 0 x3, 1, 2, 3 x3: -(2 * 3/8 log2 3/8 + 2 * 1/8 log2 1/8).
    assert entropy == pytest.approx(-(2 * 0.375 * np.log2(0.375) + 2 * 0.125 * np.log2(0.125)))
