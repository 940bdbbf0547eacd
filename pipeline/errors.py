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
