"""Filters of the runs table (the runs screen's `/`, `nnlib runs list --filter`): terms
separated by spaces, all of which a run must meet.

    lr<0.1  batch_size>=64  dataset=glyphs  optimizer!=sgd  best>90%
    tag:baseline  state:crashed  spirals   "two words"

`KEY OP VALUE` compares a field of the run (OP one of < <= > >= = !=): the table's own
(name, state, dataset, arch, epochs, best, test, duration, parent, tags, note) or any key of
its config.json, top level or dotted (trainer.optimizer.beta1). < <= > >= need a number
(`90%` is 0.9); = and != compare numbers as numbers and text without regard to case. A run
without the field meets no comparison but !=. `tag:NAME` a run tagged NAME, `state:NAME` a
run in that state; any other term is text the row must contain (a word
made like KEY OP VALUE, such as `pad=2`, is read as a comparison).

A filter that cannot mean anything is a FilterError (a ValueError, one line) naming the term
and what was expected; nothing else is raised, whatever the text.
"""

from __future__ import annotations

import math
import operator
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._validate import did_you_mean, is_number
from .runindex import STATES

#: The comparisons that need a number on both sides.
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
ORDERING = tuple(_ORDER)
#: KEY OP VALUE, KEY a name or a dotted path; the longer operators first (`<=` is not `<`).
_COMPARISON = re.compile(r"([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>)(.*)", re.DOTALL)
_PREFIXED = re.compile(r"([A-Za-z_]\w*):(.*)", re.DOTALL)
#: The prefixed terms, each with the example its error gives.
_PREFIX_EXAMPLES = {"tag": "baseline", "state": "crashed"}
PREFIXES = tuple(_PREFIX_EXAMPLES)
#: The field a prefixed term asks to equal its name.
_PREFIX_FIELDS = {"tag": "tags", "state": "state"}
#: Another spelling of an operator.
_SAME_OP = {"==": "="}
#: The fields every run has (RunRow.fields), so a filter on them is never "unknown".
OWN_FIELDS = (
    "name",
    "state",
    "dataset",
    "arch",
    "epochs",
    "best",
    "test",
    "duration",
    "peak_rss",
    "samples_per_sec",
    "parent",
    "tags",
    "note",
)
EXAMPLE = "e.g. lr<0.1, dataset=glyphs, tag:baseline, state:crashed or a word"


class FilterError(ValueError):
    """A term that is not a filter: one line naming it and what was expected."""


@dataclass(frozen=True)
class Term:
    """One condition: kind "text", "tag", "state" or "compare"."""

    kind: str
    value: str
    key: str = ""
    op: str = ""
    number: float | None = None

    def matches(self, fields: Mapping[str, Any], text: str) -> bool:
        if self.kind == "text":
            return self.value.lower() in text.lower()
        if self.kind in _PREFIX_FIELDS:  # tag:NAME is tags=NAME, state:NAME is state=NAME
            return self._equals(fields.get(_PREFIX_FIELDS[self.kind], ()))
        return self._compare(fields.get(self.key))

    def _compare(self, found: Any) -> bool:
        if found is None:
            return self.op == "!="
        if self.op in ORDERING:
            number = _real(found)
            return (
                number is not None
                and self.number is not None
                and _ORDER[self.op](number, self.number)
            )
        return self._equals(found) == (self.op == "=")

    def _equals(self, found: Any) -> bool:
        """What = and != ask of a field: numbers equal as numbers, text without regard to
        case, a list (tags) when one of its items is the text."""
        if isinstance(found, list | tuple):
            return any(self.value.lower() == str(v).lower() for v in found)
        number = _real(found)
        if number is not None and self.number is not None:
            return math.isclose(number, self.number, rel_tol=1e-9, abs_tol=1e-12)
        return str(found).lower() == self.value.lower()


def _real(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _number(text: str) -> float | None:
    """`0.1`, `1e-3`, `90%` (0.9) as a finite number, else None."""
    text = text.strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Filter:
    """The terms of a filter; an empty filter lets every run through."""

    terms: tuple[Term, ...] = ()

    def matches(self, fields: Mapping[str, Any], text: str) -> bool:
        return all(term.matches(fields, text) for term in self.terms)

    def check_keys(self, known: Iterable[str]) -> None:
        """FilterError for a comparison on a field no run has (a typo, likely)."""
        known = {*OWN_FIELDS, *known}
        for term in self.terms:
            if term.kind == "compare" and term.key not in known:
                raise FilterError(
                    f"no run has a field {term.key!r}{did_you_mean(term.key, known)}; "
                    "fields: name, state, dataset, arch, epochs, best, test, tags, or a "
                    "config key such as lr"
                )


def parse(text: str) -> Filter:
    """The filter `text` says (see the module's docstring); FilterError when it cannot."""
    try:
        words = shlex.split(text)
    except ValueError:
        raise FilterError(f"filter {text!r}: a quote is not closed") from None
    return Filter(tuple(_term(word) for word in words if word))


def _term(word: str) -> Term:
    """One word of a filter as its term: a prefixed name, a comparison or text."""
    comparison = _COMPARISON.fullmatch(word)
    if comparison:  # never also prefixed: a key runs on to its operator, a prefix to its colon
        return _comparison_term(word, *comparison.groups())
    prefixed = _PREFIXED.fullmatch(word)
    if prefixed:
        return _prefixed_term(word, prefixed.group(1), prefixed.group(2))
    if word[0] in "<>=!":
        raise FilterError(f"{word!r}: expected KEY OP VALUE ({EXAMPLE})")
    return Term("text", word)


def _prefixed_term(word: str, prefix: str, value: str) -> Term:
    """`tag:NAME` or `state:NAME` (a known state); a word with another colon is text unless
    its prefix looks like a misspelt one."""
    kind = prefix.lower()
    if kind not in PREFIXES:
        guess = did_you_mean(kind, PREFIXES)
        if not guess:
            return Term("text", word)  # words with a colon: a time, a URL
        raise FilterError(
            f"unknown filter {prefix + ':'!r} in {word!r}{guess}; expected tag:NAME or state:NAME"
        )
    if not value:
        example = _PREFIX_EXAMPLES[kind]
        raise FilterError(f"{word!r}: expected a name after {kind}:, e.g. {kind}:{example}")
    return Term(kind, _known_state(word, value) if kind == "state" else value)


def _known_state(word: str, value: str) -> str:
    """The state `state:VALUE` names, in lower case; FilterError unless it is one."""
    state = value.lower()
    if state not in STATES:
        raise FilterError(
            f"unknown state {state!r} in {word!r}{did_you_mean(state, STATES)}; "
            f"expected one of {', '.join(STATES)}"
        )
    return state


def _comparison_term(word: str, key: str, op: str, value: str) -> Term:
    """`KEY OP VALUE`, its value checked: there, and a number for < <= > >=."""
    op = _SAME_OP.get(op, op)
    value = value.strip()
    if not value:
        raise FilterError(f"{word!r}: expected a value after {op!r}, e.g. lr<0.1")
    number = _number(value)
    if op in ORDERING and number is None:
        raise FilterError(f"{word!r}: expected a number after {op!r}, e.g. {key}{op}0.1")
    return Term("compare", value, key=key, op=op, number=number)
