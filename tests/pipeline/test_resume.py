"""--resume: a killed run goes on where it stopped; a changed recipe reruns from the change."""
import json
import os
import signal
import subprocess
import sys

import pytest

from pipeline import recipe as recipe_lib
from pipeline import resume
from tests.conftest import ROOT, run_cli, run_pipeline

SMALL = ["model.options={width: 0.25, dense_units: 32}", "train.epochs=2",
         "train.early_stopping_patience=null", "prune.epochs=4", "quantize.epochs=1",
         "export.formats_by_stage={quantize: [int8]}", "benchmark.num_runs=2",
         "benchmark.warmup_runs=0", "data.representative_samples=50", "energy.track=false"]


def test_kill_9_mid_stage_then_resume_keeps_the_finished_stages(tmp_path):
    workdir = tmp_path / "run"
    killed = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--recipe=recipes/prune_qat.yaml",
         f"--workdir={workdir}", "--set", "benchmark.check_tflite_runtime=false",
         "--set", "export.doctor=false", "--set", "deploy.micro=false",
         "--set", "deploy.metadata=false"] + [a for o in SMALL for a in ("--set", o)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    in_prune = False
    for line in killed.stdout:
        in_prune = in_prune or "[stage 2/3] prune" in line
        if in_prune and line.startswith("Epoch 3/"):  # two prune epochs checkpointed
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    staging = [tmp_path / f for f in os.listdir(tmp_path) if f.startswith(".tmp-run-")]
    assert len(staging) == 1 and not workdir.exists()
    trained_at = os.stat(staging[0] / "01_train" / "model.h5").st_mtime_ns

    result = run_pipeline("prune_qat", workdir, *SMALL, resume=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[stage 1/3] train: reused from the earlier run" in result.stdout
    assert "[stage 1/3] train (train) ..." not in result.stdout
    assert "stages.prune: resumed at epoch 3 of 4" in result.stdout
    # The trained stage's file is the killed run's, untouched; nothing is left over.
    assert os.stat(workdir / "01_train" / "model.h5").st_mtime_ns == trained_at
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".tmp-", ".old-"))]
    assert not [f for f in os.listdir(workdir) if f.startswith((".tmp-", ".backup"))]
    report = json.loads((workdir / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["train"].get("reused") and not stages["prune"].get("reused")
    assert stages["prune"]["metrics"]["resumed_at_epoch"] == 3
    int8 = next(v for v in report["variants"] if v["name"] == "quantize_int8")
    assert int8["sparsity"] == pytest.approx(0.9, abs=0.01)  # measured in the file
    assert "stage `train` was reused from the earlier run" in (workdir / "report.md").read_text()


def _recipe(*overrides):
    return recipe_lib.load(os.path.join(ROOT, "recipes", "prune_qat.yaml"), overrides)


def test_a_changed_stage_invalidates_it_and_every_later_stage(tmp_path):
    before = resume.stage_hashes(_recipe())
    changed = resume.stage_hashes(_recipe("prune.target_sparsity=0.8"))
    assert changed[0] == before[0] and changed[1] != before[1] and changed[2] != before[2]
    assert resume.stage_hashes(_recipe("data.validation_fraction=0.2"))[0] != before[0]
    assert resume.stage_hashes(_recipe("benchmark.num_runs=7")) == before  # not a stage input

    # A run directory whose stages finished under the old recipe.
    recipe = _recipe()
    for index, (spec, digest) in enumerate(zip(recipe.stages, before), 1):
        stage = tmp_path / resume.stage_directory(index, spec.name)
        stage.mkdir()
        (stage / "model.h5").write_bytes(b"")
        (stage / "metrics.json").write_text(json.dumps(
            {"config_hash": digest, "model_path": f"{stage.name}/model.h5"}))
    assert resume.reusable_stages(str(tmp_path), recipe) == 3
    assert resume.reusable_stages(str(tmp_path), _recipe("prune.target_sparsity=0.8")) == 1
    (tmp_path / "01_train" / "model.h5").unlink()  # a stage without its model is not reused
    assert resume.reusable_stages(str(tmp_path), recipe) == 0


def _resume_cli(workdir, recipe="recipes/prune_qat.yaml"):
    return run_cli(["-m", "pipeline", f"--recipe={recipe}", f"--workdir={workdir}", "--resume"])


def test_resume_without_a_run_says_so(tmp_path):
    result = _resume_cli(tmp_path / "nothing")
    assert result.returncode == 2
    assert "--resume: " in result.stderr and "holds no run to resume" in result.stderr
    assert result.stderr.count("greenlite: error") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_resume_of_another_recipes_run_is_refused_and_touches_nothing(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / resume.RUN_FILE).write_text(json.dumps({"recipe": "default"}))
    (workdir / "report.json").write_text("{}")
    result = _resume_cli(workdir)
    assert result.returncode == 2
    assert "holds a run of recipe 'default', not 'prune_qat'" in result.stderr
    assert sorted(os.listdir(workdir)) == ["report.json", resume.RUN_FILE]
    assert sorted(os.listdir(tmp_path)) == ["run"]


def _hashes(overrides):
    from pipeline import recipe as recipe_lib
    return resume.stage_hashes(recipe_lib.load(f"{ROOT}/recipes/prune_qat.yaml", overrides))


def _touch(path, content):
    """New content and a later modification time (a user editing the file)."""
    import time
    path.write_bytes(content)
    stamp = time.time_ns() + 10 ** 9
    os.utime(path, ns=(stamp, stamp))


@pytest.mark.parametrize("source", ["npz", "tfrecord", "image_folder"])
def test_the_hash_covers_the_data_files_of_every_source(tmp_path, source):
    """A user who edits the data and resumes must get stages trained on the new data:
    the hash covers the npz file, every TFRecord shard a glob names, every image."""
    if source == "npz":
        target = tmp_path / "data.npz"
        target.write_bytes(b"old arrays")
        path = str(target)
    elif source == "tfrecord":
        for k in range(2):
            (tmp_path / f"train-{k}.tfrecord").write_bytes(b"records")
        target, path = tmp_path / "train-1.tfrecord", str(tmp_path / "train-*.tfrecord")
    else:
        (tmp_path / "cats").mkdir()
        target, path = tmp_path / "cats" / "a.png", str(tmp_path)
        target.write_bytes(b"pixels")
    extra = (["data.features={x: {dtype: float32, shape: [4]}, y: {dtype: int64, shape: []}}",
              "data.x_feature=x", "data.y_feature=y"] if source == "tfrecord" else [])
    overrides = [f"data.source={source}", f"data.path={path}"] + extra
    before = _hashes(overrides)
    assert _hashes(overrides) == before  # nothing changed: the same hashes
    _touch(target, b"new content, longer than before")
    after = _hashes(overrides)
    assert all(a != b for a, b in zip(before, after))


def test_the_hash_follows_each_stage_and_nothing_else(tmp_path):
    base = _hashes([])
    changed = _hashes(["prune.target_sparsity=0.7"])
    assert changed[0] == base[0] and all(a != b for a, b in zip(base[1:], changed[1:]))
    assert _hashes(["benchmark.num_runs=7", "export.formats=[int8]"]) == base
    assert _hashes(["seed=1"])[0] != base[0]
