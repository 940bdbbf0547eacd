"""docs/recipe-reference.md is what pipeline/recipe_reference.py writes from the
config dataclasses: a field added, a default changed or a comment edited without
regenerating the page fails here."""
import dataclasses
import os
from typing import Literal, Optional

from pipeline import recipe_reference
from pipeline.config import at_least, between

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "recipe-reference.md")


def test_the_page_is_what_the_dataclasses_say():
    with open(PAGE) as f:
        page = f.read()
    assert page == recipe_reference.reference(), (
        "docs/recipe-reference.md is stale: run python -m pipeline.recipe_reference > "
        "docs/recipe-reference.md")


@dataclasses.dataclass
class _Base:
    # Inherited: its comment comes from the base's source.
    epochs: int = dataclasses.field(default=10, metadata=at_least(1))


@dataclasses.dataclass
class _Example(_Base):
    """An example section."""
    # Open at 0, closed at 1.
    rate: float = dataclasses.field(default=1e-3, metadata=between(0, 1, low_open=True))
    mode: Literal["a", "b"] = "a"
    name: Optional[str] = None
    flag: bool = True
    items: list = dataclasses.field(default_factory=lambda: ["x", "y"])


def test_each_row_says_type_default_range_and_comment():
    lines = recipe_reference.section("example", _Example)
    assert lines[:4] == ["## example", "", "An example section.", ""]
    assert lines[6:11] == [
        "| `epochs` | int | `10` | >= 1 | Inherited: its comment comes from the base's source. |",
        "| `rate` | float | `0.001` | in (0, 1] | Open at 0, closed at 1. |",
        "| `mode` | one of `a`, `b` | `a` |  |  |",
        "| `name` | str or null | `null` |  |  |",
        "| `flag` | bool | `true` |  |  |",
    ]
    assert lines[11] == "| `items` | list | `[x, y]` |  |  |"
    assert "`rate`" not in "\n".join(recipe_reference.section("example", _Example,
                                                              skip=["rate"]))
