"""Channel pruning's surgery: the channels that go together, and a smaller model that computes
what the kept channels computed."""
import numpy as np
import pytest

import models
from pipeline import channels
from pipeline.backend import keras
from pipeline.errors import RecipeError

L = keras.layers


def _same_on_kept_channels(model, keep_fraction=0.5, shape=None):
    """Zeroes the dropped channels' producers in a copy (so they contribute nothing),
    then checks the shrunk model computes the same outputs."""
    analysis = channels.analyze(model)
    groups = analysis.prunable()
    # Random kept channels in no pattern: every other channel (0, 2, 4, ...) maps
    # the same whichever way a consumer's rows are picked, so it hid mistakes.
    rng = np.random.default_rng(7)
    keep = {r: sorted(rng.choice(g.size, size=max(1, int(g.size * keep_fraction)),
                                 replace=False).tolist()) for r, g in groups.items()}
    small, sizes = channels.shrink(analysis, keep)
    x = np.random.default_rng(0).normal(size=(4,) + tuple(model.input_shape[1:])).astype("float32")
    return analysis, small, sizes, masked(model, groups, keep), x


def masked(model, groups, keep):
    """The reference a shrunk model must equal: the full model with the removed channels'
    outputs forced to zero after every producer's bias, i.e. kernels and biases zeroed
    (a BN following them passes zero through)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for root, group in groups.items():
        drop = [i for i in range(group.size) if i not in keep[root]]
        for p in group.producers:
            w = copy.get_layer(p).get_weights()
            w[0][..., drop] = 0
            if len(w) > 1:
                w[1][drop] = 0
            copy.get_layer(p).set_weights(w)
    return copy


def test_a_plain_cnn_loses_filters_and_the_dense_rows_that_read_them():
    model = models.build("digits_cnn", (8, 8, 1), 10, {"width": 0.5, "dense_units": 16})
    analysis, small, sizes, masked, x = _same_on_kept_channels(model)
    assert sizes == {"conv1": 8, "conv2": 16, "dense1": 8}  # the output layer stays
    assert analysis.unprunable() == {"logits": "feeds the model's output"}
    assert small.get_layer("dense1").get_weights()[0].shape == (4 * 4 * 16, 8)  # Flatten mapped
    assert small.count_params() < model.count_params() / 3
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_residual_adds_prune_their_producers_as_one_group():
    model = models.build("resnet8", (16, 16, 3), 10)
    analysis = channels.analyze(model)
    groups = [sorted(g.producers) for g in analysis.prunable().values()]
    # The stem and the first block's second convolution meet in block 1's Add.
    assert ["stack1_conv2", "stem"] in groups
    # A shortcut convolution and the block's second convolution meet in its Add.
    assert ["stack2_conv2", "stack2_shortcut"] in groups
    keep = {r: list(range(g.size // 2)) for r, g in analysis.prunable().items()}
    small, _ = channels.shrink(analysis, keep)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    assert small.predict(x, verbose=0).shape == (2, 10)
    assert small.count_params() < model.count_params() / 2


def test_depthwise_channels_follow_the_layer_before():
    model = models.build("ds_cnn", (49, 10, 1), 12, {"filters": 16, "blocks": 2})
    analysis, small, sizes, masked, x = _same_on_kept_channels(model)
    dw = small.get_layer("block1_dw").get_weights()[0]
    assert dw.shape[2] == sizes["conv1"] == 8  # tied to the convolution feeding it
    assert small.get_layer("conv1_bn").get_weights()[0].shape == (8,)
    # BatchNorm of a removed channel still adds its beta: compare on the kept ones
    # only through a model without BN shifts is not possible, so check shapes run.
    assert small.predict(x, verbose=0).shape == (4, 12)


def test_concatenated_channels_keep_their_place():
    inputs = keras.Input((6, 6, 2))
    a = L.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(4, 1, name="b")(inputs)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Conv2D(6, 1, name="mix")(x)
    outputs = L.Dense(3, name="out")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    analysis, small, sizes, masked, x = _same_on_kept_channels(model)
    assert sizes == {"a": 4, "b": 2, "mix": 3}
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_sequential_models_are_followed_too():
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"),
                              L.Flatten(), L.Dense(16, activation="relu"), L.Dense(10)])
    analysis, small, sizes, masked, x = _same_on_kept_channels(model)
    assert sorted(sizes.values()) == [4, 8]
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_a_layer_it_cannot_follow_is_reported_not_guessed():
    inputs = keras.Input((4, 4, 2))
    x = L.Conv2D(8, 1, name="c")(inputs)
    x = L.Reshape((16, 8), name="r")(x)
    outputs = L.Dense(3, name="out")(L.Flatten()(x))
    analysis = channels.analyze(keras.Model(inputs, outputs))
    assert analysis.unprunable()["c"] == "Reshape r: greenlite cannot follow channels through it"
    assert analysis.prunable() == {}


def test_ranking_keeps_the_strongest_channels_and_the_floor():
    model = models.build("mlp", (8, 8, 1), 10, {"units": (8,)})
    dense = model.get_layer("dense1")
    kernel, bias = dense.get_weights()
    kernel[:] = np.arange(8) + 1.0  # channel i has l1 norm proportional to i + 1
    dense.set_weights([kernel, bias])
    analysis = channels.analyze(model)
    (root,) = analysis.prunable()
    assert channels.choose(analysis, {root: 0.5})[root] == [4, 5, 6, 7]
    assert channels.choose(analysis, {root: 0.99}, min_channels=3)[root] == [5, 6, 7]
    assert channels.choose(analysis, {root: 0.5}, ranking="global")[root] == [4, 5, 6, 7]


def test_the_stage_shrinks_and_fine_tunes(trained_model, digits, tmp_path):
    from tests.conftest import run_stage
    small, ctx = run_stage("prune_channels", {"ratio": 0.5, "epochs": 2, "batch_size": 64,
                                              "rounds": 2, "min_channels": 2}, trained_model,
                           digits, tmp_path)
    m = ctx.metrics
    assert m["params_after"] < 0.4 * m["params_before"]
    assert m["channels"]["dense1"] == [16, 32] and m["channels"]["conv1"][0] < 8
    assert m["left_whole"] == {"logits": "feeds the model's output"}
    from pipeline import training
    assert training.evaluate(small, digits.test)[0] > 0.8
    # What the device sees: a smaller file with fewer MACs by the graph's count.
    from export import benchmark
    from tests.conftest import export_file
    before, after = (benchmark.benchmark(export_file(m, "float32", digits, tmp_path / f"{n}.tflite"),
                                         num_runs=1, warmup_runs=0)
                     for n, m in (("full", trained_model), ("pruned", small)))
    assert after["size_bytes"] < 0.4 * before["size_bytes"]
    assert after["macs"] < 0.4 * before["macs"]


def test_a_pattern_that_selects_nothing_prunable(trained_model, digits, tmp_path):
    from tests.conftest import run_stage
    with pytest.raises(RecipeError, match="stages.prune_channels.layers: pattern 'logits' "
                                          "matches no prunable Conv2D or Dense layer; it "
                                          "matches logits \\(feeds the model's output\\)"):
        run_stage("prune_channels", {"layers": ["logits"], "epochs": 1}, trained_model, digits,
                  tmp_path)


def _se_model():
    """A squeeze-excite block (MobileNetV3's: pooled, two 1x1 convolutions, a gate that
    multiplies the block's channels) between two convolutions."""
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="feat")(inputs)
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    s = L.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="excite")([x, s])
    x = L.Conv2D(6, 1, name="mix")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(L.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("seed", range(4))
def test_a_squeeze_excite_gate_prunes_with_the_channels_it_gates(seed):
    """The gate's 1x1 convolution and the convolution whose channels it scales are one
    group (a channel dropped from one must go from the other), and the shrunk model
    equals the full one with those channels zeroed, for any set of kept channels."""
    keras.utils.set_random_seed(seed)
    model = _se_model()
    analysis = channels.analyze(model)
    groups = {tuple(sorted(g.producers)): (root, g) for root, g in analysis.prunable().items()}
    assert ("feat", "se_expand") in groups
    rng = np.random.default_rng(seed)
    keep = {root: sorted(rng.choice(g.size, size=int(rng.integers(1, g.size)), replace=False))
            for root, g in analysis.prunable().items()}
    small, sizes = channels.shrink(analysis, keep)
    root, group = groups[("feat", "se_expand")]
    assert sizes["feat"] == sizes["se_expand"] == len(keep[root])
    reference = masked(model, analysis.prunable(), keep)
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
