"""StatePanel: a widget drawn from the RunState, redrawn only when the state or its size moved."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual import events
from textual.widget import Widget

from ..runstate import RunState
from .picture import Picture, Pictures, Placement


def side_by_side(left: Text, right: Text, left_width: int, gap: int = 2) -> Text:
    """Two blocks of lines next to each other (the left one padded to `left_width`)."""
    left_lines, right_lines = left.split("\n"), right.split("\n")
    rows = []
    for index in range(max(len(left_lines), len(right_lines))):
        line = left_lines[index].copy() if index < len(left_lines) else Text()
        line.pad_right(left_width + gap - line.cell_len)
        if index < len(right_lines):
            line.append_text(right_lines[index])
        rows.append(line)
    return Text("\n").join(rows)


def fit(width: int, *variants: Text) -> Text:
    """The first variant (longest first) that fits `width` cells; else the last, cut with
    an ellipsis. Legends and titles say less, rather than being cut mid-word."""
    for variant in variants:
        if variant.cell_len <= width:
            return variant
    last = variants[-1].copy()
    last.truncate(width, overflow="ellipsis")
    return last


class StatePanel(Widget):
    """Base for panels that render a picture of the run state at their current size.

    The dashboard offers a redraw a few times a second; a panel takes it only when the data
    it shows moved (`data_key`) and at most every `INTERVAL` seconds, so a panel whose data
    is still is not redrawn (nor re-sent over the terminal) at all.
    """

    DEFAULT_CSS = """
    StatePanel { height: 1fr; }
    """
    INTERVAL = 0.25
    #: Whether a picture taller than the panel scrolls (a window of it, the mouse wheel and
    #: `reveal`); otherwise it is cut at the bottom.
    SCROLLS = False

    def __init__(self, state: RunState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self._cache_key: tuple[Any, ...] | None = None
        self._cache: Text = Text()
        self._offered: tuple[Any, ...] | None = None
        self._news: tuple[Any, ...] | None = None
        self._last_redraw = -math.inf
        self._lines: list[Text] = []
        #: The first line of the picture shown, when it scrolls.
        self.scroll_top = 0
        #: The images drawn in the picture (`draw` draws them through `self.pictures.draw`).
        self.pictures = Pictures()
        self._placed: list[Placement] = []

    def show(self, state: RunState) -> None:
        """Draw from `state` from now on (the dashboard's time axis hands every panel the run
        as it was at a step, then the live state again): drawn afresh at once."""
        self.state = state
        self._cache_key = self._offered = self._news = None
        self.refresh()

    def data_key(self) -> tuple[Any, ...]:
        """What this panel shows of the state; it is redrawn when this changes."""
        return (self.state.version,)

    def options(self) -> tuple[Any, ...]:
        """View settings that change the picture (smoothing, selected layer, ...)."""
        return ()

    def news_key(self) -> tuple[Any, ...]:
        """What this panel shows that other panels show at once (an epoch's end): when it
        changes, the next offer redraws the panel even within its INTERVAL."""
        return ()

    def draw(self, width: int, height: int) -> Text:
        """The panel's picture at this size; every panel overrides it."""
        return Text()

    def offer_redraw(self, now: float, at_once: bool = False) -> None:
        """Refresh if the data moved and the panel's interval has passed (or `at_once`:
        the user just pressed a key and must see its effect)."""
        key = (self.state.generation, *self.data_key())
        news = (self.state.generation, *self.news_key())
        # 10% slack: the dashboard's timer ticks at about the status panel's interval.
        due = now - self._last_redraw >= self.INTERVAL * 0.9 or news != self._news
        if key != self._offered and (at_once or due):
            self._offered, self._news, self._last_redraw = key, news, now
            self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        key = (
            self.state.generation,
            *self.data_key(),
            width,
            height,
            self.app.no_color,
            *self.options(),
        )
        if key != self._cache_key:
            self._cache_key = key
            self.pictures.clear()
            self._cache = self.draw(width, height) if width > 0 and height > 0 else Text()
            self._lines = list(self._cache.split("\n")) if self.SCROLLS else []
        shown = self._window(height)
        if self.pictures.images or self._placed:
            placements = self.pictures.placements(list(shown.split("\n"))[:height])
            if len(placements) != len(self._placed) or not all(
                new.same(old) for new, old in zip(placements, self._placed, strict=False)
            ):
                self._placed = placements
                self.call_later(self._place, placements)
        return shown

    async def _place(self, placements: list[Placement]) -> None:
        """Lay a Picture over each picture in view (a graphics mode: see `picture`)."""
        if placements is not self._placed:
            return  # a later render has placed others
        pictures = list(self.query_children(Picture))
        for picture, placement in zip(pictures, placements, strict=False):
            picture.move(placement)
        if len(pictures) > len(placements):
            await self.remove_children(pictures[len(placements) :])
        elif len(placements) > len(pictures):
            await self.mount_all(Picture(p) for p in placements[len(pictures) :])

    @property
    def picture(self) -> Text:
        """The whole picture last drawn (of a panel that scrolls, more than is in view)."""
        return self._cache

    def reveal(self, first: int, last: int, height: int) -> None:
        """Scroll (as little as it takes) so that lines first..last of the picture drawn at
        `height` are in view: a panel with a cursor calls it from `draw`."""
        view = max(height - 1, 1)  # the last line says where the window is
        if first < self.scroll_top:
            self.scroll_top = first
        elif last >= self.scroll_top + view:
            self.scroll_top = max(first, last - view + 1) if last - first < view else first

    def _window(self, height: int) -> Text:
        """The lines in view of a picture taller than the panel, and a line saying which."""
        lines = self._lines
        if len(lines) <= height:
            self.scroll_top = 0
            return self._cache
        view = max(height - 1, 1)
        self.scroll_top = min(max(self.scroll_top, 0), len(lines) - view)
        top = self.scroll_top
        where = Text(
            f"lines {top + 1}-{top + view} of {len(lines)}"
            + (" ▲" if top else "")
            + (" ▼" if top + view < len(lines) else ""),
            style="dim",
        )
        return Text("\n").join([*lines[top : top + view], where])

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._scroll_by(3, event)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._scroll_by(-3, event)

    def _scroll_by(self, lines: int, event: events.Event) -> None:
        if self.SCROLLS and len(self._lines) > self.content_size.height:
            self.scroll_top += lines
            event.stop()
            self.refresh()
