"""Small dialogs: confirm, a path prompt, the whole-spec editor, the live hyperparameter
editor, help, and the "terminal too small" notice. Each one is keyboard-only: Enter
confirms, Escape cancels."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static, TextArea

MODAL_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: auto; min-width: 40; max-width: 90%; height: auto; max-height: 90%;
    border: round $accent; background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .error {{ color: $error; height: auto; }}
{name} .buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .buttons Button {{ margin-left: 1; }}
"""


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no. `y`/Enter on the focused yes button confirms; `n`/Escape declines."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmScreen")
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="title", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.no} (n)", id="no", compact=True)
                yield Button(f"{self.yes} (y)", id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PathScreen(ModalScreen[str | None]):
    """Ask for a file path and run `action` on it; an error it raises is shown in place and
    the dialog stays open. On success the action's message is shown as a notification and
    the dialog dismisses with it."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="PathScreen")
        + """
    PathScreen Input { width: 60; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, action: Callable[[str], str]) -> None:
        super().__init__()
        self.title_text, self.default, self.action = title, default, action

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="title", markup=False)
            yield Input(self.default, id="path")
            yield Static("", classes="error", id="path-error", markup=False)
            yield Static("Enter: OK   Escape: cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            message = self.action(event.value.strip())
        except (OSError, ValueError) as error:
            self.query_one("#path-error", Static).update(f"✗ {error}")
            return
        self.notify(message)
        self.dismiss(message)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SpecScreen(ModalScreen[str | None]):
    """The whole architecture spec, wrapped over several lines to read and edit (the setup
    screen's one-line field shows a LeNet-size spec only in part at 80 columns). Enter
    applies (a spec needs no line breaks), Escape cancels."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="SpecScreen")
        + """
    SpecScreen > Vertical { width: 90%; }
    SpecScreen TextArea { height: auto; min-height: 3; max-height: 10; }
    """
    )
    BINDINGS = [
        Binding("enter", "apply", "Apply", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec = spec

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Architecture spec", classes="title")
            yield TextArea(self.spec, soft_wrap=True, compact=True, id="spec-text")
            yield Static("Enter: apply   Escape: cancel")

    def on_mount(self) -> None:
        text_area = self.query_one(TextArea)
        text_area.focus()
        text_area.move_cursor(text_area.document.end)

    def action_apply(self) -> None:
        self.dismiss(" ".join(self.query_one(TextArea).text.split()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HparamScreen(ModalScreen["dict[str, Any] | None"]):
    """Edit a run's hyperparameters. The dialog applies nothing itself: it returns the
    changed values (or None on Cancel), and the dashboard sends them through the one door
    every request takes, as it does for the + and - keys. Each value is checked with
    `validate` first (the trainer's own check, when the trainer is in this process); a bad
    one shows its message under the fields and the dialog stays open. The batch size
    applies from the next epoch. With `fork`, the values are the changes of a fork."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="HparamScreen")
        + """
    HparamScreen Grid { grid-size: 2; grid-columns: 14 24; grid-rows: auto; height: auto;
                        grid-gutter: 0 1; }
    HparamScreen Label { width: 100%; text-align: right; color: $text-muted; }
    HparamScreen .note { color: $text-muted; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        current: dict[str, Any],
        pending: dict[str, Any],
        validate: Callable[[str, Any], Any],
        fork: bool = False,
    ) -> None:
        """`current`: the editable values in force; `pending`: those asked for and not yet
        applied, shown instead."""
        super().__init__()
        self.current = dict(current)
        self.validate = validate
        self.fork = fork
        self.shown = {**self.current, **{k: v for k, v in pending.items() if k in self.current}}

    def compose(self) -> ComposeResult:
        with Vertical():
            title = (
                "Fork this run with these hyperparameters"
                if self.fork
                else "Change hyperparameters (apply at the next batch)"
            )
            yield Static(title, classes="title")
            with Grid():
                for name, value in self.shown.items():
                    yield Label(name.replace("_", " "))
                    yield Input(
                        f"{value:g}" if isinstance(value, float) else str(value),
                        id=name,
                        compact=True,
                    )
            yield Static("batch size applies from the next epoch", classes="note")
            yield Static("", classes="error", id="hp-edit-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Apply", id="apply", variant="primary", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.apply()
        else:
            self.action_cancel()

    def apply(self) -> None:
        changes: dict[str, Any] = {}
        for name, shown in self.shown.items():
            field = self.query_one(f"#{name}", Input)
            try:
                value = self.validate(name, _number(name, field.value))
            except ValueError as error:
                self.query_one("#hp-edit-error", Static).update(f"✗ {error}")
                field.set_class(True, "-invalid")
                field.focus()
                return
            field.set_class(False, "-invalid")
            if value != shown:
                changes[name] = value
        self.dismiss(changes)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _number(name: str, text: str) -> int | float:
    """The typed value of a field (the trainer then checks its range)."""
    text = text.strip()
    try:
        return int(text) if name == "batch_size" else float(text)
    except ValueError:
        kind = "a whole number" if name == "batch_size" else "a number"
        raise ValueError(f"{name} must be {kind}, got {text!r}") from None


class TextScreen(ModalScreen[None]):
    """Text to read in a box, with its title and how to close it on the border: all the
    height left is the text's, which scrolls (arrows, Page Up/Down, Home/End) when it is
    taller than the screen allows (at 80x24 a panel's help is)."""

    DEFAULT_CSS = """
    TextScreen { align: center middle; background: $background 60%; }
    TextScreen > VerticalScroll {
        height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
        border-title-style: bold; border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    """

    def __init__(self, title: str, footer: str, body: RenderableType) -> None:
        super().__init__()
        self.title_text, self.footer, self.body = title, footer, body

    def compose(self) -> ComposeResult:
        box = VerticalScroll(Static(self.body))
        box.border_title = Text(self.title_text)
        box.border_subtitle = Text(self.footer)
        yield box


class HelpScreen(TextScreen):
    """Every key of the screen below, and the app's own."""

    DEFAULT_CSS = """
    HelpScreen > VerticalScroll { width: 90%; max-width: 100; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, title: str, keys: Iterable[tuple[str, str]]) -> None:
        self.keys = list(keys)
        super().__init__(
            f"Keys — {title}",
            "Escape closes · Ctrl+P opens the command palette",
            _key_table(self.keys),
        )


def _key_table(keys: list[tuple[str, str]]) -> Table:
    """Two key/description pairs per row, so a dashboard's keys fit in 80x24."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    for _ in range(2):
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
    half = (len(keys) + 1) // 2
    for left, right in zip(keys[:half], [*keys[half:], ("", "")], strict=False):
        table.add_row(*map(Text, (*left, *right)))
    return table


class TooSmallScreen(Screen[None]):
    """Shown instead of a squeezed, broken layout; goes away when the terminal grows."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; }
    TooSmallScreen Static { width: auto; text-align: center; }
    """
    BINDINGS = [Binding("q,ctrl+q", "app.request_quit", "Quit")]

    def __init__(self, minimum: tuple[int, int]) -> None:
        super().__init__()
        self.minimum = minimum

    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.describe()

    def on_resize(self) -> None:
        self.describe()

    def on_screen_resume(self) -> None:
        """A dialog opened over this notice (q asks before quitting) has closed: if the
        terminal grew meanwhile, the resize went to the dialog, so leave now."""
        width, height = self.app.size
        if width >= self.minimum[0] and height >= self.minimum[1]:
            self.dismiss()

    def describe(self) -> None:
        width, height = self.app.size
        self.query_one("#too-small", Static).update(
            f"Terminal too small ({width}×{height}).\n"
            f"nntui needs at least {self.minimum[0]}×{self.minimum[1]}.\n"
            "Enlarge the window, or press q to quit."
        )
