"""The event log: hyperparameter changes, pause/resume, early stop, divergence, checkpoints,
errors and the end of the run, each with the step it happened at.

Epochs that end faster than a person reads (a tiny model ends hundreds a second) are folded:
one line per `EPOCH_LINE_SECONDS` of training, for the latest epoch, saying which epochs it
covers and with the checkpoints written meanwhile (a new best comes every few epochs):
"epoch 180: loss 0.4102 (epochs 95-180 in 0.3s, from loss 1.0986); 12 checkpoints, the last
checkpoint (best): best.npz". Every other line is written at once, after the epochs held so
far, so nothing is reordered. The fold reads the training time each epoch reports, not the
wall clock, so a recorded run (`nntui --open`) shows the very lines its live run showed; in a
run held to a pace (a 'pace' event), an epoch counts as at least the 1/pace seconds it lasts,
so a run slowed down to be watched gets its epochs' lines as they come.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from nnlib import events

from ..plot import format_number, format_value
from ..stream import Notice, Rewound, RunStarted, Update

STYLES = {"info": "", "good": "green", "warning": "yellow", "error": "bold red"}
#: Training seconds between two epoch lines at least: faster epochs are folded into one line.
#: The default demo's epochs (about 0.35 s here) keep a line each; spirals' (3 ms) come as
#: about 4 lines a second (0.5 s folded the demo's epochs in pairs).
EPOCH_LINE_SECONDS = 0.25

#: A log line: the step it happened at (None: the latest step seen), its text, its severity.
Entry = tuple[int | None, str, str]


#: Record types written as their `describe()`, and their severity (a type nnlib does not
#: define is written too, as info).
DESCRIBED = {
    "pause": "info",
    "resume": "info",
    "stop": "info",
    "pace": "info",
    "run_resume": "info",
    "early_stop": "good",
    "checkpoint": "good",
    "diverged": "error",
}
#: The app's own notices by severity (others are info).
NOTICE_SEVERITY = {"error": "error"}


@functools.singledispatch
def describe(update: Update) -> tuple[str, str] | None:
    """(line, severity) for the updates logged as they come (epochs go through LogLines);
    None for the rest. A kind of update worded here has its own function, registered for
    its class below; a record type nnlib words itself is listed in DESCRIBED."""
    return None


@describe.register
def _described(update: events.Event) -> tuple[str, str] | None:
    """A record in DESCRIBED, or of a type nnlib does not define: its own words."""
    if update.type in DESCRIBED or isinstance(update, events.UnknownEvent):
        return update.describe(), DESCRIBED.get(update.type, "info")
    return None


@describe.register
def _run_started(update: RunStarted) -> tuple[str, str]:
    """The run's architecture and size, and where its log is written."""
    return (
        f"run started: {update.arch} ({update.params:,} params), log in {update.run_dir}",
        "info",
    )


@describe.register
def _notice(update: Notice) -> tuple[str, str]:
    """The app's own notice, as severe as its kind."""
    return update.message, NOTICE_SEVERITY.get(update.kind, "info")


@describe.register
def _hparam(update: events.Hparam) -> tuple[str, str]:
    """A hyperparameter change, from the old value to the new, and when it applies."""
    return (
        f"{update.name} {format_value(update.old)} → {format_value(update.new)} "
        f"(applies {update.applies or 'next batch'})",
        "warning",
    )


@describe.register
def _diagnostic(update: events.Diagnostic) -> tuple[str, str]:
    """A warning, with the fix that A applies when it has one."""
    fix = update.fix_text()
    return update.describe() + (f" (A: {fix})" if fix else ""), "warning"


@describe.register
def _end(update: events.End) -> tuple[str, str]:
    """The run's end: its error, or why and when it ended (a divergence is an error)."""
    if update.error:
        return f"run failed: {update.error}", "error"
    severity = "error" if update.reason == "diverged" else "good"
    return f"run ended: {update.reason} at step {update.step}", severity


def epochs_line(epochs: Sequence[events.Epoch], checkpoints: Sequence[str] = ()) -> str:
    """The line of the last of consecutive epochs; for several, which ones, the time they
    took together and the loss at the first; then the checkpoints written meanwhile (their
    lines: the last one, and how many)."""
    first, last = epochs[0], epochs[-1]
    text = f"epoch {last.epoch + 1}: loss {format_number(last.loss)}"
    if last.val_loss is not None:
        text += f", val {format_number(last.val_loss)}"
    if last.val_accuracy is not None:
        text += f" / {last.val_accuracy:.1%}"
    total = sum(_seconds(epoch) for epoch in epochs)
    seconds = _duration(total)
    if len(epochs) == 1:
        text += f" ({seconds})" if total else ""  # 0: the epoch's time was not measured
    else:
        text += (
            f" (epochs {first.epoch + 1}-{last.epoch + 1} in {seconds}, "
            f"from loss {format_number(first.loss)})"
        )
    if len(checkpoints) == 1:
        text += f"; {checkpoints[0]}"
    elif checkpoints:
        text += f"; {len(checkpoints)} checkpoints, the last {checkpoints[-1]}"
    return text


