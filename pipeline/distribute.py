"""tf.distribute for the training stages: the recipe's `distribute:` section.

    distribute:
      strategy: mirrored     # default | mirrored | multi_worker | tpu
      devices: 2             # mirrored: this many replicas (GPUs, or logical CPUs
                             # when the machine has no GPU); or a list of device names
      tpu: my-tpu            # tpu: the TPU's name or grpc:// address ("local" on a TPU VM)

Every training stage builds its model, tfmot wrappers, optimizer and metrics
inside the strategy's scope (the runner enters it around each stage), so
Keras' fit() splits each batch across the replicas and tfmot's mask updates
are reduced across them. A stage's `batch_size` is the **global** batch: each
of N replicas sees batch_size / N examples per step, and the steps per epoch
(from which pruning schedules are derived) are those of the global batch, as
without distribution. Conversion, benchmarks and the report are unchanged.

`multi_worker` is MultiWorkerMirroredStrategy over the cluster that
TF_CONFIG describes (one process per machine, or `python -m pipeline
--workers=N` for N local processes, pipeline/launcher.py). Every worker
runs every stage (Keras shards the data across them); only the chief
(TF_CONFIG's chief, else worker 0) writes the run directory, exports,
benchmarks and reports; the others train in a scratch directory that goes
when they finish. `tpu` is TPUStrategy as TensorFlow documents it; there is
no TPU here, so it is untested.
"""
import dataclasses
import json
import os
from typing import Any, Literal, Optional

from pipeline.errors import RecipeError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass
class DistributeConfig:
    """How the training stages are distributed (tf.distribute)."""
    strategy: Literal[STRATEGIES] = "default"
    # mirrored: a replica count (GPUs; logical CPU devices on a machine
    # without GPUs) or device names ("/gpu:0", "/cpu:1"); default: every GPU.
    devices: Any = None
    # tpu: the TPU's name or grpc:// address; None: TPUClusterResolver's default.
    tpu: Optional[str] = None

    def validate(self):
        if self.tpu is not None and self.strategy != "tpu":
            raise ValueError(f"tpu: only the tpu strategy takes a TPU address; the strategy "
                             f"is {self.strategy!r}")
        if self.devices is not None and self.strategy != "mirrored":
            raise ValueError(f"devices: only the mirrored strategy takes devices; the "
                             f"strategy is {self.strategy!r}")
        if self.devices is not None and not isinstance(self.devices, (int, list)):
            raise ValueError(f"devices: got {self.devices!r}; expected a replica count or a "
                             "list of device names")
        if isinstance(self.devices, bool) or (
                isinstance(self.devices, int) and self.devices < 1):
            raise ValueError(f"devices: got {self.devices!r}; expected a replica count of at "
                             "least 1 or a list of device names")
        if isinstance(self.devices, list) and (not self.devices or not all(
                isinstance(d, str) and d for d in self.devices)):
            raise ValueError(f"devices: got {self.devices!r}; expected device names such as "
                             "['/gpu:0', '/gpu:1']")

    def replicas(self):
        """The replica count when the recipe alone says it (else None)."""
        if self.strategy == "default":
            return 1
        if isinstance(self.devices, int):
            return self.devices
        if isinstance(self.devices, list):
            return len(self.devices)
        return None


def cluster(cfg):
    """(cluster spec, this task) from TF_CONFIG for the multi_worker strategy.

    Raises RecipeError naming what is wrong: TF_CONFIG unset, not JSON, no
    workers, or a task that is not one of them.
    """
    raw = os.environ.get("TF_CONFIG")
    fix = ("set TF_CONFIG on each machine (README, \"Several machines\"), or run "
           "`python -m pipeline --workers=N` for N local workers")
    if not raw:
        raise RecipeError(f"distribute.strategy multi_worker: TF_CONFIG is not set; {fix}")
    try:
        config = json.loads(raw)
        spec, task = config["cluster"], config["task"]
        members = {kind: list(spec.get(kind) or []) for kind in ("chief", "worker")}
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RecipeError(f"distribute.strategy multi_worker: TF_CONFIG is not a cluster "
                          f"and task ({type(e).__name__}: {e}); {fix}") from None
    if not members["chief"] + members["worker"]:
        raise RecipeError(f"distribute.strategy multi_worker: TF_CONFIG's cluster has no "
                          f"chief or worker addresses; {fix}")
    if kind not in members or not 0 <= index < len(members[kind]):
        raise RecipeError(f"distribute.strategy multi_worker: TF_CONFIG's task {kind} "
                          f"{index} is not in its cluster ({len(members['chief'])} chief, "
                          f"{len(members['worker'])} worker(s)); {fix}")
    return members, {"type": kind, "index": index}


