"""How far a file may fall behind its reference: one type, one loss, one within rule.

A budget is on accuracy points (classifiers: `max_drop_points`) or on
perplexity percent (language models: `max_rise_percent`). Its `loss` of a
file's figures against a reference's is the one measure the quantization
doctor, the search (its space, front and `best`), the runtime gate's
agreement and the report's points column all use.

    >>> budget = Budget("max_drop_points", 2.0)
    >>> budget.loss({"accuracy": 0.95}, {"accuracy": 0.97})
    2.0...
    >>> budget.within({"accuracy": 0.95}, {"accuracy": 0.97})
    True
    >>> Budget.parse({"max_rise_percent": 5}).loss({"perplexity": 4.2}, {"perplexity": 4.0})
    5.0...
"""
import dataclasses
from typing import Mapping

KINDS = ("max_drop_points", "max_rise_percent")
# The figure each kind is on, and its unit in messages.
METRIC = {"max_drop_points": "accuracy", "max_rise_percent": "perplexity"}
UNIT = {"max_drop_points": "points", "max_rise_percent": "%"}
# Far below any difference a score can make (one example in a billion), far
# above float64's rounding of a loss.
ROUNDING = 1e-9


class BudgetError(ValueError):
    """A budget that is not one of KINDS with a number >= 0."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """`kind`: max_drop_points or max_rise_percent; `value`: the most loss allowed (>= 0)."""
    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise BudgetError(f"budget: got {self.kind!r}; allowed: {', '.join(KINDS)}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) \
                or not self.value >= 0:
            raise BudgetError(f"{self.kind}: got {self.value!r}; allowed: a number >= 0")

    @property
    def metric(self) -> str:
        """The figure the budget is on: 'accuracy' or 'perplexity'."""
        return METRIC[self.kind]

    @property
    def unit(self) -> str:
        return UNIT[self.kind]

    def loss(self, figures: Mapping, reference: Mapping) -> float:
        """Accuracy points below the reference's, or perplexity percent above it
        (negative when the file does better)."""
        if self.kind == "max_drop_points":
            return 100 * (reference["accuracy"] - figures["accuracy"])
        return 100 * (figures["perplexity"] / reference["perplexity"] - 1)

    def within(self, figures: Mapping, reference: Mapping, margin: float = 0.0) -> bool:
        """Whether the file's loss is at most the budget less `margin` (same unit)."""
        return self.allows(self.loss(figures, reference), margin)

    def allows(self, loss: float, margin: float = 0.0) -> bool:
        """Whether a loss already measured is at most the budget less `margin`.

        A file exactly at its budget is within it: 100 * (0.97 - 0.95) is
        2.0000000000000018 in floating point, and float rounding must not turn
        "2 points" into "outside a 2-point budget"."""
        return loss <= self.value - margin + ROUNDING

    def agrees(self, figures: Mapping, reference: Mapping) -> bool:
        """Whether the file is within the budget of the reference either way (two runtimes
        scoring one file: a file better than its reference disagrees as much as a worse one)."""
        return abs(self.loss(figures, reference)) <= self.value

    def to_dict(self) -> dict:
        """{"kind", "value"}: the shape report.json records a budget in."""
        return {"kind": self.kind, "value": self.value}

    def describe(self) -> str:
        return f"{self.kind} {self.value:g}"

    @classmethod
    def parse(cls, mapping: Mapping) -> "Budget":
        """A budget from {"kind": K, "value": V} (report.json) or {K: V} (a recipe)."""
        if set(mapping) == {"kind", "value"}:
            return cls(mapping["kind"], mapping["value"])
        if len(mapping) != 1:
            raise BudgetError(f"budget: got {dict(mapping)!r}; give one of {', '.join(KINDS)}, "
                              "e.g. {max_drop_points: 1}")
        (kind, value), = mapping.items()
        return cls(kind, value)

    @classmethod
    def for_task(cls, task: str, max_drop_points: float = 2.0,
                 max_rise_percent: float = 5.0) -> "Budget":
        """The budget that fits the task: perplexity for language models, else accuracy."""
        if task == "language_model":
            return cls("max_rise_percent", max_rise_percent)
        return cls("max_drop_points", max_drop_points)


def losses(figures: Mapping, reference: Mapping) -> dict:
    """Both measures at once, for records that show both: {accuracy, perplexity,
    drop_points, rise_percent} of `figures` against `reference`."""
    return {"accuracy": figures["accuracy"], "perplexity": figures["perplexity"],
            "drop_points": Budget("max_drop_points", 0).loss(figures, reference),
            "rise_percent": Budget("max_rise_percent", 0).loss(figures, reference)}
