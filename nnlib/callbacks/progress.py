"""ProgressBar: epoch and batch counts, loss, accuracy, samples/s and ETA.

Uses rich when stdout is a terminal (imported only then); otherwise prints one plain line
per epoch, and one every `interval` seconds within long epochs, so logs of jobs left
running on a server stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..events import Event, format_metrics
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer


#: The events worth a line of their own (their `describe()`) while a bar is drawn.
PRINTED = ("early_stop", "diverged", "checkpoint")
#: A plain line says less rather than pass this width (a terminal or a log viewer's).
WIDTH = 80


def plain_line(head: str, logs: Logs, tail: str = "") -> str:
    """`head`, the metrics, the speed and `tail` on one line of at most WIDTH characters if
    it can: closer spacing first, then a shorter speed, then no speed."""
    speed = logs.get("samples_per_sec")
    long, short = (f"{speed:,.0f} samples/s", f"{speed:,.0f}/s") if speed is not None else ("", "")
    lines = [
        sep.join(part for part in (head, format_metrics(logs, sep), shown, tail) if part)
        for sep, shown in (("  ", long), (" ", long), (" ", short), (" ", ""))
    ]
    return next((line for line in lines if len(line) <= WIDTH), lines[-1])


class ProgressBar(Callback):
    """Live progress on a terminal (rich), plain lines in a log file; see the module doc."""

    essential = False  # a view (see Callback.essential)

    def __init__(
        self, stream: TextIO | None = None, interval: float = 10.0, rich: bool | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.interval = interval
        self.use_rich = rich if rich is not None else self.stream.isatty()
        self._progress: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.use_rich:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TextColumn("{task.fields[speed]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
        self._last_print = time.monotonic()

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(
                f"epoch {epoch + 1}/{trainer.epochs}",
                total=trainer.steps_per_epoch,
                metrics="",
                speed="",
            )

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        speed = f"{logs['samples_per_sec']:,.0f} samples/s"
        if self._progress is not None:
            self._progress.update(
                self._task, completed=batch + 1, metrics=format_metrics(logs), speed=speed
            )
        elif time.monotonic() - self._last_print >= self.interval:
            self._last_print = time.monotonic()
            self._print(
                plain_line(
                    f"epoch {trainer.epoch + 1}/{trainer.epochs} "
                    f"batch {batch + 1}/{trainer.steps_per_epoch}",
                    logs,
                )
            )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if self._progress is not None:
            self._progress.update(self._task, metrics=format_metrics(logs))
        else:
            self._print(
                plain_line(f"epoch {epoch + 1}/{trainer.epochs}", logs, f"{logs['seconds']:.1f}s")
            )

    def on_record(self, trainer: Trainer, record: Event) -> None:
        if record.type in PRINTED:
            self._print(record.describe())

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            print(line, file=self.stream, flush=True)
