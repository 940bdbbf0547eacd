"""Errors caused by the user's input.

The CLI catches `GreenliteError` once and prints its message as one line with
a non-zero exit; anything else is a bug and keeps its traceback.
"""


class GreenliteError(Exception):
    """Bad input: the message says what was wrong and what is allowed."""


class RecipeError(GreenliteError):
    """A recipe or a `--set` override is invalid."""


class DataError(GreenliteError):
    """A data source is missing, unreadable or inconsistent."""


class ModelError(GreenliteError):
    """A model name, option or file is invalid."""


class ExportError(GreenliteError):
    """A model could not be converted to TFLite."""


def command(prog):
    """Decorates a command's `main(argv) -> status`: a GreenliteError (or an OSError on a
    path the user gave) becomes one line, `<prog>: error: <message>`, on stderr and exit
    status 2; Ctrl-C one line and status 130, SIGTERM one line and 143 (after the
    `with` blocks and `finally` clauses on the way out have run: no temporary
    directory is left behind); any other exception is a bug and keeps its traceback.

        @errors.command("deploy")
        def main(argv=None):
            ...
    """
    import functools
    import signal
    import sys
    import threading

    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so temporary
            # directories and child processes are cleaned up on the way out.
            previous = None
            if threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGTERM, _terminated)
            try:
                return main(*args, **kwargs)
            except (GreenliteError, OSError) as e:
                print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as e:
                # One line, not a traceback. Outputs are written atomically
                # (pipeline/files.py, pipeline/rundir.py): what was there is kept.
                how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted (Ctrl-C)"
                print(f"{prog}: {how}; every output is written whole or not at all, so none "
                      "is half-written", file=sys.stderr)
                return 143 if isinstance(e, Terminated) else 130
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        return run
    return wrap


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was, so `with` blocks and `finally` run."""


def _terminated(signum, frame):
    raise Terminated()
