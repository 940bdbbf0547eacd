"""The stage contract, checked once for every registered stage.

Every stage: returns a keras.Model with the input's shapes, leaves its input
model untouched (weights and layer objects), and its Config round-trips.
A stage added to the registry without an entry in FAST_SETTINGS fails here.
"""
import numpy as np
import pytest

from pipeline import config as config_lib
from pipeline import stages
from pipeline.backend import keras
from pipeline.context import RunContext

# Small settings that make each stage run in seconds on the digits.
FAST_SETTINGS = {
    "train": {"epochs": 1, "batch_size": 64, "allow_chance": True},
    "prune": {"epochs": 2, "batch_size": 64, "allow_chance": True, "target_sparsity": 0.5},
    "cluster": {"epochs": 1, "batch_size": 64, "allow_chance": True, "number_of_clusters": 8},
    "quantize": {"epochs": 1, "batch_size": 64, "allow_chance": True},
    "distill": {"epochs": 1, "batch_size": 64, "allow_chance": True, "student_options": {"width": 0.25, "dense_units": 8}},
    "low_rank": {"epochs": 1, "batch_size": 64, "allow_chance": True, "rank_ratio": 0.25},
    "prune_channels": {"epochs": 1, "batch_size": 64, "allow_chance": True, "ratio": 0.5},
    "int4_aware": {"epochs": 1, "batch_size": 64, "allow_chance": True, "granularity": "channelwise"},
    "as_is": {},
}


def test_every_stage_has_contract_settings():
    assert sorted(FAST_SETTINGS) == sorted(stages.STAGES)


@pytest.mark.parametrize("stage_type", sorted(stages.STAGES))
def test_stage_contract(stage_type, trained_model, digits, tmp_path):
    stage_cls = stages.get(stage_type)
    config = config_lib.build(stage_cls.Config, FAST_SETTINGS[stage_type], f"stages.{stage_type}")
    assert config_lib.build(stage_cls.Config, config_lib.to_dict(config), "x") == config

    weights_before = [w.copy() for w in trained_model.get_weights()]
    layers_before = list(trained_model.layers)
    ctx = RunContext(workdir=str(tmp_path), seed=0, stage_name=stage_type,
                     stage_dir=str(tmp_path / "stage"), models={"train": trained_model},
                     log=lambda line: None)
    result = stage_cls(config).run(trained_model, digits, ctx)

    assert isinstance(result, keras.Model)
    assert result is not trained_model
    assert [tuple(t.shape) for t in result.inputs] == [tuple(t.shape) for t in trained_model.inputs]
    assert [tuple(t.shape) for t in result.outputs] == [tuple(t.shape) for t in trained_model.outputs]
    assert list(trained_model.layers) == layers_before
    for before, after in zip(weights_before, trained_model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert result.predict(digits.test.x[:4], verbose=0).shape == (4, 10)


def test_unknown_stage_lists_known_names():
    from pipeline.errors import RecipeError
    with pytest.raises(RecipeError, match="unknown stage type 'prun'; known stage types: .*train"):
        stages.get("prun")


def test_train_stage_is_seeded(digits, small_model, tmp_path):
    cfg = stages.get("train").Config(epochs=1, batch_size=64, allow_chance=True)

    def run():
        ctx = RunContext(str(tmp_path), 3, "train", str(tmp_path), log=lambda line: None)
        return stages.get("train")(cfg).run(small_model, digits, ctx).get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_stage_writes_tensorboard_logs_and_stops_early(digits, small_model, tmp_path):
    cfg = stages.get("train").Config(epochs=50, early_stopping_patience=1, learning_rate=0.5,
                                     optimizer="sgd", allow_chance=True)
    ctx = RunContext(str(tmp_path), 0, "train", str(tmp_path), log=lambda line: None)
    stages.get("train")(cfg).run(small_model, digits, ctx)
    assert ctx.metrics["epochs_trained"] < 50
    assert any("events.out.tfevents" in f for f in _walk(tmp_path / "tensorboard" / "train"))


def _walk(path):
    import os
    return [f for _, _, files in os.walk(path) for f in files]
