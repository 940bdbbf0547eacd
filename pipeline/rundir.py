"""A run directory the run owns: built aside, swapped in whole, debris cleaned.

A run writes into a staging directory beside its target
(`<parent>/.tmp-<name>-XXXX/`, holding a `greenlite.pid` file) and, when it
completes, replaces the target whole: the previous run's exports, TensorBoard
events and reports go with it, so a run directory never mixes two runs.
Until then the target is untouched, so bad input found mid-run (a model stuck
at chance, a NaN loss) leaves the previous run as it was. A run that fails
keeps what it had finished in `<target>.failed/` and says so.

A run killed outright (kill -9) leaves its staging directory behind; the next
run into the same target removes it, once its process is gone, and says so,
unless that run is `--resume`d (pipeline/resume.py): it then goes on in it.
"""
import contextlib
import os
import shutil
import tempfile

PID_FILE = "greenlite.pid"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_staging_dirs(target):
    """Staging directories of runs into `target` whose process is gone (killed runs)."""
    return _dead_dirs(target, (".tmp-",))


def _dead_dirs(target, kinds):
    """Directories `<kind><target name>-*` beside `target` that no live process owns."""
    parent, base = os.path.split(os.path.abspath(target))
    if not os.path.isdir(parent):
        return []
    prefixes = tuple(f"{kind}{base}-" for kind in kinds)
    return [os.path.join(parent, entry) for entry in sorted(os.listdir(parent))
            if entry.startswith(prefixes) and os.path.isdir(os.path.join(parent, entry))
            and not _running(os.path.join(parent, entry))]


def _running(path):
    """Whether the run that owns the staging directory `path` is another live process."""
    try:
        with open(os.path.join(path, PID_FILE)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    return bool(pid) and pid != os.getpid() and _alive(pid)


def clean_debris(target, log=print, keep=None):
    """Removes staging and half-swapped directories of earlier runs into `target`
    whose process is gone (except `keep`); returns their paths."""
    removed = []
    for path in _dead_dirs(target, (".tmp-", ".old-")):
        if keep and os.path.abspath(path) == os.path.abspath(keep):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    # Stage directories half-written inside the target by an older greenlite.
    if os.path.isdir(target):
        for entry in sorted(os.listdir(target)):
            if entry.startswith((".tmp-", ".old-")):
                shutil.rmtree(os.path.join(target, entry), ignore_errors=True)
                removed.append(os.path.join(target, entry))
    if removed:
        log(f"removed what earlier killed run(s) left behind: {', '.join(removed)}")
    return removed


class RunDirectory:
    """Context manager: yields the staging path; `commit()` swaps it in as the target.

        with RunDirectory("runs/default") as run_dir:
            ... write under run_dir.path ...
            run_dir.commit()
    """

    def __init__(self, target, log=print, staging=None):
        """`staging`: an existing staging directory to go on with (a resumed
        run's, pipeline/resume.py) instead of a new, empty one."""
        self.target = os.path.abspath(target)
        self.log = log
        self.path = staging
        self.committed = False

    def __enter__(self):
        clean_debris(self.target, self.log, keep=self.path)
        if self.path is not None:
            return self
        parent, base = os.path.split(self.target)
        os.makedirs(parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=f".tmp-{base}-", dir=parent)
        with open(os.path.join(self.path, PID_FILE), "w") as f:
            f.write(str(os.getpid()))
        return self

    def commit(self):
        """Replaces the target with the staged run (the old run goes whole)."""
        os.unlink(os.path.join(self.path, PID_FILE))
        parent, base = os.path.split(self.target)
        old = None
        if os.path.exists(self.target):
            old = tempfile.mkdtemp(prefix=f".old-{base}-", dir=parent)
            os.rmdir(old)
            os.rename(self.target, old)
            self.log(f"replacing the earlier run in {self.target}")
        os.rename(self.path, self.target)
        self.committed = True
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb):
        if self.committed or self.path is None:
            return False
        finished = [e for e in os.listdir(self.path) if e != PID_FILE]
        if exc_type is None or not finished:
            shutil.rmtree(self.path, ignore_errors=True)
            return False
        failed = self.target + ".failed"
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(failed)
        os.unlink(os.path.join(self.path, PID_FILE))
        os.rename(self.path, failed)
        self.log(f"this run failed; what it finished ({', '.join(sorted(finished))}) is kept in "
                 f"{failed}; {self.target} is as it was")
        return False
