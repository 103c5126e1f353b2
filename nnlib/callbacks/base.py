"""The callback protocol and `History`.

Hook names follow Keras; the trainer is passed first, as in PyTorch Lightning, so a callback
can read anything (model, optimizer, step) or ask the run to stop (`trainer.stop_training`).
Order of calls over a run:

    on_train_begin
      on_epoch_begin
        on_batch_begin, on_batch_end          (once per batch)
      on_epoch_end                            (after validation)
    on_train_end                              (always, also after stop, error or Ctrl+C)

`on_event` receives the trainer's other events (hyperparameter changes, pause, resume,
histograms, confusion matrices, checkpoints) as they happen, as the dict they were emitted
with. `on_record` receives every record of the run (`nnlib.events`: each emitted event, each
epoch and the end; each batch too for a callback with `record_batches`), made once by the
CallbackList and shared by every callback, as Keras's CallbackList converts the logs once: a
consumer that shows or writes the run (the run log, the progress bar, the app's bridge) reads
the record instead of building its own from the same dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..events import Event
    from ..trainer import Trainer

Logs = dict[str, Any]


class Callback:
    """Override any hook; the defaults do nothing."""

    #: Whether the run stops when this callback raises. True (the default) for what a run is
    #: made of: its log (RunLogger), its saved weights (checkpoints), its steering (the
    #: command door, schedules, early stopping, the divergence guard) and any callback that
    #: does not say otherwise; training on without one of them would lose the record or the
    #: weights, or train something other than what was asked, so its error ends the run
    #: with reason 'error'. False for the views and monitors (Monitor, BoundaryView,
    #: Diagnostics, SampleRecorder, FeatureMaps, TestEvaluator, ProgressBar), which only
    #: show the run: one that raises in any hook is reported once as a 'view_failed'
    #: warning and turned off for the rest of the run, and training goes on.
    essential: ClassVar[bool] = True
    #: Whether `on_record` also gets a record of every batch. False by default: a batch record
    #: is made only when a callback asks for it, since a small model runs tens of thousands
    #: of batches a second (the run log writes its batch lines from the logs dict).
    record_batches: ClassVar[bool] = False

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before the first batch of `epoch` (0-based)."""

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        """Before batch `batch` (0-based within the epoch) is trained."""

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        """After the optimizer step of batch `batch`."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """After validation of `epoch`."""

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        """Once, at the very end; logs['reason'] says why the run ended."""

    def on_event(self, trainer: Trainer, event: str, data: Logs) -> None:
        """Any other trainer event: hparam, pause, resume, histograms, confusion, checkpoint."""

    def on_record(self, trainer: Trainer, record: Event) -> None:
        """A record of the run, the same object for every callback: each emitted event
        (after every callback's `on_event`), each epoch (after every `on_epoch_end`), the
        end (after every `on_train_end`), and with `record_batches` each batch (after every
        `on_batch_end`). In the order they were made, wherever the callback sits in the list
        (the run log writes them in that order too, but for a batch's line, which it writes
        from `on_batch_end`: an event emitted after it in that hook, the divergence guard's,
        comes before the batch's record here and after its line there)."""

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint must keep for this callback to continue exactly (JSON-able
        values), or None when it keeps nothing (the default)."""
        return None

    def load_state(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned (from a checkpoint)."""


class History(Callback):
    """Every batch and epoch log of a run, in order."""

    def __init__(self) -> None:
        self.batches: list[Logs] = []
        self.epochs: list[Logs] = []
        self.end: Logs = {}

    def on_train_begin(self, trainer: Trainer) -> None:
        self.batches, self.epochs, self.end = [], [], {}

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        self.batches.append(dict(logs))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self.epochs.append(dict(logs))

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        self.end = dict(logs)

    def series(self, key: str, per: str = "epoch") -> list[Any]:
        """One metric over the run, e.g. history.series('val_loss')."""
        rows = self.epochs if per == "epoch" else self.batches
        return [row.get(key) for row in rows]

    @property
    def reason(self) -> str | None:
        """Why the run ended: finished, stopped, early_stop, diverged, interrupted or error."""
        return self.end.get("reason")
