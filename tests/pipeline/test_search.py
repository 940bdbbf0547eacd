"""`python -m pipeline.search`: trials on measured files, the budget as a constraint, resume."""
import json
import os
import pathlib
import re

import pytest

from pipeline.errors import RecipeError
from pipeline.search import Search
from pipeline.search_front import loss
from tests.conftest import slow

FAST = ["train.epochs=3", "train.early_stopping_patience=null", "prune_channels.epochs=1",
        "prune_channels.rounds=1", "benchmark.num_runs=3", "benchmark.warmup_runs=0",
        "export.doctor=false", "energy.track=false", "data.representative_samples=20",
        "deploy.micro=false", "deploy.metadata=false",
        "search.space={prune_channels.ratio: [0.875]}", "search.sampler=random",
        "search.objectives=[size_bytes, macs]", "search.budget={max_drop_points: 100}"]


def _check_the_first_trial(tmp_path, record, trial, stages=("train", "prune_channels",
                                                             "quantize")):
    """Trial 0's record against its run's files, and what the search writes."""
    report = json.loads((tmp_path / trial["directory"] / "report.json").read_text())
    v = next(v for v in report["variants"] if v["name"] == trial["variant"])
    assert trial["figures"]["size_bytes"] == v["size_bytes"] and trial["figures"]["macs"] == v["macs"]
    # 7/8 of the channels gone: the device file is a fraction of the float32 reference.
    assert trial["figures"]["size_bytes"] < record["reference"]["size_bytes"] / 10
    # Chosen on the validation split; the test split only scores the front, at the end.
    assert report["recipe"]["benchmark"]["split"] == "val"
    assert v["num_examples"] == report["data"]["val"]
    # ... and never reads the test split: the stages' Keras figures are on validation
    # too (any read of the withheld test split fails the trial).
    assert [s["keras_split"] for s in report["stages"]] == ["val"] * (len(stages) - 1)
    assert 0 < trial["test"]["accuracy"] <= 1 and "loss" in trial["test"]
    # The test loss comes with its paired interval, which holds it (7/8 of the
    # channels gone after three epochs: the file is wrong on some digits the
    # reference gets right, so the interval is not a point).
    low, high = trial["test"]["loss_interval"]
    assert low <= trial["test"]["loss"] <= high and low < high
    assert f"{trial['test']['loss']:+.2f} ({low:+.2f} to {high:+.2f})" in (
        tmp_path / "search.md").read_text()
    from pipeline import recipe as recipe_lib
    best = recipe_lib.load(str(tmp_path / "best.yaml"))
    assert record["best"] == 0 and best.search is None
    assert [s.name for s in best.stages] == list(stages)
    assert best.stages[1].config.ratio == 0.875
    assert "| trial | values | variant | size_bytes | macs |" in (tmp_path / "search.md").read_text()
    assert (tmp_path / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# A QAT stage after the channel pruning, so that trials share a leading stage.
WITH_QAT = ["stages.quantize={epochs: 1, teacher: train}",
            "export.formats_by_stage={quantize: [int8]}",
            "search.space={prune_channels.ratio: [0.875], quantize.learning_rate: [0.0005, 0.001]}"]


def test_a_search_measures_each_trial_and_resumes(tmp_path):
    lines = []
    recipe = "recipes/search_channels.yaml"
    # Trial 0 runs the enqueued values (the seeded sampler alone would propose 0.001).
    overrides = FAST + WITH_QAT + ["search.enqueue=[{quantize.learning_rate: 0.0005}]"]
    record = Search(recipe, str(tmp_path), overrides, log=lines.append).run(1)
    (trial,) = record["trials"]
    assert trial["number"] == 0 and trial["within_budget"] and trial["pareto"]
    assert trial["params"]["quantize.learning_rate"] == 0.0005
    _check_the_first_trial(tmp_path, record, trial)
    assert trial["cached_stages"] == 0

    # Rerun: the base model is reused and only the missing trials run (the
    # enqueued values are not queued again). The seeded sampler proposes
    # learning rates 0.001, 0.0005: trial 1 takes the pruned model from trial
    # 0's stage cache and trains only the QAT stage; trial 2 repeats trial 0's
    # values and takes its figures.
    lines.clear()
    record = Search(recipe, str(tmp_path), overrides, log=lines.append).run(3)
    assert any("reusing the base model" in line for line in lines)
    assert any("1 trial(s) done, 2 to run" in line for line in lines)
    assert [t["params"]["quantize.learning_rate"] for t in record["trials"]] == [0.0005, 0.001,
                                                                                  0.0005]
    assert [(t["number"], t["same_as"], t["cached_stages"]) for t in record["trials"]] == [
        (0, None, 0), (1, None, 1), (2, 0, None)]
    assert record["trials"][2]["figures"] == trial["figures"]
    # The repeat was not a trial; with both value sets measured the search stops.
    assert any("every value set of the space is measured; stopping" in line for line in lines)
    assert record["effort"]["trials"] == 2 and record["effort"]["repeats_not_rerun"] == 1
    assert not (tmp_path / "trials" / "002").exists()
    first, second = tmp_path / "trials" / "000", tmp_path / "trials" / "001"
    assert ((first / "01_prune_channels" / "model.h5").read_bytes()
            == (second / "01_prune_channels" / "model.h5").read_bytes())
    stages = json.loads((second / "report.json").read_text())["stages"]
    assert [s.get("reused", False) for s in stages] == [True, False]
    assert record["effort"]["stages_from_cache"] == 1
    assert record["effort"]["cache_saved_seconds"] == pytest.approx(stages[0]["seconds"])
    assert any("stage cache: 1 leading stage(s) as in trials/000" in line for line in lines)



def test_a_trial_runs_only_while_fewer_than_the_trials_asked_for_are_claimed():
    """The claim rule of processes sharing a study (the real two-process run:
    test_two_processes_share_a_search_and_a_rerun_resumes_it)."""
    import os

    import optuna
    from pipeline import search_study
    study = optuna.create_study(directions=["minimize"])
    dead = f"{search_study.socket.gethostname()}:{2 ** 22 + 7}"  # no such process
    done = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[1.0],
                                     distributions={}, params={})
    study.add_trial(done)                                              # 0: finished
    surplus = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, distributions={},
                                        params={}, user_attrs={"surplus": True})
    study.add_trial(surplus)                                           # 1: a surplus claim
    for worker in (search_study.WORKER, dead, "another-host:1"):            # 2, 3, 4: running
        trial = study.ask()
        trial.set_user_attr("worker", worker)
    # Trial 5 sees: the finished one, its own process's and another host's running ones;
    # not the surplus claim, not the dead process's trial.
    assert search_study.claimed_before(study, 5) == 3
    assert search_study.claimed_before(study, 2) == 1
    assert os.getpid() == int(search_study.WORKER.rsplit(":", 1)[1])


