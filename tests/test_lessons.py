"""The lessons (`nntui --lessons`): the lesson files are valid data whose references hold, a
bad file is one clear error, progress survives leaving and a damaged progress file, the
language follows the locale, and each lesson can be followed to its end in the app, every
task completed by the keys it names."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from helpers import TIMEOUT, pilot_test, press, screen_text, until
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import Tabs

from nnlib.config import ExperimentConfig
from nnlib.datasets import available
from nntui.app import NNTui
from nntui.cli import main
from nntui.lessons import LANGS, UI, LessonError, lang_from_env, load_all
from nntui.lessons.model import parse
from nntui.lessons.progress import ProgressStore
from nntui.lessons.source import source
from nntui.lessons.validate import problems
from nntui.screens.lessons import LessonDashboard, LessonScreen, LessonsScreen

LESSONS = load_all()
GOOD = (Path(__file__).resolve().parent.parent / "nntui/lessons/a_regression.json").read_bytes()


def offline() -> list:
    """The datasets as on a machine without downloads: the lessons use glyphs, not MNIST."""
    return [
        dataclasses.replace(info, on_disk=False) if info.source == "download" else info
        for info in available()
    ]


# -- the data ----------------------------------------------------------------------------------
def test_there_are_five_lessons_and_every_reference_in_them_holds():
    assert [lesson.id for lesson in LESSONS] == [
        "a-regression",
        "b-four-equations",
        "c-relu",
        "d-layers",
        "e-cnn",
    ]
    assert [line for lesson in LESSONS for line in problems(lesson)] == []


def test_every_text_is_written_in_both_languages():
    def texts(lesson):
        yield lesson.title
        yield lesson.summary
        for step in lesson.steps:
            yield step.title
            yield step.text
            if step.look:
                yield step.look
            if step.task:
                yield step.task.text

    for lesson in LESSONS:
        for text in texts(lesson):
            assert all(text(lang).strip() for lang in LANGS)
            # Written for each language, not copied across.
            assert text("en") != text("zh")
    for key, text in UI.items():
        assert all(text(lang).strip() for lang in LANGS), key


def test_the_code_shown_is_nnlib_s_own_source_with_the_formula_lines_marked():
    import inspect

    from nnlib.layers.dense import Dense

    step = next(s for s in LESSONS[0].steps if s.code and "Dense.backward" in s.code[0].target)
    shown = source(step.code[0])
    lines, first = inspect.getsourcelines(Dense.backward)
    assert shown.first == first and len(shown.lines) == len(lines)
    assert shown.where.startswith("nnlib/layers/dense.py:")
    marked = [line.strip() for line, f in zip(shown.lines, shown.formulas, strict=True) if f]
    assert marked == [
        "np.matmul(self._x.T, grad, out=weights.grad)",
        "np.sum(grad, axis=0, out=bias.grad)",
        "return grad @ weights.value.T if need_input_grad else None",
    ]


def test_a_pattern_that_no_longer_matches_is_reported(tmp_path):
    document = json.loads(GOOD)
    document["steps"][0]["code"][0]["marks"][0]["pattern"] = r"out = x \* W"
    lesson = parse(json.dumps(document).encode(), "a.json")
    (problem,) = list(problems(lesson))
    assert "Dense.forward" in problem and "matches no line" in problem


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda d: d["steps"][0]["text"].pop("zh"),
            "steps[0].text: expected an object with a text in each of en, zh",
        ),
        (
            lambda d: d["steps"][1]["task"].update(check="guess"),
            "steps[1].task.check: expected one of",
        ),
        (
            lambda d: d["steps"][1]["task"].update(args={"sample": "0"}),
            "steps[1].task.args.sample: expected int",
        ),
        (lambda d: d["experiment"].update(lr=-1), "experiment: lr"),
        (
            lambda d: d["experiment"].update(run_dir="/tmp"),
            "experiment.run_dir: expected one of the fields",
        ),
        (
            lambda d: d["steps"][0]["code"][0]["marks"][0].update(pattern="(["),
            "marks[0].pattern: expected a regular expression",
        ),
        (
            lambda d: d["steps"][0].update(run="later"),
            "steps[0].run: expected one of paused, running",
        ),
    ],
)
def test_a_malformed_lesson_is_one_error_naming_the_file_and_the_field(change, expected):
    document = json.loads(GOOD)
    change(document)
    with pytest.raises(LessonError) as error:
        parse(json.dumps(document).encode(), "lesson.json")
    assert str(error.value).startswith("lesson.json: ") and expected in str(error.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def mutated_lesson(draw) -> bytes:
    """The good lesson with one value somewhere replaced by arbitrary JSON."""
    document = json.loads(GOOD)
    node, path = document, []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        path.append(key)
        if not isinstance(node[key], dict | list):
            break
        node = node[key]
    if path:
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(JSON)
    return json.dumps(document).encode()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        JSON.map(lambda value: json.dumps(value).encode()),
        st.composite(mutated_lesson)(),
    )
)
def test_any_file_is_a_lesson_or_one_error_naming_it(data):
    try:
        parse(data, "x.json")
    except LessonError as error:
        assert str(error).startswith("x.json: ") and "\n" not in str(error)


def test_a_lesson_file_that_is_a_link_is_refused(tmp_path):
    from nntui.lessons import load

    (tmp_path / "real.json").write_bytes(GOOD)
    (tmp_path / "a.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(LessonError, match="symbolic link"):
        load(tmp_path / "a.json")


# -- progress and language -----------------------------------------------------------------------
def test_progress_is_kept_and_a_damaged_file_starts_over_with_a_message(tmp_path):
    path = tmp_path / "state" / "lessons.json"
    store = ProgressStore(path)
    place = store.place("c-relu", 3)
    place.step, place.done = 2, {0, 1}
    assert store.save() is None
    again = ProgressStore(path)
    assert again.problem is None and again.place("c-relu", 3) == place
    assert again.place("c-relu", 2).step == 1  # a lesson that got shorter: its last step
    assert [p.name for p in path.parent.iterdir()] == ["lessons.json"]  # no temporary left
    for damaged in (b"{", b'{"version": 1, "lessons": {"c": {"step": -1}}}', b"\xff", b"[]"):
        path.write_bytes(damaged)
        store = ProgressStore(path)
        assert store.places == {} and "starting the lessons over" in store.problem
        assert str(path) in store.problem
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    assert "symbolic link" in ProgressStore(path).problem


def test_the_language_comes_from_the_locale():
    assert lang_from_env({}) == "en"
    assert lang_from_env({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert lang_from_env({"LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8"}) == "en"
    assert lang_from_env({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW"}) == "zh"


def test_a_bad_lang_flag_is_one_line_and_exit_2(capsys):
    assert main(["--lessons", "--lang", "fr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--lang" in err and err.count("\n") == 1


# -- in the app ----------------------------------------------------------------------------------
def lesson_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str) -> NNTui:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path / "runs"))
    return NNTui(ExperimentConfig(), datasets=offline(), lessons=True, lang=lang)


async def open_lesson(pilot, index: int) -> LessonScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, LessonsScreen), "the lessons")
    await press(pilot, "home", *["down"] * index, "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, LessonScreen), "the lesson")
    return pilot.app.screen


async def read_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    """Open each lesson and go through its steps with →: each shows its title and text."""
    app = lesson_app(tmp_path / lang, monkeypatch, lang)
    async with app.run_test(size=(80, 24)) as pilot:
        for index, lesson in enumerate(LESSONS):
            await open_lesson(pilot, index)
            for number, step in enumerate(lesson.steps):
                title = step.title(lang)
                await until(
                    pilot,
                    lambda title=title: title in screen_text(app),
                    f"{lesson.id} step {number} in {lang}",
                )
                assert step.text(lang).split("\n")[0][:10] in screen_text(app)
                await press(pilot, "right")
            await press(pilot, "escape")


@pilot_test
async def test_every_step_reads_at_80x24_in_both_languages(tmp_path, monkeypatch):
    for lang in LANGS:
        await read_every_step(tmp_path, monkeypatch, lang)


def ready(dashboard: LessonDashboard) -> bool:
    """The step's run is as it asked (the panel may wait for its view, e.g. the boundary's
    first picture after space)."""
    return dashboard.state.started is not None and dashboard._wanted_run is None


@pytest.mark.parametrize(
    "index, lang",
    [(0, "en"), (1, "zh"), (2, "en"), (3, "zh"), (4, "en")],
    ids=[lesson.id for lesson in LESSONS],
)
@pilot_test
async def test_a_lesson_can_be_followed_to_its_end(tmp_path, monkeypatch, index, lang):
    """Each step: Enter goes to the run, the task's keys complete it (checked by the app),
    L comes back to the text, which says it is done, → goes on. Leaving and opening the
    lesson again comes back to the same step; the progress file says every task is done."""
    lesson = LESSONS[index]
    app = lesson_app(tmp_path, monkeypatch, lang)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lesson(pilot, index)
        session = screen.session
        for number, step in enumerate(lesson.steps):
            await press(pilot, "enter")
            await until(pilot, lambda: isinstance(app.screen, LessonDashboard), "the run")
            dashboard = app.screen
            await until(pilot, lambda d=dashboard: ready(d), f"step {number}'s run", TIMEOUT)
            assert step.task.text(lang)[:20] in screen_text(app)  # the lesson bar
            await press(pilot, *step.task.keys)
            await until(
                pilot,
                lambda n=number: n in session.place.done,
                f"{lesson.id} step {number}'s task ({step.task.check})",
                120,
            )
            tab = f"tab-{step.panel}"
            await until(pilot, lambda d=dashboard, t=tab: d.query_one(Tabs).active == t, tab)
            await press(pilot, "L")
            await until(pilot, lambda: isinstance(app.screen, LessonScreen), "the text")
            assert UI["task_done"](lang) in screen_text(app)
            await press(pilot, "right")
        assert session.place.step == len(lesson.steps) - 1
        await press(pilot, "escape")
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), "the list")
        await open_lesson(pilot, index)
        assert app.screen.session.place.step == len(lesson.steps) - 1
    saved = json.loads((tmp_path / "state" / "nntui" / "lessons.json").read_text())
    entry = saved["lessons"][lesson.id]
    assert entry == {"step": len(lesson.steps) - 1, "done": list(range(len(lesson.steps)))}
    runs = os.listdir(tmp_path / "runs")
    assert runs, "the lesson's run is a normal run with a run log"


@pilot_test
async def test_ctrl_l_on_the_setup_screen_opens_the_lessons(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = NNTui(ExperimentConfig(), datasets=offline())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "^l Lessons" in screen_text(app), "the key in the footer")
        await pilot.press("ctrl+l")
        await until(pilot, lambda: isinstance(app.screen, LessonsScreen), "the lessons")
