"""The record of one exported variant: a block per step of the export phase.

Each step of pipeline/export_phase.py owns one block and writes only that:

    converted         the converter         stripped_bytes, flex_ops, float_op_types,
                                            attention_mask_bounded, onnx_ops
    figures           the benchmark         export/benchmark.py's figures of the file
                                            as converted (size, accuracy, latency, ...)
    structure         the structure check   float_layers, weights, sparsity, ...,
                                            violations, claims_unchecked
    sparse_inference  XNNPACK's sparse path pipeline/sparse_inference.py
    doctor            the doctor            its record, or doctor_error
    fix               the doctor's fix      changes, int16_ops, float_ops, within_budget
    micro, c_array,   the deploy checks     pipeline/deploy.py; `shipped` holds the
    metadata, shipped                       file's size and gzip size with its metadata
    npu               Vela                  {accelerator: export/vela.py's figures}
    mcu               board estimates       {board: pipeline/device_energy.py's}
    runtimes          the runtime gate      pipeline/runtime_gate.py
    generation        LiteRT-LM bundles     pipeline/generation.py (language models)

so no step depends on another's having run first or last (the sparse check
reads the converted file's size from `figures`, whatever metadata adds).
report.json keeps its flat shape: `to_dict` flattens the blocks (a shipped
size wins over the converted one) and `from_dict` splits a finished run's
variants back into blocks for the commands that examine them again.

    v = Variant("train_int8", "train", "int8", "export/train_int8.tflite")
    v.figures = figures_block(benchmark_json)
    report_row = v.to_dict()
"""
import dataclasses
from typing import Optional

CONVERTED_KEYS = ("stripped_bytes", "flex_ops", "float_op_types", "attention_mask_bounded",
                  "onnx_ops")
FIGURE_KEYS = ("size_bytes", "gzip_bytes", "accuracy", "num_examples", "interpreter",
               "cross_entropy", "perplexity", "latency_ms", "init_ms", "first_inference_ms",
               "input", "throughput_per_s", "macs", "gmacs_per_s", "xnnpack", "not_delegated",
               "densify_ops", "peak_rss_mb", "num_threads", "benchmark_path",
               "all_threads", "throughput_large_batch", "versions")
STRUCTURE_KEYS = ("float_layers", "weights", "sparsity", "max_unique_per_channel",
                  "entropy_bits_per_weight", "violations", "claims_unchecked")
FIX_KEYS = ("changes", "int16_ops", "float_ops", "within_budget")
SINGLE_KEYS = ("error", "sparse_inference", "doctor", "doctor_error", "micro", "c_array",
               "metadata", "npu", "mcu", "generation")
# Added when the report is built (pipeline/report.py, pipeline/energy.py).
DERIVED_KEYS = ("gzip_ratio_vs_baseline", "deploy", "joules_per_inference",
                "co2_g_per_million_inferences", "extra_emissions_kg", "payback_inferences")
IDENTITY = ("name", "stage", "format", "path")


@dataclasses.dataclass
class Variant:
    """One file of the run (see the module docstring for who writes which block)."""
    name: str
    stage: str
    format: str
    path: str  # relative to the run directory
    error: Optional[str] = None  # the first step that failed says why; later steps skip it
    converted: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)
    structure: dict = dataclasses.field(default_factory=dict)
    sparse_inference: Optional[dict] = None
    doctor: Optional[dict] = None
    doctor_error: Optional[str] = None
    fix: dict = dataclasses.field(default_factory=dict)
    micro: Optional[dict] = None
    c_array: Optional[dict] = None
    metadata: Optional[dict] = None
    npu: Optional[dict] = None  # {accelerator: Vela's figures, or why not compiled}
    mcu: Optional[dict] = None  # {board: estimated latency, energy, battery days}
    generation: Optional[dict] = None  # the LiteRT-LM bundle, its checks and timings
    shipped: dict = dataclasses.field(default_factory=dict)  # {size_bytes, gzip_bytes}
    runtimes: dict = dataclasses.field(default_factory=dict)
    derived: dict = dataclasses.field(default_factory=dict)  # the report's, kept on a round trip
    extra: dict = dataclasses.field(default_factory=dict)  # keys of other writers, kept

    @property
    def ok(self) -> bool:
        """Converted and benchmarked without error."""
        return self.error is None

    @property
    def size_bytes(self) -> Optional[int]:
        """The file's bytes as shipped (with its metadata, if written)."""
        return self.shipped.get("size_bytes", self.figures.get("size_bytes"))

    def to_dict(self) -> dict:
        """The flat report.json record."""
        flat = {key: getattr(self, key) for key in IDENTITY}
        if self.error is not None:
            flat["error"] = self.error
        flat.update(self.converted)
        flat.update(self.fix)
        flat.update(self.figures)
        flat.update(self.shipped)
        flat.update(self.structure)
        for key in SINGLE_KEYS[1:]:
            if getattr(self, key) is not None:
                flat[key] = getattr(self, key)
        if self.runtimes:
            flat["runtimes"] = self.runtimes
        flat.update(self.derived)
        flat.update(self.extra)
        return flat

    @classmethod
    def from_dict(cls, flat: dict) -> "Variant":
        """A report.json record split back into blocks (a round trip gives `flat` again)."""
        pick = lambda keys: {k: flat[k] for k in keys if k in flat}
        variant = cls(**{k: flat[k] for k in IDENTITY},
                      **{k: flat[k] for k in SINGLE_KEYS if k in flat},
                      converted=pick(CONVERTED_KEYS), figures=pick(FIGURE_KEYS),
                      structure=pick(STRUCTURE_KEYS), fix=pick(FIX_KEYS),
                      runtimes=dict(flat.get("runtimes", {})), derived=pick(DERIVED_KEYS))
        known = set(IDENTITY + CONVERTED_KEYS + FIGURE_KEYS + STRUCTURE_KEYS + FIX_KEYS
                    + SINGLE_KEYS + DERIVED_KEYS + ("runtimes",))
        variant.extra = {k: v for k, v in flat.items() if k not in known}
        return variant


def figures_block(figures: dict) -> dict:
    """A variant's `figures` block from export/benchmark.py's figures for its file."""
    return dict(
        size_bytes=figures["size_bytes"], gzip_bytes=figures["gzip_bytes"],
        accuracy=figures["accuracy"], num_examples=figures["num_examples"],
        interpreter=figures["interpreter"],
        cross_entropy=figures["cross_entropy"], perplexity=figures["perplexity"],
        latency_ms={k: figures["latency_ms"][k] for k in ("p50", "p90", "p99", "mean")},
        init_ms=figures["init_ms"], first_inference_ms=figures["first_inference_ms"],
        input=figures["input"],
        throughput_per_s=figures["throughput_per_s"], macs=figures["macs"],
        gmacs_per_s=figures["gmacs_per_s"], xnnpack=figures["delegated"],
        not_delegated=figures.get("not_delegated"),
        # Weights stored sparse (float32_sparse; pipeline/sparse_inference.py).
        densify_ops=(figures.get("ops") or {}).get("DENSIFY", 0),
        peak_rss_mb=figures["peak_rss_mb"], num_threads=figures["num_threads"],
        # A TensorRT engine's (export/benchmark_tensorrt.py): a larger batch, the GPU.
        **{k: figures[k] for k in ("throughput_large_batch", "versions") if k in figures})