def _duration(seconds: float) -> str:
    """0.1 s and longer to a tenth ("2.4s"), shorter in milliseconds ("26ms", not "0.0s")."""
    return f"{seconds:.1f}s" if seconds >= 0.095 else f"{seconds * 1000:.0f}ms"


def _seconds(epoch: events.Epoch) -> float:
    """An epoch's training time; 0 when it was not measured (or not finite)."""
    seconds = epoch.seconds
    return seconds if seconds is not None and 0 < seconds < math.inf else 0.0


class LogLines:
    """What the log writes for each update of the run, in order: epochs that end within
    `seconds` of training time of the previous epoch line are held, with the checkpoints
    written meanwhile, and written as one line when that time has passed or before any other
    line. A checkpoint or an early stop about an epoch whose record has not come yet (the
    run log writes an epoch's line after what its callbacks emitted as it ended) waits for
    it, and comes after it. Textual-free: the live log, a recorded one and the tests share
    it."""

    def __init__(self, seconds: float = EPOCH_LINE_SECONDS) -> None:
        self.seconds = seconds
        self.held: list[events.Epoch] = []
        self.checkpoints: list[str] = []  # the lines of the checkpoints held with them
        self.waiting: list[events.Event] = []  # for the record of the epoch they are about
        self._next_epoch = 0  # the epoch whose record comes next
        self._clock = 0.0  # training seconds, summed over the epochs seen
        self._written_at = -math.inf  # the clock at the latest epoch line
        self._pace: float | None = None  # epochs per second the run is held to

    def take(self, update: Update) -> list[Entry]:
        """The lines to write for `update` now (none while it is held)."""
        if isinstance(update, events.Pace):
            self._pace = update.new
        if isinstance(update, events.Epoch):
            self._next_epoch = update.epoch + 1
            return self._epoch(update) + self._release()
        if isinstance(update, events.Checkpoint | events.EarlyStop) and (
            update.epoch is not None and update.epoch >= self._next_epoch
        ):
            self.waiting.append(update)
            return []
        if isinstance(update, events.End):
            return self._release() + self._line_of(update)
        return self._placed(update)

    def _placed(self, update: Update) -> list[Entry]:
        """A checkpoint joins the epochs held; anything else is its own line."""
        if self.held and isinstance(update, events.Checkpoint):
            self.checkpoints.append(update.describe())
            return []
        return self._line_of(update)

    def _epoch(self, epoch: events.Epoch) -> list[Entry]:
        self.held.append(epoch)
        spent = _seconds(epoch)
        if spent and self._pace is not None:
            spent = max(spent, 1 / self._pace)
        self._clock += spent
        # An epoch whose time is unknown is never held: nothing would ever release it.
        return [] if spent and self._clock - self._written_at < self.seconds else self.flush()

    def _release(self) -> list[Entry]:
        """The lines of the records that waited for their epoch."""
        waiting, self.waiting = self.waiting, []
        return [entry for update in waiting for entry in self._placed(update)]

    def _line_of(self, update: Update) -> list[Entry]:
        entry = describe(update)
        return [] if entry is None else self.line(getattr(update, "step", None), *entry)

    def line(self, step: int | None, text: str, severity: str = "info") -> list[Entry]:
        """A line to write now, after the epochs held."""
        return [*self.flush(), (step, text, severity)]

    def flush(self) -> list[Entry]:
        """The line of the epochs held, if any (they count as written now)."""
        if not self.held:
            return []
        entry = (self.held[-1].step, epochs_line(self.held, self.checkpoints), "info")
        self.held, self.checkpoints = [], []
        self._written_at = self._clock
        return [entry]


#: Entries kept (and wrapped again on every resize); older ones are dropped.
MAX_LINES = 2000


