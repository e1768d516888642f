"""``--where`` conditions on runs: ``test_acc>0.9``, ``model=cnn``, ``status!=failed``,
or VergeML's ``test-acc -gt 0.9``. Several conditions (repeated ``--where``, or joined
with ``,`` or `` and ``) must all hold."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vml.errors import UsageError, did_you_mean
from vml.params import normalize_key

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
WORD_OPERATORS = {"-gt": ">", "-ge": ">=", "-lt": "<", "-le": "<=", "-eq": "=", "-ne": "!="}
_SYMBOLIC = re.compile(r"^\s*([A-Za-z_][\w\-.]*)\s*(>=|<=|!=|==|>|<|=)\s*(.*?)\s*$")
_WORDS = re.compile(r"^\s*([A-Za-z_][\w\-.]*)\s+(-gt|-ge|-lt|-le|-eq|-ne)\s+(.*?)\s*$")
_SPLIT = re.compile(r"\s*,\s*|\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One comparison of a column (a run field or hyperparameter) with a value."""

    column: str
    op: str
    value: Any
    text: str = ""

    def matches(self, actual: Any) -> bool:
        """Whether a run's value satisfies it; a run without the value never does
        (except for ``!=``)."""
        if actual is None:
            return self.op == "!="
        wanted = self.value
        if isinstance(actual, bool) or isinstance(wanted, bool):
            actual, wanted = str(actual).lower(), str(wanted).lower()
        elif isinstance(actual, (int, float)) and not isinstance(wanted, (int, float)):
            raise self.number_error()
        elif not isinstance(actual, (int, float)):
            # Text compares as text: ISO dates (training_start>2026-06-01) sort correctly.
            actual, wanted = str(actual), str(wanted)
        return OPERATORS[self.op](actual, wanted)

    def number_error(self) -> UsageError:
        """The error of comparing a column that holds numbers with text."""
        return UsageError(
            f"--where {self.text!r}: {self.column} is a number and {self.value!r} is not (compare it with a number)"
        )


def parse_conditions(texts: Iterable[str], known: set[str]) -> list[Condition]:
    """Parse ``--where`` texts; an unknown column or a malformed condition raises a
    ``UsageError`` with an example."""
    conditions = []
    for text in texts:
        for part in _SPLIT.split(text.strip()):
            if part:
                conditions.append(_parse(part, known))
    return conditions


def _parse(text: str, known: set[str]) -> Condition:
    match = _WORDS.match(text) or _SYMBOLIC.match(text)
    if match is None or not match[3] or match[3][0] in "<>=!":
        raise UsageError(f'cannot read --where {text!r} (write it like "test_acc>0.9" or "test-acc -gt 0.9")')
    column, op, raw = normalize_key(match[1]), WORD_OPERATORS.get(match[2], match[2]), match[3]
    if column not in known:
        hint = did_you_mean(column, known, "a column of ml list --format json, or a hyperparameter")
        raise UsageError(f"unknown column {match[1]!r} in --where {text!r} ({hint})")
    return Condition(column, op, _value(raw.strip("'\"")), text)


def _value(raw: str) -> Any:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw
