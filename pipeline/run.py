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

import numpy as np

import models
from models import saved as models_saved
from pipeline import custom_objects
from pipeline import data as data_lib
from pipeline import distribute, energy, resume, sparse_inference
from pipeline import report as report_lib
from pipeline import structure, training
from pipeline.context import RunContext
from pipeline.data.split import WithheldSplit
from pipeline.errors import GreenliteError
from pipeline.files import atomic_directory, atomic_write_bytes, atomic_write_text
from pipeline.rundir import RunDirectory

BENCHMARK_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export", "benchmark.py")


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
        data = data_lib.load(recipe.data, recipe.seed)
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
        intake = models.intake(recipe.model.name, data.input_shape, data.num_classes,
                               recipe.model.options, recipe.model.trust_model_code,
                               self.custom_objects, recipe.model.batchnorm_momentum,
                               sample=self.sample)
        self.keras3_origin = intake.keras3
        if intake.model is None:
            training = [s.name for s in recipe.stages if not type(s.make()).takes_any_model]
            if training:
                raise GreenliteError(models.untranslatable_message(
                    recipe.model.name, intake.keras3, training))
        model = intake.usable
        self._say(f"model: {recipe.model.name}, {model.count_params():,} parameters")
        if intake.keras3:
            self._say(f"model: {intake.keras3.describe()}")
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
        reused = self._reusable_stages() if self.resume_from else 0
        for index, spec in enumerate(recipe.stages, 1):
            if index <= reused:
                model = self._reuse_stage(index, spec, stage_records)
            else:
                model = self._run_stage(index, spec, model, data, models_by_stage, stage_records,
                                        backups)
            models_by_stage[spec.name] = model
        shutil.rmtree(os.path.join(self.workdir, resume.BACKUP_DIR), ignore_errors=True)
        return stage_records

    def _run_stages_and_export(self, model, data):
        recipe = self.recipe
        stage_records = self._run_stages(model, data)

        variants = self._export_and_benchmark(data, stage_records)
        sparse_inference.verdicts(variants)
        if recipe.export.doctor:
            self._examine_quantized(data, stage_records, variants)
        if recipe.deploy.micro or recipe.deploy.metadata:
            from pipeline import deploy
            self._say("deploy: microcontroller fit, C arrays, labels and Android metadata ...")
            deploy.examine(self.workdir, variants, recipe.deploy, self.deploy_data, self._say)
        if recipe.benchmark.check_tflite_runtime:
            from pipeline import runtime_gate
            runtime_gate.check_variants(self.workdir, variants, recipe.benchmark.num_threads,
                                        self._say,
                                        data=os.path.join(self.workdir, "export",
                                                          f"{recipe.benchmark.split}_data"))
        report = report_lib.build(recipe, data, stage_records, variants,
                                  seconds=time.perf_counter() - self._start,
                                  deploy_data=self.deploy_data,
                                  keras3_origin=self.keras3_origin)
        report_lib.write(self.workdir, report)
        return report

    def _reusable_stages(self):
        """Keeps the earlier run's stages that are unchanged; discards the rest."""
        recipe = self.recipe
        count = resume.reusable_stages(self.workdir, recipe)
        discarded = resume.discard_from(self.workdir, count + 1, recipe)
        names = [spec.name for spec in recipe.stages]
        self._say(f"resume: {count} of {len(names)} stage(s) unchanged and finished"
                  + (f" ({', '.join(names[:count])}): reused, not trained again" if count else "")
                  + (f"; from {names[count]} on: run again" if count < len(names) else "")
                  + (f"; removed {len(discarded)} earlier output(s) that follow it"
                     if discarded else ""))
        return count

    def _reuse_stage(self, index, spec, stage_records):
        directory = resume.stage_directory(index, spec.name)
        with open(os.path.join(self.workdir, directory, "metrics.json")) as f:
            record = json.load(f)
        model = models_saved.load(os.path.join(self.workdir, record["model_path"]),
                                  self.custom_objects)
        record["reused"] = True
        stage_records.append(record)
        self._say(f"[stage {index}/{len(self.recipe.stages)}] {spec.name}: reused from the "
                  f"earlier run ({directory}, configuration {record['config_hash'][:12]}); "
                  f"Keras {report_lib.keras_split(record)} accuracy {record['keras_accuracy']:.4f}")
        return model

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
            from pipeline.attention import unbounded_attention_layers
            # Models, tfmot wrappers, optimizers and metrics made in the stage
            # belong to the strategy (one replica without distribute:).
            with energy.track(self.recipe.energy, spec.name, stage_energy), \
                    self.strategy.scope():
                result = spec.make().run(model, data, ctx)
            _check_same_signature(spec.name, model, result)
            saved = models_saved.save(result, tmp)
            keras3_copy = self._keras3_copy(result, tmp, directory)
            keras_accuracy, keras_ce = training.evaluate(result, data.judged)
            record = {
                "name": spec.name, "type": spec.type, "dir": directory,
                # What --resume compares (pipeline/resume.py).
                "config_hash": self.hashes[index - 1],
                "model_path": os.path.join(directory, os.path.basename(saved)),
                "seconds": time.perf_counter() - start,
                "energy": stage_energy,
                "params": int(result.count_params()),
                # On the split the run is judged on (data.judged_on), as its files are.
                "keras_split": data.judged_on,
                "keras_accuracy": keras_accuracy,
                "keras_cross_entropy": keras_ce,
                "keras_perplexity": float(np.exp(keras_ce)),
                "metrics": ctx.metrics,
                "claims": ctx.output_claims.to_dict() if ctx.output_claims else None,
                # Where the stage's model was made (its variables live there).
                "distribute": _distribution(result),
                # The stage's model for Keras 3 (NN_<stage>/model.keras), or why not.
                "keras3": keras3_copy,
                # Rewritten to a bounded mask before calibrated conversion (export/convert.py).
                "unbounded_attention": unbounded_attention_layers(result),
            }
            atomic_write_text(os.path.join(tmp, "metrics.json"), json.dumps(record, indent=2))
        stage_records.append(record)
        self._say(f"[stage {index}/{count}] {spec.name} done in {record['seconds']:.1f}s: "
                  f"Keras {report_lib.keras_split(record)} accuracy {record['keras_accuracy']:.4f}")
        return result

    def _keras3_copy(self, model, tmp, directory):
        """Writes the stage's model also as a Keras 3 .keras file when the recipe asks
        (export.keras3_models); returns what was written, or why not, or None."""
        wanted = self.recipe.export.keras3_models
        if wanted == "never" or (wanted == "auto" and self.keras3_origin is None):
            return None
        from models import keras3
        from pipeline.errors import ModelError
        if isinstance(model, keras3.SavedModelSource) or models_saved.is_keras3(model):
            return {"skipped": "the stage's model is the Keras 3 model (or SavedModel) given"}
        if any(type(l).__name__ == "QuantizeWrapperV2" for l in model.layers):
            return {"skipped": "a QAT model is not a plain Keras model: its deliverable is the "
                               "int8 file"}
        try:
            difference = keras3.save_keras3(model, os.path.join(tmp, "model.keras"), self.sample)
        except ModelError as e:
            return {"skipped": str(e)}
        return {"path": os.path.join(directory, "model.keras"), "difference": difference}

    def _export_and_benchmark(self, data, stage_records):
        recipe = self.recipe
        export_dir = os.path.join(self.workdir, "export")
        os.makedirs(export_dir, exist_ok=True)
        representative = os.path.join(export_dir, "representative.npy")
        _save_npy(representative,
                  data.representative(recipe.data.representative_samples, recipe.seed))
        split = recipe.benchmark.split
        test_data = os.path.join(export_dir, f"{split}_data")
        save_split(test_data, data.judged)

        from export.convert import CALIBRATED, convert_all_in_child
        from pipeline.attention import MASK_VALUE

        by_name = {r["name"]: r for r in stage_records}
        jobs = recipe.export_jobs
        variants = []
        for stage, fmt in jobs:
            name = f"{stage}_{fmt}"
            variants.append({"name": name, "stage": stage, "format": fmt,
                             "path": os.path.join("export", name + ".tflite")})
        self._say(f"converting {len(jobs)} variant(s) ({', '.join(v['name'] for v in variants)}) "
                  "in one converter process; a crash fails only the variant it hit")

        def converted(index, error):
            self._say(f"[convert {index + 1}/{len(jobs)}] {variants[index]['name']}: "
                      + (f"FAILED: {error}" if error else "done"))

        # The converter calibrates the formats that need it on `representative`.
        errors = convert_all_in_child(
            [(os.path.join(self.workdir, by_name[v["stage"]]["model_path"]), v["format"],
              os.path.join(self.workdir, v["path"])) for v in variants],
            representative, custom_objects=custom_objects.modules(recipe.model.custom_objects),
            on_done=converted, bound_attention=recipe.export.bound_attention)
        for k, (variant, error) in enumerate(zip(variants, errors), 1):
            name, path = variant["name"], os.path.join(self.workdir, variant["path"])
            if error is None and variant["format"] in recipe.export.strip:
                variant["stripped_bytes"] = _strip(path)
            if error is None:
                error = _flex_check(path, variant)
            if error is None:
                self._say(f"[export {k}/{len(jobs)}] {name}: benchmarking ...")
                error = self._benchmark(path, test_data, variant)
            if error is None:
                self._verify_structure(path, by_name[variant["stage"]], variant)
                if variant["format"] == "int16x8_mixed":
                    from export.tflite_file import float_op_types
                    variant["float_op_types"] = float_op_types(path)
                rewritten = by_name[variant["stage"]].get("unbounded_attention")
                if rewritten and variant["format"] in CALIBRATED and recipe.export.bound_attention:
                    variant["attention_mask_bounded"] = {"layers": rewritten,
                                                         "mask_value": MASK_VALUE}
            if error:
                variant["error"] = error
                self._say(f"[export {k}/{len(jobs)}] {name} FAILED: {error}")
            else:
                self._say(f"[export {k}/{len(jobs)}] {name}: {variant['size_bytes']:,} bytes, "
                          f"TFLite accuracy {variant['accuracy']:.4f}, "
                          f"median {variant['latency_ms']['p50']:.3f} ms")
        return variants

    def _examine_quantized(self, data, stage_records, variants):
        """The quantization doctor on every calibrated variant; a fixed file joins the variants."""
        from export import doctor
        from export.doctor import CALIBRATED
        recipe = self.recipe
        budget = doctor.default_budget(data.task, recipe.export.max_drop_points,
                                       recipe.export.max_rise_percent)
        by_name = {r["name"]: r for r in stage_records}
        for variant in list(variants):
            if variant["format"] not in CALIBRATED or "error" in variant:
                continue
            try:
                record, fixed = doctor.examine(
                    self.workdir, variant, by_name[variant["stage"]], recipe.to_dict(), budget,
                    log=self._say, eval_data=f"{recipe.benchmark.split}_data")
            except Exception as e:  # pylint: disable=broad-except
                # A diagnosis that fails (the debugger meets a model it cannot
                # handle) is reported; the variants and the run stand.
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                self._say(f"doctor: {variant['name']}: could not examine it: {first}")
                variant["doctor_error"] = first
                continue
            variant["doctor"] = record
            if fixed:
                variants.append(fixed)

    def _verify_structure(self, tflite_path, stage_record, variant):
        """Measures the claimed layers' kernels in the file and checks the claims."""
        metrics = stage_record["metrics"]
        if metrics.get("float_layers"):
            variant["float_layers"] = metrics["float_layers"]
        claims = structure.Claims.from_dict(stage_record["claims"])
        if not claims:
            return
        if variant.get("stripped_bytes") is not None:
            variant["claims_unchecked"] = "its tensor names are stripped (export.strip)"
            return
        if variant["format"] == "float32_sparse":
            # The kernels are stored sparse; the stage's float32 file shows them.
            variant["claims_unchecked"] = "its kernels are stored sparse (float32_sparse)"
            return
        check = structure.verify_file(tflite_path, claims)
        variant["weights"] = check.weights
        for key in ("sparsity", "max_unique_per_channel", "entropy_bits_per_weight"):
            if getattr(check, key) is not None:
                variant[key] = getattr(check, key)
        if check.problems:
            variant["violations"] = check.problems
            self._say(f"  {variant['name']}: claims do not hold in the file: "
                      f"{'; '.join(check.problems)}")

    def _benchmark(self, tflite_path, test_data, variant):
        """Benchmarks in a child process (an untrusted file may crash the interpreter)."""
        from export import child
        bench = self.recipe.benchmark
        out_json = tflite_path.removesuffix(".tflite") + ".benchmark.json"
        relative = lambda path: os.path.relpath(path, self.workdir)
        # Paths relative to the run directory: the figures name the file as it
        # will be once the run is swapped in, not its staging directory.
        _, error = child.run(
            [BENCHMARK_SCRIPT, f"--model={relative(tflite_path)}", f"--data={relative(test_data)}",
             f"--num_threads={bench.num_threads}", f"--num_runs={bench.num_runs}",
             f"--warmup_runs={bench.warmup_runs}", f"--json={relative(out_json)}"],
            timeout=3600, what="the benchmark", cwd=self.workdir)
        if error:
            return f"benchmark failed: {error}"
        with open(out_json) as f:
            figures = json.load(f)
        variant.update(report_lib.variant_figures(figures),
                       benchmark_path=os.path.relpath(out_json, self.workdir))
        return None


