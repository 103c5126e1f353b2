"""That a lesson's references hold: every panel, key, dataset, architecture, code object and
marked-line pattern it names exists in this version of the app and of nnlib. The lessons' data
test runs it on every lesson file, so an edit that breaks one is caught there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from nnlib.datasets import DatasetInfo, available

from ..architectures import check_spec
from ..runstate import RunState
from .model import Code, Lesson, LessonError, Step
from .source import unmatched


def dashboard_keys() -> dict[str, set[str]]:
    """Per dashboard panel key ("" for the screen itself), the keys bound there."""
    from ..screens.dashboard import PANELS, DashboardScreen
    from ..screens.lessons import LessonDashboard

    def keys(bindings: list) -> set[str]:
        return {key.strip() for binding in bindings for key in binding.key.split(",")}

    found = {"": keys(DashboardScreen.BINDINGS) | keys(LessonDashboard.BINDINGS)}
    for entry in PANELS:
        found[entry.key] = keys(type(entry.make(RunState())).BINDINGS)
    return found


def problems(lesson: Lesson, datasets: list[DatasetInfo] | None = None) -> Iterator[str]:
    """What does not hold in `lesson`, one line each."""
    yield from _dataset_problems(lesson, datasets or available())
    bound = dashboard_keys()
    for index, step in enumerate(lesson.steps):
        where = f"{lesson.id}: steps[{index}]"
        yield from _key_problems(where, step, bound)
        yield from _code_problems(where, step.code)


def _key_problems(where: str, step: Step, bound: dict[str, set[str]]) -> Iterator[str]:
    """A step's panel that the dashboard does not have, or a key it tells the reader to
    press that is bound neither on the dashboard nor on that panel (`bound`)."""
    if step.panel is not None and step.panel not in bound:
        yield f"{where}.panel: no dashboard panel {step.panel!r}"
    usable = bound[""] | bound.get(step.panel or "", set())
    for key in [*step.keys, *(step.task.keys if step.task else ())]:
        if key not in usable:
            yield f"{where}: the key {key!r} does nothing on the dashboard or its panel"


def _dataset_problems(lesson: Lesson, datasets: list[DatasetInfo]) -> Iterator[str]:
    """A dataset the lesson names that `datasets` does not list, or on which its
    architecture cannot be built."""
    infos = {info.name: info for info in datasets}
    for name in lesson.datasets():
        if name not in infos:
            yield f"{lesson.id}: experiment.dataset: no dataset {name!r}"
            continue
        result = check_spec(lesson.experiment["arch"], infos[name])
        if result.error:
            yield f"{lesson.id}: experiment.arch on {name}: {result.error}"


def _code_problems(where: str, quotes: Sequence[Code]) -> Iterator[str]:
    """A step's quoted code whose target cannot be read, or whose patterns match no line of
    it (the code moved: the lesson must follow)."""
    for code in quotes:
        try:
            missing = unmatched(code)
        except LessonError as error:
            yield f"{where}.code: {error}"
            continue
        for pattern in missing:
            yield f"{where}.code: {code.target}: the pattern {pattern!r} matches no line"
