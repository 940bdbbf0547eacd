"""Recipes: YAML files that name the model, the data, the stages and the export.

    seed: 0
    model: {name: digits_cnn}
    data: {source: digits}
    stages:              # ordered; the key is the stage's name,
      train:             # its type defaults to the name
        epochs: 20
      finetune: {type: train, epochs: 2}
    export: {formats: [float32, int8]}
    benchmark: {num_runs: 100}

`load(path, overrides)` validates everything into typed config objects before
anything runs; a bad key, type or value raises `RecipeError` naming the key,
the value received and what is allowed.
"""
import dataclasses
import re
import os
from typing import Any, Literal, Optional, Union

import yaml

from export import formats as formats_lib
from export.formats import REQUESTABLE as FORMATS
from pipeline.device_energy import Duty
from pipeline import config as config_lib
from pipeline.config import at_least, between
from pipeline.data import DataConfig
from pipeline.distribute import DistributeConfig, check_batches
from pipeline.energy import EnergyConfig
from pipeline.errors import RecipeError
from pipeline.generation import GenerationConfig


@dataclasses.dataclass
class ModelConfig:
    """`name` is a zoo model (see models/) or a saved model (.keras, .h5, SavedModel dir).

    `options` are a zoo model's keyword arguments. `trust_model_code` allows
    Lambda layers in a saved model (they run stored Python code on loading);
    `custom_objects` names the module (or .py file) defining its custom layers.
    `batchnorm_momentum` resets the momentum of every BatchNormalization layer
    (keras.applications builds them with 0.999: with few steps per epoch
    their moving statistics lag so far behind that evaluation sits at chance).
    `auto` (the default) lowers a momentum too slow for the steps the recipe
    trains, before the first step, and says so; `keep` keeps the model's.
    """
    name: str = "digits_cnn"
    options: dict = dataclasses.field(default_factory=dict)
    trust_model_code: bool = False
    custom_objects: Optional[str] = None
    batchnorm_momentum: Union[float, Literal["auto", "keep"]] = dataclasses.field(
        default="auto", metadata=between(0, 1, low_open=True, high_open=True))


@dataclasses.dataclass
class ExportConfig:
    """Which stages' models are converted, and to which formats (TFLite, ONNX, TensorRT)."""
    # int16x8 (kernels are missing for some ops) and int4 are asked for by name,
    # as are the server's files: onnx_float32 and onnx_int8 (ONNX Runtime on the
    # CPU), tensorrt_fp16 and tensorrt_int8 (engines; they need a CUDA GPU).
    formats: list[Literal[FORMATS]] = dataclasses.field(default_factory=lambda: [
        "float32", "float16", "dynamic_range", "int8"])
    # Stage names; by default the last stage's model is exported.
    stages: Optional[list[str]] = None
    # {stage: [formats]}: exports exactly these, instead of stages x formats,
    # e.g. {train: [float32], quantize: [int8]}.
    formats_by_stage: Optional[dict] = None
    # Before int8/int16x8 conversion, attention that masks with tf_keras' -1e9
    # gets a bounded mask (models/attention.py); false keeps the -1e9.
    bound_attention: bool = True
    # The quantization doctor (export/doctor.py) examines every int8/int16x8
    # variant and fixes an int8 file outside its budget against the Keras
    # float model: accuracy points for classifiers, perplexity percent for
    # language models.
    doctor: bool = True
    max_drop_points: float = dataclasses.field(default=2.0, metadata=at_least(0))
    max_rise_percent: float = dataclasses.field(default=5.0, metadata=at_least(0))
    # Formats whose files lose what the interpreter does not read: tensor and
    # subgraph names, signature defs, empty quantization tables
    # (export.tflite_file.strip). Inputs and outputs are then addressed by
    # index; the report cannot check a stage's per-layer claims in the file.
    strip: list[Literal[FORMATS]] = dataclasses.field(default_factory=list)
    # Each stage's plain model (not QAT's) also as NN_<stage>/model.keras for
    # Keras 3, checked to compute what the stage's model computes. auto: when
    # the run's model came from Keras 3 (models/keras3.py).
    keras3_models: Literal["auto", "always", "never"] = "auto"

    def validate(self):
        if not self.formats:
            raise ValueError("formats: empty; name at least one of " + ", ".join(FORMATS))
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats: {self.formats} names a format twice")
        if self.formats_by_stage is not None:
            if self.stages is not None:
                raise ValueError("give either stages or formats_by_stage, not both")
            for stage, formats in self.formats_by_stage.items():
                if (not isinstance(formats, list) or not formats
                        or any(f not in FORMATS for f in formats)):
                    raise ValueError(f"formats_by_stage.{stage}: got {formats!r}; expected a "
                                     f"list of formats from {', '.join(FORMATS)}")
        exported = (self.formats if self.formats_by_stage is None else
                    {f for formats in self.formats_by_stage.values() for f in formats})
        not_tflite = [f for f in self.strip if f in FORMATS and not formats_lib.on_device(f)]
        if not_tflite:
            raise ValueError(f"strip: {', '.join(not_tflite)} is not a .tflite format; strip "
                             "takes the TFLite formats (an ONNX file keeps its names)")
        unexported = [f for f in self.strip if f not in exported]
        if unexported:
            raise ValueError(f"strip: {', '.join(unexported)} is not exported; "
                             f"exported formats: {', '.join(sorted(set(exported)))}")