def _flex_check(path, variant):
    """Records the TensorFlow select ops a converted file holds; none of the interpreters
    here links the Flex delegate, so such a file is kept but not benchmarked (the reason)."""
    from export.convert import flex_ops
    found = flex_ops(path)
    if not found:
        return None
    variant["flex_ops"] = found
    return (f"converted with TensorFlow select ops ({', '.join(found)}), which need the Flex "
            "delegate: no interpreter here links it (LiteRT, tflite-runtime and tflite-micro "
            "run builtin ops only), so it was not benchmarked; on Android add "
            "org.tensorflow:tensorflow-lite-select-tf-ops")


def _distribution(model):
    """Where a stage's model was made: its distribution strategy and replicas (one, for
    a model that has none: a Keras 3 model or a SavedModel on the post-training path)."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or not hasattr(strategy, "num_replicas_in_sync"):
        return {"strategy": "none", "replicas": 1}
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync}


def _check_same_signature(stage, before, after):
    shapes = lambda m: ([tuple(t.shape) for t in m.inputs], [tuple(t.shape) for t in m.outputs])
    if shapes(before) != shapes(after):
        raise RuntimeError(f"stage {stage} changed the model's signature from "
                           f"{shapes(before)} to {shapes(after)}")


def _strip(path):
    """Strips the file at `path` in place (export.tflite_file.strip); returns the bytes saved."""
    from export.tflite_file import strip
    with open(path, "rb") as f:
        before = f.read()
    after = strip(before)
    atomic_write_bytes(path, after)
    return len(before) - len(after)


def save_split(directory, split, batch_size=256):
    """Writes a data split as x.npy and y.npy, batch by batch (a streamed split
    is never held whole); the benchmark memory-maps them. Atomic as a directory."""
    from numpy.lib.format import open_memmap
    with atomic_directory(directory) as tmp:
        arrays, start = {}, 0
        for x, y in split.batches(batch_size).as_numpy_iterator():
            if not arrays:
                arrays = {name: open_memmap(os.path.join(tmp, f"{name}.npy"), mode="w+",
                                            dtype=a.dtype, shape=(len(split),) + a.shape[1:])
                          for name, a in (("x", x), ("y", y))}
            arrays["x"][start:start + len(x)] = x
            arrays["y"][start:start + len(y)] = y
            start += len(x)
        for a in arrays.values():
            a.flush()
        del arrays


def _save_npy(path, array):
    """Writes `array` as a .npy file, atomically."""
    import io
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
