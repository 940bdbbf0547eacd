"""Accuracy-aware search: the best variants within a loss budget, on measured TFLite figures.

    python -m pipeline.search --recipe=recipes/search_channels.yaml --workdir=runs/search \
        [--trials=N] [--set key.path=value ...]

The recipe's `search:` section (pipeline/recipe.py SearchConfig) names the
recipe values to vary (`space`), the figures of the exported file to minimize
(`objectives`: size_bytes, gzip_bytes, latency_ms, macs,
joules_per_inference, cross_entropy, and `loss`, the budget's measure) and
the largest loss allowed on the TFLite metric (`budget`). The recipe's first stage
(training) runs once, in `base/`; each trial runs the other stages on that
model with its values, in `trials/NNN/`, and is judged by one exported
variant (`search.variant`, default the last). A trial whose leading stages
have the configuration of an earlier trial's (the hash chain of
pipeline/resume.py) copies them and trains only from the first stage that
differs: the stage cache. Trials are judged on the validation split and
never read the test split (pipeline/run.py withholds it), which scores only
the final front. Optuna samples the values (TPE, NSGA-II or random, seeded
by the recipe; `search.enqueue` value sets first) under the budget as a
constraint; a proposal that repeats a measured value set is not a trial,
and the next tries a value set not yet measured. Its study
lives in `study.journal`, so a rerun with the same workdir resumes, and
several processes (on one machine, or on several sharing the disk) may work
on one search at once: the first trains the base while the others wait for
it (a file lock), each trial is claimed once through the journal, and a
process stops when the trials asked for are all claimed. `search.json` and
`search.md` list every trial and mark the Pareto front of all measured
trials on the objectives and the loss: the small end of the front shows what
a larger loss would buy. `best` is chosen from the front's trials within
budget (less `search.select_margin`, a guard against the validation split's
noise) and within `search.limits` (the device's: bytes of flash, a latency):
the smallest, or with `search.select: most_accurate` the least loss. When
no front trial clears the margin, `best` is the least loss within budget,
flagged (`best_clears_margin: false` in search.json, a warning in the log,
search.md and best.yaml).
"""
import copy
import json
import os
import random
import shutil
import tempfile
import time
import warnings

from absl import app, flags

from pipeline import search_study
from pipeline.errors import GreenliteError, RecipeError, command
from export.budget import Budget
from pipeline.search_front import (budget_of, choose, clears_margin, excess, loss, metric,
                                   pareto_front, within_limits)
from pipeline.search_markdown import figure, to_markdown

flags.DEFINE_string("recipe", None, "The recipe (YAML) with a search: section.")
flags.DEFINE_string("workdir", None, "Where the base run, the trials and the study live.")
flags.DEFINE_integer("trials", None, "Total trials (default: search.trials); finished ones count.")
flags.DEFINE_multi_string("set", [], "Override a recipe value: key.path=value. Repeatable.")
FLAGS = flags.FLAGS


