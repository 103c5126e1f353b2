"""Lessons are data: one JSON file per lesson in this package, read and checked here.

A lesson is a short sequence of steps. Each step has a title and a few lines of explanation
(with its formula, in plain Unicode), in every language of LANGS; optionally what to look at
(a dashboard panel, the keys it names), the nnlib code beside the formula (an object's real
source, read with inspect, its lines that compute the formula marked by a regular expression,
so the marks survive edits), and a task the app checks (a named predicate of `checks` over the
run's state, with the keys that complete it). The experiment is the project's own config
(`ExperimentConfig` fields), so a lesson's run is a normal run with a normal run log.

Reading is strict: a file that is not a lesson (not JSON, a field missing, a text in one
language only, an unknown check) is one LessonError naming the file and the field, never
another exception. That the references resolve (panels, keys, datasets, code, patterns) is
`validate.problems`' business: it needs the app and nnlib, which reading does not.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnlib._files import read_regular
from nnlib.config import ConfigError, ExperimentConfig

from .checks import CHECKS

#: The languages every text is written in.
LANGS = ("en", "zh")
#: A lesson file is a few kilobytes of text; anything past this is not one.
MAX_LESSON_BYTES = 256 * 1024
#: What a step may ask of the run when the learner goes to it.
RUN_STATES = ("paused", "running")
#: The config fields a lesson may not set: where a run goes is the user's business.
NOT_IN_LESSONS = frozenset({"run_dir", "data_dir", "parent_run", "parent_step"})


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Texts:
    """One text in every language of LANGS."""

    by_lang: Mapping[str, str]

    def __call__(self, lang: str) -> str:
        return self.by_lang[lang]


@dataclass(frozen=True)
class Mark:
    """Lines of the code that compute (part of) the formula: every line `pattern` (a regular
    expression) matches, labelled with `formula`."""

    pattern: str
    formula: str


@dataclass(frozen=True)
class Code:
    """The source of an nnlib object, "module:Qualified.name", with its marked lines."""

    target: str
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Task:
    """What the app checks: the predicate `check` of `checks.CHECKS` with `args`; `keys` are
    the keys that complete it from the step's start (the hint, and the scripted run)."""

    check: str
    args: Mapping[str, Any]
    text: Texts
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    title: Texts
    text: Texts
    look: Texts | None = None
    #: The dashboard panel shown and focused when the learner goes to the run.
    panel: str | None = None
    #: The keys the text names (each must do something on the dashboard).
    keys: tuple[str, ...] = ()
    code: tuple[Code, ...] = ()
    task: Task | None = None
    #: Paused or running when the learner goes to the run (None: as it is).
    run: str | None = None


@dataclass(frozen=True)
class Lesson:
    id: str
    title: Texts
    summary: Texts
    #: ExperimentConfig fields; "dataset" may be a list: the first one on disk is used.
    experiment: Mapping[str, Any]
    steps: tuple[Step, ...]

    def datasets(self) -> list[str]:
        """The datasets the lesson can run on, preferred first."""
        dataset = self.experiment["dataset"]
        return list(dataset) if isinstance(dataset, list) else [dataset]

    def config(self, on_disk: set[str]) -> ExperimentConfig:
        """The experiment, on the first of its datasets that is on disk (or the last)."""
        names = self.datasets()
        dataset = next((name for name in names if name in on_disk), names[-1])
        return ExperimentConfig(**{**self.experiment, "dataset": dataset})


