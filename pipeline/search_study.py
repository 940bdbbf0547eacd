"""The Optuna side of a search: values as Optuna holds them, and the
bookkeeping that lets several processes share one study (who runs which
trial, which value sets are still unmeasured, a lock on the base run)."""
import contextlib
import itertools
import json
import math
import os
import socket


def suggest(trial, key, values):
    """A trial's value for one `search.space` entry: a choice from a list, or an
    int or float from {low, high[, step][, log]}."""
    if isinstance(values, dict):
        low, high = values["low"], values["high"]
        if all(isinstance(v, int) for v in (low, high, values.get("step", 1))):
            return trial.suggest_int(key, low, high, step=values.get("step", 1),
                                     log=values.get("log", False))
        return trial.suggest_float(key, low, high, step=values.get("step"),
                                   log=values.get("log", False))
    # Optuna's choices must be plain scalars: lists (formats) travel as JSON text.
    choices = [encoded(v) for v in values]
    return decoded(trial.suggest_categorical(key, choices))


def encoded(value):
    """A value as Optuna holds it (lists and dicts as JSON text; see `suggest`)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def decoded(value):
    """A trial's value as the recipe takes it (lists and dicts travel as JSON text)."""
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


# Who runs a trial: other processes on this host skip its RUNNING trials only
# while this process lives (a killed search's trial is run again on resume).
WORKER = f"{socket.gethostname()}:{os.getpid()}"


# A space with a range cannot be listed: a search on it stops after this many
# proposals in a row that repeat measured values.
MAX_REPEATS_IN_A_ROW = 20


# Listing a discrete space larger than this costs more than it saves.
MAX_LISTED_VALUE_SETS = 100_000


def counts(trial):
    """A finished trial that measured its values: not a repeat of an earlier
    trial's (same_as), not a claim given up as surplus."""
    return (trial.state.is_finished() and not trial.user_attrs.get("surplus")
            and trial.user_attrs.get("same_as") is None)


def unmeasured(study, space):
    """The value sets (tuples of Optuna values, in space order) no trial has
    measured, is running or has queued; None for a space with a range or too
    many value sets to list."""
    import optuna
    if any(isinstance(values, dict) for values in space.values()) or math.prod(
            len(values) for values in space.values()) > MAX_LISTED_VALUE_SETS:
        return None
    state = optuna.trial.TrialState
    # A queued trial holds its values apart until it runs.
    taken = {tuple((t.params or t.system_attrs.get("fixed_params", {})).get(key) for key in space)
             for t in study.get_trials(deepcopy=False,
                                       states=[state.COMPLETE, state.RUNNING, state.WAITING])}
    return [values for values in itertools.product(
        *([encoded(v) for v in values] for values in space.values())) if values not in taken]


def claimed_before(study, number):
    """Trials numbered below `number` that are finished or still being run."""
    import optuna
    claimed = 0
    for t in study.get_trials(deepcopy=False):
        if t.number >= number:
            continue
        if counts(t) or (t.state == optuna.trial.TrialState.RUNNING
                          and _owner_alive(t.user_attrs.get("worker"))):
            claimed += 1
    return claimed


def _owner_alive(worker):
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's trial: assume it is being run
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on `path` (created if missing) for the block."""
    import fcntl
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
