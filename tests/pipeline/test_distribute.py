"""tf.distribute: the recipe's distribute: section, checked early and run over two CPU replicas."""
import json
import os

import pytest

from pipeline import recipe as recipe_lib
from pipeline.errors import RecipeError
from tests.conftest import ROOT, run_cli

DEFAULT = os.path.join(ROOT, "recipes", "default.yaml")


@pytest.mark.parametrize("overrides, message", [
    (["distribute.strategy=parameter_server"],
     "distribute.strategy: got 'parameter_server'; allowed values: 'default', 'mirrored'"),
    (["distribute.devices=2"], "distribute: devices: only the mirrored strategy takes devices; "
                               "the strategy is 'default'"),
    (["distribute.strategy=mirrored", "distribute.devices=0"],
     "distribute: devices: got 0; expected a replica count of at least 1 or a list of device "
     "names"),
    (["distribute.strategy=mirrored", "distribute.devices=3", "train.batch_size=32"],
     "stages.train.batch_size: 32 does not split across the 3 replicas of "
     "distribute.strategy 'mirrored'; batch_size is the global batch: give a multiple of 3"),
])
def test_bad_distribute_settings_are_one_recipe_error(overrides, message):
    with pytest.raises(RecipeError) as e:
        recipe_lib.load(DEFAULT, overrides)
    assert str(e.value) == message


def test_each_training_stage_runs_in_the_strategys_scope(tmp_path):
    """In this process TensorFlow has started, so one named device: the stages'
    models are made in the MirroredStrategy's scope, as with more replicas."""
    from tests.conftest import run_pipeline
    workdir = tmp_path / "run"
    result = run_pipeline(_recipe(tmp_path, '["/cpu:0"]'), workdir, "prune.epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    assert [s["distribute"] for s in report["stages"]] == [
        {"strategy": "MirroredStrategy", "replicas": 1}] * 2


def _recipe(tmp_path, devices):
    recipe = tmp_path / "mirrored.yaml"
    recipe.write_text(
        "model: {name: mlp, options: {units: [32]}}\n"
        "stages:\n  train: {epochs: 1, batch_size: 64}\n"
        "  prune: {target_sparsity: 0.5, epochs: 2, batch_size: 64}\n"
        "export: {formats_by_stage: {prune: [float32]}, doctor: false}\n"
        "benchmark: {num_runs: 2, warmup_runs: 0, check_tflite_runtime: false}\n"
        "energy: {track: false}\ndeploy: {micro: false, metadata: false}\n"
        f"distribute: {{strategy: mirrored, devices: {devices}}}\n")
    return str(recipe)


@pytest.mark.skipif(os.environ.get("GREENLITE_SLOW_TESTS") != "1",
                    reason="45-65 s (a new TensorFlow process); set GREENLITE_SLOW_TESTS=1")
def test_two_cpu_replicas_train_prune_and_keep_the_sparsity(tmp_path):
    """MirroredStrategy over two logical CPU devices (a new process: they can only
    be made before TensorFlow starts); tfmot's masks are reduced across replicas."""
    recipe = _recipe(tmp_path, 2)
    workdir = tmp_path / "run"
    result = run_cli(["-m", "pipeline", f"--recipe={recipe}", f"--workdir={workdir}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MirroredStrategy over 2 replica(s) (/cpu:0, /cpu:1)" in result.stdout
    report = json.loads((workdir / "report.json").read_text())
    variant = report["variants"][0]
    assert variant["sparsity"] == pytest.approx(0.5, abs=0.01) and "violations" not in variant
    assert [s["distribute"]["replicas"] for s in report["stages"]] == [2, 2]
    # The schedule fires within the steps of the global batch.
    steps = {s["name"]: s for s in report["stages"]}["prune"]["metrics"]["schedule"]
    assert steps["total_steps"] == 2 * -(-report["data"]["train"] // 64)
    assert steps["begin_step"] + steps["frequency"] <= steps["end_step"] <= steps["total_steps"]
