"""OnDemand: a callback whose work another thread can ask for (the app's keys), done by the
training thread at the next batch boundary, where the weights hold still between two steps.

A paused run is parked before its next batch, so a request made while paused is served
after the next single step (`n`): the learner sees the result of exactly that step. A
subclass with `WHILE_PARKED` is also served while the run is parked (by the run control's
poller, on the training thread, whose weights hold still there): the answer comes without a
step.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer


class OnDemand(Callback, ABC):
    """Subclasses implement `serve(trainer, trigger)`; `request()` is safe from any thread."""

    #: Also serve a request while the run is parked (a pause), not only after a batch.
    WHILE_PARKED: ClassVar[bool] = False

    def __init__(self) -> None:
        self._asked = threading.Event()
        self._trainer: Trainer | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.WHILE_PARKED:
            self._trainer = trainer
            trainer.control.add_poller(self._poll)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if self.WHILE_PARKED:
            trainer.control.remove_poller(self._poll)
            self._trainer = None

    def _poll(self) -> None:
        """(The training thread, at a batch boundary or parked.)"""
        if self._trainer is not None and self._asked.is_set():
            self._asked.clear()
            self.serve(self._trainer, "request")

    def request(self) -> None:
        """Ask for `serve(trainer, "request")` at the next batch boundary."""
        self._asked.set()

    @property
    def requested(self) -> bool:
        """True while a request waits for its batch boundary."""
        return self._asked.is_set()

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self._asked.is_set():
            self._asked.clear()
            self.serve(trainer, "request")

    @abstractmethod
    def serve(self, trainer: Trainer, trigger: str) -> None:
        """Do the work and emit its event; `trigger` says why ("request", "epoch", ...)."""
