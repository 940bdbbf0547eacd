"""The prune stage: achieved sparsity in Keras and in exported TFLite files."""
import numpy as np
import pytest

from export.tflite_file import kernel_stats, kernels_by_layer
from pipeline.errors import RecipeError
from tests.conftest import export_file, run_stage, stage_config_error

FAST = {"epochs": 3, "batch_size": 64, "learning_rate": 0.001}


@pytest.fixture(scope="module")
def pruned(trained_model, digits, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune")
    model, ctx = run_stage("prune", {**FAST, "target_sparsity": 0.75}, trained_model, digits, tmp)
    return model, ctx, tmp


def test_every_prunable_layer_reaches_the_target_in_keras(pruned):
    model, ctx, _ = pruned
    assert ctx.metrics["pruned_layers"] == ["conv1", "conv2", "dense1", "logits"]
    assert ctx.metrics["skipped_layers"] == {}
    # Read from the weights themselves, not from the stage's own figures.
    for name in ctx.metrics["pruned_layers"]:
        kernel = model.get_layer(name).kernel.numpy()
        assert (kernel == 0).mean() >= 0.74, name
        assert ctx.metrics["keras_sparsity"][name] == pytest.approx((kernel == 0).mean())
    assert ctx.output_claims.sparsity == {
        "conv1": 0.75, "conv2": 0.75, "dense1": 0.75, "logits": 0.75}
    assert not any("prune_low_magnitude" in l.name for l in model.layers)  # stripped


@pytest.mark.parametrize("fmt", ["float32", "int8"])
def test_the_sparsity_is_in_the_exported_file(pruned, digits, fmt):
    model, _, tmp = pruned
    path = export_file(model, fmt, digits, tmp / f"pruned_{fmt}.tflite")
    kernels = kernels_by_layer(path, ["conv1", "conv2", "dense1", "logits"])
    assert len(kernels) == 4
    for name, tensor in kernels.items():
        assert kernel_stats(tensor.values)["sparsity"] >= 0.74, (name, fmt)


def test_pruning_summaries_go_to_tensorboard(pruned):
    import os
    _, _, tmp = pruned
    files = [f for _, _, fs in os.walk(tmp / "tensorboard" / "prune") for f in fs]
    assert any("tfevents" in f for f in files)


def test_2_by_4_structure_in_the_exported_file(trained_model, digits, tmp_path):
    model, ctx = run_stage("prune", {**FAST, "sparsity_m_by_n": [2, 4],
                                     "layers": ["conv2", "dense1"]}, trained_model, digits, tmp_path)
    assert ctx.metrics["skipped_layers"] == {"conv1": "not selected", "logits": "not selected"}
    path = export_file(model, "int8", digits, tmp_path / "m24.tflite")
    for name, tensor in kernels_by_layer(path, ["conv2", "dense1"]).items():
        # Groups of 4 consecutive weights along the input axis (last in TFLite's
        # [out, in] and OHWI layouts) each hold at least 2 zeros.
        groups = tensor.values.reshape(-1, 4)
        assert np.all((groups == 0).sum(axis=1) >= 2), name


def test_layer_selection_by_class(trained_model, digits, tmp_path):
    _, ctx = run_stage("prune", {**FAST, "layer_types": ["Dense"], "target_sparsity": 0.5},
                       trained_model, digits, tmp_path)
    assert ctx.metrics["pruned_layers"] == ["dense1", "logits"]
    assert ctx.metrics["skipped_layers"] == {"conv1": "not selected", "conv2": "not selected"}


@pytest.mark.parametrize("settings, message", [
    ({"layers": ["dense9*"]}, "stages.prune.layers: pattern 'dense9*' matches no layer; "
                              "layers: conv1, conv2, pool, flatten, dense1, dropout, logits"),
    ({"layers": ["pool"]}, "pattern 'pool' matches only layers greenlite cannot prune: 1 layer, MaxPooling2D: has no weights (pool)"),
    ({"layer_types": ["LSTM"]}, "no layer of class 'LSTM' in the model"),
    ({"epochs": 1, "frequency": 500}, "frequency: got 500"),
])
def test_bad_selection_and_schedules(trained_model, digits, tmp_path, settings, message):
    with pytest.raises(RecipeError) as e:
        run_stage("prune", {**FAST, **settings}, trained_model, digits, tmp_path)
    assert message in str(e.value)


@pytest.mark.parametrize("settings, message", [
    ({"target_sparsity": 1.0}, "target_sparsity: got 1.0; expected a number in [0, 1)"),
    ({"target_sparsity": -0.1}, "target_sparsity: got -0.1; expected a number in [0, 1)"),
    ({"sparsity_m_by_n": [4, 4]}, "sparsity_m_by_n: got [4, 4]; expected [m, n] with 0 < m < n"),
    ({"sparsity_m_by_n": [2]}, "sparsity_m_by_n: got [2]"),
    ({"early_stopping_patience": 2}, "early_stopping_patience: not allowed here"),
    ({"initial_sparsity": 0.9, "target_sparsity": 0.5}, "initial_sparsity 0.9 exceeds"),
])
def test_bad_prune_config(settings, message):
    assert message in stage_config_error("prune", settings)


def test_a_shortfall_in_keras_stops_the_stage(trained_model, digits, tmp_path, monkeypatch):
    # A stripped model that lost one kernel's zeros (as a tfmot bug would).
    from pipeline.errors import GreenliteError
    from pipeline.lazy_backend import tfmot
    strip = tfmot.sparsity.keras.strip_pruning

    def strip_and_refill(model):
        result = strip(model)
        kernel = result.get_layer("dense1").kernel
        kernel.assign(np.where(kernel.numpy() == 0, 1e-3, kernel.numpy()))
        return result

    monkeypatch.setattr(tfmot.sparsity.keras, "strip_pruning", strip_and_refill)
    with pytest.raises(GreenliteError, match=r"stages.prune: pruning fell short of 0.50 in 1 "
                                             r"layer\(s\): dense1: sparsity 0.0000 is more than"):
        run_stage("prune", {**FAST, "epochs": 2, "target_sparsity": 0.5}, trained_model, digits,
                  tmp_path)


def test_the_xnnpack_latency_policy_prunes_only_1x1_convolutions():
    """tfmot's PruneForLatencyOnXNNPack picks the layers; its model check is recorded."""
    from pipeline.backend import keras
    from pipeline.stages.prune import Prune
    inputs = keras.Input((17, 17, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, name="stem")(x)
    x = keras.layers.Conv2D(16, 1, name="expand")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    lines = []
    kept, skipped, check = Prune._xnnpack_policy(
        model, ["stem", "expand", "logits"], {}, "stages.prune", lines.append)
    assert kept == ["expand"] and check is None and not lines
    assert skipped == {"stem": "not a 1x1 Conv2D (policy xnnpack_latency)",
                       "logits": "not a 1x1 Conv2D (policy xnnpack_latency)"}


def test_the_xnnpack_latency_policy_on_a_model_without_1x1_convolutions(
        trained_model, digits, tmp_path):
    with pytest.raises(RecipeError, match=r"no layer of the model can be pruned; skipped: "
                                          r".*not a 1x1 Conv2D \(policy xnnpack_latency\)"):
        run_stage("prune", {**FAST, "policy": "xnnpack_latency"}, trained_model, digits, tmp_path)
