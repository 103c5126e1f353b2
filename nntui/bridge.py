"""The trainer-to-UI bridge: an nnlib Callback that forwards the run's records to a sink.

The CallbackList makes each record once (`Callback.on_record`), the same object the run log
writes; the bridge hands it on as it is, so a live run and its log read back (nntui.replay)
are one stream (`nntui.stream`) that `RunState` folds the same way. It runs on the training
thread and must never hold it up: records are immutable and small (a few numbers, histogram
counts, a confusion matrix), so the UI thread never touches a live array. Batch records are
held and sent together at most `1 / interval` times a second (toolong's "batch by elapsed
time"), so a fast model does not flood the UI; every other record is sent at once, after the
batches held before it, and never dropped. Before the first record, `RunStarted` says what
the run is (its model, task, epochs), as the replay says it from the run's config.

Importable without Textual: the app passes `post_message`-like sinks, tests pass `list.append`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from nnlib import events
from nnlib.callbacks.base import Callback
from nnlib.runs import RunLogger

from .stream import Batches, RunStarted, Update, pairs

if TYPE_CHECKING:
    from nnlib.trainer import Trainer

Sink = Callable[[Update], object]


class Bridge(Callback):
    """Send a run's records to `sink`; batch records together, at most every `interval` s.

    The sink is called on the training thread, so it must be thread-safe (Textual's
    `post_message` is) and quick.
    """

    record_batches: ClassVar[bool] = True

    def __init__(
        self, sink: Sink, interval: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink = sink
        self.interval = interval
        self.clock = clock
        self.ended = False
        self._started = False
        self._held: list[events.Batch] = []
        self._last_sent = -math.inf

    def on_train_begin(self, trainer: Trainer) -> None:
        self.ended = False
        self._start(trainer)

    def on_record(self, trainer: Trainer, record: events.Event) -> None:
        if isinstance(record, events.Batch):
            self._held.append(record)
            # While paused (single steps), every batch must show at once.
            if trainer.paused or self.clock() - self._last_sent >= self.interval:
                self._flush()
            return
        if not self.ended:  # records after the end (a final checkpoint) belong to this run
            self._start(trainer)
        self._flush()
        self.sink(record)
        if isinstance(record, events.End):
            self._started, self.ended = False, True

    def _start(self, trainer: Trainer) -> None:
        """Announce the run once, before anything else about it (the Monitor's first
        histograms may arrive before this callback's own on_train_begin)."""
        if self._started:
            return
        self._started, self._held, self._last_sent = True, [], -math.inf
        self.sink(_run_started(trainer))

    def _flush(self) -> None:
        """Send the batch records held, if any."""
        self._last_sent = self.clock()
        if self._held:
            held, self._held = tuple(self._held), []
            self.sink(Batches(held))


def _run_started(trainer: Trainer) -> RunStarted:
    """What the trainer says of its run, as `nntui.replay.run_started` says it from a run's
    config."""
    run_dir, train_size = _logged(trainer)
    classes = trainer.model.output_shape[-1] if trainer.loss.task == "classification" else 0
    return RunStarted(
        run_dir,
        trainer.loss.task,
        trainer.model.spec,
        trainer.model.summary().total_params,
        trainer.epochs,
        tuple(str(i) for i in range(classes)),
        tuple(
            layer.name for layer in trainer.model.layers if layer.monitored_weights() is not None
        ),
        pairs(trainer.hyperparameters()),
        trainer.model.built_input_shape,
        train_size,
    )


def _logged(trainer: Trainer) -> tuple[str, int]:
    """The run directory and the training set's size that the trainer's RunLogger records
    ("" and 0 for a run without one: nothing is written)."""
    logger = next((c for c in trainer.callbacks if isinstance(c, RunLogger)), None)
    if logger is None:
        return "", 0
    info = logger.config.get("dataset_info") or {}
    return str(logger.run_dir or ""), int(info.get("train") or 0)
