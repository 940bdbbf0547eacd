"""What a finished stage leaves in its directory's metrics.json, and the checks around it.

    record = stage_record.build(spec, "01_train", config_hash, "01_train/model.h5", model,
                                data, ctx, seconds, energy, keras3_copy)

The record is report.json's `stages[]` entry (pipeline/report.py documents
its keys) and what --resume reads back (pipeline/resume.py).
"""
import os

import numpy as np


def build(spec, directory, config_hash, saved, model, data, ctx, seconds, energy, keras3_copy):
    """The stage's record: where its model is, its Keras figures on the split the run is
    judged on, what it measured and claims, where its model was made."""
    from models.attention import unbounded_attention_layers
    from pipeline import training
    keras_accuracy, keras_ce = training.evaluate(model, data.judged)
    return {
        "name": spec.name, "type": spec.type, "dir": directory,
        # What --resume compares (pipeline/resume.py).
        "config_hash": config_hash,
        "model_path": os.path.join(directory, os.path.basename(saved)),
        "seconds": seconds,
        "energy": energy,
        "params": int(model.count_params()),
        # On the split the run is judged on (data.judged_on), as its files are.
        "keras_split": data.judged_on,
        "keras_accuracy": keras_accuracy,
        "keras_cross_entropy": keras_ce,
        "keras_perplexity": float(np.exp(keras_ce)),
        "metrics": ctx.metrics,
        "claims": ctx.output_claims.to_dict() if ctx.output_claims else None,
        # Where the stage's model was made (its variables live there).
        "distribute": distribution(model),
        # The stage's model for Keras 3 (NN_<stage>/model.keras), or why not.
        "keras3": keras3_copy,
        # Rewritten to a bounded mask before calibrated conversion (export/convert.py).
        "unbounded_attention": unbounded_attention_layers(model),
    }


def keras3_copy(model, tmp, directory, sample):
    """Writes the stage's model also as a Keras 3 .keras file in `tmp` (the stage's
    directory being written), checked on `sample`; returns {path, difference}, or
    {skipped: why} for a model that has no plain Keras 3 twin."""
    from models import keras3, saved
    from pipeline.errors import ModelError
    if isinstance(model, keras3.SavedModelSource) or saved.is_keras3(model):
        return {"skipped": "the stage's model is the Keras 3 model (or SavedModel) given"}
    if any(type(l).__name__ == "QuantizeWrapperV2" for l in model.layers):
        return {"skipped": "a QAT model is not a plain Keras model: its deliverable is the "
                           "int8 file"}
    try:
        difference = keras3.save_keras3(model, os.path.join(tmp, "model.keras"), sample)
    except ModelError as e:
        return {"skipped": str(e)}
    return {"path": os.path.join(directory, "model.keras"), "difference": difference}


def distribution(model):
    """Where a stage's model was made: its distribution strategy and replicas (one, for
    a model that has none: a Keras 3 model or a SavedModel on the post-training path)."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or not hasattr(strategy, "num_replicas_in_sync"):
        return {"strategy": "none", "replicas": 1}
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync}


def check_same_signature(stage, before, after):
    """A stage must keep its model's input and output shapes (the stage contract)."""
    shapes = lambda m: ([tuple(t.shape) for t in m.inputs], [tuple(t.shape) for t in m.outputs])
    if shapes(before) != shapes(after):
        raise RuntimeError(f"stage {stage} changed the model's signature from "
                           f"{shapes(before)} to {shapes(after)}")
