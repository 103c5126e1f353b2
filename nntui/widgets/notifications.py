"""What the dashboard tells a person about an update besides drawing it: the notification it
pops up, if any, and how soon the panels show it. Beside the Log's wording of the same records
(`eventlog.describe`), and like it Textual-free, so the wording is tested without an app; the
screen only passes on what these say."""

from __future__ import annotations

import dataclasses
from typing import Literal

from nnlib import events
from nnlib.states import RunStatus

from ..runstate import RunState
from ..sources import awaited
from ..stream import Notice, Rewound, RunStarted, Update

#: Textual's notification severities.
Severity = Literal["information", "warning", "error"]
#: How soon an update shows: every panel at once, the status line at once, or every panel on
#: the redraw timer.
Redraw = Literal["all", "status", "timer"]


@dataclasses.dataclass(frozen=True)
class Notification:
    """One notification: its text (shown as written, never as markup), its title, its
    severity and the seconds it stays (None: the app's default)."""

    message: str
    title: str = ""
    severity: Severity = "information"
    timeout: float | None = None


#: The app's own notices that pop up, by kind, without their text (the others are only in the
#: Log): an error, and a note about the dataset (a file read with a fallback, say).
NOTICES = {
    "error": Notification("", severity="error"),
    "note": Notification("", title="Dataset", severity="warning", timeout=10),
}


def notification(update: Update, state: RunState, recorded: bool) -> Notification | None:
    """What `update` pops up on a dashboard that shows `state` (`recorded`: a run read from
    its directory, not trained here); None for the rest, which only the panels show."""
    if isinstance(update, events.End):
        return _ended(update, state.started.run_dir if state.started else "", recorded)
    if isinstance(update, Rewound):
        return Notification(
            f"resumed from step {update.step}: shown again as its log now reads",
            title="Recorded run",
        )
    if isinstance(update, events.Diverged):
        return Notification(update.describe(), severity="error")
    if isinstance(update, Notice) and update.kind in NOTICES:
        return dataclasses.replace(NOTICES[update.kind], message=update.message)
    return None


def _ended(end: events.End, where: str, recorded: bool) -> Notification:
    """How the run ended: its error, or its reason and where its log is."""
    if end.error:
        return Notification(end.error, title="Training failed", severity="error", timeout=10)
    if recorded:
        read = f"{end.reason} at step {end.step}; read from {where}"
        return Notification(read, title="Recorded run")
    return Notification(
        f"{end.reason}; run written to {where}" if where else end.reason, "Run ended"
    )


def redraw_for(update: Update, state: RunState) -> Redraw:
    """The start, a rewind, the end and single steps (anything while paused) show at once in
    every panel; what else a person waits for (`sources.awaited`: an hparam change, a notice)
    in the status line, the rest on the timer. A tiny model ends dozens of epochs a second:
    drawing each one at once cost spirals half its training speed and 560 kB/s."""
    if isinstance(update, RunStarted | Rewound | events.End) or state.status == RunStatus.PAUSED:
        return "all"
    return "status" if awaited(update) else "timer"
