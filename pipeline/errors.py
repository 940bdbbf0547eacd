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
    status 2; any other exception is a bug and keeps its traceback.

        @errors.command("deploy")
        def main(argv=None):
            ...
    """
    import functools
    import sys

    def wrap(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except (GreenliteError, OSError) as e:
                print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
                return 2
        return run
    return wrap
