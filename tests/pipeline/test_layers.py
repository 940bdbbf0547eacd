"""Layer selection by what tfmot really changes, and grouped reasons for what it skips."""
import pytest

from pipeline import layers as layers_lib
from pipeline.backend import keras
from pipeline.errors import RecipeError


def _mobile_block():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 1, use_bias=False, name="expand")(inputs)
    x = keras.layers.BatchNormalization(name="expand_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.ReLU(6.0, name="relu")(x)
    x = keras.layers.Conv2D(3, 1, name="project")(x)
    x = keras.layers.Add(name="add")([x, inputs])
    x = keras.layers.BatchNormalization(name="after_add_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def test_depthwise_and_batchnorm_are_not_selected_for_pruning_or_clustering():
    model = _mobile_block()
    for technique, verb in ((layers_lib.PRUNE, "prunes"), (layers_lib.CLUSTER, "clusters")):
        selected, skipped = layers_lib.select(model, technique)
        assert selected == ["expand", "project", "logits"]
        assert skipped["dw"] == f"DepthwiseConv2D: tfmot {verb} none of its weights"
        assert skipped["dw_bn"] == f"BatchNormalization: tfmot {verb} none of its weights"


def test_qat_takes_batchnorm_only_where_tfmot_folds_it():
    model = _mobile_block()
    selected, _ = layers_lib.select(model, layers_lib.QUANTIZE)
    assert {"expand_bn", "dw_bn", "dw", "add"} <= set(selected)
    assert "after_add_bn" not in selected
    assert layers_lib.unsupported_reason(model.get_layer("after_add_bn"), layers_lib.QUANTIZE,
                                         model).startswith("BatchNormalization: not after")


def test_a_selection_of_only_unprunable_layers_says_why_grouped():
    with pytest.raises(RecipeError, match=r"stages.prune.layer_types: greenlite cannot prune "
                                          r"DepthwiseConv2D layers \(DepthwiseConv2D: tfmot prunes "
                                          r"none of its weights\); classes it can: Conv2D, Dense"):
        layers_lib.select(_mobile_block(), layers_lib.PRUNE, types=["DepthwiseConv2D"],
                          where="stages.prune")
    with pytest.raises(RecipeError, match=r"pattern '\*bn' matches only layers greenlite cannot "
                                          r"prune: 3 layers, BatchNormalization: tfmot prunes none"):
        layers_lib.select(_mobile_block(), layers_lib.PRUNE, names=["*bn"], where="stages.prune")


def test_skipped_layers_are_grouped_by_reason():
    skipped = {f"block_{i}_depthwise": "DepthwiseConv2D: tfmot prunes none of its weights"
               for i in range(17)}
    skipped["logits"] = "not selected"
    assert layers_lib.describe_skipped(skipped) == [
        "17 layers, DepthwiseConv2D: tfmot prunes none of its weights (block_0_depthwise, "
        "block_1_depthwise, block_2_depthwise, ... and 14 more)",
        "1 layer, not selected (logits)"]


def _dense_block():
    """A DenseNet-style block and transition: the first convolution feeds a BatchNorm *and*
    a Concatenate; the transition ends in an AveragePooling2D."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c0")(inputs)
    y = keras.layers.BatchNormalization(name="shared_bn")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c1")(keras.layers.ReLU()(y))
    x = keras.layers.Concatenate(name="concat")([x, y])
    x = keras.layers.BatchNormalization(name="concat_bn")(x)
    x = keras.layers.Conv2D(8, 1, name="c2")(keras.layers.ReLU()(x))
    x = keras.layers.BatchNormalization(name="folded_bn")(x)
    # A transition (convolution, average pool) into the next block, as DenseNet121 has.
    x = keras.layers.Conv2D(8, 1, name="transition")(keras.layers.ReLU()(x))
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    y = keras.layers.BatchNormalization(name="pool_bn")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c3")(keras.layers.ReLU()(y))
    x = keras.layers.Concatenate(name="concat2")([x, y])
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(x)))


def test_batchnorm_after_a_shared_convolution_stays_float():
    # tfmot folds a BatchNorm only into a convolution whose output goes nowhere
    # else; annotated anyway, quantize_apply raised "is not supported".
    model = _dense_block()
    reason = lambda name: layers_lib.unsupported_reason(model.get_layer(name),
                                                        layers_lib.QUANTIZE, model)
    assert reason("shared_bn") == ("BatchNormalization: its convolution's output also feeds "
                                   "other layers, so tfmot's 8-bit scheme cannot fold it")
    assert reason("concat_bn").startswith("BatchNormalization: not after a convolution")
    assert reason("folded_bn") is None


def test_batchnorm_after_a_convolution_with_its_own_activation_stays_float(digits, tmp_path):
    # tfmot's fold matches conv -> BN, not conv(activation) -> BN: annotated anyway,
    # quantize_apply raised "is not supported" on a Keras 3 user's model built so.
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="activated")(inputs)
    x = keras.layers.BatchNormalization(name="after_relu_bn")(x)
    x = keras.layers.Conv2D(4, 3, name="linear")(x)
    x = keras.layers.BatchNormalization(name="folded_bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    reason = lambda name: layers_lib.unsupported_reason(model.get_layer(name),
                                                        layers_lib.QUANTIZE, model)
    assert reason("after_relu_bn") == ("BatchNormalization: its Conv2D applies an activation "
                                       "first, so tfmot's 8-bit scheme cannot fold it")
    assert reason("folded_bn") is None
    from tests.conftest import run_stage
    qat, ctx = run_stage("quantize", {"epochs": 1, "batch_size": 64, "allow_chance": True},
                         model, digits, tmp_path)
    assert "after_relu_bn" in ctx.metrics["float_layers"]
    assert "folded_bn" not in ctx.metrics["float_layers"]
