"""KeyBar: every key of the screen, wrapped over as many lines as the width needs.

Textual's Footer is one line and cuts off what does not fit; at 80 columns the dashboard has
more keys than that, and every action must stay visible without a mouse.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widget import Widget

from ..commands import screen_keys


class KeyBar(Widget):
    COMPONENT_CLASSES = {"keybar--key"}
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: auto; background: $footer-background;
             color: $footer-description-foreground; padding: 0 1; }
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    """

    def __init__(self, hidden: Callable[[], Collection[str]] = frozenset, **kwargs: Any) -> None:
        """`hidden` names the actions not to list now (a run that has ended is not steered:
        its keys only say so)."""
        super().__init__(**kwargs)
        self.hidden = hidden
        self.items: list[tuple[str, str]] = []

    def on_mount(self) -> None:
        self.update_keys()

    def update_keys(self) -> None:
        """List the keys again (after what `hidden` names has changed)."""
        hidden = self.hidden()
        # Only the screen's and the app's own keys: they do not change with the focus.
        items = [
            (key, description)
            for key, description, action, node in screen_keys(self.screen, shown_only=True)
            if node in (self.screen, self.app) and action.split("(")[0] not in hidden
        ]
        if items != self.items:
            self.items = items
            self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        lines: list[Text] = [Text()]
        for key, description in self.items:
            item = Text.assemble((key, key_style), " ", description)
            if lines[-1].cell_len and lines[-1].cell_len + 2 + item.cell_len > width:
                lines.append(Text())
            if lines[-1].cell_len:
                lines[-1].append("  ")
            lines[-1].append_text(item)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> RenderResult:
        return Text("\n").join(self._lines(self.content_size.width))
