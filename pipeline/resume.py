"""`--resume`: what an earlier run into the same directory left that this run may reuse.

A run records its recipe's name in `run.json` and, in each stage's
`metrics.json`, a configuration hash chained over everything the stage's
model depends on: the model, the data (and the size and time of its files),
the seed, and this and every earlier stage's type and settings. With
`--resume`, greenlite takes the run directory's latest run (one killed
outright, one that failed, or the completed one), reuses each stage whose
hash still matches, and from the first that does not (a changed recipe, or
the stage that was interrupted) trains again; an interrupted stage continues
from its last finished epoch (keras.callbacks.BackupAndRestore checkpoints
under `.backup/`, see `backup_dir`). Export, benchmarks and the report are
always redone.
"""
import glob
import hashlib
import json
import os
import shutil
import tempfile

from pipeline.errors import GreenliteError

RUN_FILE = "run.json"
BACKUP_DIR = ".backup"


def stage_hashes(recipe):
    """One hash per stage, each over the model, data, seed and the stages up to it."""
    from pipeline import config as config_lib
    base = {"model": config_lib.to_dict(recipe.model), "data": config_lib.to_dict(recipe.data),
            "seed": recipe.seed, "deterministic": recipe.deterministic,
            "inputs": _input_fingerprints(recipe)}
    digest = _hash(base)
    hashes = []
    for spec in recipe.stages:
        digest = _hash({"previous": digest, "name": spec.name, "type": spec.type,
                        "config": config_lib.to_dict(spec.config)})
        hashes.append(digest)
    return hashes


def run_record(recipe):
    """What `run.json` holds."""
    return {"recipe": recipe.name, "stage_hashes": stage_hashes(recipe)}


def locate(target, recipe):
    """The directory of the latest run into `target` that `recipe` can resume.

    In order: a staging directory whose process is gone (a run killed
    outright), `<target>.failed` (a run that stopped on an error), `target`
    itself (a completed run). Raises GreenliteError, touching nothing, when
    there is none or it is another recipe's run.
    """
    from pipeline.rundir import dead_staging_dirs
    target = os.path.abspath(target)
    candidates = dead_staging_dirs(target) + [
        path for path in (target + ".failed", target) if os.path.isdir(path)]
    # The latest run first: run.json is written when a run starts.
    runs = sorted((path for path in candidates if os.path.isfile(os.path.join(path, RUN_FILE))),
                  key=lambda path: os.path.getmtime(os.path.join(path, RUN_FILE)), reverse=True)
    if not runs:
        raise GreenliteError(
            f"--resume: {target} holds no run to resume (no completed, failed or killed "
            "greenlite run of this version); run without --resume to start one")
    with open(os.path.join(runs[0], RUN_FILE)) as f:
        earlier = json.load(f).get("recipe")
    if earlier != recipe.name:
        raise GreenliteError(
            f"--resume: {runs[0]} holds a run of recipe {earlier!r}, not {recipe.name!r}; "
            "give another --workdir, or run without --resume to replace it")
    return runs[0]


def adopt(source, target, log=print):
    """A staging directory for this run holding what `source` finished.

    A killed run's staging directory is taken over as it is; a failed run's
    directory (or one a search's stage cache filled) is moved; a completed run
    is copied (it stays the run directory until this run completes).
    """
    from pipeline.rundir import PID_FILE
    parent, base = os.path.split(os.path.abspath(target))
    if os.path.basename(source).startswith(f".tmp-{base}-"):
        staging = source
        log(f"resume: taking over the killed run's directory {source}")
    else:
        staging = tempfile.mkdtemp(prefix=f".tmp-{base}-", dir=parent)
        if source == os.path.abspath(target):
            shutil.rmtree(staging)
            shutil.copytree(source, staging)
            log(f"resume: starting from a copy of the completed run in {source}")
        else:
            os.rmdir(staging)
            os.rename(source, staging)
            # A failed run's directory, or the stages a search's cache copied.
            log(f"resume: starting from the finished stages kept in {source}")
    with open(os.path.join(staging, PID_FILE), "w") as f:
        f.write(str(os.getpid()))
    return staging