class EventLog(RichLog):
    """The log's lines are kept as text and wrapped again whenever the panel's width changes
    (a resize, or a tab being shown): a RichLog wraps each line once, when it is written,
    at whatever width it had then (its `min_width` while the tab is hidden).

    Scrolled back on the dashboard's time axis (`show_until`), the log holds what a run
    stopped there shows: the lines of its updates up to that position (`nntui.history`),
    the epochs held then written out, and the app's own lines (`add`) written by then."""

    HELP: ClassVar[str] = (
        "What happened, step by step: hyperparameter changes, pauses, checkpoints, the end of "
        "the run, and warnings in yellow. A warning says what looks wrong (a loss spike, "
        "exploding or vanishing gradients, dead ReLUs, saturated sigmoid/tanh units, "
        "overfitting) and what to try; the status line counts them. Where the suggestion is "
        "one change (a lower learning rate, some weight decay), the line ends with it, and "
        "A applies it to the run. Where a change now comes too late (dead ReLUs, exploded "
        "weights), it ends with a fork instead: A starts a new run from the last checkpoint "
        "before the problem with that change (ctrl+r, space to mark, c compares the two)."
    )

    DEFAULT_CSS = """
    EventLog { height: 1fr; background: $surface; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=MAX_LINES, **kwargs)
        self.entries: deque[Text] = deque(maxlen=MAX_LINES)
        #: The app's own lines (not of an update) and the position each was written at.
        self.notes: deque[tuple[int, Entry]] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0
        self._step = 0
        self.fold = LogLines()
        self.position = 0  # updates of the run logged so far (its time axis position)
        self._past: list[Text] | None = None  # the lines shown while scrolled back

    def add(self, step: int | None, text: str, severity: str = "info") -> None:
        """Log `text` at `step` (None: the latest step seen, 0 before the first), after the
        epochs held so far."""
        self.notes.append((self.position, (step, text, severity)))
        for entry in self.fold.line(step, text, severity):
            self._write(*entry)

    def add_update(self, update: Update, position: int = 0) -> None:
        """Log `update`, the run's `position`-th on the time axis."""
        self.position = position
        if isinstance(update, Rewound):  # the whole run follows again: its lines too
            self.entries.clear()
            self.notes.clear()
            self.fold = LogLines(self.fold.seconds)
            self._step = 0
            self.clear()
            return
        for entry in self.fold.take(update):
            self._write(*entry)

    def _write(self, step: int | None, text: str, severity: str) -> None:
        self._step = step if step is not None else self._step
        line = _line(self._step, text, severity)
        self.entries.append(line)
        if self._past is not None:  # scrolled back: shown when the log returns to now
            return
        if self._wrapped_at and self._wrapped_at == self.scrollable_content_region.width:
            self.write(line, width=self._wrapped_at)
        else:  # hidden, or not laid out yet: written with all the rest once it has a width
            self._wrapped_at = 0
            self.call_after_refresh(self._rewrap)

    @property
    def shown(self) -> list[Text]:
        """The lines the log holds now (before wrapping)."""
        return list(self.entries if self._past is None else self._past)

    def show_until(self, position: int | None, records: Sequence[Update] = ()) -> None:
        """Show what the log held after the run's first `position` updates, `records` (the
        run's time axis), with the epochs held then written out; None: now."""
        self._past = None if position is None else self._lines_until(position, records)
        self._wrapped_at = 0
        self._rewrap()

    def _lines_until(self, position: int, records: Sequence[Update]) -> list[Text]:
        """The lines of the run's first `position` updates and of the app's own lines
        written by then, in the order they came, with the epochs held then written out."""
        fold, entries = LogLines(self.fold.seconds), []
        notes = deque(note for note in self.notes if note[0] <= position)
        for index in range(position + 1):
            if index:
                entries += fold.take(records[index - 1])
            while notes and notes[0][0] <= index:
                entries += fold.line(*notes.popleft()[1])
        step, lines = 0, []
        for entry_step, text, severity in [*entries, *fold.flush()]:
            step = entry_step if entry_step is not None else step
            lines.append(_line(step, text, severity))
        return lines[-MAX_LINES:]

    def on_resize(self, event: Resize) -> None:
        self._rewrap()

    def _rewrap(self) -> None:
        """Write every kept line (up to `until`) again at the current width (none while
        hidden)."""
        width = self.scrollable_content_region.width
        if not width or width == self._wrapped_at:
            return
        self.clear()
        self._wrapped_at = width
        for line in self.entries if self._past is None else self._past:
            self.write(line, width=width)


def _line(step: int, text: str, severity: str) -> Text:
    """A log line: its step, then its text in its severity's style."""
    line = Text(f"[{step:>6}] ", style="dim")
    line.append(text, style=STYLES.get(severity, ""))
    return line
