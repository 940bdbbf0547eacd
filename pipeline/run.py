"""The runner: data → model → stages → export → benchmark → report.

    recipe = pipeline.recipe.load("recipes/default.yaml")
    report = Runner(recipe, "runs/default").run()

Layout of the run directory:
    NN_<stage>/model.h5, metrics.json      each stage's model (atomic)
    tensorboard/<stage>/                   training logs
    export/<stage>_<format>.tflite         converted variants
    export/<stage>_<format>.benchmark.json the benchmark's figures
    export/test_data/{x,y}.npy (val_data with benchmark.split: val), representative.npy
    report.json, report.md, report.html, pareto.png
"""
import dataclasses
import json
import os
import shutil
import time

from models import saved as models_saved
from pipeline import custom_objects
from pipeline import data as data_lib
from pipeline import distribute, energy, resume, stage_record
from pipeline import report as report_lib
from pipeline import structure
from pipeline.context import RunContext
from pipeline.data.split import WithheldSplit
from pipeline.errors import GreenliteError
from pipeline.files import atomic_directory, atomic_write_text
from pipeline.rundir import RunDirectory
from pipeline.stage_record import check_same_signature


class Runner:
    """Runs one validated recipe into one run directory."""

    def __init__(self, recipe, workdir, log=print, resume_from=None):
        """`resume_from`: an earlier run's directory (pipeline/resume.py's
        `locate`) whose unchanged stages this run reuses."""
        self.recipe = recipe
        self.resume_from = resume_from
        # The run directory; while the run goes on, `workdir` is its staging
        # directory (pipeline/rundir.py), swapped in whole at the end.
        self.target = self.workdir = os.path.abspath(workdir)
        self.log = log
        self._start = time.perf_counter()

    def _say(self, text):
        self.log(f"[{time.perf_counter() - self._start:7.1f}s] {text}")

    def run(self):
        """Runs every stage, exports, benchmarks and writes the report; returns it
        (None on a multi-worker run's workers other than the chief)."""
        from pipeline.backend import keras, tf
        recipe = self.recipe
        # First: logical CPU replicas can only be made before TensorFlow runs an op.
        self.strategy = distribute.make_strategy(recipe.distribute, self._say)
        distribute.check_batches(recipe, self.strategy.num_replicas_in_sync)
        if recipe.deterministic:
            tf.config.experimental.enable_op_determinism()
        from pipeline import intake
        scale, scale_note = intake.input_scale(recipe)  # before the images are read
        data = data_lib.load(dataclasses.replace(recipe.data, scale=scale), recipe.seed)
        if recipe.benchmark.split == "val":
            # Judged on validation (a search's trial, chosen on it): the run
            # never reads the test split, which scores only what is finally chosen.
            data = dataclasses.replace(data, test=WithheldSplit(len(data.test)),
                                       judged_on="val")
        keras.utils.set_random_seed(recipe.seed)  # the model's initial weights
        self._say(f"data: {data.summary()}")
        self.deploy_data = self._deploy_data(data)
        self.custom_objects = custom_objects.resolve(recipe.model.custom_objects)
        # Real inputs: a Keras 3 model's translation is checked on them, and so
        # is each Keras 3 copy of a stage's model.
        self.sample = data.representative(32, recipe.seed)
        model, self.keras3_origin, self.model_notes = intake.prepare(
            recipe, data, self.custom_objects, self.sample, self._say)
        if scale_note:
            self._say(f"model: {scale_note}")
            self.model_notes.append(scale_note)
        if not distribute.is_chief(recipe.distribute):
            return self._run_as_worker(model, data)
        staging = (resume.adopt(self.resume_from, self.target, self._say)
                   if self.resume_from else None)
        with RunDirectory(self.target, self._say, staging=staging) as run_dir:
            self.workdir = run_dir.path
            atomic_write_text(os.path.join(self.workdir, resume.RUN_FILE),
                              json.dumps(resume.run_record(recipe), indent=2))
            report = self._run_stages_and_export(model, data)
            run_dir.commit()
        self.workdir = self.target
        self._say(f"report: {os.path.join(self.workdir, 'report.md')}")
        failed = [f"{v['name']}: {'; '.join(v['violations'])}"
                  for v in report["variants"] if v.get("violations")]
        if failed:
            raise GreenliteError("an exported file lost the structure its stages claim (see "
                                 f"report.md): {' | '.join(failed)}")
        return report

    def _run_as_worker(self, model, data):
        """A multi-worker run's other workers: every stage (the collective training
        needs each of them), written to a scratch directory; no export, no report."""
        import tempfile
        with tempfile.TemporaryDirectory(prefix="greenlite-worker-") as scratch:
            self.workdir = scratch
            self._run_stages(model, data)
        self.workdir = self.target
        self._say("worker: every stage done; the chief writes the run directory")
        return None

    def _deploy_data(self, data):
        """What the deploy checks need of the data; labels checked before any training."""
        from pipeline import deploy
        from export import metadata
        labels = self.recipe.deploy.labels
        if labels and data.task == "classification":
            count = len(metadata.read_labels(labels))
            if count != data.num_classes:
                raise GreenliteError(f"deploy.labels: {labels!r} holds {count} labels but the "
                                     f"data has {data.num_classes} classes; give one label per "
                                     "class, in label order")
        return deploy.data_info(data, self.recipe.benchmark.split, self.recipe.model.name)

    def _run_stages(self, model, data):
        """Runs (or, resuming, reuses) every stage; returns the stage records."""
        recipe = self.recipe
        # Checkpoints for --resume, except across workers: BackupAndRestore
        # makes variables (collective broadcasts) that every worker must make
        # alike, and resuming there is refused anyway.
        backups = recipe.distribute.strategy != "multi_worker"
        stage_records, models_by_stage = [], {}
        self.hashes = resume.stage_hashes(recipe)
        reused = resume.keep_unchanged(self.workdir, recipe, self._say) if self.resume_from else 0
        for index, spec in enumerate(recipe.stages, 1):
            if index <= reused:
                model, record = resume.reuse_stage(self.workdir, index, spec, len(recipe.stages),
                                                   self.custom_objects, self._say)
                stage_records.append(record)
            else:
                model = self._run_stage(index, spec, model, data, models_by_stage, stage_records,
                                        backups)
            models_by_stage[spec.name] = model
        shutil.rmtree(os.path.join(self.workdir, resume.BACKUP_DIR), ignore_errors=True)
        return stage_records

    def _run_stages_and_export(self, model, data):
        recipe = self.recipe
        # The converter's process imports TensorFlow (seconds) while the stages
        # train: by export it is ready (benchmarks/default_vs_script.py).
        from export.convert import start_converter
        start_converter()
        stage_records = self._run_stages(model, data)
        from pipeline.export_phase import ExportPhase
        variants = ExportPhase(recipe, self.workdir, data, self.deploy_data, stage_records,
                               custom_objects.modules(recipe.model.custom_objects),
                               self._say).run()
        report = report_lib.build(recipe, data, stage_records, [v.to_dict() for v in variants],
                                  seconds=time.perf_counter() - self._start,
                                  deploy_data=self.deploy_data,
                                  keras3_origin=self.keras3_origin,
                                  model_notes=self.model_notes)
        report_lib.write(self.workdir, report)
        return report

    def _run_stage(self, index, spec, model, data, models_by_stage, stage_records, backups=True):
        count = len(self.recipe.stages)
        self._say(f"[stage {index}/{count}] {spec.name} ({spec.type}) ...")
        directory = resume.stage_directory(index, spec.name)
        start = time.perf_counter()
        with atomic_directory(os.path.join(self.workdir, directory)) as tmp:
            previous = stage_records[-1]["claims"] if stage_records else None
            ctx = RunContext(workdir=self.workdir, seed=self.recipe.seed, stage_name=spec.name,
                             stage_dir=tmp, models=dict(models_by_stage), log=self._say,
                             custom_objects=self.custom_objects,
                             claims=structure.Claims.from_dict(previous),
                             backup_dir=resume.backup_dir(self.workdir, index, spec.name,
                                                          self.hashes[index - 1])
                             if backups else None)
            stage_energy = {}
            # Models, tfmot wrappers, optimizers and metrics made in the stage
            # belong to the strategy (one replica without distribute:).
            with energy.track(self.recipe.energy, spec.name, stage_energy), \
                    self.strategy.scope():
                result = spec.make().run(model, data, ctx)
            check_same_signature(spec.name, model, result)
            saved = models_saved.save(result, tmp)
            keras3_copy = (stage_record.keras3_copy(result, tmp, directory, self.sample)
                           if self._keras3_wanted() else None)
            record = stage_record.build(spec, directory, self.hashes[index - 1], saved, result,
                                        data, ctx, time.perf_counter() - start, stage_energy,
                                        keras3_copy)
            atomic_write_text(os.path.join(tmp, "metrics.json"), json.dumps(record, indent=2))
        stage_records.append(record)
        self._say(f"[stage {index}/{count}] {spec.name} done in {record['seconds']:.1f}s: "
                  f"Keras {report_lib.keras_split(record)} accuracy {record['keras_accuracy']:.4f}")
        return result

    def _keras3_wanted(self):
        """Whether stage models are also written for Keras 3 (export.keras3_models)."""
        wanted = self.recipe.export.keras3_models
        return wanted == "always" or (wanted == "auto" and self.keras3_origin is not None)
