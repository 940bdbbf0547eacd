"""tf.distribute for the training stages: the recipe's `distribute:` section.

    distribute:
      strategy: mirrored     # default | mirrored
      devices: 2             # mirrored: this many replicas (GPUs, or logical CPUs
                             # when the machine has no GPU); or a list of device names

Every training stage builds its model, tfmot wrappers, optimizer and metrics
inside the strategy's scope (the runner enters it around each stage), so
Keras' fit() splits each batch across the replicas and tfmot's mask updates
are reduced across them. A stage's `batch_size` is the **global** batch: each
of N replicas sees batch_size / N examples per step, and the steps per epoch
(from which pruning schedules are derived) are those of the global batch, as
without distribution. Conversion, benchmarks and the report are unchanged.

Not here yet (issue 14): `multi_worker` (MultiWorkerMirroredStrategy with a
TF_CONFIG and the local `--workers` launcher), `tpu`, and resuming a run.
"""
import dataclasses
from typing import Any, Literal

from pipeline.errors import RecipeError

STRATEGIES = ("default", "mirrored")


@dataclasses.dataclass
class DistributeConfig:
    """How the training stages are distributed (tf.distribute)."""
    strategy: Literal[STRATEGIES] = "default"
    # mirrored: a replica count (GPUs; logical CPU devices on a machine
    # without GPUs) or device names ("/gpu:0", "/cpu:1"); default: every GPU.
    devices: Any = None

    def validate(self):
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