@dataclasses.dataclass
class BenchmarkConfig:
    """Settings of the TFLite benchmark (names as in TFLite's benchmark_model)."""
    num_threads: int = dataclasses.field(default=1, metadata=at_least(1))
    num_runs: int = dataclasses.field(default=50, metadata=at_least(1))
    warmup_runs: int = dataclasses.field(default=5, metadata=at_least(0))
    # The split every file is scored on: `test`, or `val` where the figures
    # choose between variants (pipeline.search's trials: no tuning on test).
    split: Literal["test", "val"] = "test"
    # Also load every file in tflite-runtime 2.14 (a separate venv made on first
    # use, see export/compat.py) and record which load and why the others do not.
    check_tflite_runtime: bool = False


@dataclasses.dataclass
class StageSpec:
    """One entry of `stages:`: its name, its type and its validated config."""
    name: str
    type: str
    config: Any

    def make(self):
        """Returns the Stage object this entry describes."""
        from pipeline import stages
        return stages.get(self.type)(self.config)


@dataclasses.dataclass
class DeployConfig:
    """Deployability checks after export (pipeline/deploy.py)."""
    # Run every full-integer variant in tflite-micro: arena, missing ops,
    # micro-runtime accuracy against LiteRT's, a fit verdict per target.
    micro: bool = True
    # Score the micro runtime on at most this many examples (its reference
    # kernels are slow on large models).
    micro_examples: int = dataclasses.field(default=1000, metadata=at_least(1))
    # Boards: preset names (pipeline/boards.py PRESETS) or {name, ram_kb, flash_kb},
    # with npu: an Ethos-U accelerator for a board that carries one (its fit is
    # then judged on Vela's SRAM and flash for it, compiled even if npu omits it).
    targets: list = dataclasses.field(
        default_factory=lambda: ["arduino-nano-33-ble", "esp32-s3-devkitc-n8"])
    # Write each micro-checked file as a C array (export/<variant>_model_data.cc/.h).
    c_array: bool = True
    # Write TFLite metadata (name, normalization, labels) into each classifier's
    # files with tflite-support, in its own environment (made on first use).
    metadata: bool = True
    # A labels file (one class name per line) instead of the data's class names.
    labels: Optional[str] = None
    # Arm Ethos-U NPUs each full-integer file is compiled for by Vela (SRAM,
    # flash, cycles, inferences/s, ops left on the CPU; export/vela.py); [] for none.
    npu: list = dataclasses.field(default_factory=lambda: ["ethos-u55-128", "ethos-u85-256"])
    # Microcontroller boards whose MLPerf Tiny measurements estimate each
    # full-integer file's latency, energy and battery life
    # (pipeline/device_energy.py); [] for none.
    boards: list = dataclasses.field(default_factory=lambda: ["stm32u385", "stm32l4r5"])
    # The device's day: inferences, battery, sleep current (for battery life).
    duty: Duty = dataclasses.field(default_factory=Duty)

    def validate(self):
        from export import vela
        from pipeline.boards import parse_targets
        parse_targets(self.targets)
        for accelerator in self.npu:
            if accelerator not in vela.ACCELERATORS:
                raise ValueError(f"npu: unknown accelerator {accelerator!r}; allowed: "
                                 f"{', '.join(vela.ACCELERATORS)}")
        if len(set(self.npu)) != len(self.npu):
            raise ValueError(f"npu: {self.npu} names an accelerator twice")
        from pipeline import device_energy
        device_energy.check_boards(self.boards, "boards")
        if self.labels is not None and not os.path.isfile(self.labels):
            raise ValueError(f"labels: {self.labels!r} does not exist")