class Search:
    """One search: its base run, its trials and its study (see the module docstring)."""

    def __init__(self, recipe_path, workdir, overrides=(), log=print):
        from pipeline import recipe as recipe_lib
        self.raw = recipe_lib.load_raw(recipe_path, overrides)
        self.recipe = recipe_lib.from_dict(self.raw)
        if self.recipe.search is None:
            raise RecipeError(f"--recipe: {recipe_path!r} has no search: section (space, "
                              "objectives, budget, trials)")
        recipe_lib.check_inputs(self.recipe)
        self.config = self.recipe.search
        self.workdir = workdir
        self.log = log
        first = self.recipe.stages[0]
        if len(self.recipe.stages) < 2:
            raise RecipeError("stages: a search needs a first (training) stage and at least one "
                              "stage after it to vary")
        for key in self.config.space:
            if key.split(".")[0] == first.name:
                raise RecipeError(f"search.space.{key}: the first stage ({first.name}) runs once "
                                  "for every trial; vary the stages after it")
        self.first = first.name
        if "max_rise_percent" in self.config.budget and self.recipe.data.source != "text":
            raise RecipeError("search.budget: max_rise_percent is on perplexity, which only "
                              "language models (data.source: text) are judged by; use "
                              "max_drop_points")
        # Every candidate value must make a valid recipe: found now, not at trial 7.
        for key, values in self.config.space.items():
            candidates = ([values["low"], values["high"]] if isinstance(values, dict) else values)
            for value in candidates:
                raw = copy.deepcopy(self.raw)
                raw.pop("search")
                try:
                    recipe_lib.apply_override(raw, f"{key}={json.dumps(value)}")
                    recipe_lib.from_dict(raw)
                except RecipeError as e:
                    raise RecipeError(f"search.space.{key}: value {value!r}: "
                                      f"{str(e).removeprefix('--set ')}") from None

    def _base(self):
        """Runs the first stage once (or reuses it); returns (model path, reference variant)."""
        raw = copy.deepcopy(self.raw)
        raw.pop("search", None)
        raw["stages"] = {self.first: raw["stages"][self.first]}
        raw["export"] = {"formats_by_stage": {self.first: ["float32"]}, "doctor": False}
        raw.setdefault("benchmark", {}).update(check_tflite_runtime=False, split="val")
        raw = json.loads(json.dumps(raw))  # as report.json will hold it
        directory = os.path.join(self.workdir, "base")
        with search_study.locked(os.path.join(self.workdir, ".base.lock")):
            # Several processes sharing the study: the first trains the base,
            # the others wait for it here and reuse it.
            return self._base_locked(raw, directory)

    def _base_locked(self, raw, directory):
        from pipeline import recipe as recipe_lib
        report = _report(directory)
        if report is None or report.get("search_base") != raw:
            self.log(f"search: training the base model ({self.first}) once, in {directory}")
            self._run(recipe_lib.from_dict(raw), directory)
            report = _report(directory)
            report["search_base"] = raw
            from pipeline.files import atomic_write_text
            atomic_write_text(os.path.join(directory, "report.json"), json.dumps(report, indent=2))
        else:
            self.log(f"search: reusing the base model in {directory}")
        stage = report["stages"][0]
        return os.path.join(directory, stage["model_path"]), report["variants"][0]

    def _run(self, recipe, directory, resume_from=None):
        from pipeline.backend import keras
        from pipeline.run import Runner
        keras.backend.clear_session()
        Runner(recipe, directory, log=lambda line: self.log("  " + line),
               resume_from=resume_from).run()

    def _from_cache(self, recipe, directory):
        """The stage cache: copies into `directory` the longest run of leading
        stages that an earlier trial finished with the same configuration
        hashes; returns (stages copied, seconds they took to train)."""
        from pipeline import resume
        best, source = 0, None
        trials = os.path.join(self.workdir, "trials")
        # Only finished trials: a trial's directory appears when its run completes.
        for name in sorted(os.listdir(trials)) if os.path.isdir(trials) else []:
            other = os.path.join(trials, name)
            if other != directory and name.isdigit() and os.path.isdir(other):
                count = resume.reusable_stages(other, recipe)
                if count > best:
                    best, source = count, other
        if not best:
            return 0, 0.0
        if os.path.isdir(directory):
            shutil.rmtree(directory)  # a killed search's trial, run again
        os.makedirs(directory)
        saved = 0.0
        for index, spec in enumerate(recipe.stages[:best], 1):
            name = resume.stage_directory(index, spec.name)
            shutil.copytree(os.path.join(source, name), os.path.join(directory, name))
            with open(os.path.join(source, name, "metrics.json")) as f:
                saved += json.load(f).get("seconds") or 0.0
        shutil.copy(os.path.join(source, resume.RUN_FILE), os.path.join(directory, resume.RUN_FILE))
        self.log(f"search: stage cache: {best} leading stage(s) as in "
                 f"{os.path.relpath(source, self.workdir)} ({saved:.0f} s of training not redone)")
        return best, saved

    def _trial_raw(self, base_model, values):
        from pipeline import recipe as recipe_lib
        raw = copy.deepcopy(self.raw)
        raw.pop("search", None)
        raw["model"] = {k: v for k, v in raw.get("model", {}).items()
                        if k in ("custom_objects", "trust_model_code")}
        raw["model"]["name"] = base_model
        raw["stages"] = {n: dict(s or {}) for n, s in raw["stages"].items() if n != self.first}
        for settings in raw["stages"].values():
            teacher = settings.get("teacher")
            if teacher == self.first:
                settings["teacher"] = base_model
            elif isinstance(teacher, list):
                settings["teacher"] = [base_model if t == self.first else t for t in teacher]
        export = raw.setdefault("export", {})
        for key in ("stages", "formats_by_stage"):
            if isinstance(export.get(key), (list, dict)):
                kept = [s for s in export[key] if s != self.first]
                export[key] = ({s: export[key][s] for s in kept} if isinstance(export[key], dict)
                               else kept) or None
        for key, value in values.items():
            recipe_lib.apply_override(raw, f"{key}={json.dumps(value)}")
        # Trials are chosen on the validation split; the test split is for the
        # final front only (`_measure_on_test`).
        raw.setdefault("benchmark", {})["split"] = "val"
        # A trial is judged by its benchmark; the microcontroller run and C array
        # are for the file shipped (best.yaml keeps the recipe's). Metadata too,
        # unless a size is judged: then the trial's file carries the metadata the
        # shipped file will, so a size limit holds for the file that ships.
        wanted = set(self.config.objectives) | set(self.config.limits)
        sized = bool(wanted & {"size_bytes", "gzip_bytes"})
        deploy = {**(raw.get("deploy") or {}), "micro": False, "c_array": False,
                  "metadata": sized and self.recipe.deploy.metadata}
        # Vela and the board estimates only where an objective or limit reads them.
        if not wanted & {"npu_cycles", "npu_sram_bytes"}:
            deploy["npu"] = []
        if not wanted & {"board_energy_uj", "board_battery_days"}:
            deploy["boards"] = []
        raw["deploy"] = deploy
        # The quantization doctor explains a loss; a trial only needs it measured.
        export["doctor"] = False
        return raw

    def run(self, trials=None):
        """Runs the missing trials; returns the search record (also written to search.json)."""
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        from pipeline import recipe as recipe_lib
        os.makedirs(self.workdir, exist_ok=True)
        base_model, reference = self._base()
        config = self.config
        budget = budget_of(config)

        def constraints(trial):
            return [trial.user_attrs.get("violation", 1.0)]

        # Optuna 5 deprecates constraints_func for Trial.set_constraint, which
        # Optuna 4 (allowed by setup.cfg) lacks; the argument works in both.
        warnings.filterwarnings("ignore", message="`constraints_func` has been deprecated",
                                category=FutureWarning)
        samplers = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler}
        sampler = (optuna.samplers.RandomSampler(seed=self.recipe.seed) if config.sampler == "random"
                   else samplers[config.sampler](seed=self.recipe.seed, constraints_func=constraints))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name="greenlite", directions=["minimize"] * len(config.objectives),
            sampler=sampler, load_if_exists=True,
            storage=JournalStorage(JournalFileBackend(os.path.join(self.workdir, "study.journal"))))
        if not study.trials:
            # A new study: the recipe's value sets to try first. A rerun (or a
            # second process) finds them already queued or run.
            for values in config.enqueue:
                study.enqueue_trial({k: search_study.encoded(v) for k, v in values.items()},
                                    skip_if_exists=True)
        done = [t for t in study.trials if search_study.counts(t)]
        wanted = trials or config.trials
        self.log(f"search: {len(done)} trial(s) done, {max(0, wanted - len(done))} to run; "
                 f"objectives {', '.join(config.objectives)}; budget {budget.describe()} "
                 f"against {reference['name']}")

        start = time.perf_counter()

        def progress(trial):
            measured_trials = [t for t in study.get_trials(
                deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
                if t.user_attrs.get("loss") is not None]
            best = choose([{"number": t.number, "figures": t.user_attrs["figures"],
                            "loss": t.user_attrs["loss"]} for t in measured_trials], config)
            measured = sum(search_study.counts(t) for t in study.get_trials(deepcopy=False))
            self.log(f"search: {measured} of {wanted} trials measured, "
                     f"{time.perf_counter() - start:.0f} s; best within budget so far: "
                     + (f"trial {best['number']} ({config.objectives[0]} "
                        f"{figure(best['figures'][config.objectives[0]])}, loss "
                        f"{best['loss']:+.2f}"
                        + ("" if clears_margin(best, config) else ", inside the margin")
                        + ")" if best else "none"))

        def objective(trial):
            # Another process sharing the study may already have claimed the
            # last trials: this one runs only if fewer than `wanted` come before it.
            trial.set_user_attr("worker", search_study.WORKER)
            if search_study.claimed_before(trial.study, trial.number) >= wanted:
                trial.set_user_attr("surplus", True)
                trial.study.stop()
                raise optuna.TrialPruned()
            values = {key: search_study.suggest(trial, key, space)
                      for key, space in config.space.items()}
            # Samplers may propose values already measured (a small discrete
            # space): the earlier trial's figures stand for them.
            for earlier in trial.study.get_trials(deepcopy=False,
                                                  states=[optuna.trial.TrialState.COMPLETE]):
                if earlier.params == trial.params and "figures" in earlier.user_attrs:
                    for key, value in earlier.user_attrs.items():
                        if key not in ("cached_stages", "cache_saved_seconds", "worker"):
                            trial.set_user_attr(key, value)
                    trial.set_user_attr("same_as", earlier.number)
                    self.log(f"search: trial {trial.number}: {json.dumps(values)} as trial "
                             f"{earlier.number}: its figures stand")
                    return earlier.values
            directory = os.path.join(self.workdir, "trials", f"{trial.number:03d}")
            trial.set_user_attr("directory", os.path.relpath(directory, self.workdir))
            self.log(f"search: trial {trial.number}: {json.dumps(values)}")
            try:
                recipe = recipe_lib.from_dict(self._trial_raw(base_model, values))
                cached, saved = self._from_cache(recipe, directory)
                trial.set_user_attr("cached_stages", cached)
                trial.set_user_attr("cache_saved_seconds", saved)
                self._run(recipe, directory, resume_from=directory if cached else None)
            except Exception as e:  # pylint: disable=broad-except
                # One trial's values may break a library (a clustering that
                # cannot start, a converter crash): that trial fails, the search
                # goes on. Our own errors read as they are; others get their type.
                if not os.path.isfile(os.path.join(directory, "report.json")):
                    # Only the stage cache's copies: the run keeps its own in .failed.
                    shutil.rmtree(directory, ignore_errors=True)
                error = str(e) if isinstance(e, GreenliteError) else (
                    f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1]}")
                trial.set_user_attr("error", error)
                trial.set_user_attr("violation", 1e9)
                self.log(f"search: trial {trial.number} failed: {error}")
                return [float("inf")] * len(config.objectives)
            report = _report(directory)
            variants = [v for v in report["variants"] if "error" not in v]
            chosen = [v for v in variants if v["name"] == config.variant] if config.variant else (
                variants[-1:])
            if not chosen:
                trial.set_user_attr("error", f"no exported variant {config.variant or ''}".strip())
                trial.set_user_attr("violation", 1e9)
                return [float("inf")] * len(config.objectives)
            v = chosen[0]
            lost = loss(v, reference, config.budget)
            figures = {"size_bytes": v["size_bytes"], "gzip_bytes": v["gzip_bytes"],
                       "latency_ms": v["latency_ms"]["p50"], "macs": v.get("macs"),
                       "joules_per_inference": v.get("joules_per_inference"),
                       "cross_entropy": v.get("cross_entropy"), **device_figures(v),
                       "loss": lost}
            trial.set_user_attr("variant", v["name"])
            trial.set_user_attr("figures", figures)
            trial.set_user_attr("metric", dict([metric(v, config.budget)]))
            trial.set_user_attr("loss", lost)
            # One figure for the sampler: the worst excess, the budget's in its
            # own unit and each limit's as a fraction of the limit.
            trial.set_user_attr("violation", max([lost - budget.value] + [
                excess(figures[k], k, limit) for k, limit in config.limits.items()]))
            self.log(f"search: trial {trial.number}: {v['name']} "
                     + ", ".join(f"{k} {figure(figures[k])}" for k in config.objectives)
                     + f"; loss {lost:+.2f} ({'within' if budget.allows(lost) else 'outside'} "
                       "budget)")
            return [float(figures[k]) if figures[k] is not None else float("inf")
                    for k in config.objectives]

        if wanted > len(done):
            repeats = [0]  # proposals in a row that repeated a measured value set

            def after_each(study, trial):
                progress(trial)
                # Every trial asked for is finished or being run (by another
                # process too): asking for one more would only make a surplus claim.
                if search_study.claimed_before(study, float("inf")) >= wanted:
                    study.stop()
                    return
                if trial.user_attrs.get("same_as") is None:
                    repeats[0] = 0
                    return
                # A repeat measures nothing and is not a trial: samplers settle
                # on a small discrete space (TPE repeated 20 of 24 proposals once
                # it had 16 trials), so the next trial is a value set not yet
                # measured, drawn at random (seeded).
                repeats[0] += 1
                unmeasured = search_study.unmeasured(study, config.space)
                if unmeasured is not None and not unmeasured:
                    self.log("search: every value set of the space is measured; stopping")
                    study.stop()
                elif unmeasured:
                    pick = random.Random(f"{self.recipe.seed}:{trial.number}").choice(unmeasured)
                    study.enqueue_trial(dict(zip(config.space, pick)))
                    self.log(f"search: trial {trial.number} repeated trial "
                             f"{trial.user_attrs['same_as']}; the next tries a value set not "
                             f"yet measured ({len(unmeasured)} left)")
                elif repeats[0] >= search_study.MAX_REPEATS_IN_A_ROW:
                    self.log(f"search: the sampler proposed {repeats[0]} measured value sets in "
                             "a row; stopping")
                    study.stop()

            study.optimize(objective, n_trials=None, callbacks=[after_each])
        return self._write(study, reference)

    def _write(self, study, reference):
        from pipeline.files import atomic_write_text
        config = self.config
        budget = budget_of(config)
        rows = []
        for t in study.trials:
            if not t.state.is_finished() or t.user_attrs.get("surplus"):
                continue
            seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                       if t.datetime_complete and t.datetime_start else None)
            rows.append({"number": t.number, "state": t.state.name,
                         "params": {k: search_study.decoded(v) for k, v in t.params.items()},
                         "seconds": seconds,
                         **{k: t.user_attrs.get(k) for k in ("directory", "variant", "figures",
                                                             "metric", "loss", "error",
                                                             "same_as", "cached_stages",
                                                             "cache_saved_seconds")},
                         "within_budget": t.user_attrs.get("loss") is not None
                         and budget.allows(t.user_attrs["loss"])})
        # A repeat (same_as) stands for the earlier trial: the front lists that one.
        # The loss is always an axis, so a file out of budget joins the front only
        # by being smaller than every more accurate one; a trial that dominates
        # one within budget is within budget itself, so the front's part within
        # budget is the front of the trials within budget.
        measured = [r for r in rows if r["loss"] is not None and r["same_as"] is None]
        front = pareto_front(measured, config.objectives)
        for r in rows:
            r["pareto"] = r["number"] in front
        record = {"objectives": config.objectives, "budget": config.budget,
                  "selected_on": "validation split",
                  "reference": {"variant": reference["name"], "accuracy": reference["accuracy"],
                                "perplexity": reference["perplexity"],
                                "size_bytes": reference["size_bytes"]},
                  "trials": rows,
                  # What the trials took, and what the stage cache and the
                  # re-use of repeated values spared.
                  "effort": {"trials": sum(r["same_as"] is None for r in rows),
                             "trial_seconds": sum(r["seconds"] or 0.0 for r in rows),
                             "stages_from_cache": sum(r["cached_stages"] or 0 for r in rows),
                             "cache_saved_seconds": sum(r["cache_saved_seconds"] or 0.0
                                                        for r in rows),
                             "repeats_not_rerun": sum(r["same_as"] is not None for r in rows)}}
        self._measure_on_test(record)
        record.update(select_margin=config.select_margin, limits=config.limits,
                      select=config.select)
        for r in rows:
            r["within_limits"] = r["figures"] is not None and within_limits(r, config.limits)
        best = choose([r for r in rows if r["pareto"]], config)
        record["best"] = best and best["number"]
        record["best_clears_margin"] = best and clears_margin(best, config)
        if best is not None and not record["best_clears_margin"]:
            self.log(f"search: warning: no front trial within limits is within the budget less "
                     f"the margin ({config.select_margin:g}); best is the least loss within "
                     f"budget, trial {best['number']} (validation loss {best['loss']:+.2f}): "
                     "confirm it on more data before shipping")
        if best is not None:
            import yaml
            raw = copy.deepcopy(self.raw)
            raw.pop("search", None)
            from pipeline import recipe as recipe_lib
            for key, value in best["params"].items():
                recipe_lib.apply_override(raw, f"{key}={json.dumps(value)}")
            raw["name"] = f"{raw.get('name', 'search')}_best"
            rule = (f"smallest {config.objectives[0]}" if config.select == "smallest"
                    else "least loss")
            if not record["best_clears_margin"]:
                rule = (f"no trial cleared the margin of {config.select_margin:g}: the least "
                        f"loss within budget, {best['loss']:+.2f} on validation")
            atomic_write_text(os.path.join(self.workdir, "best.yaml"),
                              f"# Trial {best['number']} of `python -m pipeline.search`, chosen "
                              f"from the Pareto front ({rule}):\n"
                              f"#   {json.dumps(best['params'])}\n"
                              f"#   python -m pipeline --recipe=best.yaml\n"
                              + yaml.safe_dump(raw, sort_keys=False))
        elif os.path.exists(os.path.join(self.workdir, "best.yaml")):
            # A rerun with a stricter selection: an earlier pick is no longer `best`.
            os.remove(os.path.join(self.workdir, "best.yaml"))
        from pipeline import plots
        from pipeline.files import atomic_write_bytes
        atomic_write_bytes(os.path.join(self.workdir, "search.png"), plots.search_png(record))
        atomic_write_text(os.path.join(self.workdir, "search.json"), json.dumps(record, indent=2))
        atomic_write_text(os.path.join(self.workdir, "search.md"), to_markdown(record))
        return record


    def _measure_on_test(self, record):
        """Scores the reference and the front's files on the test split, once, at the end."""
        from export import benchmark
        from pipeline import stats
        from pipeline.data import load
        front = [r for r in record["trials"] if r["pareto"] and not r.get("test")]
        if not front:
            return
        from pipeline.export_phase import save_split
        data = load(self.recipe.data, seed=self.recipe.seed)
        with tempfile.TemporaryDirectory() as tmp:
            save_split(tmp, data.test)  # streamed sources too
            test = benchmark.load_eval_data(tmp)

            def path(directory, name):
                with open(os.path.join(self.workdir, directory, "report.json")) as f:
                    variant = next(v for v in json.load(f)["variants"] if v["name"] == name)
                return os.path.join(self.workdir, directory, variant["path"])

            def score(directory, name):
                # One pass: the accuracy or perplexity, and each example's hits.
                return benchmark.score_file(path(directory, name), *test)

            reference = score("base", record["reference"]["variant"])
            reference_hits = reference.pop("hits")
            record["reference"]["test"] = _test_figures(reference)
            # An accuracy budget's loss comes with its 95 % interval: the
            # reference and each file scored on the same test examples.
            paired = Budget.parse(record["budget"]).metric == "accuracy"
            for r in front:
                scored = score(r["directory"], r["variant"])
                hits = scored.pop("hits")
                r["test"] = _test_figures(scored)
                r["test"]["loss"] = loss(r["test"], reference, record["budget"])
                if paired:
                    _, low, high = stats.paired_bootstrap(reference_hits, hits)
                    r["test"]["loss_interval"] = [low, high]


