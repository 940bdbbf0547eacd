"""Builds typed, validated config dataclasses from plain YAML values.

Every recipe section and every stage's `Config` is a dataclass. A field's
bounds and choices live in its metadata, next to its default:

    @dataclasses.dataclass
    class Config:
        epochs: int = dataclasses.field(default=10, metadata=at_least(1))

`build(Config, {"epochs": -1}, "stages.train")` raises
`RecipeError("stages.train.epochs: got -1; expected an integer >= 1")`.
A dataclass may also define `validate(self)` for checks across fields; it
raises `ValueError` and the message is prefixed with the section's path.
"""
import dataclasses
import types
import typing

from pipeline.errors import RecipeError


def at_least(low):
    """Field metadata: the value must be >= `low`."""
    return {"min": low}


def between(low, high, low_open=False, high_open=False):
    """Field metadata: the value must lie in the interval [low, high] (or open ends)."""
    return {"min": low, "max": high, "min_open": low_open, "max_open": high_open}


def build(cls, raw, where):
    """Returns `cls(**raw)` after checking keys, types and bounds.

    Args:
      cls: a dataclass type.
      raw: the mapping read from YAML (None means "all defaults").
      where: the dotted path of this mapping in the recipe, for messages.
    Raises:
      RecipeError: naming the key, the value received and what is allowed.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: got {raw!r}; expected a mapping of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        raise RecipeError(
            f"{_join(where, unknown[0])}: unknown key; allowed keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = _join(where, name)
        if name in raw:
            values[name] = _coerce(raw[name], hints[name], field.metadata, key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise RecipeError(f"{key}: missing; this key is required")
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise RecipeError(f"{where}: {e}") from None
    return obj


def to_dict(obj):
    """The inverse of `build`: plain values, suitable for YAML and JSON."""
    return dataclasses.asdict(obj)


def _join(where, key):
    return f"{where}.{key}" if where else str(key)


def _coerce(value, hint, meta, key):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], meta, key)
        # A choice of shapes, e.g. one name or a list of names: the first
        # that accepts the value; otherwise one line naming every choice.
        for choice in inner:
            try:
                return _coerce(value, choice, meta, key)
            except RecipeError:
                pass
        raise RecipeError(f"{key}: got {value!r}; expected "
                          + " or ".join(_noun(choice) for choice in inner))
    if origin is typing.Literal:
        if value not in args:
            raise RecipeError(
                f"{key}: got {value!r}; allowed values: {', '.join(map(repr, args))}")
        return value
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise RecipeError(f"{key}: got {value!r}; expected a list")
        item = args[0] if args else typing.Any
        return [_coerce(v, item, meta, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{key}: got {value!r}; expected a mapping")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if hint is typing.Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{key}: got {value!r}; expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key}: got {value!r}; expected {_describe('an integer', meta)}")
        return _check_bounds(value, meta, key, "an integer")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key}: got {value!r}; expected {_describe('a number', meta)}")
        _check_bounds(value, meta, key, "a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{key}: got {value!r}; expected a string")
        return value
    raise TypeError(f"unsupported config type {hint} at {key}")


# How a union's error names each choice: (one value, a list's items).
_NOUNS = {str: ("a string", "strings"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), bool: ("true or false", "booleans")}


def _noun(hint):
    """How an error names a value of type `hint` (for unions)."""
    if hint is list or typing.get_origin(hint) is list:
        item = (typing.get_args(hint) or (None,))[0]
        return "a list" + (f" of {_NOUNS[item][1]}" if item in _NOUNS else "")
    return _NOUNS[hint][0] if hint in _NOUNS else str(hint)


def _check_bounds(value, meta, key, noun):
    low, high = meta.get("min"), meta.get("max")
    too_low = low is not None and (value <= low if meta.get("min_open") else value < low)
    too_high = high is not None and (value >= high if meta.get("max_open") else value > high)
    if too_low or too_high:
        raise RecipeError(f"{key}: got {value!r}; expected {_describe(noun, meta)}")
    return value


def _describe(noun, meta):
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        left = "(" if meta.get("min_open") else "["
        right = ")" if meta.get("max_open") else "]"
        return f"{noun} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{noun} {'>' if meta.get('min_open') else '>='} {low}"
    if high is not None:
        return f"{noun} {'<' if meta.get('max_open') else '<='} {high}"
    return noun
