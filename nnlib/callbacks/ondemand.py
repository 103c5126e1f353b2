"""OnDemand: a callback whose work another thread can ask for (the app's keys), done by the
training thread at the next batch boundary, where the weights hold still between two steps.

A paused run is parked before its next batch, so a request made while paused is served
after the next single step (`n`): the learner sees the result of exactly that step.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from .base import Callback, Logs

if TYPE_CHECKING:
    from ..trainer import Trainer


class OnDemand(Callback, ABC):
    """Subclasses implement `serve(trainer, trigger)`; `request()` is safe from any thread."""

    def __init__(self) -> None:
        self._asked = threading.Event()

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
