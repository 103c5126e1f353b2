"""`CallbackList`: a run's callbacks in order, the default ones, and dispatch (after Keras's
`keras/src/callbacks/callback_list.py`).

It is a list (iterate it, look for a kind of callback in it), made by the Trainer: a `History`
first, then the caller's callbacks, then a `DivergenceGuard` unless one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Callback, History
from .stopping import DivergenceGuard

if TYPE_CHECKING:
    from ..trainer import Trainer


class CallbackList(list[Callback]):
    """The callbacks of `trainer`, called in order at every hook."""

    def __init__(
        self, trainer: Trainer, callbacks: Sequence[Callback] = (), divergence_guard: bool = True
    ) -> None:
        self.trainer = trainer
        self.history = History()
        extra = list(callbacks)
        if divergence_guard and not any(isinstance(c, DivergenceGuard) for c in extra):
            extra.append(DivergenceGuard())
        super().__init__([self.history, *extra])

    def call(self, hook: str, *args: Any, every: bool = False) -> None:
        """Call `hook` on each callback in order. With `every`, an error in one callback does
        not keep the others from being called (the run log still gets its 'end'); the first
        error is raised afterwards."""
        first_error: BaseException | None = None
        for callback in self:
            try:
                getattr(callback, hook)(self.trainer, *args)
            except BaseException as error:
                if not every:
                    raise
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def emit(self, event: str, **data: Any) -> None:
        """Send an event to every callback's `on_event` (histograms, checkpoints, ...); its
        step is the trainer's current one unless `data` gives one."""
        data.setdefault("step", self.trainer.global_step)
        for callback in self:
            callback.on_event(self.trainer, event, data)
