"""What am I looking at? A modal with the active panel's help (its `HELP`): what it shows and
what good and bad look like, in plain words."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .modals import MODAL_CSS


class PanelHelpScreen(ModalScreen[None]):
    """One panel's help; Escape, i or q closes it."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="PanelHelpScreen")
        + """
    PanelHelpScreen > Vertical { width: 76; max-width: 95%; }
    PanelHelpScreen VerticalScroll { height: auto; max-height: 30; }
    """
    )
    BINDINGS = [Binding("escape,i,q", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"What am I looking at? — {self.title_text}"), classes="title")
            with VerticalScroll():
                yield Static(Text(self.text or "No help for this panel yet."))
            yield Static(Text("Escape closes · ? lists every key", style="dim"))
