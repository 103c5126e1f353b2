"""The lessons in the app: a list of lessons, a lesson's step (its text, the formula, the code
beside it, what to look at and the task), and the dashboard the step's experiment runs on.

The dashboard is the app's own (`LessonDashboard` only adds a bar with the task and the key
back to the text); the step's text is a screen over it, so the run goes on while the learner
reads. Tasks are checked on every snapshot the dashboard folds (`nntui.lessons.checks`), and
where the learner is, is saved as they go (`nntui.lessons.progress`). Every text is plain
(rich Text, never markup): formulas are full of brackets.

    [setup, lessons list, lesson step]             before the first Enter
    [setup, lessons list, dashboard]               Enter: try the step on the run
    [setup, lessons list, dashboard, lesson step]  L (or Esc) on the dashboard
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from nnlib.config import ExperimentConfig
from nnlib.datasets import DatasetInfo

from ..lessons import UI, Lesson
from ..lessons.checks import met
from ..lessons.model import LessonError, Step
from ..lessons.progress import ProgressStore
from ..lessons.source import Source, source
from ..stream import Update
from .dashboard import ENTRIES, DashboardScreen

#: How a task's keys are shown (Textual's names for the others are what is typed).
KEY_TEXT = {
    "plus": "+",
    "minus": "-",
    "greater_than_sign": ">",
    "less_than_sign": "<",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "escape": "Esc",
    "enter": "Enter",
}


#: A unit of wrapping: one CJK character (with the punctuation that may not start a line),
#: or a run of other text up to the next space, with the spaces after either.
CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
WRAP_UNIT = re.compile(rf"[{CJK}][，。、；：？！）」』”’]*\s*|[^\s{CJK}]+\s*|\s+")


def wrap(text: Text, width: int) -> list[Text]:
    """`text` in lines of at most `width` cells, broken at spaces or between two CJK
    characters. Rich breaks only at spaces: a Chinese sentence is one long word to it, which
    it moved whole to a line of its own and cut there."""
    lines: list[Text] = []
    for line in text.split("\n", allow_blank=True):
        breaks, used = [], 0
        for unit in WRAP_UNIT.finditer(line.plain):
            if used and used + cell_len(unit.group().rstrip()) > width:
                breaks.append(unit.start())
                used = 0
            used += cell_len(unit.group())
        for piece in line.divide(breaks):
            piece.rstrip()
            lines.append(piece)
    return lines


class Prose(Widget):
    """Text wrapped for Chinese as well as English (see `wrap`), as tall as it needs."""

    DEFAULT_CSS = "Prose { height: auto; }"

    def __init__(self, text: Text | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.text = text or Text()

    def update(self, text: Text) -> None:
        self.text = text
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(wrap(self.text, max(width, 1)))

    def render(self) -> RenderResult:
        return Text("\n").join(wrap(self.text, max(self.content_region.width, 1)))


def key_text(keys: tuple[str, ...]) -> str:
    """Keys as a person types them: `space z n`, `+ + +`."""
    return " ".join(KEY_TEXT.get(key, key) for key in keys)


class LessonSession:
    """One lesson being followed: where the learner is, in which language, and the dashboard
    its run is shown on (None before the first Enter)."""

    def __init__(
        self, lesson: Lesson, store: ProgressStore, lang: str, datasets: list[DatasetInfo]
    ) -> None:
        self.lesson, self.store, self.lang = lesson, store, lang
        self.on_disk = {info.name for info in datasets if info.on_disk}
        self.place = store.place(lesson.id, len(lesson.steps))
        self.dashboard: LessonDashboard | None = None

    def ui(self, key: str, **values: object) -> str:
        return UI[key](self.lang).format(**values)

    @property
    def step(self) -> Step:
        return self.lesson.steps[self.place.step]

    @property
    def done(self) -> bool:
        """The current step's task is done (a step without one is done once read)."""
        return self.place.step in self.place.done or self.step.task is None

    def config(self) -> ExperimentConfig:
        return self.lesson.config(self.on_disk)

    def move(self, offset: int) -> bool:
        """Go `offset` steps on (back, when negative); False at either end."""
        step = self.place.step + offset
        if not 0 <= step < len(self.lesson.steps):
            return False
        self.place.step = step
        return True

    def check(self, state: object) -> bool:
        """Mark the current step done if its task is met now; True only when it just was."""
        task = self.step.task
        if task is None or self.place.step in self.place.done:
            return False
        if not met(task.check, task.args, state):  # type: ignore[arg-type]
            return False
        self.place.done.add(self.place.step)
        return True

    def save(self) -> str | None:
        """Save the progress; the reason it could not be, or None."""
        return self.store.save()