def is_chief(cfg):
    """Whether this process writes the run directory (always, unless multi_worker)."""
    if cfg.strategy != "multi_worker":
        return True
    members, task = cluster(cfg)
    if members["chief"]:
        return task["type"] == "chief"
    return task == {"type": "worker", "index": 0}


def check_environment(cfg):
    """Raises RecipeError before TensorFlow starts when the strategy cannot be made here."""
    if cfg.strategy == "multi_worker":
        cluster(cfg)


def check_batches(recipe, replicas):
    """Raises RecipeError when a training stage's global batch does not split evenly."""
    if not replicas or replicas == 1:
        return
    for spec in recipe.stages:
        batch = getattr(spec.config, "batch_size", None)
        if batch is not None and batch % replicas:
            raise RecipeError(
                f"stages.{spec.name}.batch_size: {batch} does not split across the "
                f"{replicas} replicas of distribute.strategy {recipe.distribute.strategy!r}; "
                f"batch_size is the global batch: give a multiple of {replicas}")


def make_strategy(cfg, log=print):
    """The tf.distribute strategy the config names. Call before TensorFlow runs an op:
    logical CPU devices can only be made before its runtime starts."""
    from pipeline.backend import tf
    if cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if cfg.strategy == "multi_worker":
        members, task = cluster(cfg)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        count = len(members["chief"]) + len(members["worker"])
        log(f"distribute: MultiWorkerMirroredStrategy, {count} worker(s), "
            f"{strategy.num_replicas_in_sync} replica(s); this is {task['type']} "
            f"{task['index']}{' (the chief: it writes the run directory)' if is_chief(cfg) else ''}; "
            "batch_size is the global batch")
        return strategy
    if cfg.strategy == "tpu":
        return _tpu_strategy(cfg, log)
    devices = cfg.devices
    if isinstance(devices, int):
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            if devices > len(gpus):
                raise RecipeError(f"distribute.devices: {devices} replicas but this machine has "
                                  f"{len(gpus)} GPU(s)")
            devices = [f"/gpu:{i}" for i in range(devices)]
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
            except RuntimeError:
                # Already started (a second run in one process): keep what exists.
                pass
            available = len(tf.config.list_logical_devices("CPU"))
            if available < devices:
                raise RecipeError(f"distribute.devices: {devices} CPU replicas asked for, but "
                                  f"TensorFlow already started with {available} in this "
                                  "process; run the recipe in a new process")
            devices = [f"/cpu:{i}" for i in range(devices)]
    strategy = tf.distribute.MirroredStrategy(devices)
    log(f"distribute: MirroredStrategy over {strategy.num_replicas_in_sync} replica(s) "
        f"({', '.join(devices) if devices else 'every GPU'}); batch_size is the global batch")
    return strategy


def _tpu_strategy(cfg, log):
    """TPUStrategy as TensorFlow's TPU guide sets it up (untested: no TPU here)."""
    from pipeline.backend import tf
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # pylint: disable=broad-except
        # The resolver raises ValueError, NotFoundError, ... when no TPU answers.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RecipeError(f"distribute.strategy tpu: no TPU at "
                          f"{cfg.tpu or 'the default address'}: {first}") from None
    log(f"distribute: TPUStrategy, {strategy.num_replicas_in_sync} replica(s)")
    return strategy