# `loss` is the budget's own measure (points of accuracy lost, or percent of
# perplexity gained, on the validation split): with it the front trades
# accuracy against the figures instead of only staying within the budget.
# `cross_entropy` (the file's, on the validation split, in nats) tells apart
# files that a few hundred examples score alike: one example is a third of
# a point of accuracy, while the cross-entropy moves with every example's
# confidence.
# Device figures too: `npu_cycles` and `npu_sram_bytes` (Vela, on deploy.npu's
# first accelerator) and `board_energy_uj` (the estimate's middle on
# deploy.boards' first board): "the least energy on an STM32U385".
SEARCH_OBJECTIVES = ("size_bytes", "gzip_bytes", "latency_ms", "macs", "joules_per_inference",
                     "cross_entropy", "npu_cycles", "npu_sram_bytes", "board_energy_uj", "loss")
# Figures a limit holds from below (the fewest allowed), never objectives:
# `board_battery_days` (the middle estimate on deploy.boards' first board, at
# deploy.duty). On one duty cycle the battery lasts longest at the least
# energy per inference, so the objective for it is board_energy_uj.
AT_LEAST_LIMITS = ("board_battery_days",)


@dataclasses.dataclass
class SearchConfig:
    """`python -m pipeline.search` (pipeline/search.py): the recipe values to vary,
    the measured figures to minimize, and the largest loss allowed."""
    # {recipe key path (as --set takes it): [choices] or {low, high[, step][, log]}}
    space: dict = dataclasses.field(default_factory=dict)
    # Measured on each trial's exported file, all minimized.
    objectives: list[Literal[SEARCH_OBJECTIVES]] = dataclasses.field(
        default_factory=lambda: ["size_bytes"])
    # {max_drop_points: N} of TFLite accuracy, or {max_rise_percent: N} of
    # TFLite perplexity, against the first stage's float32 file.
    budget: dict = dataclasses.field(default_factory=lambda: {"max_drop_points": 2.0})
    # `best` is the front's smallest trial whose loss is at most the budget
    # minus this margin (the budget's unit). The loss is measured on the
    # validation split, where one example of a few hundred moves it by a
    # third of a point: a file that met the budget by one lucky example is
    # not the one shipped. Trials within the budget still count as feasible,
    # and when none clears the margin, `best` is the least loss within budget
    # (flagged: search.json's best_clears_margin is false).
    select_margin: float = dataclasses.field(default=0.0, metadata=at_least(0))
    # The device's own limits: {figure: largest allowed}, figures as in
    # objectives (size_bytes: 12000 for a 12 KB flash budget), and
    # board_battery_days: the fewest days allowed (365: a year on the battery).
    # A trial over a limit is infeasible for the sampler and is never `best`;
    # it stays on the front, which shows what the limit costs.
    limits: dict = dataclasses.field(default_factory=dict)
    # How `best` is chosen among the front's trials within budget (less the
    # margin) and limits: `smallest` (the first objective), or
    # `most_accurate` (the least loss; ties go to the lower validation
    # cross-entropy, then the smaller). With a size
    # limit, most_accurate ships the file that best holds the accuracy the
    # device can afford, rather than the one that only just met the budget
    # on a validation split of a few hundred examples.
    select: Literal["smallest", "most_accurate"] = "smallest"
    trials: int = dataclasses.field(default=10, metadata=at_least(1))
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    # The variant each trial is judged by (default: the last one exported).
    variant: Optional[str] = None
    # Value sets the study runs first, in order, before its sampler proposes
    # any (Optuna's enqueue_trial): e.g. a hand recipe's values, so the front
    # starts from what is already known to work. Each is {space key: value};
    # keys left out are sampled.
    enqueue: list = dataclasses.field(default_factory=list)

    def validate(self):
        if not self.space:
            raise ValueError("space: empty; give at least one recipe value to vary, e.g. "
                             "{prune_channels.ratio: [0.25, 0.5, 0.75]}")
        for key, values in self.space.items():
            ranged = isinstance(values, dict) and {"low", "high"} <= set(values) <= {
                "low", "high", "step", "log"}
            if not ranged and not (isinstance(values, list) and values):
                raise ValueError(f"space.{key}: got {values!r}; allowed: a non-empty list of "
                                 "values, or {low, high} with optional step and log")
        from export.budget import Budget, BudgetError
        try:
            budget = Budget.parse(self.budget if isinstance(self.budget, dict) else {})
        except BudgetError:
            raise ValueError(f"budget: got {self.budget!r}; allowed: {{max_drop_points: N}} "
                             "(accuracy points) or {max_rise_percent: N} (perplexity), "
                             "N >= 0") from None
        if not budget.allows(0, self.select_margin):
            raise ValueError(f"select_margin: {self.select_margin:g} is more than the budget "
                             f"({budget.value:g}): no trial could be chosen; "
                             "allowed: 0 to the budget")
        figures = [name for name in SEARCH_OBJECTIVES if name != "loss"]  # the budget limits loss
        figures += AT_LEAST_LIMITS
        if not isinstance(self.limits, dict):
            raise ValueError(f"limits: got {self.limits!r}; allowed: {{figure: largest value}} "
                             f"(board_battery_days: the fewest), figures among "
                             f"{', '.join(figures)}")
        for key, value in self.limits.items():
            if key not in figures:
                raise ValueError(f"limits.{key}: not a figure a limit may be on; allowed: "
                                 f"{', '.join(figures)} (the budget limits the loss)")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"limits.{key}: got {value!r}; allowed: a number above 0")
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives: got {self.objectives!r}; name one or more of "
                             f"{', '.join(SEARCH_OBJECTIVES)}, each once")
        if not isinstance(self.enqueue, list):
            raise ValueError(f"enqueue: got {self.enqueue!r}; allowed: a list of "
                             "{space key: value} sets")
        for i, values in enumerate(self.enqueue):
            if not isinstance(values, dict) or not values:
                raise ValueError(f"enqueue[{i}]: got {values!r}; allowed: a non-empty "
                                 "{space key: value} set")
            for key, value in values.items():
                if key not in self.space:
                    raise ValueError(f"enqueue[{i}].{key}: not a key of space ("
                                     f"{', '.join(self.space)})")
                space = self.space[key]
                fits = (space["low"] <= value <= space["high"]
                        if isinstance(space, dict) and isinstance(value, (int, float))
                        else not isinstance(space, dict) and value in space)
                if not fits:
                    raise ValueError(f"enqueue[{i}].{key}: {value!r} is not among the space's "
                                     f"values ({space!r})")