def _test_figures(scored):
    """What search.json keeps of a file's test scores."""
    return {"accuracy": scored["accuracy"], "perplexity": scored["perplexity"]}


def device_figures(variant):
    """A trial file's device objectives: Vela's cycles and SRAM on the first accelerator,
    the first board's estimated energy and battery days (the middle estimates; None
    where that step did not run or failed)."""
    npu = next(iter((variant.get("npu") or {}).values()), {})
    board = next(iter((variant.get("mcu") or {}).values()), None)
    return {"npu_cycles": npu.get("cycles_total") if npu.get("compiled") else None,
            "npu_sram_bytes": npu.get("sram_bytes") if npu.get("compiled") else None,
            "board_energy_uj": board["energy_uj"]["mid"] if board else None,
            "board_battery_days": board["battery"]["days"]["mid"] if board else None}


def _report(directory):
    path = os.path.join(directory, "report.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


@command("search")
def main(argv):
    if len(argv) > 1:
        raise GreenliteError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.recipe or not FLAGS.workdir:
        raise RecipeError("give --recipe=RECIPE.yaml (with a search: section) and "
                          "--workdir=DIR")
    if FLAGS.trials is not None and FLAGS.trials < 1:
        raise RecipeError(f"--trials: got {FLAGS.trials}; allowed: 1 or more")
    search = Search(FLAGS.recipe, FLAGS.workdir, FLAGS["set"].value,
                    log=lambda line: print(line, flush=True))
    record = search.run(FLAGS.trials)
    print(to_markdown(record))
    return 0


if __name__ == "__main__":
    app.run(main)
