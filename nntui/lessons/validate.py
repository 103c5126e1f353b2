"""That a lesson's references hold: every panel, key, dataset, architecture, code object and
marked-line pattern it names exists in this version of the app and of nnlib. The lessons' data
test runs it on every lesson file, so an edit that breaks one is caught there."""

from __future__ import annotations

from collections.abc import Iterator

from nnlib.datasets import DatasetInfo, available

from ..architectures import check_spec
from ..runstate import RunState
from .model import Lesson, LessonError
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
    infos = {info.name: info for info in datasets or available()}
    bound = dashboard_keys()
    for name in lesson.datasets():
        if name not in infos:
            yield f"{lesson.id}: experiment.dataset: no dataset {name!r}"
            continue
        result = check_spec(lesson.experiment["arch"], infos[name])
        if result.error:
            yield f"{lesson.id}: experiment.arch on {name}: {result.error}"
    for index, step in enumerate(lesson.steps):
        where = f"{lesson.id}: steps[{index}]"
        if step.panel is not None and step.panel not in bound:
            yield f"{where}.panel: no dashboard panel {step.panel!r}"
        usable = bound[""] | bound.get(step.panel or "", set())
        keys = [*step.keys, *(step.task.keys if step.task else ())]
        for key in keys:
            if key not in usable:
                yield f"{where}: the key {key!r} does nothing on the dashboard or its panel"
        for code in step.code:
            try:
                missing = unmatched(code)
            except LessonError as error:
                yield f"{where}.code: {error}"
                continue
            for pattern in missing:
                yield f"{where}.code: {code.target}: the pattern {pattern!r} matches no line"
