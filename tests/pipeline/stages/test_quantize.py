"""The quantize stage: selective QAT, collaborative schemes, int8 export."""
import numpy as np
import pytest

from export.tflite_file import kernel_stats, kernels_by_layer
from pipeline.backend import keras
from pipeline.errors import RecipeError
from pipeline.structure import Claims
from tests.conftest import export_file, run_stage, stage_config_error, tflite_accuracy

FAST = {"epochs": 1, "batch_size": 64}


def test_qat_model_exports_to_int8_with_its_accuracy(trained_model, digits, tmp_path):
    # preserve: auto on a model neither pruned nor clustered preserves nothing.
    model, ctx = run_stage("quantize", {**FAST, "preserve": "auto"}, trained_model, digits, tmp_path)
    assert ctx.metrics["float_layers"] == {}
    assert ctx.metrics["preserve"] == "none"
    assert ctx.metrics["scheme"] == "Default8BitQuantizeScheme"
    # By default QAT starts from ranges measured on data (pipeline/qat_ranges.py).
    assert "logits/post_activation" in ctx.metrics["initial_ranges"]
    keras_acc = float((model.predict(digits.test.x, verbose=0).argmax(-1) == digits.test.y).mean())
    path = export_file(model, "int8", digits, tmp_path / "qat.tflite")
    assert abs(tflite_accuracy(path, digits) - keras_acc) <= 0.02


def test_keep_float_is_reported(trained_model, digits, tmp_path):
    _, ctx = run_stage("quantize", {**FAST, "keep_float": ["logits"]}, trained_model, digits, tmp_path)
    assert ctx.metrics["float_layers"] == {"logits": "kept in float by keep_float"}
    assert "logits" not in ctx.metrics["quantized_layers"]


def test_multi_head_attention_stays_float_and_qat_finishes(digits, tmp_path):
    inputs = keras.Input((8, 8), name="rows")
    x = keras.layers.Dense(16, name="embed")(inputs)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(x, x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs)
    data = _rows(digits)
    # An untrained model after one epoch: at chance by design.
    qat, ctx = run_stage("quantize", {**FAST, "allow_chance": True}, model, data, tmp_path)
    assert ctx.metrics["float_layers"] == {
        "attention": "MultiHeadAttention: tfmot's 8-bit scheme has no QuantizeConfig for attention"}
    assert "embed" in ctx.metrics["quantized_layers"] and "logits" in ctx.metrics["quantized_layers"]
    assert qat.predict(data.test.x[:2], verbose=0).shape == (2, 10)


def test_pqat_keeps_the_zeros_in_the_int8_file(trained_model, digits, tmp_path):
    pruned, pctx = run_stage("prune", {"epochs": 3, "batch_size": 64, "target_sparsity": 0.6,
                                       "layers": ["conv2", "dense1"]}, trained_model, digits, tmp_path)
    qat, ctx = run_stage("quantize", {**FAST, "preserve": "sparsity"}, pruned, digits, tmp_path,
                         claims=pctx.output_claims)
    assert ctx.metrics["scheme"] == "Default8BitPrunePreserveQuantizeScheme"
    path = export_file(qat, "int8", digits, tmp_path / "pqat.tflite")
    for name, tensor in kernels_by_layer(path, ["conv2", "dense1"]).items():
        zeros = int((tensor.values == 0).sum())
        assert zeros >= 0.59 * tensor.values.size, name
        assert tensor.dtype == "int8"


def test_pcqat_keeps_zeros_and_clusters(trained_model, digits, tmp_path):
    # preserve: auto finds both (a search may skip either stage: see search_digits).
    pruned, pctx = run_stage("prune", {"epochs": 3, "batch_size": 64, "target_sparsity": 0.6,
                                       "layers": ["dense1"]}, trained_model, digits, tmp_path)
    clustered, cctx = run_stage("cluster", {**FAST, "number_of_clusters": 4, "layers": ["dense1"]},
                                pruned, digits, tmp_path, claims=pctx.output_claims)
    assert cctx.metrics["preserve_sparsity"] is True
    qat, ctx = run_stage("quantize", {**FAST, "preserve": "auto"}, clustered, digits, tmp_path,
                         claims=cctx.output_claims)
    assert ctx.metrics["preserve"] == "both"
    assert ctx.metrics["scheme"] == "Default8BitClusterPreserveQuantizeScheme"
    path = export_file(qat, "int8", digits, tmp_path / "pcqat.tflite")
    stats = kernel_stats(kernels_by_layer(path, ["dense1"])["dense1"].values)
    assert stats["sparsity"] >= 0.59
    assert stats["max_unique_per_channel"] <= 5  # 4 centroids and zero


