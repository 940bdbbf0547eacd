"""pipeline.config: typed configs built from YAML values, with messages that name the key."""
import dataclasses
from typing import Literal, Optional

import pytest

from pipeline.config import at_least, between, build, to_dict
from pipeline.errors import RecipeError


@dataclasses.dataclass
class Inner:
    rate: float = dataclasses.field(default=0.5, metadata=between(0, 1, high_open=True))


@dataclasses.dataclass
class Example:
    count: int = dataclasses.field(default=1, metadata=at_least(1))
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    names: list[str] = dataclasses.field(default_factory=list)
    limit: Optional[int] = None
    inner: Inner = dataclasses.field(default_factory=Inner)

    def validate(self):
        if self.mode == "b" and not self.names:
            raise ValueError("names: required when mode is 'b'")


def test_defaults_and_values():
    cfg = build(Example, {"count": 3, "names": ["x"], "inner": {"rate": 0}}, "ex")
    assert cfg == Example(count=3, names=["x"], inner=Inner(rate=0.0))
    assert build(Example, None, "ex") == Example()


def test_round_trip():
    cfg = build(Example, {"count": 2, "mode": "b", "names": ["n"], "limit": 4}, "ex")
    assert build(Example, to_dict(cfg), "ex") == cfg


@pytest.mark.parametrize("raw, message", [
    ({"cuont": 3}, "ex.cuont: unknown key; allowed keys: count, mode, flag, names, limit, inner"),
    ({"count": 0}, "ex.count: got 0; expected an integer >= 1"),
    ({"count": 1.5}, "ex.count: got 1.5; expected an integer >= 1"),
    ({"count": True}, "ex.count: got True; expected an integer >= 1"),
    ({"mode": "c"}, "ex.mode: got 'c'; allowed values: 'a', 'b'"),
    ({"flag": "yes"}, "ex.flag: got 'yes'; expected true or false"),
    ({"names": "x"}, "ex.names: got 'x'; expected a list"),
    ({"names": [1]}, "ex.names[0]: got 1; expected a string"),
    ({"inner": {"rate": 1}}, "ex.inner.rate: got 1; expected a number in [0, 1)"),
    ({"inner": 3}, "ex.inner: got 3; expected a mapping of settings"),
    ({"mode": "b"}, "ex: names: required when mode is 'b'"),
])
def test_errors_name_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(RecipeError) as e:
        build(Example, raw, "ex")
    assert str(e.value) == message