def reusable_stages(workdir, recipe):
    """How many leading stages of `recipe` finished in `workdir` with the same hash."""
    count = 0
    for index, (spec, digest) in enumerate(zip(recipe.stages, stage_hashes(recipe)), 1):
        path = os.path.join(workdir, stage_directory(index, spec.name), "metrics.json")
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            break
        if (record.get("config_hash") != digest
                or not os.path.isfile(os.path.join(workdir, record.get("model_path", "")))):
            break
        count += 1
    return count


def discard_from(workdir, first_stage, recipe, log=print):
    """Removes the stage directories from stage number `first_stage` on, and the
    exports and reports, so nothing of the earlier run survives unchecked."""
    gone = []
    for index, spec in enumerate(recipe.stages, 1):
        if index >= first_stage:
            gone += glob.glob(os.path.join(workdir, stage_directory(index, spec.name)))
            gone += glob.glob(os.path.join(workdir, "tensorboard", spec.name))
    # Exports, reports, and a stage's half-written directory (.tmp-NN_name-*).
    gone += [os.path.join(workdir, name) for name in os.listdir(workdir)
             if name == "export" or name.startswith(("report.", ".tmp-"))
             or name.endswith((".png", ".html"))]
    # Stage directories of stages the recipe no longer has.
    known = {stage_directory(i, s.name) for i, s in enumerate(recipe.stages, 1)}
    gone += [os.path.join(workdir, name) for name in os.listdir(workdir)
             if name[:2].isdigit() and name[2:3] == "_" and name not in known]
    for path in sorted(set(gone)):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return sorted(set(gone))


def keep_unchanged(workdir, recipe, log=print):
    """Keeps the earlier run's stages that are unchanged and finished, discards what
    follows them, says so; returns how many are kept."""
    count = reusable_stages(workdir, recipe)
    discarded = discard_from(workdir, count + 1, recipe)
    names = [spec.name for spec in recipe.stages]
    log(f"resume: {count} of {len(names)} stage(s) unchanged and finished"
        + (f" ({', '.join(names[:count])}): reused, not trained again" if count else "")
        + (f"; from {names[count]} on: run again" if count < len(names) else "")
        + (f"; removed {len(discarded)} earlier output(s) that follow it" if discarded else ""))
    return count


def reuse_stage(workdir, index, spec, count, custom_objects, log=print):
    """(the kept stage's model, its record marked reused)."""
    from models import saved
    directory = stage_directory(index, spec.name)
    with open(os.path.join(workdir, directory, "metrics.json")) as f:
        record = json.load(f)
    model = saved.load(os.path.join(workdir, record["model_path"]), custom_objects)
    record["reused"] = True
    log(f"[stage {index}/{count}] {spec.name}: reused from the earlier run ({directory}, "
        f"configuration {record['config_hash'][:12]}); Keras "
        f"{record.get('keras_split', 'test')} accuracy {record['keras_accuracy']:.4f}")
    return model, record


def stage_directory(index, name):
    return f"{index:02d}_{name}"


def backup_dir(workdir, index, name, digest):
    """Where a stage's training checkpoints go while it runs; the hash in the
    name keeps a changed stage from restoring a checkpoint of the old one."""
    return os.path.join(workdir, BACKUP_DIR, f"{stage_directory(index, name)}-{digest[:12]}")


def _hash(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _input_fingerprints(recipe):
    """Size and modification time of the files the model and data come from (each file a
    glob matches, for TFRecord shards given as `data/train-*.tfrecord`)."""
    paths = [recipe.data.path, recipe.model.custom_objects,
             (recipe.model.options or {}).get("path"), recipe.model.name]
    found = {}
    for path in paths:
        if not isinstance(path, str):
            continue
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        found.update({m: _fingerprint(m) for m in matches if os.path.exists(m)})
    return found


def _fingerprint(path):
    if os.path.isfile(path):
        stat = os.stat(path)
        return [stat.st_size, stat.st_mtime_ns]
    files = total = latest = 0
    for root, _, names in os.walk(path):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            files, total, latest = files + 1, total + stat.st_size, max(latest, stat.st_mtime_ns)
    return [files, total, latest]