def test_cqat_of_a_ds_cnn_block_folds_its_depthwise_batchnorm(digits, tmp_path):
    """DS-CNN's blocks (depthwise, BatchNorm, ReLU, pointwise): clustering the pointwise
    convolution left the depthwise one unclustered, greenlite gave it an explicit
    8-bit config, and that stopped tfmot folding its BatchNorm ("Layer block_dw_bn
    ... is not supported"): kws_ds_cnn's prune + cluster + PCQAT failed here."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="block_dw")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block_dw_bn")(x))
    x = keras.layers.Conv2D(16, 1, use_bias=False, name="block_pw")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block_pw_bn")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    fit = {**FAST, "allow_chance": True}  # the mechanics, not accuracy
    clustered, cctx = run_stage("cluster", {**fit, "number_of_clusters": 4,
                                            "layers": ["block_pw"]}, model, digits, tmp_path)
    qat, ctx = run_stage("quantize", {**fit, "preserve": "clusters"}, clustered, digits,
                         tmp_path, claims=cctx.output_claims)
    assert ctx.metrics["scheme"] == "Default8BitClusterPreserveQuantizeScheme"
    path = export_file(qat, "int8", digits, tmp_path / "cqat.tflite")
    assert kernel_stats(kernels_by_layer(path, ["block_pw"])["block_pw"].values,
                        axis=0)["max_unique_per_channel"] <= 4


@pytest.mark.parametrize("preserve, message", [
    ("sparsity", "preserve: 'sparsity', but no kernel of the input model is sparse"),
    ("clusters", "preserve: 'clusters', but no kernel of the input model is clustered"),
])
def test_preserving_what_is_not_there(trained_model, digits, tmp_path, preserve, message):
    with pytest.raises(RecipeError, match=message):
        run_stage("quantize", {**FAST, "preserve": preserve}, trained_model, digits, tmp_path)


def _rows(digits):
    """The digits as 8 rows of 8 features (a sequence input for attention)."""
    import dataclasses
    from pipeline.data.split import ArraySplit
    squeeze = lambda split: ArraySplit(split.x[..., 0], split.y)
    return dataclasses.replace(digits, train=squeeze(digits.train), val=squeeze(digits.val),
                               test=squeeze(digits.test))


@pytest.mark.parametrize("mode, levels, values", [
    ("ternary", 3, {-127, 0, 127}),
    ("binary", 2, {-127, 127}),
])
def test_low_bit_weights_are_exactly_that_in_the_int8_file(trained_model, digits, tmp_path,
                                                          mode, levels, values):
    import numpy as np
    qat, ctx = run_stage("quantize", {**FAST, "epochs": 2, "weights": mode,
                                      "low_bit_layers": ["conv2", "dense1"]},
                         trained_model, digits, tmp_path)
    assert ctx.metrics["low_bit_layers"] == ["conv2", "dense1"]
    assert ctx.output_claims.clusters == {"conv2": levels, "dense1": levels}
    path = export_file(qat, "int8", digits, tmp_path / f"{mode}.tflite")
    kernels = kernels_by_layer(path, ["conv1", "conv2", "dense1"])
    for name in ("conv2", "dense1"):
        tensor = kernels[name]
        assert tensor.dtype == "int8"
        for channel in tensor.values.reshape(tensor.values.shape[0], -1):
            assert set(np.unique(channel)) <= values and len(np.unique(channel)) <= levels
        assert kernel_stats(tensor.values)["entropy_bits"] <= np.log2(levels) + 1e-9
    assert kernel_stats(kernels["conv1"].values)["max_unique_per_channel"] > levels  # int8
    # The low-bit model still classifies: within a few points of the float model.
    keras_acc = float((trained_model.predict(digits.test.x, verbose=0).argmax(-1)
                       == digits.test.y).mean())
    assert tflite_accuracy(path, digits) > keras_acc - 0.1


def test_low_bit_model_round_trips_through_save_and_load(trained_model, digits, tmp_path):
    import numpy as np
    from models import saved
    from pipeline import lowbit
    qat, _ = run_stage("quantize", {**FAST, "weights": "ternary", "low_bit_layers": ["dense1"]},
                       trained_model, digits, tmp_path)
    loaded = saved.load(saved.save(qat, str(tmp_path)), lowbit.CUSTOM_OBJECTS)
    np.testing.assert_allclose(loaded.predict(digits.test.x[:16], verbose=0),
                               qat.predict(digits.test.x[:16], verbose=0), atol=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"weights": "binary", "preserve": "sparsity"}, "weights: binary has no zero"),
    ({"low_bit_layers": ["dense1"]}, "low_bit_layers: only with weights: ternary or binary"),
    ({"weights": "quaternary"}, "weights: got 'quaternary'; allowed values: 'int8', 'ternary', 'binary'"),
])
def test_bad_low_bit_settings(settings, message):
    assert message in stage_config_error("quantize", settings)


def _sparse_model_with_a_tf_op():
    """A conv whose kernel is half zeros, followed by `x * 0.5` (a TFOpLambda layer, as
    MobileNetV3's hard-swish makes), on 8x8 digits."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = x * 0.5
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    kernel = model.get_layer("conv").kernel
    kernel.assign(kernel.numpy() * (np.arange(kernel.shape[-1]) % 2 == 0))
    return model


def test_pqat_leaves_tf_ops_float_instead_of_failing(digits, tmp_path):
    # tfmot's prune-preserving registry claims the TFOpLambda and then raises
    # "get_quantize_config() called on an unsupported layer" without the guard.
    model = _sparse_model_with_a_tf_op()
    _, ctx = run_stage("quantize", {**FAST, "preserve": "sparsity", "allow_chance": True}, model,
                       digits, tmp_path, claims=Claims(sparsity={"conv": 0.5}))
    assert any(why.startswith("TFOpLambda:") for why in ctx.metrics["float_layers"].values())


def test_lost_zeros_are_masked_again():
    from pipeline.stages.quantize import _reapply_lost_zeros
    before = _sparse_model_with_a_tf_op()
    after = keras.models.clone_model(before)
    after.set_weights([w + 0.01 for w in before.get_weights()])  # every zero lost
    assert _reapply_lost_zeros(before, after, {"conv": 0.5, "logits": 0.0}) == ["conv"]
    old, new = before.get_layer("conv").kernel.numpy(), after.get_layer("conv").kernel.numpy()
    assert np.array_equal(new == 0, old == 0)
    assert np.allclose(new[old != 0], old[old != 0] + 0.01)


def test_qat_of_a_dense_block_exports_to_int8(digits, tmp_path):
    from tests.pipeline.test_layers import _dense_block
    model, ctx = run_stage("quantize", {**FAST, "allow_chance": True}, _dense_block(), digits,
                           tmp_path)
    assert sorted(n for n, why in ctx.metrics["float_layers"].items()
                  if why.startswith("BatchNormalization")) == ["concat_bn", "pool_bn", "shared_bn"]
    # The average pool keeps its input's scale (TFLite requires it); with an
    # output quantizer of its own the converter failed on DenseNet121 (here,
    # with measured starting ranges, on some initial weights and not others).
    pool = model.get_layer("quant_pool")
    assert [v.name for v in pool.weights if v.name.split("/")[-1].startswith(
        ("output_m", "post_activation_m"))] == []
    path = export_file(model, "int8", digits, tmp_path / "dense_block_int8.tflite")
    from ai_edge_litert.interpreter import Interpreter
    assert Interpreter(model_path=path).get_input_details()[0]["dtype"] == np.int8
