"""argparse value types of the `nnlib` flags: each refuses a bad value with a message that
names what was expected."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, with a message naming the bound."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def shape(text: str) -> tuple[int, ...]:
    """An input shape such as 28,28,1 or 28x28x1."""
    try:
        sizes = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 28,28,1, got {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 28,28,1, got {text!r}")
    return sizes


def column(text: str) -> int | str:
    """A CSV column: an index when the text is an integer (negative counts from the end),
    else a header name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a column name or index, got ''")
    try:
        return int(text)
    except ValueError:
        return text


def smoothing(text: str) -> float:
    """An EMA weight in [0, 1), checked as the runs index checks it."""
    from ..runindex import check_smoothing

    try:
        return check_smoothing(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None


def positive_float(text: str) -> float:
    """A finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value