@slow("75 s (two search processes, each with TensorFlow)")
def test_two_processes_share_a_search_and_a_rerun_resumes_it(tmp_path):
    """Two `python -m pipeline.search` processes on one workdir: one trains the
    base model while the other waits; each trial is claimed once. Then a rerun
    in this process resumes the study."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    command = [sys.executable, "-m", "pipeline.search", "--recipe=recipes/search_channels.yaml",
               f"--workdir={tmp_path}", "--trials=2"] + [f"--set={o}" for o in FAST]
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert sorted(sum("training the base model" in line for line in out.splitlines())
                  for out in outputs) == [0, 1]
    assert sum("reusing the base model" in out for out in outputs) == 1
    # Each trial was started by exactly one of the processes.
    started = [re.findall(r"^search: trial (\d+): [\[{]", out, re.M) for out in outputs]
    assert sorted(int(n) for n in started[0] + started[1]) == [0, 1]

    record = json.loads((tmp_path / "search.json").read_text())
    # Trial 1 has trial 0's values: measured again if it started while trial 0
    # was still running in the other process, else trial 0's figures stand.
    assert [t["number"] for t in record["trials"]] == [0, 1]
    assert record["trials"][1]["same_as"] in (None, 0)
    trial = record["trials"][0]
    assert trial["within_budget"] and trial["pareto"]
    _check_the_first_trial(tmp_path, record, trial, stages=("train", "prune_channels"))

    # Rerun: the base model is reused, only the missing trial runs, and values
    # already measured are not measured again: the space holds one value set,
    # so the proposal repeats it and the search stops.
    done = sum(t["same_as"] is None for t in record["trials"])
    lines = []
    record = Search("recipes/search_channels.yaml", str(tmp_path), FAST, log=lines.append).run(3)
    assert any("reusing the base model" in line for line in lines)
    assert any(f"{done} trial(s) done, {3 - done} to run" in line for line in lines)
    assert any("every value set of the space is measured; stopping" in line for line in lines)
    # (A claim given up as surplus when the two processes raced for a third
    # trial keeps its number but is not a trial: numbers may skip.)
    (_, _, third) = record["trials"]
    assert third["number"] >= 2 and third["same_as"] in (0, 1)
    assert third["figures"]["size_bytes"] == trial["figures"]["size_bytes"]
    assert not (tmp_path / "trials" / f"{third['number']:03d}").exists()


def test_a_trials_teachers_name_the_base_model(tmp_path):
    # The first stage runs once, as the base model: a trial's teachers that
    # name it (alone or in an ensemble) name its saved file instead.
    overrides = FAST + ["stages.quantize={epochs: 1, teacher: [train, prune_channels, train]}",
                        "stages.prune_channels.teacher=train",
                        "export.formats_by_stage={quantize: [int8]}"]
    raw = Search("recipes/search_channels.yaml", str(tmp_path), overrides)._trial_raw(
        "base.h5", {})
    assert raw["stages"]["quantize"]["teacher"] == ["base.h5", "prune_channels", "base.h5"]
    assert raw["stages"]["prune_channels"]["teacher"] == "base.h5"


@pytest.mark.parametrize("objectives, limits, metadata, expected", [
    ("[size_bytes, latency_ms]", "{}", "true", True),     # a size judged: the shipped file's
    ("[latency_ms, macs]", "{size_bytes: 20000}", "true", True),  # a size limit alike
    ("[latency_ms, macs]", "{}", "true", False),          # no size judged: no metadata needed
    ("[size_bytes, latency_ms]", "{}", "false", False),   # the recipe ships none
])
def test_a_trials_file_carries_the_metadata_the_shipped_file_will(tmp_path, objectives, limits,
                                                                  metadata, expected):
    overrides = FAST + [f"search.objectives={objectives}", f"search.limits={limits}",
                        f"deploy.metadata={metadata}"]
    raw = Search("recipes/search_channels.yaml", str(tmp_path), overrides)._trial_raw(
        "base.h5", {})
    assert raw["deploy"]["metadata"] is expected
    assert raw["deploy"]["micro"] is False and raw["deploy"]["c_array"] is False


def test_a_trial_that_crashes_fails_alone(tmp_path, monkeypatch):
    """A library error inside one trial (not greenlite's own) marks that trial
    failed with its type and message; the search goes on to the next."""
    from pipeline import search as search_lib
    reference = {"name": "train_float32", "accuracy": 0.9, "perplexity": 1.5,
                 "size_bytes": 1000}
    base = tmp_path / "base.h5"
    base.write_bytes(b"")  # a trial recipe names it as its model and teacher
    monkeypatch.setattr(search_lib.Search, "_base", lambda self: (str(base), reference))
    monkeypatch.setattr(search_lib.Search, "_measure_on_test", lambda self, record: None)

    def crash(self, recipe, directory, resume_from=None):
        # As the stage cache leaves a trial directory before the run starts.
        (tmp_path / directory / "01_prune_channels").mkdir(parents=True)
        raise ValueError("Expected num_to_sample <= points.rows(). 85 vs 24.")
    monkeypatch.setattr(search_lib.Search, "_run", crash)
    lines = []
    record = Search("recipes/search_channels.yaml", str(tmp_path), FAST, log=lines.append).run(2)
    assert [(t["number"], t["error"]) for t in record["trials"]] == [
        (0, "ValueError: Expected num_to_sample <= points.rows(). 85 vs 24."),
        (1, "ValueError: Expected num_to_sample <= points.rows(). 85 vs 24.")]
    assert not record["trials"][0]["within_budget"] and record["best"] is None
    assert any("search: trial 0 failed: ValueError" in line for line in lines)
    # The failed trial's half-made directory is gone (a later trial could take it
    # for finished stages).
    assert not (tmp_path / "trials" / "000").exists()


def _fake_trials(tmp_path, monkeypatch, variant_of=lambda rate: {}):
    """Trials that write a report without training: `variant_of(learning_rate)`
    overrides the figures of the one variant (100 bytes, accuracy 0.9)."""
    from pipeline import search as search_lib
    reference = {"name": "train_float32", "accuracy": 0.9, "perplexity": 1.5,
                 "size_bytes": 1000}
    base = tmp_path / "base.h5"
    base.write_bytes(b"")
    monkeypatch.setattr(search_lib.Search, "_base", lambda self: (str(base), reference))
    monkeypatch.setattr(search_lib.Search, "_measure_on_test", lambda self, record: None)

    def measured(self, recipe, directory, resume_from=None):
        os.makedirs(directory)
        variant = {"name": "quantize_int8", "size_bytes": 100, "gzip_bytes": 50, "macs": 10,
                   "latency_ms": {"p50": 0.01}, "accuracy": 0.9, "perplexity": 1.5,
                   **variant_of(next(s.config.learning_rate for s in recipe.stages
                                           if s.name == "quantize"))}
        (pathlib.Path(directory) / "report.json").write_text(json.dumps({"variants": [variant]}))
    monkeypatch.setattr(search_lib.Search, "_run", measured)


def test_a_repeat_is_not_a_trial_and_the_next_tries_values_not_yet_measured(tmp_path,
                                                                               monkeypatch):
    """Samplers settle on a small discrete space. A proposal that repeats a
    measured value set takes its figures and does not count; the next trial
    runs a value set not yet measured; once all are measured the search stops."""
    _fake_trials(tmp_path, monkeypatch)
    rates = [0.0001, 0.0002, 0.0005, 0.001]
    overrides = FAST + WITH_QAT + [f"search.space={{quantize.learning_rate: {rates}}}"]
    lines = []
    record = Search("recipes/search_channels.yaml", str(tmp_path), overrides,
                    log=lines.append).run(4)
    rows = record["trials"]
    assert sorted(r["params"]["quantize.learning_rate"] for r in rows
                  if r["same_as"] is None) == rates
    assert record["effort"]["trials"] == 4
    # The seeded sampler repeated itself; each repeat was followed by new values.
    repeats = [i for i, r in enumerate(rows) if r["same_as"] is not None]
    assert repeats and all(rows[i + 1]["same_as"] is None for i in repeats if i + 1 < len(rows))
    assert any("the next tries a value set not yet measured" in line for line in lines)

    lines.clear()
    Search("recipes/search_channels.yaml", str(tmp_path), overrides, log=lines.append).run(5)
    assert any("every value set of the space is measured; stopping" in line for line in lines)


def test_the_front_spans_every_measured_trial_and_best_is_within_budget(tmp_path,
                                                                         monkeypatch):
    """A file out of budget but smaller than every more accurate one is on the
    front (what a larger loss buys); `best` is the front's smallest within budget."""
    figures = {0.0001: (100, 0.895), 0.0002: (60, 0.8), 0.0005: (120, 0.9), 0.001: (80, 0.7)}
    _fake_trials(tmp_path, monkeypatch, lambda rate: {"size_bytes": figures[rate][0],
                                                      "accuracy": figures[rate][1]})
    overrides = FAST + WITH_QAT + ["search.objectives=[size_bytes]",
                                   "search.budget={max_drop_points: 1}",
                                   f"search.space={{quantize.learning_rate: {list(figures)}}}"]
    record = Search("recipes/search_channels.yaml", str(tmp_path), overrides,
                    log=lambda line: None).run(4)
    rate = {r["number"]: r["params"]["quantize.learning_rate"] for r in record["trials"]}
    assert sorted(rate[r["number"]] for r in record["trials"] if r["pareto"]) == [
        0.0001, 0.0002, 0.0005]
    assert sorted(rate[r["number"]] for r in record["trials"] if r["within_budget"]
                  and r["same_as"] is None) == [0.0001, 0.0005]
    assert rate[record["best"]] == 0.0001
    # With a selection margin, a file that met the budget by 0.5 of its 1 point
    # is not chosen; the same trials (none rerun) give the larger, safer one.
    record = Search("recipes/search_channels.yaml", str(tmp_path),
                    overrides + ["search.select_margin=0.6"], log=lambda line: None).run(4)
    assert record["effort"]["trials"] == 4
    assert rate[record["best"]] == 0.0005 and record["best_clears_margin"] is True
    assert "less a margin of 0.6 (the validation split's noise)" in (
        tmp_path / "search.md").read_text()
    # When no file within the limits clears the margin (a reference that
    # scored every validation example leaves none clear), the least loss
    # within budget is chosen, flagged: not nothing.
    record = Search("recipes/search_channels.yaml", str(tmp_path),
                    overrides + ["search.select_margin=0.6", "search.limits={size_bytes: 110}"],
                    log=lambda line: None).run(4)
    assert rate[record["best"]] == 0.0001 and record["best_clears_margin"] is False
    assert "No trial cleared the margin" in (tmp_path / "search.md").read_text()
    assert "no trial cleared the margin of 0.6: the least loss within budget, +0.50" in (
        tmp_path / "best.yaml").read_text()
    # The device's limits and the least loss: the most accurate file within
    # 110 bytes is the 100-byte one; without the limit, the 120-byte one.
    most_accurate = overrides + ["search.select=most_accurate"]
    record = Search("recipes/search_channels.yaml", str(tmp_path), most_accurate,
                    log=lambda line: None).run(4)
    assert rate[record["best"]] == 0.0005
    record = Search("recipes/search_channels.yaml", str(tmp_path),
                    most_accurate + ["search.limits={size_bytes: 110}"],
                    log=lambda line: None).run(4)
    assert rate[record["best"]] == 0.0001 and record["limits"] == {"size_bytes": 110}
    assert sorted(rate[r["number"]] for r in record["trials"] if r["same_as"] is None
                  and not r["within_limits"]) == [0.0005]
    text = (tmp_path / "search.md").read_text()
    assert "least loss (ties: the lower validation cross-entropy, then the smaller)" in text
    assert "size_bytes at most 110" in text
    assert "yes, over a limit" in text
    # No file within budget is within 90 bytes: nothing is chosen, nothing stale is left.
    record = Search("recipes/search_channels.yaml", str(tmp_path),
                    overrides + ["search.limits={size_bytes: 90}"], log=lambda line: None).run(4)
    assert record["best"] is None and not (tmp_path / "best.yaml").exists()
    assert record["best_clears_margin"] is None


def test_cross_entropy_keeps_on_the_front_a_larger_file_the_accuracy_cannot_tell_apart(
        tmp_path, monkeypatch):
    """Two files at the same validation accuracy: by size and loss the larger
    is beaten; with the validation cross-entropy as an objective, the more
    confident one stays on the front."""
    figures = {0.0001: (100, 0.2), 0.0005: (120, 0.05)}
    _fake_trials(tmp_path, monkeypatch, lambda rate: {"size_bytes": figures[rate][0],
                                                      "cross_entropy": figures[rate][1]})
    space = [f"search.space={{quantize.learning_rate: {list(figures)}}}"]
    fronts = {}
    for i, objectives in enumerate(("[size_bytes]", "[size_bytes, cross_entropy]")):
        record = Search("recipes/search_channels.yaml", str(tmp_path / str(i)),
                        FAST + WITH_QAT + space + [f"search.objectives={objectives}"],
                        log=lambda line: None).run(2)
        fronts[objectives] = sorted(r["figures"]["size_bytes"] for r in record["trials"]
                                    if r["pareto"])
        assert sorted(r["figures"]["cross_entropy"] for r in record["trials"]) == [0.05, 0.2]
    assert fronts == {"[size_bytes]": [100], "[size_bytes, cross_entropy]": [100, 120]}


def test_a_trial_over_a_limit_is_infeasible_for_the_sampler(tmp_path, monkeypatch):
    """The sampler's constraint holds the limits as well as the budget: a file
    within budget but over the device's bytes is infeasible."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    sizes = {0.0001: 100, 0.0005: 120}
    _fake_trials(tmp_path, monkeypatch, lambda rate: {"size_bytes": sizes[rate]})
    overrides = FAST + WITH_QAT + ["search.objectives=[size_bytes]",
                                   "search.budget={max_drop_points: 1}",
                                   "search.limits={size_bytes: 110}",
                                   f"search.space={{quantize.learning_rate: {list(sizes)}}}"]
    lines = []
    Search("recipes/search_channels.yaml", str(tmp_path), overrides, log=lines.append).run(2)
    # The progress line's best keeps to the limit too.
    progress = [line for line in lines if "best within budget so far" in line]
    assert progress and "(size_bytes 100, loss +0.00)" in progress[-1]
    study = optuna.load_study(study_name="greenlite", storage=JournalStorage(
        JournalFileBackend(str(tmp_path / "study.journal"))))
    violation = {t.params["quantize.learning_rate"]: t.user_attrs["violation"]
                 for t in study.trials if t.user_attrs.get("same_as") is None}
    assert violation[0.0005] == pytest.approx(10 / 110) and violation[0.0001] < 0


def test_board_energy_as_an_objective_and_battery_days_as_a_floor(tmp_path, monkeypatch):
    """The board's estimated energy is an objective like the bytes; battery days are
    a limit held from below: the smaller file that empties the battery too soon is
    infeasible, and `best` is the one that lasts."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    board = lambda uj, days: {"stm32u385": {"energy_uj": {"mid": uj},
                                            "battery": {"days": {"mid": days}}}}
    shipped = {0.0001: {"size_bytes": 100, "mcu": board(260.0, 380.0)},
               0.0005: {"size_bytes": 120, "mcu": board(170.0, 600.0)}}
    _fake_trials(tmp_path, monkeypatch, lambda rate: shipped[rate])
    overrides = FAST + WITH_QAT + ["search.objectives=[size_bytes, board_energy_uj]",
                                   "search.budget={max_drop_points: 1}",
                                   "search.limits={board_battery_days: 400}",
                                   f"search.space={{quantize.learning_rate: {list(shipped)}}}"]
    raw = Search("recipes/search_channels.yaml", str(tmp_path), overrides)._trial_raw(
        "base.h5", {})
    # The board estimate runs in every trial (the recipe's boards kept), Vela not.
    assert "boards" not in raw["deploy"] and raw["deploy"]["npu"] == []
    record = Search("recipes/search_channels.yaml", str(tmp_path), overrides,
                    log=lambda line: None).run(2)
    figures = {t["params"]["quantize.learning_rate"]: t for t in record["trials"]}
    assert figures[0.0001]["figures"]["board_energy_uj"] == 260.0
    assert figures[0.0005]["figures"]["board_battery_days"] == 600.0
    assert not figures[0.0001]["within_limits"] and figures[0.0005]["within_limits"]
    assert record["trials"][record["best"]]["params"]["quantize.learning_rate"] == 0.0005
    study = optuna.load_study(study_name="greenlite", storage=JournalStorage(
        JournalFileBackend(str(tmp_path / "study.journal"))))
    violation = {t.params["quantize.learning_rate"]: t.user_attrs["violation"]
                 for t in study.trials if t.user_attrs.get("same_as") is None}
    assert violation[0.0001] == pytest.approx(20 / 400)
    assert violation[0.0005] == pytest.approx(-200 / 400)
    assert "board_battery_days at least 400" in (tmp_path / "search.md").read_text()


