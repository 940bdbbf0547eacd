"""The train stage: from the model's weights, or from new ones for a second, independent model."""
import numpy as np

from tests.conftest import run_stage

# A learning rate so small that one epoch leaves the weights where they started
# (a new model stays at chance: allowed).
STILL = {"epochs": 1, "batch_size": 64, "learning_rate": 1e-9, "allow_chance": True}


def _largest_difference(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a.get_weights(), b.get_weights()))


def test_training_starts_from_the_models_weights(trained_model, digits, tmp_path):
    model, _ = run_stage("train", STILL, trained_model, digits, tmp_path)
    assert model is not trained_model
    assert _largest_difference(model, trained_model) < 1e-5


def test_reinitialize_draws_new_weights_from_the_stages_seed(trained_model, digits, tmp_path):
    # New weights, the same architecture: an independent second model.
    before = [w.copy() for w in trained_model.get_weights()]
    first, _ = run_stage("train", {**STILL, "reinitialize": True}, trained_model, digits, tmp_path)
    assert [w.shape for w in first.get_weights()] == [w.shape for w in before]
    assert _largest_difference(first, trained_model) > 0.05
    # The input model keeps its weights.
    assert all(np.array_equal(w, b) for w, b in zip(trained_model.get_weights(), before))
    # The same seed draws the same weights; another seed_offset, others.
    again, _ = run_stage("train", {**STILL, "reinitialize": True}, trained_model, digits, tmp_path)
    assert _largest_difference(again, first) < 1e-5
    other, _ = run_stage("train", {**STILL, "reinitialize": True, "seed_offset": 1},
                         trained_model, digits, tmp_path)
    assert _largest_difference(other, first) > 0.05


def test_the_batches_are_shuffled_and_shifted_from_the_stages_seed(trained_model, digits,
                                                                   tmp_path, monkeypatch):
    # seed_offset reaches the batches too (shifted images take the tf.data
    # path), not only the initial weights.
    from pipeline import training
    seeds = []
    original = training.train_batches
    monkeypatch.setattr(training, "train_batches",
                        lambda data, cfg, seed: seeds.append(seed) or original(data, cfg, seed))
    run_stage("train", {**STILL, "augment_shift": 1, "seed_offset": 3}, trained_model, digits,
              tmp_path)
    assert seeds == [3]  # the recipe's seed (0 here) plus 3