class LessonsScreen(Screen[None]):
    """The lessons, each with where the learner left it; Enter opens one at that step."""

    DEFAULT_CSS = """
    LessonsScreen #lessons-title { height: 1; padding: 0 1; background: $panel;
                                   text-style: bold; }
    LessonsScreen OptionList { height: 1fr; border: round $primary-darken-2; }
    LessonsScreen #lessons-keys { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    HELP_TITLE = "lessons"

    def __init__(self, lessons: list[Lesson], lang: str, datasets: list[DatasetInfo]) -> None:
        super().__init__()
        self.lessons, self.lang, self.datasets = lessons, lang, datasets
        self.store = ProgressStore()

    def compose(self) -> ComposeResult:
        yield Static(Text(UI["menu_title"](self.lang)), id="lessons-title")
        yield OptionList(*self._options(), id="lessons")
        yield Static(Text(UI["menu_help"](self.lang)), id="lessons-keys")

    def _options(self) -> list[Option]:
        options = []
        for index, lesson in enumerate(self.lessons):
            place = self.store.place(lesson.id, len(lesson.steps))
            total = len(lesson.steps)
            tasks = {i for i, step in enumerate(lesson.steps) if step.task is not None}
            status = UI["step"](self.lang).format(n=place.step + 1, total=total)
            if tasks <= place.done:
                status += f" · {UI['done'](self.lang)}"
            label = Text(f"{index + 1}. ", style="bold")
            label.append(lesson.title(self.lang), style="bold")
            label.append(f"  ({status})\n", style="dim")
            label.append(lesson.summary(self.lang))
            options.append(Option(label, id=lesson.id))
        return options

    def on_mount(self) -> None:
        if self.store.problem:
            self.notify(self.store.problem, title=UI["start_over"](self.lang), severity="warning")

    def on_screen_resume(self) -> None:
        """Back from a lesson: its place in the list is up to date."""
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options(self._options())
        options.highlighted = highlighted if highlighted is not None else 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        lesson = next(lesson for lesson in self.lessons if lesson.id == event.option.id)
        session = LessonSession(lesson, self.store, self.lang, self.datasets)
        self.app.push_screen(LessonScreen(session))


class LessonScreen(Screen[None]):
    """One step: its title, text (the formula in it), what to look at, the task and whether
    it is done, then the code beside the formula, all in one scrolling column."""

    DEFAULT_CSS = """
    LessonScreen #lesson-head { height: 1; padding: 0 1; background: $panel; }
    LessonScreen #lesson-body { height: 1fr; padding: 0 1; }
    LessonScreen #lesson-body > * { margin-bottom: 1; }
    LessonScreen #lesson-keys { height: auto; padding: 0 1; background: $footer-background;
                                color: $footer-description-foreground; }
    """
    BINDINGS = [
        Binding("right", "move(1)", "Next step", priority=True),
        Binding("left", "move(-1)", "Previous step", priority=True),
        Binding("enter,L", "go", "Try it on the run"),
        Binding("escape", "leave", "Leave the lesson"),
    ]
    HELP_TITLE = "lesson"

    def __init__(self, session: LessonSession) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Static(id="lesson-head")
        with VerticalScroll(id="lesson-body"):
            yield Prose(id="lesson-text")
            yield Prose(id="lesson-task")
            yield Static(id="lesson-code")
        yield Static(Text(self.session.ui("keys")), id="lesson-keys")

    def on_mount(self) -> None:
        self.show_step()
        self.query_one("#lesson-body").focus()

    def show_step(self) -> None:
        """Draw the current step (after a move, or a task done meanwhile)."""
        session, step = self.session, self.session.step
        lang, place = session.lang, session.place
        head = Text(session.lesson.title(lang), style="bold")
        head.append(f" · {session.ui('step', n=place.step + 1, total=len(session.lesson.steps))} ")
        for index, each in enumerate(session.lesson.steps):
            done = index in place.done or each.task is None
            head.append("●" if index == place.step else ("✓" if done else "·"))
        self.query_one("#lesson-head", Static).update(head)
        text = Text(step.title(lang), style="bold underline")
        text.append("\n\n" + step.text(lang))
        if step.look is not None:
            text.append(f"\n\n{session.ui('look')}: ", style="bold")
            text.append(step.look(lang))
        self.query_one("#lesson-text", Prose).update(text)
        self.query_one("#lesson-task", Prose).update(self._task_text())
        self.query_one("#lesson-code", Static).update(self._code_text())
        self.query_one("#lesson-body", VerticalScroll).scroll_home(animate=False)

    def _task_text(self) -> Text:
        session, task = self.session, self.session.step.task
        if task is None:
            text = Text(session.ui("no_task"), style="italic")
        else:
            text = Text(f"{session.ui('task')}: ", style="bold")
            text.append(task.text(session.lang))
            text.append(f"\n{session.ui('hint')}: {key_text(task.keys)}  ", style="dim")
            if session.done:
                text.append(session.ui("task_done"), style="bold green")
            else:
                text.append(session.ui("task_open"), style="yellow")
        if session.place.step == len(session.lesson.steps) - 1:
            text.append(f"\n{session.ui('last_step')}", style="italic")
        return text

    def _code_text(self) -> Text:
        blocks = []
        for code in self.session.step.code:
            try:
                blocks.append(code_block(source(code)))
            except LessonError as error:
                blocks.append(Text(str(error), style="red"))
        if not blocks:
            return Text()
        head = Text(self.session.ui("code"), style="bold")
        return Text("\n\n").join([head, *blocks])

    def action_move(self, offset: int) -> None:
        if self.session.move(offset):
            self._saved()
            self.show_step()

    def _saved(self) -> None:
        problem = self.session.save()
        if problem:
            self.notify(problem, severity="warning")

    def action_go(self) -> None:
        """To the run: the step's experiment on the dashboard (a new run when there is none
        yet, it has ended, or the step's experiment is another), its panel shown."""
        session = self.session
        dashboard, config = session.dashboard, session.config()
        fresh = dashboard is None or dashboard.state.end is not None or dashboard.config != config
        self.app.pop_screen()
        if not fresh:
            return
        new = LessonDashboard(session, config)
        if dashboard is not None and self.app.screen is dashboard:
            self.app.switch_screen(new)
        else:
            self.app.push_screen(new)

    def action_leave(self) -> None:
        """Back to the lessons: the run, if any, is stopped (its log is kept)."""
        session = self.session
        self._saved()
        self.app.pop_screen()
        dashboard = session.dashboard
        if dashboard is not None and self.app.screen is dashboard:
            dashboard.shutdown()
            self.app.pop_screen()
            self.app.notify(session.ui("left", n=session.place.step + 1))
        session.dashboard = None


