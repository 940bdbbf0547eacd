"""The cluster stage: unique values per kernel in Keras and in exported files."""
import numpy as np
import pytest

from export.tflite_file import kernel_stats, kernels_by_layer
from pipeline.errors import RecipeError
from tests.conftest import export_file, run_stage, stage_config_error

FAST = {"epochs": 1, "batch_size": 64}


def test_clusters_hold_in_keras_and_in_exported_files(trained_model, digits, tmp_path):
    model, ctx = run_stage("cluster", {**FAST, "number_of_clusters": 6,
                                       "layers": ["conv2", "dense1"]},
                           trained_model, digits, tmp_path)
    assert ctx.metrics["clustered_layers"] == ["conv2", "dense1"]
    assert all(u <= 6 for u in ctx.metrics["keras_max_unique_per_channel"].values())
    assert ctx.output_claims.clusters == {"conv2": 6, "dense1": 6}
    for fmt in ("float32", "int8"):
        path = export_file(model, fmt, digits, tmp_path / f"c_{fmt}.tflite")
        for name, tensor in kernels_by_layer(path, ["conv2", "dense1"]).items():
            stats = kernel_stats(tensor.values)
            assert 2 <= stats["max_unique_per_channel"] <= 6, (fmt, name)
            if fmt == "float32":
                assert stats["unique"] <= 6  # per-tensor clustering: 6 values in all


def test_per_channel_clustering(trained_model, digits, tmp_path):
    """Each output channel gets its own 4 centroids: at most 4 values in any channel,
    but many more across the kernel. Clustering per tensor (4 values in all) meets
    the first condition too; only the second tells the two apart."""
    model, ctx = run_stage("cluster", {**FAST, "number_of_clusters": 4, "per_channel": True,
                                       "layers": ["conv2"]}, trained_model, digits, tmp_path)
    assert ctx.metrics["keras_max_unique_per_channel"]["conv2"] <= 4
    kernel = model.get_layer("conv2").get_weights()[0]
    per_channel = [np.unique(kernel[..., c]) for c in range(kernel.shape[-1])]
    assert max(len(values) for values in per_channel) <= 4
    assert len(np.unique(kernel)) > 4 * kernel.shape[-1] // 2
    assert len({tuple(values) for values in per_channel}) == kernel.shape[-1]


def test_preserving_sparsity_needs_a_pruned_input(trained_model, digits, tmp_path):
    with pytest.raises(RecipeError, match="preserve_sparsity: true, but the input model is not pruned"):
        run_stage("cluster", {**FAST, "preserve_sparsity": True}, trained_model, digits, tmp_path)


def test_fewer_than_two_clusters_is_rejected():
    assert "number_of_clusters: got 1; expected an integer >= 2" in stage_config_error(
        "cluster", {"number_of_clusters": 1})


def test_more_clusters_than_weights_is_one_clear_error(trained_model, digits, tmp_path):
    # conv1 of the small model holds 3x3x1x8 = 72 weights.
    with pytest.raises(RecipeError, match=r"stages.cluster.number_of_clusters: 100 is more than "
                                          r"the 72 weights of layer 'conv1'"):
        run_stage("cluster", {"number_of_clusters": 100, "layers": ["conv1"], "epochs": 1},
                  trained_model, digits, tmp_path)
