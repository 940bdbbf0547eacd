"""QAT's activation ranges start from the float model's activations, not tfmot's [-6, 6]."""
import numpy as np
import pytest

from pipeline import qat_ranges
from pipeline.backend import keras, tfmot
from pipeline.stages.base import clone
from tests.conftest import run_stage


def _loud(model, scale=4.0):
    """A clone of `model` whose logits are `scale` times larger (well beyond +-6)."""
    loud = clone(model)
    layer = loud.get_layer("logits")
    layer.set_weights([w * scale for w in layer.get_weights()])
    return loud


def _range_variables(qat, layer, kind):
    wrapper = qat.get_layer("quant_" + layer)
    values = {v.name.split("/")[-1].split(":")[0]: float(v.numpy()) for v in wrapper.weights
              if v.name.split("/")[-1].startswith(kind)}
    return values[f"{kind}_min"], values[f"{kind}_max"]


def _batch_mean_range(values, batch_size):
    """What tfmot's moving average converges to: the mean of each batch's range, 0 included."""
    batches = [values[i:i + batch_size] for i in range(0, len(values), batch_size)]
    return (float(np.mean([min(b.min(), 0.0) for b in batches])),
            float(np.mean([max(b.max(), 0.0) for b in batches])))


def test_ranges_are_the_float_activations_batch_ranges(trained_model, digits):
    model = _loud(trained_model)
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    x = digits.train.x[:256]
    ranges, left = qat_ranges.initialize(model, qat, x, batch_size=64)

    logits = model.predict(x, verbose=0)
    expected = _batch_mean_range(logits, 64)
    assert expected[1] > 8, "the test needs logits beyond tfmot's start"
    assert ranges["logits/post_activation"] == pytest.approx(expected, rel=1e-5)
    assert _range_variables(qat, "logits", "post_activation") == pytest.approx(expected, rel=1e-5)
    # A ReLU's range starts at 0: no int8 level is spent on negative values.
    conv = keras.Model(model.inputs, model.get_layer("conv1").output).predict(x, verbose=0)
    low, high = _range_variables(qat, "conv1", "post_activation")
    assert low == 0.0 and high == pytest.approx(_batch_mean_range(conv, 64)[1], rel=1e-5)
    # The input's quantizer keeps the widest range it sees (tfmot's all-values quantizer).
    assert ranges["image/output"] == pytest.approx((min(x.min(), 0.0), x.max()))
    assert left == {}


def test_layers_the_model_shares_with_another_get_their_ranges(trained_model, digits):
    """A stage that wraps only some layers (prune or cluster with `layers:`)
    returns a model sharing the others with its clone and tfmot's wrapped
    copy: each of those layers has calls outside the model. The model's own
    call is measured, not refused."""
    model = _loud(trained_model)
    keras.models.clone_model(model, clone_function=lambda layer: layer)  # shares every layer
    assert len(model.get_layer("conv1")._inbound_nodes) == 2
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    x = digits.train.x[:256]
    ranges, left = qat_ranges.initialize(model, qat, x, batch_size=64)
    assert left == {}
    expected = _batch_mean_range(model.predict(x, verbose=0), 64)
    assert expected[1] > 8
    assert ranges["logits/post_activation"] == pytest.approx(expected, rel=1e-5)


def test_a_layer_the_model_itself_calls_twice_is_left_at_the_start():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, activation="relu", name="twice")
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(shared(shared(inputs))))
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    x = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    ranges, left = qat_ranges.initialize(model, qat, x, batch_size=32)
    assert "called more than once in the model" in left["twice/post_activation"]
    assert "out/post_activation" in ranges


def test_a_softmax_output_gets_its_logits_range(trained_model, digits):
    # A classifier ending in Dense(activation="softmax"), as users' often do:
    # tfmot quantizes the logits before the softmax.
    loud = _loud(trained_model)
    dense = loud.get_layer("logits")
    probabilities = keras.layers.Dense(dense.units, activation="softmax", name="logits")
    model = keras.Model(loud.inputs, probabilities(dense.input))
    probabilities.set_weights(dense.get_weights())
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    x = digits.train.x[:256]
    ranges, _ = qat_ranges.initialize(model, qat, x, batch_size=64)
    expected = _batch_mean_range(loud.predict(x, verbose=0), 64)
    assert ranges["logits/pre_activation"] == pytest.approx(expected, rel=1e-4)
    assert _range_variables(qat, "logits", "pre_activation") == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("init_ranges", ["data", "tfmot"])
