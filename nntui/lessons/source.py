"""The code beside the formula: an nnlib object's real source, read from the installed package
with inspect (never a copy), with the lines a lesson marks.

A mark is a regular expression per line, not a line number, so it keeps pointing at the line
that computes the formula when the code around it changes; one that no longer matches any line
is a problem the lessons' data test reports (see `validate`).
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Code, LessonError


@dataclass(frozen=True)
class Source:
    """Lines of source with where they come from and, per line, the formulas marking it."""

    where: str  # e.g. nnlib/layers/dense.py:49 Dense.forward
    first: int  # the first line's number in its file
    lines: tuple[str, ...]
    formulas: tuple[tuple[str, ...], ...]  # per line, the formulas of the marks matching it


def resolve(target: str) -> Any:
    """The object named "module:Qualified.name"; LessonError if there is none."""
    module_name, _, qualname = target.partition(":")
    if not module_name.startswith("nnlib"):
        raise LessonError(f"{target}: the code shown must be nnlib's")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise LessonError(f"{target}: no module {module_name} ({error})") from None
    for part in qualname.split("."):
        try:
            found = inspect.getattr_static(found, part)
        except AttributeError:
            raise LessonError(f"{target}: {module_name} has no {qualname}") from None
    if isinstance(found, staticmethod | classmethod):
        found = found.__func__
    if isinstance(found, property):
        found = found.fget
    return found


def source(code: Code) -> Source:
    """The source of `code.target` with its marks; LessonError if it cannot be read."""
    found = resolve(code.target)
    try:
        lines, first = inspect.getsourcelines(found)
        path = Path(inspect.getsourcefile(found) or "?")
    except (OSError, TypeError) as error:
        raise LessonError(f"{code.target}: no source to show ({error})") from None
    text = textwrap.dedent("".join(lines)).rstrip("\n").split("\n")
    patterns = [(re.compile(mark.pattern), mark.formula) for mark in code.marks]
    formulas = tuple(
        tuple(formula for pattern, formula in patterns if pattern.search(line)) for line in text
    )
    package = Path(importlib.import_module("nnlib").__file__ or "").resolve().parent.parent
    try:
        shown = path.resolve().relative_to(package)
    except ValueError:
        shown = path
    qualname = code.target.partition(":")[2]
    return Source(f"{shown.as_posix()}:{first} {qualname}", first, tuple(text), formulas)


def unmatched(code: Code) -> list[str]:
    """The patterns of `code` that match no line of its source."""
    lines = source(code).lines
    return [
        mark.pattern
        for mark in code.marks
        if not any(re.search(mark.pattern, line) for line in lines)
    ]
