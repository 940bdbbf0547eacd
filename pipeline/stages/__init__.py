"""The stage registry: recipe stage types → Stage classes.

To add a stage, write `pipeline/stages/<name>.py` with a `Stage` subclass and
add it to `STAGES`.
"""
from pipeline.errors import RecipeError
from pipeline.stages.as_is import AsIs
from pipeline.stages.base import Stage
from pipeline.stages.cluster import Cluster
from pipeline.stages.distill import Distill
from pipeline.stages.int4_aware import Int4Aware
from pipeline.stages.low_rank import LowRank
from pipeline.stages.prune import Prune
from pipeline.stages.prune_channels import PruneChannels
from pipeline.stages.quantize import Quantize
from pipeline.stages.train import Train

STAGES = {
    "train": Train,
    "prune": Prune,
    "prune_channels": PruneChannels,
    "cluster": Cluster,
    "quantize": Quantize,
    "distill": Distill,
    "low_rank": LowRank,
    "int4_aware": Int4Aware,
    "as_is": AsIs,
}


def get(stage_type: str, where: str = "stages") -> type:
    """Returns the Stage class registered as `stage_type`.

        >>> get("prune").Config().target_sparsity
        0.8

    Raises:
      RecipeError: listing the known stage types when the name is unknown.
    """
    try:
        return STAGES[stage_type]
    except (KeyError, TypeError):
        raise RecipeError(
            f"{where}: unknown stage type {stage_type!r}; known stage types: "
            f"{', '.join(sorted(STAGES))}") from None


__all__ = ["STAGES", "Stage", "get"]
