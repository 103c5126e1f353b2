"""Argument checks shared by layers, optimizers and the trainer (and the spec and filter
parsers' "did you mean").

Every check raises a ValueError that names the owner and the argument, so a bad value
typed into the CLI or the TUI reads as a sentence rather than a numpy traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import sys
from collections.abc import Iterable
from typing import TypeGuard


def is_number(value: object) -> TypeGuard[int | float]:
    """A number as JSON gives one: an int or a float, not a bool (Python's bool is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A number that is finite as a float: not NaN or infinite, and not an integer past a
    float's range (a JSON 10**400, for which math.isfinite raises OverflowError)."""
    return is_number(value) and abs(value) <= sys.float_info.max


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'maxpool'?)" when `word` is a likely typo of one of `choices`, else
    "" (difflib's ratio of at least 0.75: one letter left out of a 7-letter name is 0.92).
    Here, not in nnlib.spec, so that the runs filter can use it without the layers."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown(value: object, limit: int = 40) -> str:
    """`repr(value)` cut to about `limit` characters, for a message of one short line: a
    value a user sent may be an integer of thousands of digits (whose repr Python refuses
    past 4,300) or a long text."""
    if isinstance(value, numbers.Integral):  # a bool too: one digit, never past the limit
        digits = math.floor(int(value).bit_length() * math.log10(2)) + 1
        if digits > limit:  # never converted to text whole
            sign = "a negative" if value < 0 else "an"
            return f"{sign} integer of about {digits:,} digits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def positive_int(owner: str, name: str, value: object, high: int | None = None) -> int:
    """Return `value` as an int if it is an integer >= 1 (a numpy integer, or 3.0, too), and
    at most `high` when given (what a run log can hold, for a value it records).

    Integers are compared as integers: a huge one (10**400) is an int, not an overflow."""
    number = _whole(value)
    if number is None or number < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {shown(value)}")
    if high is not None and number > high:
        raise ValueError(f"{owner}: {name} must be at most {high}, got {shown(value)}")
    return number


def _whole(value: object) -> int | None:
    """`value` as an int if it is a whole real number (not a bool), else None. An Integral is
    converted exactly, never through a float that 10**400 overflows."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return int(number) if number.is_integer() else None  # inf and nan are not integers


def shape(owner: str, name: str, value: object) -> tuple[int, ...]:
    """Return a per-sample shape as a tuple of positive ints, e.g. [28, 28, 1] -> (28, 28, 1).

    Anything else (a string, a scalar, an empty or negative shape, 2.5) is a ValueError that
    names the owner and the value, never a TypeError from deep inside numpy."""
    dims: tuple[int, ...] = ()
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        # A 0-d array is Iterable, but iterating it raises TypeError; a bad size, ValueError.
        with contextlib.suppress(TypeError, ValueError):
            dims = tuple(positive_int(owner, name, d) for d in value)
    if not dims:
        raise ValueError(f"{owner}: {name} must be positive sizes, got {shown(value)}")
    return dims


def seed(owner: str, value: object) -> int | None:
    """Return `value` if it is None or an integer >= 0 (what numpy's default_rng needs), so
    that a bad seed reads as a ValueError naming it rather than numpy's TypeError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"{owner}: seed must be None or a non-negative integer, got {shown(value)}"
        )
    return int(value)


def non_negative_float(owner: str, name: str, value: object) -> float:
    """Return `value` as a float if it is finite and >= 0."""
    number = _finite_float(owner, name, value)
    if number < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {shown(value)}")
    return number


def positive_float(owner: str, name: str, value: object) -> float:
    """Return `value` as a float if it is finite and > 0."""
    number = _finite_float(owner, name, value)
    if number <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {shown(value)}")
    return number


def float_in(
    owner: str, name: str, value: object, low: float, high: float, include_high: bool = False
) -> float:
    """Return `value` as a float in [low, high) (or [low, high] with include_high)."""
    number = _finite_float(owner, name, value)
    ok = low <= number <= high if include_high else low <= number < high
    if not ok:
        bracket = "]" if include_high else ")"
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}{bracket}, got {shown(value)}")
    return number


def _finite_float(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be a number, got {shown(value)}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer (or a fraction) beyond a float: 10**400
        raise ValueError(
            f"{owner}: {name} must be a number within a float's range (±1.8e308), "
            f"got {shown(value)}"
        ) from None
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number, got {shown(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {name} must be finite, got {shown(value)}")
    return number
