"""What a running stage may know about its run."""
import dataclasses
import os
from typing import Callable, Optional

from pipeline.structure import Claims


@dataclasses.dataclass
class RunContext:
    """The run context handed to `Stage.run`.

    Attributes:
      workdir: the run directory.
      seed: the recipe's seed; stages seed their own randomness from it.
      stage_name: this stage's name in the recipe.
      stage_dir: a directory the stage may write extra files to; it becomes
        `workdir/NN_<stage>/` when the stage succeeds.
      models: the models returned by earlier stages, by stage name (teachers).
      log: prints one progress line.
      metrics: the stage adds figures here for the report (JSON values).
      claims: what the previous stage promises about the input model's
        kernels (pipeline/structure.py).
      custom_objects: {class name: class} the run's saved models may hold
        (pipeline/custom_objects.py), for loading a teacher or student file.
      output_claims: set by a stage that promises structure in its output
        model; the runner verifies it in the Keras model and in every
        exported file, and hands it to the next stage. None: no promise.
      backup_dir: see `fit_backup_dir`.
    """
    workdir: str
    seed: int
    stage_name: str
    stage_dir: str
    models: dict = dataclasses.field(default_factory=dict)
    log: Callable[[str], None] = print
    metrics: dict = dataclasses.field(default_factory=dict)
    claims: Claims = dataclasses.field(default_factory=Claims)
    output_claims: Optional[Claims] = None
    custom_objects: dict = dataclasses.field(default_factory=dict)
    # Where training checkpoints go (keras.callbacks.BackupAndRestore, one
    # subdirectory per fit) so a killed run resumes mid-stage; None: none.
    backup_dir: Optional[str] = None
    fits: int = 0

    def fit_backup_dir(self):
        """The checkpoint directory of the stage's next fit (None without backups)."""
        if self.backup_dir is None:
            return None
        self.fits += 1
        return os.path.join(self.backup_dir, f"fit{self.fits}")

    @property
    def tensorboard_dir(self):
        """Where this stage's TensorBoard logs go: workdir/tensorboard/<stage>."""
        return os.path.join(self.workdir, "tensorboard", self.stage_name)
