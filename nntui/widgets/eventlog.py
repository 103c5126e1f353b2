"""The event log: hyperparameter changes, pause/resume, early stop, divergence, checkpoints,
errors and the end of the run, each with the step it happened at."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ..bridge import EpochEnd, HparamChange, Notice, RunEnded, RunStarted, Snapshot
from ..plot import format_number

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
            f"{snapshot.name} {_value(snapshot.old)} → {_value(snapshot.new)} "
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
    if isinstance(snapshot, EpochEnd):
        text = f"epoch {snapshot.epoch + 1}: loss {format_number(snapshot.loss).strip()}"
        if snapshot.val_loss is not None:
            text += f", val {format_number(snapshot.val_loss).strip()}"
        if snapshot.val_accuracy is not None:
            text += f" / {snapshot.val_accuracy:.1%}"
        return text + f" ({snapshot.seconds:.1f}s)", "info"
    if isinstance(snapshot, RunEnded):
        if snapshot.error:
            return f"run failed: {snapshot.error}", "error"
        severity = "error" if snapshot.reason == "diverged" else "good"
        return f"run ended: {snapshot.reason} at step {snapshot.step}", severity
    return None


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 1fr; background: $surface; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, min_width=20, **kwargs)

    def add(self, step: int | None, text: str, severity: str = "info") -> None:
        line = Text(f"[{step:>6}] " if step is not None else " " * 9, style="dim")
        line.append(text, style=STYLES.get(severity, ""))
        self.write(line)

    def add_snapshot(self, snapshot: Snapshot) -> None:
        entry = describe(snapshot)
        if entry is not None:
            self.add(getattr(snapshot, "step", None), *entry)
