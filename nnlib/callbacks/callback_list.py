"""`CallbackList`: a run's callbacks in order, the default ones, and dispatch (after Keras's
`keras/src/callbacks/callback_list.py`).

It is a list (iterate it, look for a kind of callback in it), made by the Trainer: a `History`
first, then the caller's callbacks, then a `DivergenceGuard` unless one is given.

It is also where the run's records are made (`nnlib.events`), once each, as Keras's list
converts the logs once for every callback: an emitted event's record before any callback sees
it (a malformed one is the emitter's error), and a batch's, an epoch's and the end's from the
logs after every callback's hook has run (a hook may add to the logs). Every callback gets the
same record in `on_record`, so the run log, the progress bar and the app's bridge show one
fact in one vocabulary, in the order it happened, wherever each sits in the list.

Dispatch is where a failing view steps aside (faults are normal: a view that cannot
draw never ends a run): a callback that is not `essential` and raises in any hook, its
`on_event` included, is reported once as a 'warning' event of kind 'view_failed' and not
called again in this run. An essential callback's error goes up to the trainer and ends the
run, also when it surfaced while a view was emitting, unless it was an `EventError`: then
the view's event was malformed, and the view steps aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..events import Event, EventError, fast_make, make
from .base import Callback, History, Logs
from .stopping import DivergenceGuard

if TYPE_CHECKING:
    from ..trainer import Trainer

#: The longest exception text a 'view_failed' warning quotes.
ERROR_TEXT_MAX = 300
#: The hooks whose logs are a record of the run, and its type.
RECORDED = {"on_batch_end": "batch", "on_epoch_end": "epoch", "on_train_end": "end"}


#: The hooks each class of callback defines itself, by class (filled as classes are met).
_OWN_HOOKS: dict[type, frozenset[str]] = {}


def listens(callback: Callback, hook: str) -> bool:
    """Whether `callback` does anything at `hook`: Callback's own hooks do nothing, and
    calling them anyway, for every callback at every batch, took 14 µs a batch for the app's
    16 callbacks, of which 2 define on_batch_begin (a sixth of a spirals batch). A hook set
    on the instance counts too."""
    kind = type(callback)
    own = _OWN_HOOKS.get(kind)
    if own is None:
        own = frozenset(
            name
            for name in dir(Callback)
            if name.startswith("on_") and getattr(kind, name) is not getattr(Callback, name)
        )
        _OWN_HOOKS[kind] = own
    return hook in own or hook in getattr(callback, "__dict__", ())


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
        self.turned_off: list[Callback] = []  # views that failed in this run
        self._loud: BaseException | None = None  # an essential callback's own latest error

    def begin_run(self) -> None:
        """A new run: every callback is called again, also a view that failed in the last."""
        self.turned_off, self._loud = [], None

    def call(self, hook: str, *args: Any, every: bool = False) -> None:
        """Call `hook` on each callback in order, then, for the hooks that end a batch, an
        epoch or the run, hand the record of its logs to every `on_record` (RECORDED). With
        `every`, an error in one callback does not keep the others from being called (the
        run log still gets its 'end'); the first error is raised afterwards."""
        listening = [c for c in self._active() if listens(c, hook)]
        steps = [partial(self._dispatch, callback, hook, *args) for callback in listening]
        if hook in RECORDED:  # made after every hook ran: a hook may add to the logs
            steps.append(partial(self._record, RECORDED[hook], args[-1]))
        first_error: BaseException | None = None
        for step in steps:
            try:
                step()
            except BaseException as error:
                if not every:
                    raise
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def emit(self, event: str, **data: Any) -> None:
        """Send an event to every callback's `on_event` (histograms, checkpoints, ...), then
        its record to every `on_record`; its step is the trainer's current one unless `data`
        gives one. Raises EventError, before any callback sees it, when a field is wrong."""
        data.setdefault("step", self.trainer.global_step)
        record = make(event, data["step"], data)
        for callback in self._active():
            self._dispatch(callback, "on_event", event, data)
        self._hand(record, self._active())

    def _record(self, event_type: str, logs: Logs) -> None:
        """The record of a batch's, an epoch's or the end's logs, to every `on_record`
        (a batch's only to the callbacks that ask for them, and made only then)."""
        active, step = self._active(), logs.get("step", self.trainer.global_step)
        if event_type != "batch":
            self._hand(make(event_type, step, logs), active)
            return
        asking = [c for c in active if c.record_batches]
        if asking:  # a batch's record has a fast path
            self._hand(fast_make(event_type, step, logs), asking)

    def _hand(self, record: Event, callbacks: list[Callback]) -> None:
        for callback in callbacks:
            if listens(callback, "on_record"):
                self._dispatch(callback, "on_record", record)

    def _active(self) -> list[Callback]:
        """The callbacks still called, in order (a copy: one may be turned off meanwhile)."""
        if not self.turned_off:
            return list(self)
        return [c for c in self if not any(c is off for off in self.turned_off)]

    def _dispatch(self, callback: Callback, hook: str, *args: Any) -> None:
        """`callback.hook(trainer, *args)`; a view that raises steps aside (module doc)."""
        try:
            getattr(callback, hook)(self.trainer, *args)
        except Exception as error:  # KeyboardInterrupt and SystemExit always end the run
            if callback.essential:
                if hook in ("on_event", "on_record") and not isinstance(error, EventError):
                    self._loud = error  # its own failure: loud through a view's emit too
                raise
            if error is self._loud:
                raise
            self._step_aside(callback, hook, error)

    def _step_aside(self, callback: Callback, hook: str, error: Exception) -> None:
        """Turn `callback` off for the rest of the run and say so in one warning."""
        self.turned_off.append(callback)
        name = type(callback).__name__
        text = f"{type(error).__name__}: {error}"
        if len(text) > ERROR_TEXT_MAX:
            text = text[: ERROR_TEXT_MAX - 1] + "…"
        self.emit(
            "warning",
            kind="view_failed",
            message=f"{name} failed in {hook} and is off for the rest of the run ({text})",
            suggestion="training goes on without it; please report it with this run's log",
            epoch=self.trainer.epoch,
        )
