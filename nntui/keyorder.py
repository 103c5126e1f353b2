"""Keys applied in the order they were typed, when several arrive at once.

Textual forwards each key to the widget focused when the key reaches the App, but runs the
bindings that are not `priority` (Tab's focus move, a key that opens a dialog) only after the
key has bubbled from that widget back up to the App, a queue hop per level. Keys that arrive
in one read (a burst: typed ahead over a slow SSH link, where keystrokes coalesce) were all
forwarded before the first one's binding ran: Tab followed by "77" typed 77 into the field
Tab was leaving. Here the App holds each key until the one before it has been handled
wherever it went, and until what that changed has settled: a focus asked for (Textual moves
focus on the App's queue) and a dialog it opened (mounted, with its first field focused).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, TypeVar

from textual import events
from textual.app import App
from textual.message_pump import MessagePump

ReturnType = TypeVar("ReturnType")

#: A key still unsettled after this long (its widget went away mid-way, say) no longer
#: holds the keys behind it. A safety net: a key settles within a few queue hops.
SETTLE_TIMEOUT = 1.0


class InOrderKeys(App[ReturnType]):
    """An App that dispatches a key only once the key before it has settled (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held_keys: deque[events.Key] = deque()
        self._key_in_flight: events.Key | None = None
        self._key_scheduled = False  # a call of _next_key waits in the App's queue

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._held_keys.append(event)
            if self._key_in_flight is None and not self._key_scheduled:
                await self._next_key()
            return
        await super().on_event(event)

    def _schedule_next(self) -> None:
        """Dispatch the next key after what is in the App's queue now (a focus change)."""
        if not self._key_scheduled:
            self._key_scheduled = True
            self.call_later(self._next_key)

    async def _next_key(self) -> None:
        """Dispatch the oldest held key, once the screen it goes to is ready."""
        self._key_scheduled = False
        if self._key_in_flight is not None or not self._held_keys:
            return
        screen = self.screen
        if not screen.is_mounted:  # a dialog just pushed: its fields are not there yet
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(screen._mounted_event.wait(), SETTLE_TIMEOUT)
            self._schedule_next()  # after the focus its on_mount asked for
            return
        key = self._held_keys.popleft()
        self._key_in_flight = key
        self.set_timer(SETTLE_TIMEOUT, lambda: self._settled(key))
        await super().on_event(key)  # a priority binding, or forwarded to the focus
        if key.is_forwarded:
            self._follow(key, self.focused or screen)
        else:
            self._settled(key)

    def _follow(self, key: events.Key, node: MessagePump) -> None:
        """Look at `key` again once `node` has handled it (that call waits behind the key
        in `node`'s queue)."""
        if not node.call_later(self._handled, key, node):  # `node` is closing
            self._settled(key)

    def _handled(self, key: events.Key, node: MessagePump) -> None:
        """`node` has handled `key`: the key stopped there, or went on to the parent. The
        App runs the bindings last, so from the screen on it is the App's to settle."""
        parent = node._parent
        if parent is None or parent is self:
            self.call_later(self._settled, key)
        elif key._stop_propagation:
            self._settled(key)
        else:
            self._follow(key, parent)

    def _settled(self, key: events.Key) -> None:
        """`key` is done with; the next one goes after what it asked of the App's queue."""
        if key is self._key_in_flight:
            self._key_in_flight = None
            self._schedule_next()