@dataclasses.dataclass
class Recipe:
    """A validated recipe."""
    stages: list
    name: str = "recipe"
    seed: int = 0
    # Deterministic TF kernels: the same recipe gives the same weights on the
    # same machine, at a small speed cost (no GPU scatter/segment ops).
    deterministic: bool = True
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    benchmark: BenchmarkConfig = dataclasses.field(default_factory=BenchmarkConfig)
    energy: EnergyConfig = dataclasses.field(default_factory=EnergyConfig)
    deploy: DeployConfig = dataclasses.field(default_factory=DeployConfig)
    distribute: DistributeConfig = dataclasses.field(default_factory=DistributeConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    # Only `python -m pipeline.search` reads it.
    search: Optional[SearchConfig] = None

    @property
    def export_jobs(self):
        """[(stage name, format)] to convert, in order."""
        if self.export.formats_by_stage is not None:
            return [(s, f) for s, formats in self.export.formats_by_stage.items() for f in formats]
        stages = self.export.stages or [self.stages[-1].name]
        return [(s, f) for s in stages for f in self.export.formats]

    def to_dict(self):
        """The recipe as plain values (what report.json records)."""
        out = {f.name: config_lib.to_dict(getattr(self, f.name))
               for f in dataclasses.fields(self)
               if f.name not in ("stages", "name", "seed", "deterministic", "search")}
        if self.search is not None:
            out["search"] = config_lib.to_dict(self.search)
        out.update(name=self.name, seed=self.seed, deterministic=self.deterministic)
        out["stages"] = {s.name: {"type": s.type, **config_lib.to_dict(s.config)}
                         for s in self.stages}
        return out


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-4` as the number every user means.

    PyYAML follows YAML 1.1, whose floats need a dot: `learning_rate: 1e-4`
    (and `--set train.learning_rate=1e-4`) came through as the string '1e-4'
    and was refused. YAML 1.2's float syntax accepts it; this loader adds it.
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


SECTIONS = ("name", "seed", "deterministic", "model", "data", "stages", "export", "benchmark",
            "energy", "deploy", "distribute", "generation", "search")


def load(path, overrides=()):
    """Reads, overrides and validates the recipe at `path`.

    Args:
      path: a YAML file.
      overrides: strings `key.path=value` (value parsed as YAML), applied
        before validation, e.g. `train.epochs=3` or `data.source=npz`.
    Returns:
      A `Recipe`.
    """
    return from_dict(load_raw(path, overrides))


def load_raw(path, overrides=()):
    """The recipe at `path` as plain values, with `overrides` applied (not validated)."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.load(f, Loader=YamlLoader)
    except FileNotFoundError:
        raise RecipeError(f"--recipe: {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        # YAML errors span several lines; the contract is one line.
        raise RecipeError(f"--recipe: cannot read {path!r} as YAML: {' '.join(str(e).split())}"
                          ) from None
    if not isinstance(raw, dict):
        raise RecipeError(f"--recipe: {path!r} must hold a mapping with keys {', '.join(SECTIONS)}")
    raw.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    for override in overrides:
        apply_override(raw, override)
    return raw


def check_inputs(recipe):
    """Checks that the files a recipe names exist, without reading them.

    Needs no TensorFlow, so the CLI runs it with `load` before the import;
    reading and checking the contents happens when the run loads them.
    """
    from models import MODELS, user
    from pipeline.data.sources import check_paths
    check_paths(recipe.data)
    model = recipe.model
    if model.name not in MODELS:
        if not user.is_model_path(model.name):
            raise RecipeError(f"model.name: unknown model {model.name!r}; known models: "
                              f"{', '.join(sorted(MODELS))}, or a saved model file "
                              f"({', '.join(user.SUFFIXES)}) or SavedModel directory")
        if not os.path.exists(model.name):
            raise RecipeError(f"model.name: {model.name!r} does not exist (and is not a zoo "
                              "model name)")
    if (model.custom_objects and model.custom_objects.endswith(".py")
            and not os.path.isfile(model.custom_objects)):
        raise RecipeError(f"model.custom_objects: {model.custom_objects!r} does not exist")
    from pipeline import distribute
    distribute.check_environment(recipe.distribute)


def from_dict(raw):
    """Validates a recipe given as plain values; returns a `Recipe`."""
    from pipeline import stages as stage_registry

    raw = dict(raw)
    stages_raw = raw.pop("stages", None)
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise RecipeError(f"stages: got {stages_raw!r}; expected a mapping of stage names to "
                          "settings, e.g. 'stages: {train: {epochs: 10}}'")
    specs = []
    for name, settings in stages_raw.items():
        where = f"stages.{name}"
        if not isinstance(name, str) or name in SECTIONS:
            raise RecipeError(f"{where}: a stage may not be named {name!r} "
                              f"(reserved: {', '.join(SECTIONS)})")
        settings = dict(settings or {})
        stage_type = settings.pop("type", name)
        stage_cls = stage_registry.get(stage_type, where)
        specs.append(StageSpec(name, stage_type, config_lib.build(stage_cls.Config, settings, where)))
    recipe = config_lib.build(Recipe, {**raw, "stages": []}, "")
    recipe.stages = specs
    names = [s.name for s in specs]
    from pipeline.training import mixup_without_teacher, no_teacher_named, teacher_names
    for index, spec in enumerate(specs):
        teacher = getattr(spec.config, "teacher", None)
        # distill's teacher is the model it is given when `teacher:` is unset.
        if getattr(spec.config, "augment_mixup", 0) and teacher is None and spec.type != "distill":
            raise mixup_without_teacher(f"stages.{spec.name}", spec.config.augment_mixup)
        if teacher == []:
            raise no_teacher_named(f"stages.{spec.name}")
        for one in teacher_names(teacher):
            if one in names[:index]:
                continue
            if one in names:
                raise RecipeError(f"stages.{spec.name}.teacher: {one!r} is not an earlier stage "
                                  f"(a teacher must be trained before its student); earlier "
                                  f"stages: {', '.join(names[:index]) or 'none'}")
            if not os.path.isfile(one):
                raise RecipeError(f"stages.{spec.name}.teacher: {one!r} is neither an earlier "
                                  f"stage ({', '.join(names[:index]) or 'none'}) nor a saved "
                                  "model file")
    check_batches(recipe, recipe.distribute.replicas())
    for key in ("stages", "formats_by_stage"):
        for stage in getattr(recipe.export, key) or []:
            if stage not in names:
                raise RecipeError(f"export.{key}: {stage!r} is not a stage of this recipe; "
                                  f"stages: {', '.join(names)}")
    return recipe


def apply_override(raw, override):
    """Applies one `a.b.c=value` override to the raw recipe mapping in place.

    The first part is a recipe section (model, data, export, ...) or a stage
    name, so `train.epochs=3` is short for `stages.train.epochs=3`.
    """
    key, sep, text = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise RecipeError(f"--set {override!r}: expected key.path=value, e.g. train.epochs=3")
    try:
        value = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as e:
        raise RecipeError(f"--set {override!r}: cannot parse the value: "
                          f"{' '.join(str(e).split())}") from None
    stages = raw.get("stages") if isinstance(raw.get("stages"), dict) else {}
    if parts[0] not in SECTIONS and parts[0] in stages:
        parts = ["stages"] + parts
    elif parts[0] not in SECTIONS:
        raise RecipeError(
            f"--set {override!r}: {parts[0]!r} is neither a recipe section "
            f"({', '.join(SECTIONS)}) nor a stage of this recipe ({', '.join(stages) or 'none'})")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"--set {override!r}: {'.'.join(parts[:i + 1])} is "
                              f"{child!r}, not a mapping")
        node = child
    node[parts[-1]] = value
