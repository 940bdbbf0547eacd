"""The low_rank stage: SVD factors reproduce the layer, survive export, and are checked."""
import numpy as np
import pytest

from pipeline import factorize
from pipeline.backend import keras
from pipeline.errors import RecipeError
from tests.conftest import export_file, run_stage, stage_config_error, tflite_accuracy


def test_choose_rank():
    s = np.array([4.0, 2.0, 1.0, 1.0])  # squared: 16, 4, 1, 1 (total 22)
    assert factorize.choose_rank(s, energy=16 / 22) == 1
    assert factorize.choose_rank(s, energy=0.9) == 2     # 20/22 = 0.909
    assert factorize.choose_rank(s, energy=1.0) == 4
    assert factorize.choose_rank(s, ratio=0.5) == 2
    assert factorize.choose_rank(s, rank=3) == 3


def test_costs():
    assert factorize.costs("Dense", (100, 50), 10) == ((5000, 5000), (1500, 1500))
    # 3x3x8 -> 16 filters on 64 output positions, rank 4: 3*3*8*4 + 4*16.
    assert factorize.costs("Conv2D", (3, 3, 8, 16), 4, 64) == ((1152, 73728), (352, 22528))


@pytest.mark.parametrize("layer, settings", [
    ("dense1", {"rank_energy": 0.95}),   # 256x32: about 20 of 32 singular values
    ("conv2", {"rank_ratio": 0.5}),      # (3*3*8)x16: rank 8 of 16
])
def test_factors_reproduce_the_layer_within_the_reported_error(trained_model, digits, tmp_path,
                                                               layer, settings):
    model, ctx = run_stage("low_rank", {"epochs": 0, "layers": [layer], **settings},
                           trained_model, digits, tmp_path)
    info = ctx.metrics["factorized_layers"][layer]
    original = trained_model.get_layer(layer).kernel.numpy()
    a = model.get_layer(f"{layer}_u").kernel.numpy()
    b = model.get_layer(f"{layer}_v").kernel.numpy()
    w = original.reshape(-1, original.shape[-1])
    product = a.reshape(-1, a.shape[-1]) @ b.reshape(b.shape[-2], b.shape[-1])
    assert np.linalg.norm(w - product) / np.linalg.norm(w) == pytest.approx(
        info["reconstruction_error"], abs=1e-5)
    assert info["params_after"] < info["params_before"] and info["macs_after"] < info["macs_before"]
    assert info["rank"] < info["full_rank"]
    # The layer's pre-activation outputs: X (W - AB) is at most |X|_2 |W - AB|_F.
    probe = keras.Model(trained_model.input, trained_model.get_layer(layer).input)
    x = probe.predict(digits.test.x[:64], verbose=0)
    if x.ndim == 4:  # convolutions: compare the (im2col) patches times the kernel
        import tensorflow as tf
        patches = tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
        x = patches.numpy().reshape(-1, w.shape[0])
    bound = np.linalg.norm(x, 2) * np.linalg.norm(w - product)
    assert np.linalg.norm(x @ w - x @ product) <= bound * (1 + 1e-4)
    # ... and the model's decisions barely move before any fine-tuning.
    before = trained_model.predict(digits.test.x, verbose=0).argmax(-1)
    after = model.predict(digits.test.x, verbose=0).argmax(-1)
    assert np.mean(after == before) > 0.85


def test_factorized_layers_export_and_run(trained_model, digits, tmp_path):
    model, _ = run_stage("low_rank", {"epochs": 1, "batch_size": 64, "rank_ratio": 0.5,
                                      "layers": ["dense1", "conv2"]}, trained_model, digits, tmp_path)
    keras_acc = float(np.mean(model.predict(digits.test.x, verbose=0).argmax(-1) == digits.test.y))
    for fmt in ("float32", "int8"):
        path = export_file(model, fmt, digits, tmp_path / f"lr_{fmt}.tflite")
        assert abs(tflite_accuracy(path, digits) - keras_acc) < 0.03, fmt


def test_sequential_models_are_factorized_too(digits, tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu", name="hidden"),
                              keras.layers.Dense(10, name="out")])
    result, ctx = run_stage("low_rank", {"epochs": 0, "rank": 4, "layers": ["hidden"]},
                            model, digits, tmp_path)
    assert [l.name for l in result.layers][-3:] == ["hidden_u", "hidden_v", "out"]
    assert ctx.metrics["factorized_layers"]["hidden"]["rank"] == 4


def test_a_layer_that_would_not_shrink_is_skipped(trained_model, digits, tmp_path):
    # Rank 26 of 32 shrinks dense1 (256x32); rank 8 of 10 would grow logits (32x10).
    _, ctx = run_stage("low_rank", {"epochs": 0, "rank_ratio": 0.8, "layers": ["dense1", "logits"]},
                       trained_model, digits, tmp_path)
    assert list(ctx.metrics["factorized_layers"]) == ["dense1"]
    assert ctx.metrics["skipped_layers"]["logits"] == (
        "rank 8 of 10 would not lower its parameters (336 >= 320)")


def test_nothing_to_shrink_is_an_error(trained_model, digits, tmp_path):
    with pytest.raises(RecipeError, match="no layer would get smaller at this rank setting"):
        run_stage("low_rank", {"epochs": 0, "rank_ratio": 0.95}, trained_model, digits, tmp_path)


def test_rank_larger_than_the_matrix(trained_model, digits, tmp_path):
    with pytest.raises(RecipeError, match=r"stages.low_rank.rank: got 500, larger than "
                                          r"min\(m, n\) = 8 for layer 'conv1'"):
        run_stage("low_rank", {"epochs": 0, "rank": 500}, trained_model, digits, tmp_path)


@pytest.mark.parametrize("settings, message", [
    ({"rank_energy": 0}, "rank_energy: got 0; expected a number in (0, 1]"),
    ({"rank_energy": 1.5}, "rank_energy: got 1.5; expected a number in (0, 1]"),
    ({"rank_energy": 0.9, "rank": 3}, "give one of rank_energy, rank_ratio, rank; got rank_energy, rank"),
])
def test_bad_low_rank_config(settings, message):
    assert message in stage_config_error("low_rank", settings)
