"""What a running stage may know about its run."""
import dataclasses
import os
from typing import Callable


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
      metrics: the stage adds figures here for the report (JSON values);
        `metrics["structure"]` holds the claims about its output model that
        the runner verifies (see pipeline/structure.py).
      structure: the claims about the input model, from the previous stage.
    """
    workdir: str
    seed: int
    stage_name: str
    stage_dir: str
    models: dict = dataclasses.field(default_factory=dict)
    log: Callable[[str], None] = print
    metrics: dict = dataclasses.field(default_factory=dict)
    structure: dict = dataclasses.field(default_factory=dict)

    @property
    def tensorboard_dir(self):
        """Where this stage's TensorBoard logs go: workdir/tensorboard/<stage>."""
        return os.path.join(self.workdir, "tensorboard", self.stage_name)
