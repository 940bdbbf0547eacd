"""The export phase: every (stage, format) variant converted, benchmarked, checked and examined.

    phase = ExportPhase(recipe, workdir, data, stage_records, custom_objects, log)
    variants = phase.run()         # [pipeline.variants.Variant]

Steps, in order, each writing its own block of each variant's record
(pipeline/variants.py): convert (one converter process for all variants),
benchmark (a child process per file: an untrusted file may crash the
interpreter), the structure check of each stage's claims, XNNPACK's sparse
path, the quantization doctor, the deploy checks, a language model's
LiteRT-LM bundles (pipeline/generation.py) and the runtime gate. A
variant that fails a step keeps its reason; the other variants go on.
"""
import io
import json
import os
from typing import Callable

import numpy as np

from export import formats
from pipeline import structure
from pipeline.files import atomic_directory, atomic_write_bytes
from pipeline.variants import Variant

BENCHMARK_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export", "benchmark.py")


class ExportPhase:
    """Runs the export phase of one run into its (staging) directory."""

    def __init__(self, recipe, workdir: str, data, deploy_data: dict, stage_records: list,
                 custom_object_modules: list, log: Callable[[str], None] = print):
        """`data`: the run's pipeline.data.Data; `deploy_data`: pipeline.deploy.data_info's;
        `custom_object_modules`: what the converter imports (pipeline.custom_objects)."""
        self.recipe, self.workdir, self.data, self.deploy_data = recipe, workdir, data, deploy_data
        self.stages = {r["name"]: r for r in stage_records}
        self.stage_records = stage_records
        self.custom_object_modules = custom_object_modules
        self.log = log
        self.export_dir = os.path.join(workdir, "export")
        self.test_data = os.path.join(self.export_dir, f"{recipe.benchmark.split}_data")

    def run(self) -> list:
        """Every step over every variant; returns the variants (doctor's fixes included)."""
        recipe = self.recipe
        variants = self.convert()
        for k, variant in enumerate(variants, 1):
            self.check_converted(k, len(variants), variant)
        from pipeline import sparse_inference
        sparse_inference.verdicts(variants)
        if recipe.export.doctor:
            from pipeline import doctor
            variants += doctor.examine_variants(self.workdir, variants, self.stages, recipe,
                                                doctor.run_budget(recipe, self.data.task),
                                                log=self.log)
        if recipe.deploy.micro or recipe.deploy.metadata:
            from pipeline import deploy
            self.log("deploy: microcontroller fit, C arrays, labels and Android metadata ...")
            deploy.examine(self.workdir, variants, recipe.deploy, self.deploy_data, self.log)
        from pipeline import boards
        targets = boards.parse_targets(recipe.deploy.targets)
        # An Ethos-U board in deploy.targets is judged on Vela's figures for its own
        # accelerator, so that one is compiled for even when deploy.npu omits it
        # (where boards are judged at all: with the micro check).
        fitted = boards.accelerators(targets) if recipe.deploy.micro else []
        accelerators = list(dict.fromkeys(recipe.deploy.npu + fitted))
        if accelerators:
            from pipeline import npu, verdicts
            npu.compile_variants(self.workdir, variants, accelerators, self.log)
            if fitted:
                for v in variants:
                    verdicts.fit_all(v, targets)
        if recipe.deploy.boards:
            self.estimate_boards(variants)
        from pipeline import generation
        if generation.wanted(recipe, self.data.task):
            generation.bundle_variants(self.workdir, variants, self.stages, recipe,
                                       self.test_data, self.custom_object_modules, self.log)
        if recipe.benchmark.check_tflite_runtime:
            from pipeline import runtime_gate
            runtime_gate.check_variants(self.workdir, variants, recipe.benchmark.num_threads,
                                        self.log, data=self.test_data)
        return variants

    def estimate_boards(self, variants: list) -> None:
        """Each full-integer file's latency, energy and battery days on the recipe's boards,
        from its MACs and the boards' MLPerf Tiny measurements (labelled estimates)."""
        from pipeline import device_energy
        deploy = self.recipe.deploy
        for v in variants:
            if v.ok and formats.get(v.format).micro and v.figures.get("macs"):
                v.mcu = device_energy.estimate_variant(v.figures["macs"], deploy.boards,
                                                       deploy.duty)
                for name, figures in v.mcu.items():
                    self.log(f"  {v.name} on {device_energy.text(name, figures)}")

    def convert(self) -> list:
        """Writes the calibration and test data, then converts every variant in one
        converter process; returns the variants, each with its conversion error or none."""
        recipe = self.recipe
        os.makedirs(self.export_dir, exist_ok=True)
        representative = os.path.join(self.export_dir, "representative.npy")
        save_npy(representative, self.data.representative(
            recipe.data.representative_samples, recipe.seed))
        save_split(self.test_data, self.data.judged)
        variants = [Variant(f"{stage}_{fmt}", stage, fmt,
                            os.path.join("export", f"{stage}_{fmt}{formats.get(fmt).suffix}"))
                    for stage, fmt in recipe.export_jobs]
        self.log(f"converting {len(variants)} variant(s) ({', '.join(v.name for v in variants)}) "
                 "in one converter process; a crash fails only the variant it hit")

        def converted(index, error):
            self.log(f"[convert {index + 1}/{len(variants)}] {variants[index].name}: "
                     + (f"FAILED: {error}" if error else "done"))

        from export.convert import convert_all_in_child
        errors = convert_all_in_child(
            [(os.path.join(self.workdir, self.stages[v.stage]["model_path"]), v.format,
              os.path.join(self.workdir, v.path)) for v in variants],
            representative, custom_objects=self.custom_object_modules, on_done=converted,
            bound_attention=recipe.export.bound_attention)
        for variant, error in zip(variants, errors):
            variant.error = error
        return variants

    def check_converted(self, k: int, count: int, variant: Variant) -> None:
        """Strips, looks for TF select ops, benchmarks and checks the structure of one file."""
        if variant.ok and formats.on_device(variant.format):
            path = os.path.join(self.workdir, variant.path)
            if variant.format in self.recipe.export.strip:
                variant.converted["stripped_bytes"] = _strip(path)
            variant.error = _flex_check(path, variant)
        if variant.ok:
            self.log(f"[export {k}/{count}] {variant.name}: benchmarking ...")
            variant.error = self.benchmark(variant)
        if variant.ok:
            self._converted_notes(variant)
            self.verify_structure(variant)
            self.log(f"[export {k}/{count}] {variant.name}: {variant.figures['size_bytes']:,} "
                     f"bytes, accuracy {variant.figures['accuracy']:.4f} "
                     f"({variant.figures['interpreter']}), "
                     f"median {variant.figures['latency_ms']['p50']:.3f} ms")
        else:
            self.log(f"[export {k}/{count}] {variant.name} FAILED: {variant.error}")

    def benchmark(self, variant: Variant):
        """Benchmarks in a child process (an untrusted file may crash the interpreter);
        fills `figures` and returns None, or returns why it failed."""
        from export import child
        from pipeline.variants import figures_block
        bench = self.recipe.benchmark
        out_json = os.path.splitext(variant.path)[0] + ".benchmark.json"
        # Paths relative to the run directory: the figures name the file as it
        # will be once the run is swapped in, not its staging directory.
        _, error = child.run(
            [BENCHMARK_SCRIPT, f"--model={variant.path}",
             f"--data={os.path.relpath(self.test_data, self.workdir)}",
             f"--num_threads={bench.num_threads}", f"--num_runs={bench.num_runs}",
             f"--warmup_runs={bench.warmup_runs}", f"--json={out_json}"],
            timeout=3600, what="the benchmark", cwd=self.workdir)
        if error:
            return f"benchmark failed: {error}"
        with open(os.path.join(self.workdir, out_json)) as f:
            variant.figures = {**figures_block(json.load(f)), "benchmark_path": out_json}
        threads = os.cpu_count() or 1
        if not formats.on_device(variant.format) and threads > bench.num_threads:
            # A server answers with every core: ONNX Runtime's latency at all threads too.
            all_json = os.path.splitext(variant.path)[0] + f".benchmark_{threads}_threads.json"
            _, error = child.run(
                [BENCHMARK_SCRIPT, f"--model={variant.path}", f"--num_threads={threads}",
                 f"--num_runs={bench.num_runs}", f"--warmup_runs={bench.warmup_runs}",
                 f"--json={all_json}"], timeout=3600, what="the benchmark", cwd=self.workdir)
            if not error:
                with open(os.path.join(self.workdir, all_json)) as f:
                    figures = json.load(f)
                variant.figures["all_threads"] = {
                    "threads": threads, "p50_ms": figures["latency_ms"]["p50"],
                    "p90_ms": figures["latency_ms"]["p90"]}
        return None

    def _converted_notes(self, variant: Variant) -> None:
        """What conversion did to the file beyond its format's settings."""
        path = os.path.join(self.workdir, variant.path)
        spec = formats.get(variant.format)
        if spec.runtime == "onnxruntime":
            from export.onnx_convert import op_counts
            variant.converted["onnx_ops"] = op_counts(path)
        if spec.reports_float_ops:
            from export.tflite_file import float_op_types
            variant.converted["float_op_types"] = float_op_types(path)
        rewritten = self.stages[variant.stage].get("unbounded_attention")
        if rewritten and spec.calibrated and self.recipe.export.bound_attention:
            from models.attention import MASK_VALUE
            variant.converted["attention_mask_bounded"] = {"layers": rewritten,
                                                           "mask_value": MASK_VALUE}

    def verify_structure(self, variant: Variant) -> None:
        """Measures the claimed layers' kernels in the file and checks the stage's claims."""
        record = self.stages[variant.stage]
        block = variant.structure
        if record["metrics"].get("float_layers"):
            block["float_layers"] = record["metrics"]["float_layers"]
        claims = structure.Claims.from_dict(record["claims"])
        if not claims:
            return
        if not formats.on_device(variant.format):
            block["claims_unchecked"] = (f"a {formats.get(variant.format).runtime} file: the "
                                         "claims are checked in the stage's TFLite files")
            return
        if variant.converted.get("stripped_bytes") is not None:
            block["claims_unchecked"] = "its tensor names are stripped (export.strip)"
            return
        if formats.get(variant.format).dense_twin:
            # The kernels are stored sparse; the stage's dense file shows them.
            block["claims_unchecked"] = f"its kernels are stored sparse ({variant.format})"
            return
        check = structure.verify_file(os.path.join(self.workdir, variant.path), claims)
        block["weights"] = check.weights
        for key in ("sparsity", "max_unique_per_channel", "entropy_bits_per_weight"):
            if getattr(check, key) is not None:
                block[key] = getattr(check, key)
        if check.problems:
            block["violations"] = check.problems
            self.log(f"  {variant.name}: claims do not hold in the file: "
                     f"{'; '.join(check.problems)}")


def _flex_check(path: str, variant: Variant):
    """Records the TensorFlow select ops a converted file holds; none of the interpreters
    here links the Flex delegate, so such a file is kept but not benchmarked (the reason)."""
    from export.convert import flex_ops
    found = flex_ops(path)
    if not found:
        return None
    variant.converted["flex_ops"] = found
    return (f"converted with TensorFlow select ops ({', '.join(found)}), which need the Flex "
            "delegate: no interpreter here links it (LiteRT, tflite-runtime and tflite-micro "
            "run builtin ops only), so it was not benchmarked; on Android add "
            "org.tensorflow:tensorflow-lite-select-tf-ops")


def _strip(path: str) -> int:
    """Strips the file at `path` in place (export.tflite_file.strip); returns the bytes saved."""
    from export.tflite_file import strip
    with open(path, "rb") as f:
        before = f.read()
    after = strip(before)
    atomic_write_bytes(path, after)
    return len(before) - len(after)


def save_split(directory: str, split, batch_size: int = 256) -> None:
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


def save_npy(path: str, array) -> None:
    """Writes `array` as a .npy file, atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