def code_block(found: Source) -> Text:
    """Source lines numbered, the marked ones highlighted with their formula beside them."""
    text = Text()
    text.append(f"── {found.where} ──\n", style="bold")
    width = len(str(found.first + len(found.lines)))
    for offset, (line, formulas) in enumerate(zip(found.lines, found.formulas, strict=True)):
        number = f"{found.first + offset:>{width}} "
        if formulas:
            text.append("▶" + number, style="bold yellow")
            text.append(line, style="bold reverse")
            text.append("  ◀ " + " · ".join(formulas), style="bold yellow")
        else:
            text.append(" " + number, style="dim")
            text.append(line)
        text.append("\n")
    text.rstrip()
    return text


class LessonBar(Prose):
    """Under the dashboard's panels: the lesson's task, whether it is done, and L."""

    DEFAULT_CSS = """
    LessonBar { height: auto; padding: 0 1; background: $boost; }
    """

    def __init__(self, session: LessonSession) -> None:
        super().__init__()
        self.session = session

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        session, step = self.session, self.session.step
        text = Text(f"{session.place.step + 1}/{len(session.lesson.steps)} ", style="bold")
        task = step.task
        if task is None:
            text.append(step.title(session.lang))
        else:
            text.append(task.text(session.lang))
            text.append("  ")
            if session.done:
                text.append(session.ui("task_done"), style="bold green")
            else:
                text.append(f"{session.ui('hint')}: {key_text(task.keys)}", style="yellow")
        text.append(f"  {session.ui('bar_keys')}", style="dim")
        self.update(text)


class LessonDashboard(DashboardScreen):
    """The app's dashboard on a lesson's run, with the lesson bar; L or Esc bring the step's
    text back (the run goes on), and each step can ask for its panel and a paused or
    running run when the learner comes to it."""

    BINDINGS = [
        Binding("L", "lesson", "Lesson text"),
        Binding("escape", "lesson", "Lesson text", show=False),
    ]

    def __init__(self, session: LessonSession, config: ExperimentConfig) -> None:
        super().__init__(config, start_paused=True)
        self.session = session
        session.dashboard = self
        self.bar = LessonBar(session)
        #: What the step asked for that waits for the run to start (the panel, its state).
        self._wanted_panel: str | None = None
        self._wanted_run: str | None = None

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield self.bar

    def on_screen_resume(self) -> None:
        """Come to the step: its panel, the run as it asks, and its task checked at once."""
        step = self.session.step
        self._wanted_panel, self._wanted_run = step.panel, step.run
        self._prepare()
        self._check()
        self.bar.show()

    def _prepare(self) -> None:
        """Apply what the step asked for, as far as the run allows yet."""
        if self.state.started is None or self.state.end is not None:
            return
        panel = self._wanted_panel
        if panel is not None and self._applies(ENTRIES[panel]):
            self._wanted_panel = None
            self.action_panel(panel)
        wanted, self._wanted_run = self._wanted_run, None
        if wanted is not None and (wanted == "paused") != self._paused():
            self.action_toggle_pause()

    def apply(self, update: Update) -> None:
        super().apply(update)
        if self._wanted_panel is not None or self._wanted_run is not None:
            self._prepare()
        self._check()

    def _check(self) -> None:
        if self.session.check(self.state):
            problem = self.session.save()
            self.bar.show()
            self.notify(problem or self.session.ui("finished"), timeout=8)

    def action_lesson(self) -> None:
        self.app.push_screen(LessonScreen(self.session))
