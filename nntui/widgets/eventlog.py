"""The event log: hyperparameter changes, pause/resume, early stop, divergence, checkpoints,
errors and the end of the run, each with the step it happened at."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from rich.text import Text
from textual.widgets import RichLog

from nnlib.events import Diagnostic

from ..bridge import EpochEnd, HparamChange, Notice, RunEnded, RunStarted, Snapshot
from ..plot import format_number, format_value

STYLES = {"info": "", "good": "green", "warning": "yellow", "error": "bold red"}


def describe(snapshot: Snapshot) -> tuple[str, str] | None:
    """(line, severity) for snapshots worth logging; None for the rest."""
    if isinstance(snapshot, RunStarted):
        return (
            f"run started: {snapshot.arch} ({snapshot.params:,} params), log in {snapshot.run_dir}",
            "info",
        )
    if isinstance(snapshot, HparamChange):
        return (
            f"{snapshot.name} {format_value(snapshot.old)} → {format_value(snapshot.new)} "
            f"(applies {snapshot.applies})",
            "warning",
        )
    if isinstance(snapshot, Notice):
        severity = {
            "diverged": "error",
            "error": "error",
            "early_stop": "good",
            "checkpoint": "good",
        }.get(snapshot.kind, "info")
        return snapshot.message, severity
    if isinstance(snapshot, Diagnostic):
        return snapshot.describe(), "warning"
    if isinstance(snapshot, EpochEnd):
        text = f"epoch {snapshot.epoch + 1}: loss {format_number(snapshot.loss)}"
        if snapshot.val_loss is not None:
            text += f", val {format_number(snapshot.val_loss)}"
        if snapshot.val_accuracy is not None:
            text += f" / {snapshot.val_accuracy:.1%}"
        return text + f" ({snapshot.seconds:.1f}s)", "info"
    if isinstance(snapshot, RunEnded):
        if snapshot.error:
            return f"run failed: {snapshot.error}", "error"
        severity = "error" if snapshot.reason == "diverged" else "good"
        return f"run ended: {snapshot.reason} at step {snapshot.step}", severity
    return None


#: Entries kept (and wrapped again on every resize); older ones are dropped.
MAX_LINES = 2000


class EventLog(RichLog):
    """The log's lines are kept as text and wrapped again whenever the panel's width changes
    (a resize, or a tab being shown): a RichLog wraps each line once, when it is written,
    at whatever width it had then (its `min_width` while the tab is hidden)."""

    HELP: ClassVar[str] = (
        "What happened, step by step: hyperparameter changes, pauses, checkpoints, the end of "
        "the run, and warnings in yellow. A warning says what looks wrong (a loss spike, "
        "exploding or vanishing gradients, dead ReLUs, saturated sigmoid/tanh units, "
        "overfitting) and what to try; the status line counts them."
    )

    DEFAULT_CSS = """
    EventLog { height: 1fr; background: $surface; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=MAX_LINES, **kwargs)
        self.entries: deque[Text] = deque(maxlen=MAX_LINES)
        self._wrapped_at = 0
        self._step = 0

    def add(self, step: int | None, text: str, severity: str = "info") -> None:
        """Log `text` at `step` (None: the latest step seen, 0 before the first)."""
        self._step = step if step is not None else self._step
        line = Text(f"[{self._step:>6}] ", style="dim")
        line.append(text, style=STYLES.get(severity, ""))
        self.entries.append(line)
        if self._wrapped_at and self._wrapped_at == self.scrollable_content_region.width:
            self.write(line, width=self._wrapped_at)
        else:  # hidden, or not laid out yet: written with all the rest once it has a width
            self._wrapped_at = 0
            self.call_after_refresh(self._rewrap)

    def add_snapshot(self, snapshot: Snapshot) -> None:
        entry = describe(snapshot)
        if entry is not None:
            self.add(getattr(snapshot, "step", None), *entry)

    def on_resize(self) -> None:
        self._rewrap()

    def _rewrap(self) -> None:
        """Write every kept line again at the current width (none while hidden)."""
        width = self.scrollable_content_region.width
        if not width or width == self._wrapped_at:
            return
        self.clear()
        self._wrapped_at = width
        for line in self.entries:
            self.write(line, width=width)