class _Reader:
    """Reads one file's JSON into a Lesson; every refusal names the file and the field."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, expected: str, value: Any = None, shown: bool = True) -> LessonError:
        got = f", got {_shown(value)}" if shown else ""
        return LessonError(f"{self.name}: {where}: expected {expected}{got}")

    def obj(self, value: Any, where: str, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, "an object", value)
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(where, f"the field {missing[0]!r}", shown=False)
        unknown = sorted(set(value) - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise self.fail(f"{where}.{unknown[0]}", f"one of the fields {allowed}", shown=False)
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "a non-empty string", value)
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, "a list of strings", value)
        return tuple(self.string(item, f"{where}[{i}]") for i, item in enumerate(value))

    def texts(self, value: Any, where: str) -> Texts:
        if not isinstance(value, dict) or set(value) != set(LANGS):
            raise self.fail(where, f"an object with a text in each of {', '.join(LANGS)}", value)
        return Texts({lang: self.string(value[lang], f"{where}.{lang}") for lang in LANGS})

    def lesson(self, data: Any) -> Lesson:
        top = self.obj(data, "the file", {"id", "title", "summary", "experiment", "steps"}, set())
        steps = top["steps"]
        if not isinstance(steps, list) or not steps:
            raise self.fail("steps", "a non-empty list of steps", steps)
        return Lesson(
            self.string(top["id"], "id"),
            self.texts(top["title"], "title"),
            self.texts(top["summary"], "summary"),
            self.experiment(top["experiment"]),
            tuple(self.step(step, f"steps[{i}]") for i, step in enumerate(steps)),
        )

    def experiment(self, value: Any) -> dict[str, Any]:
        known = {f.name for f in dataclasses.fields(ExperimentConfig)} - NOT_IN_LESSONS
        fields = self.obj(value, "experiment", {"dataset", "arch"}, known)
        dataset = fields["dataset"]
        names = self.strings(dataset, "experiment.dataset") if isinstance(dataset, list) else None
        if names is not None and not names:
            raise self.fail("experiment.dataset", "a dataset name or a non-empty list", dataset)
        try:
            for name in names or [dataset]:
                ExperimentConfig(**{**fields, "dataset": name})
        except (ConfigError, TypeError) as error:
            raise LessonError(f"{self.name}: experiment: {error}") from None
        return dict(fields)

    def step(self, value: Any, where: str) -> Step:
        optional = {"look", "panel", "keys", "code", "task", "run"}
        fields = self.obj(value, where, {"title", "text"}, optional)
        run = fields.get("run")
        if run is not None and run not in RUN_STATES:
            raise self.fail(f"{where}.run", f"one of {', '.join(RUN_STATES)}", run)
        code = fields.get("code", [])
        if not isinstance(code, list):
            raise self.fail(f"{where}.code", "a list of code references", code)
        return Step(
            self.texts(fields["title"], f"{where}.title"),
            self.texts(fields["text"], f"{where}.text"),
            self.texts(fields["look"], f"{where}.look") if "look" in fields else None,
            self.string(fields["panel"], f"{where}.panel") if "panel" in fields else None,
            self.strings(fields.get("keys", []), f"{where}.keys"),
            tuple(self.code(item, f"{where}.code[{i}]") for i, item in enumerate(code)),
            self.task(fields["task"], f"{where}.task") if "task" in fields else None,
            run,
        )

    def code(self, value: Any, where: str) -> Code:
        fields = self.obj(value, where, {"object", "marks"}, set())
        target = self.string(fields["object"], f"{where}.object")
        if not re.fullmatch(r"[\w.]+:[\w.]+", target):
            raise self.fail(f"{where}.object", "'module:Qualified.name'", target)
        marks = fields["marks"]
        if not isinstance(marks, list) or not marks:
            raise self.fail(f"{where}.marks", "a non-empty list of marks", marks)
        return Code(target, tuple(self.mark(m, f"{where}.marks[{i}]") for i, m in enumerate(marks)))

    def mark(self, value: Any, where: str) -> Mark:
        fields = self.obj(value, where, {"pattern", "formula"}, set())
        pattern = self.string(fields["pattern"], f"{where}.pattern")
        try:
            re.compile(pattern)
        except re.error as error:
            raise self.fail(
                f"{where}.pattern", f"a regular expression ({error})", pattern
            ) from None
        return Mark(pattern, self.string(fields["formula"], f"{where}.formula"))

    def task(self, value: Any, where: str) -> Task:
        fields = self.obj(value, where, {"check", "text", "keys"}, {"args"})
        check = self.string(fields["check"], f"{where}.check")
        if check not in CHECKS:
            raise self.fail(f"{where}.check", f"one of {', '.join(sorted(CHECKS))}", check)
        args = fields.get("args", {})
        if not isinstance(args, dict):
            raise self.fail(f"{where}.args", "an object", args)
        declared = CHECKS[check].args
        if set(args) != set(declared):
            names = ", ".join(declared) or "no arguments"
            raise self.fail(f"{where}.args", f"{check}'s arguments: {names}", args)
        for name, kind in declared.items():
            ok = isinstance(args[name], kind) and not isinstance(args[name], bool)
            if not ok:
                raise self.fail(f"{where}.args.{name}", kind.__name__, args[name])
        return Task(
            check,
            dict(args),
            self.texts(fields["text"], f"{where}.text"),
            self.strings(fields["keys"], f"{where}.keys"),
        )


def _shown(value: Any) -> str:
    """A value in an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse(data: bytes, name: str) -> Lesson:
    """The lesson in `data` (a file's bytes); LessonError naming `name` if it is not one."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise LessonError(f"{name}: not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise LessonError(f"{name}: not JSON: {error.msg} at line {error.lineno}") from None
    except RecursionError:
        raise LessonError(f"{name}: not JSON a lesson can be: nested too deeply") from None
    return _Reader(name).lesson(document)


def load(path: Path) -> Lesson:
    """The lesson file at `path` (a regular file, not followed through a link)."""
    return parse(read_regular(path, "lesson file", LessonError, limit=MAX_LESSON_BYTES), path.name)


def folder() -> Path:
    """Where the lesson files are: package data beside this module."""
    return Path(__file__).resolve().parent


def load_all(where: Path | None = None) -> list[Lesson]:
    """Every lesson of the package, in file name order; LessonError for the first bad one."""
    lessons = [load(path) for path in sorted((where or folder()).glob("*.json"))]
    ids = [lesson.id for lesson in lessons]
    for lesson in lessons:
        if ids.count(lesson.id) > 1:
            raise LessonError(f"{lesson.id}: two lesson files have this id")
    return lessons