def test_the_loss_the_budget_limits():
    ref = {"accuracy": 0.97, "perplexity": 4.0}
    assert loss({"accuracy": 0.95, "perplexity": 4.2}, ref, {"max_drop_points": 1}) == pytest.approx(2.0)
    assert loss({"accuracy": 0.95, "perplexity": 4.2}, ref, {"max_rise_percent": 5}) == pytest.approx(5.0)


@pytest.mark.parametrize("overrides, message", [
    (["search.space={train.epochs: [1, 2]}"], "search.space.train.epochs: the first stage"),
    (["search.budget={max_drop: 1}"], "search: budget: got {'max_drop': 1}; allowed:"),
    (["search.space={}"], "search: space: empty"),
    (["search.select_margin=9"], "search: select_margin: 9 is more than the budget"),
    (["search.limits={loss: 1}"], "search: limits.loss: not a figure a limit may be on"),
    (["search.limits={size_bytes: 0}"], "search: limits.size_bytes: got 0; allowed: a number"),
    (["search.select=biggest"], "search.select"),
    (["search.space={prune_channels.nope: [1]}"], "search.space.prune_channels.nope: value 1: "),
    (["search.budget={max_rise_percent: 5}"], "search.budget: max_rise_percent is on perplexity"),
    (["search.enqueue=[{prune.target_sparsity: 0.5}]"],
     "search: enqueue[0].prune.target_sparsity: not a key of space (prune_channels.ratio"),
    (["search.enqueue=[{prune_channels.ratio: 0.3}]"],
     "search: enqueue[0].prune_channels.ratio: 0.3 is not among the space's values"),
])
def test_bad_search_settings(tmp_path, overrides, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        Search("recipes/search_channels.yaml", str(tmp_path), overrides)
    assert list(tmp_path.iterdir()) == []


def test_a_recipe_without_a_search_section(tmp_path):
    with pytest.raises(RecipeError, match="has no search: section"):
        Search("recipes/default.yaml", str(tmp_path))



def test_list_and_dict_values_come_back_as_the_recipe_takes_them():
    """Optuna keeps only scalars: a dict or list choice travels as JSON text and
    must reach the trial's recipe, search.json and best.yaml decoded."""
    import optuna
    from pipeline.search_study import decoded, suggest
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    options = [{"width": 0.125, "dense_units": 16}, {"width": 0.5, "dense_units": 64}]
    picked = suggest(trial, "distill.student_options", options)
    assert picked in options
    assert isinstance(trial.params["distill.student_options"], str)
    assert decoded(trial.params["distill.student_options"]) == picked
    assert decoded("l1") == "l1" and decoded(0.5) == 0.5