def test_the_quantize_stage_starts_qat_from_measured_ranges(trained_model, digits, tmp_path,
                                                            init_ranges):
    model = _loud(trained_model)
    high = _batch_mean_range(model.predict(digits.train.x, verbose=0), 64)[1]
    qat, ctx = run_stage("quantize", {"epochs": 1, "batch_size": 64, "init_ranges": init_ranges},
                         model, digits, tmp_path)
    _, qat_high = _range_variables(qat, "logits", "post_activation")
    if init_ranges == "data":
        assert "logits/post_activation" in ctx.metrics["initial_ranges"]
        # One epoch of the moving average keeps it near the measured start.
        assert qat_high > 0.8 * high
    else:
        # tfmot's own start: still near 6 after an epoch, and the logits are clipped.
        assert ctx.metrics["initial_ranges"] == {}
        assert qat_high < 0.5 * high


def test_epochs_zero_is_post_training_quantization(trained_model, digits, tmp_path):
    # No training step: the activations' ranges come from data, the converter
    # takes the weights' from the weights, and the int8 file scores as the
    # float model does.
    from tests.conftest import export_file, tflite_accuracy
    float_accuracy = float((trained_model.predict(digits.test.x, verbose=0).argmax(-1)
                            == digits.test.y).mean())
    qat, ctx = run_stage("quantize", {"epochs": 0, "batch_size": 64}, trained_model, digits,
                         tmp_path)
    weights = {w.name: w.numpy() for w in trained_model.weights}
    assert all(np.array_equal(weights[w.name.replace("quant_", "", 1)], w.numpy())
               for w in qat.weights if w.name.replace("quant_", "", 1) in weights), \
        "epochs: 0 changed a weight"
    # The file's activation ranges are the measured ones.
    measured = ctx.metrics["initial_ranges"]["logits/post_activation"]
    assert _range_variables(qat, "logits", "post_activation") == pytest.approx(measured, abs=1e-4)
    path = export_file(qat, "int8", digits, tmp_path / "ptq.tflite")
    assert abs(tflite_accuracy(path, digits) - float_accuracy) <= 0.02


def test_epochs_zero_without_measured_ranges_is_refused():
    from tests.conftest import stage_config_error
    assert "init_ranges: data" in stage_config_error("quantize", {"epochs": 0,
                                                                  "init_ranges": "tfmot"})


def test_epochs_zero_quantizes_clustered_weights_on_the_whole_grid(trained_model, digits,
                                                                  tmp_path):
    # With tfmot's cluster-preserving scheme the converter takes the weights'
    # scales from their quantizers, which start at [-6, 6]: untrained, kernels
    # of about +-0.5 would use a dozen of int8's 255 levels.
    from export.tflite_file import kernels_by_layer
    from tests.conftest import export_file
    clustered, cctx = run_stage("cluster", {"epochs": 1, "batch_size": 64,
                                            "number_of_clusters": 16},
                                trained_model, digits, tmp_path / "cluster")
    qat, _ = run_stage("quantize", {"epochs": 0, "batch_size": 64, "preserve": "clusters"},
                       clustered, digits, tmp_path / "quantize", claims=cctx.output_claims)
    path = export_file(qat, "int8", digits, tmp_path / "cqat.tflite")
    for name, kernel in kernels_by_layer(path, ["conv1", "dense1", "logits"]).items():
        assert np.abs(kernel.values).max() == 127, name


def _conv_bn(moving_variance):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(x)))
    x = np.random.default_rng(0).uniform(0, 1, (128, 8, 8, 1)).astype(np.float32)
    conv = keras.Model(inputs, model.get_layer("conv").output).predict(x, verbose=0)
    seen = conv.reshape(-1, 4).var(axis=0)
    bn = model.get_layer("bn")
    bn.set_weights([np.ones(4), np.zeros(4), conv.reshape(-1, 4).mean(axis=0),
                    seen * moving_variance])
    return model, x


@pytest.mark.parametrize("off_by", [1 / 20, 20.0])
def test_stale_batchnorm_statistics_leave_tfmot_start(off_by):
    """A BatchNorm whose moving variance is 20x (or 1/20 of) what its input has: the
    model's inference-mode activations are not what QAT trains on (EfficientNetB0
    after two steps an epoch: ranges 1/1000 of the training ones, weights NaN)."""
    model, x = _conv_bn(off_by)
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    ranges, left = qat_ranges.initialize(model, qat, x, batch_size=64)
    assert ranges == {}
    assert left and all(why.startswith("BatchNorm statistics not settled (bn: input variance ")
                        for why in left.values())
    assert f"{1 / off_by:.3g}x its moving variance" in next(iter(left.values()))


def test_settled_batchnorm_statistics_are_measured_from():
    """Within the ratio (3x off is a normal fine-tune's drift) the ranges are measured."""
    model, x = _conv_bn(3.0)
    qat = tfmot.quantization.keras.quantize_model(clone(model))
    ranges, _ = qat_ranges.initialize(model, qat, x, batch_size=64)
    assert ranges
