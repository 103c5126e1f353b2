"""What am I looking at? A modal with the active panel's help (its `HELP`): what it shows and
what good and bad look like, in plain words."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from .modals import TextScreen


class PanelHelpScreen(TextScreen):
    """One panel's help; Escape, i or q closes it."""

    DEFAULT_CSS = """
    PanelHelpScreen > VerticalScroll { width: 76; max-width: 95%; }
    """
    BINDINGS = [Binding("escape,i,q", "dismiss", "Close")]

    def __init__(self, title: str, text: str) -> None:
        self.text = text
        super().__init__(
            f"What am I looking at? — {title}",
            "Escape closes · ? lists every key",
            Text(text or "No help for this panel yet."),
        )
