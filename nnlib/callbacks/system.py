"""SystemMetrics: what training costs the machine, as a 'system' event every few seconds —
the process's CPU use, its resident memory (now and at its peak) and the samples trained
per second of wall time — so that every run says what it needed (the runs table's peak RSS
and mean samples/s, the app's status line).

It must cost next to nothing: a batch adds its size and reads one clock; the CPU time and
the memory are read only when an event is due (every `interval` seconds of wall time), when
the run pauses (a paused stretch is left out: the interval starts again at the resume) and
when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._memory import process_memory
from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer

#: Seconds of wall time between two 'system' events.
INTERVAL = 5.0


class SystemMetrics(Callback):
    """Emit a 'system' event every `interval` seconds of training (see the module doc).
    `clock`, `cpu_clock` and `memory` are the wall clock, the process's CPU time (all its
    threads) and (rss, peak rss) in bytes; tests give fakes."""

    essential = False  # a view (see Callback.essential)

    def __init__(
        self,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        memory: Callable[[], tuple[int | None, int | None]] = process_memory,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"SystemMetrics: interval must be a positive number, got {interval}")
        self.interval = interval
        self.clock, self.cpu_clock, self.memory = clock, cpu_clock, memory
        self._reported = False
        self._restart()

    def _restart(self) -> None:
        """Begin an interval now."""
        self._began = self.clock()
        self._cpu = self.cpu_clock()
        self._samples = 0
        self._due = self._began + self.interval

    def on_train_begin(self, trainer: Trainer) -> None:
        self._reported = False
        self._restart()

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        self._samples += logs["size"]
        if self.clock() >= self._due:
            self._report(trainer)

    def on_event(self, trainer: Trainer, event: str, data: dict[str, Any]) -> None:
        if event == "pause":
            self._report_news(trainer)
        elif event == "resume":
            self._restart()

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        self._report_news(trainer)

    def _report_news(self, trainer: Trainer) -> None:
        """Report the interval so far, unless it trained nothing since the last report (one
        just made, or the pause a stopped run ended in): every run reports at least once."""
        if self._samples or not self._reported:
            self._report(trainer)

    def _report(self, trainer: Trainer) -> None:
        """Emit the interval that ends now and begin the next."""
        now, cpu = self.clock(), self.cpu_clock()
        seconds = max(now - self._began, 0.0)
        rss, peak = self.memory()
        measured = {"rss_bytes": rss, "peak_rss_bytes": peak}
        trainer.emit(
            "system",
            seconds=seconds,
            cpu_percent=100 * max(cpu - self._cpu, 0.0) / seconds if seconds > 0 else None,
            samples=self._samples,
            samples_per_sec=self._samples / seconds if seconds > 0 else None,
            **{name: value for name, value in measured.items() if value is not None},
        )
        self._reported = True
        self._restart()
