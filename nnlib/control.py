"""`RunControl`: pause, resume, step, stop, set and pace for a run, from any thread.

A control call only records a request under a lock; the training thread acts on requests at
batch boundaries (`at_boundary`) and reports each one as an event with the step at which it
took effect. A paused run waits on a condition variable, so it uses no CPU.

A run is one `Trainer.fit()` call, from its start to its last `on_train_end`; one runs at a
time (`begin_run` refuses a second). Requests are never lost between runs: a `stop()` made
while no run is in progress stops the next run at its first batch boundary (so a stop sent
just after starting `fit()` in a thread always takes effect), and a `set()` that arrives while
a run is ending is applied as soon as it has ended.

Every request comes through the public methods, which is what makes another door a small
addition: `command(action, *arguments)` takes a request as data (one line of the run
directory's command file, see `nnlib.remote`) and calls the same method a key press calls.
Each request names its `source` ("app", "remote", "signal"; "script" by default), and the
event that reports it carries that source.

Other processes reach a run through pollers (`add_poller`): functions the training thread
calls at every batch boundary, and every POLL_SECONDS while it is parked by a pause or waits
for its pace, so that such a run still hears a resume or a stop sent from elsewhere.

A pace (`set_pace`, epochs per second; None: full speed, the default) slows a run down to
what a person can follow: the training thread waits at batch boundaries, on the same
condition a pause parks on, so a pause, a stop, a step or a new pace cuts the wait short. It
only ever waits: which batches are trained, in which order, on which weights, is the same at
any pace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from . import _validate
from .states import RunStatus

#: Where a request comes from when its caller does not say (a Python script or notebook).
SCRIPT = "script"
#: How often a parked run wakes to call its pollers (a command is heard within this).
POLL_SECONDS = 0.1
#: The end reasons a stop request may give: a user's stop, and an interrupt (a signal, Ctrl+C).
#: The others (finished, early_stop, diverged, error) are the run's own findings, never a
#: request's: a command line saying 'diverged' must not end a healthy run as diverged.
STOP_REASONS: tuple[RunStatus, ...] = (RunStatus.STOPPED, RunStatus.INTERRUPTED)
#: The paces a run may be given, in epochs per second: from one epoch in 100 s to 10,000 a
#: second (a wait is bounded: a condition's timeout overflows past about 10**9 s).
PACE_RANGE = (0.01, 10_000.0)
#: What a command line says for "no pace" (None in Python and JSON).
FULL_SPEED = "full"


def check_pace(value: Any) -> float | None:
    """`value` as a pace: None (or "full") for full speed, else epochs per second within
    PACE_RANGE; a ValueError naming it otherwise."""
    if value is None or (isinstance(value, str) and value == FULL_SPEED):
        return None
    low, high = PACE_RANGE
    try:
        return _validate.float_in("run control", "pace", value, low, high, include_high=True)
    except ValueError as error:
        raise ValueError(f"{error} (epochs per second, or {FULL_SPEED!r})") from None


class RunControl:
    """The requests of one trainer's runs and the training thread's side of them.

    `validate(name, value)` checks a hyperparameter (returns the value to use, or raises
    ValueError); `apply(name, value, source)` sets it and reports it; `announce(event,
    **fields)` reports a 'pause', a 'resume' or a 'stop' (with its source, and a stop's
    reason). The last two are called on the thread that applies the request.
    """

    def __init__(
        self,
        validate: Callable[[str, Any], Any],
        apply: Callable[[str, Any, str], None],
        announce: Callable[..., None],
    ) -> None:
        self._validate, self._apply, self._announce = validate, apply, announce
        self.state = RunStatus.IDLE
        self._condition = threading.Condition()
        self._paused = False
        self._parked = False
        self._pause_announced = False
        self._step_budget = 0
        self._stop_requested: RunStatus | None = None  # the end reason a stop() asked for
        self._sources = {"pause": SCRIPT, "resume": SCRIPT, "stop": SCRIPT}  # the latest of each
        self._pollers: list[Callable[[], None]] = []
        self._applying = threading.RLock()  # set() requests are applied in order, one at a time
        self._runs_ended = 0
        self._in_run = False  # from fit's start to its last on_train_end: set() must queue
        self._pending: list[tuple[str, Any, str]] = []
        self._pace: float | None = None  # in force: epochs per second, None for full speed
        self._pace_request: tuple[float | None, str] | None = None  # (pace, source) asked for
        # (monotonic time, position in epochs) the pace counts from; None: from the next batch
        self._anchor: tuple[float, float] | None = None

    # -- requests (any thread) ------------------------------------------------------------
    def pause(self, source: str = SCRIPT) -> None:
        """Park the training thread at the next batch boundary."""
        with self._condition:
            if not self._paused:
                self._sources["pause"] = source
            self._paused = True
            self._step_budget = 0
            self._condition.notify_all()

    def resume(self, source: str = SCRIPT) -> None:
        """Let a paused run go on."""
        with self._condition:
            if self._paused:
                self._sources["resume"] = source
            self._paused = self._parked = False
            self._condition.notify_all()

    def step(self, source: str = SCRIPT) -> None:
        """While paused, run exactly one more batch, then stay paused."""
        with self._condition:
            if self._paused:
                self._step_budget += 1
                self._parked = False  # so that wait_until_parked waits for the next park
                self._condition.notify_all()

    def stop(self, reason: str = RunStatus.STOPPED, source: str = SCRIPT) -> None:
        """Finish the current batch, then end the run with `reason`: 'stopped', or
        'interrupted' for a signal (no other: see STOP_REASONS). Made while no run is in
        progress, the request waits: the next fit() calls on_train_begin, stops at its first
        batch boundary and ends with `reason` (unlike Keras's stop_training, which fit
        resets), so a stop() sent just after a thread started fit() is never lost."""
        if not isinstance(reason, str) or reason not in STOP_REASONS:
            choices = ", ".join(STOP_REASONS)
            raise ValueError(
                f"Trainer.stop: reason must be one of {choices}, got {_validate.shown(reason)}"
            )
        with self._condition:
            if not self._stop_requested:
                self._sources["stop"] = source
            self._stop_requested = self._stop_requested or RunStatus(reason)
            self._parked = False
            self._condition.notify_all()

    def set(self, name: str, value: Any, source: str = SCRIPT) -> None:
        """Change a hyperparameter. Validated now (ValueError, nothing changed); applied by
        the training thread before the next batch, or — for batch_size — from the next epoch;
        with no run in progress, applied at once on this thread."""
        value = self._validate(name, value)
        with self._condition:
            self._pending.append((name, value, source))
            in_run = self._in_run
        if not in_run:  # no training thread to apply it: apply it now, on this thread
            self.apply_requests(epoch_boundary=True)
        # else the training thread applies it, at a boundary or once its run has ended

    def set_pace(self, pace: Any, source: str = SCRIPT) -> None:
        """Train at most `pace` epochs a second (None or "full": full speed), by waiting at
        batch boundaries. Validated now (ValueError, nothing changed); in force from the next
        batch boundary, which a wait for the old pace reaches at once, and reported there as
        a 'pace' event. Made while no run is in progress, the next run starts with it."""
        value = check_pace(pace)
        with self._condition:
            self._pace_request = (value, source)
            self._condition.notify_all()

    @property
    def pace(self) -> float | None:
        """The latest pace asked for, in epochs per second (None: full speed)."""
        with self._condition:
            return self._pace if self._pace_request is None else self._pace_request[0]

    def command(self, action: str, *arguments: Any, source: str = SCRIPT) -> str:
        """Make a request given as data: ('pause',), ('resume',), ('step',), ('stop',),
        ('stop', reason), ('set', name, value) or ('pace', epochs_per_second or "full" or
        None); returns a line saying what it will do.
        ValueError, with nothing changed, for anything else, and for a step while the run
        is not paused (it would do nothing, while its sender waits for one batch)."""
        doors: dict[str, tuple[Callable[..., None], range]] = {
            "pause": (self.pause, range(0, 1)),
            "resume": (self.resume, range(0, 1)),
            "step": (self.step, range(0, 1)),
            "stop": (self.stop, range(0, 2)),
            "set": (self.set, range(2, 3)),
            "pace": (self.set_pace, range(1, 2)),
        }
        if action not in doors:
            raise ValueError(
                f"run control: unknown action {_validate.shown(action)}; "
                f"expected one of {', '.join(doors)}"
            )
        door, counts = doors[action]
        if len(arguments) not in counts:
            expected = {
                "stop": "none or a reason",
                "set": "a name and a value",
                "pace": f"epochs per second or {FULL_SPEED!r}",
            }.get(action, "none")
            raise ValueError(
                f"run control: {action!r} takes {expected} as arguments, got {len(arguments)}"
            )
        if action == "step" and not self._paused:
            raise ValueError("run control: 'step' runs one batch of a paused run; pause first")
        door(*arguments, source=source)
        if action == "set":
            name, value = arguments
            when = "from the next epoch" if name == "batch_size" else "before the next batch"
            return f"{name} set to {self.pending().get(name, value)!r}, applied {when}"
        if action == "pace":
            pace = self.pace
            shown = "full speed" if pace is None else f"at most {pace:g} epochs a second"
            return f"{shown}, from the next batch boundary"
        return {
            "pause": "pausing at the next batch boundary",
            "resume": "resuming",
            "step": "running one batch, then pausing again",
            "stop": "stopping at the next batch boundary",
        }[action]

    def pending(self) -> dict[str, Any]:
        """Requested values not applied yet (for a UI to show at once)."""
        with self._condition:
            return {name: value for name, value, _ in self._pending}

    def requests(self) -> list[tuple[str, Any, str]]:
        """The set() requests not applied yet, in order, as (name, value, source): a
        checkpoint keeps them, so that a resumed run applies them where this one would have."""
        with self._condition:
            return list(self._pending)

    def restore_requests(self, requests: list[tuple[str, Any, str]]) -> None:
        """Queue `requests` (from `requests()` of a checkpointed run) ahead of any made since,
        each validated as set() does (ValueError, nothing queued), without applying them: the
        next run applies them at its boundaries, a batch size at its next epoch's start."""
        checked = [(name, self._validate(name, value), source) for name, value, source in requests]
        with self._condition:
            self._pending = checked + self._pending

    @property
    def paused(self) -> bool:
        """True once a pause has been requested (the thread parks at the next boundary)."""
        return self._paused

    def wait_until_parked(self, timeout: float | None = None) -> bool:
        """Block until the training thread is parked by a pause (its 'pause' event sent and
        `state` PAUSED); True if it is. After `step()`, this waits for the next park. Returns
        False at the timeout, or when the run ends without parking."""
        with self._condition:
            ended = self._runs_ended
            return (
                self._condition.wait_for(lambda: self._parked or self._runs_ended != ended, timeout)
                and self._parked
            )

    # -- the run's life (the training thread) ---------------------------------------------
    def begin_run(self) -> int:
        """Claim the run for this thread; returns a token for `end_run`. RuntimeError when a
        run is already in progress."""
        with self._condition:
            if self._in_run:
                raise RuntimeError(
                    "Trainer.fit: this trainer is already running fit() on another thread; "
                    "wait for that run to end, or train a second model with its own Trainer"
                )
            self._in_run = True
            return self._runs_ended

    def start(self) -> None:
        """The run's hooks begin: it is RUNNING."""
        self.state = RunStatus.RUNNING

    def finish(self, reason: str) -> None:
        """The run ended for `reason` (before its on_train_end): forget a pause or a step
        left over, so that it cannot park the next run, and wake `wait_until_parked`."""
        with self._condition:
            self._paused = self._parked = self._pause_announced = False
            self._step_budget = 0
            self._anchor = None
            self._runs_ended += 1
            self._condition.notify_all()  # wake wait_until_parked: no park will come
        self.state = RunStatus.of_end(reason).trainer_state()

    def end_run(self, token: int) -> None:
        """Release the run claimed by `begin_run`, after its last on_train_end: a stop sent
        during the run ends with it; set() requests sent while it was ending apply now."""
        with self._condition:
            self._in_run = False
            if self._runs_ended != token:
                self._stop_requested = None
        self.apply_requests(epoch_boundary=True)

    # -- other doors: pollers ---------------------------------------------------------------
    def add_poller(self, poll: Callable[[], None]) -> None:
        """Have the training thread call `poll` at every batch boundary and, while parked or
        waiting for its pace, every POLL_SECONDS. It runs without the control's lock, so it
        may make requests."""
        with self._condition:
            self._pollers.append(poll)

    def remove_poller(self, poll: Callable[[], None]) -> None:
        """Stop calling `poll` (a no-op if it is not there)."""
        with self._condition:
            if poll in self._pollers:
                self._pollers.remove(poll)

    def _poll(self) -> None:
        for poll in list(self._pollers):
            poll()

    # -- batch boundaries (the training thread) ---------------------------------------------
    def at_boundary(self, epoch: int = 0, batch: int = 0, batches: int = 0) -> RunStatus | None:
        """Hear the pollers, park while paused, wait for the pace, then apply requests.
        The next batch is `batch` of `batches` in `epoch` (batches=0: a caller without
        epochs, never paced). Returns the reason to end the run with when a stop was
        requested, else None (train the next batch)."""
        if self._pollers:
            self._poll()
        self._wait_until_due(epoch, batch, batches)
        with self._condition:
            stop = self._stop_requested
            stepping = self._paused and self._step_budget > 0
            if stepping:
                self._step_budget -= 1
            resumed = self._pause_announced and not self._paused
        if stop:
            self._announce("stop", reason=str(stop), source=self._sources["stop"])
            return stop
        if resumed:
            self._pause_announced = False
            self._announce("resume", source=self._sources["resume"])
        self.apply_requests(epoch_boundary=False)
        self.state = RunStatus.PAUSED if stepping else RunStatus.RUNNING
        return None

    def _wait_until_due(self, epoch: int, batch: int, batches: int) -> None:
        """Park while paused and wait for the pace until the next batch may start, going
        round again when a pause or a new pace cuts a wait short. (A pace request is read
        without the lock, as at full speed nothing else is: one made just after this is
        applied at the next boundary. Before a park too, so that a run started paused shows
        its pace.)"""
        while True:
            if self._pace_request is not None:
                self._apply_pace()
            with self._condition:
                park = self._must_park()
            if park:
                self._park()
                continue  # a pace asked for while parked
            if not batches or self._pace is None:  # full speed
                return
            if self._wait_for_pace(epoch + batch / batches, batch == 0):
                return

    def _park(self) -> None:
        """Announce the pause (once) and wait while the run must stay parked: without a
        timeout when nothing else can wake it, else waking every POLL_SECONDS to call the
        pollers (outside the lock). After it, the pace counts from the next batch."""
        self.state = RunStatus.PAUSED
        if not self._pause_announced:
            self._pause_announced = True
            self._announce("pause", source=self._sources["pause"])
        while True:
            with self._condition:
                if not self._must_park():
                    self._parked = False
                    break
                # Marked parked only now (waiters see the state and the event), and again
                # after every wake-up that leaves it parked: resume() clears the mark, and a
                # pause() that follows before this thread runs must see it set again.
                self._parked = True
                self._condition.notify_all()
                polling = self._wait(None)
            if polling:
                self._poll()
        self._anchor = None

    def _wait(self, seconds: float | None) -> bool:
        """Wait on the condition (its lock held) for at most `seconds` (None: until woken),
        and at most POLL_SECONDS while there are pollers; whether there are pollers to call
        now, once the lock is released."""
        if self._pollers:
            seconds = POLL_SECONDS if seconds is None else min(seconds, POLL_SECONDS)
        self._condition.wait(seconds)
        return bool(self._pollers)

    def _apply_pace(self) -> None:
        """Put a requested pace in force and report it (when it changes the pace)."""
        with self._condition:
            request, self._pace_request = self._pace_request, None
            if request is None:
                return
            old, self._pace = self._pace, request[0]
            self._anchor = None  # a new pace counts from the next batch
        if request[0] != old:
            self._announce("pace", old=old, new=request[0], source=request[1])

    def _wait_for_pace(self, position: float, epoch_start: bool) -> bool:
        """Wait until the batch at `position` (in epochs) is due at the pace in force: an
        epoch takes at least 1/pace seconds, spread evenly over its batches and counted from
        the start of its first batch (or of the first after a pause or a new pace), so a
        late batch is not delayed further and the batches after it catch up within the
        epoch, while a slow epoch is not made up for by the next. True when the batch may
        start (a single step and a stop at once); False when a pause or a new pace needs the
        boundary again."""
        with self._condition:
            if self._paused:  # a single step of a paused run: now, and counted afresh after
                self._anchor = None
                return True
        due = self._sleep_until_due(position)
        if due and (self._anchor is None or epoch_start):
            self._anchor = (time.monotonic(), position)
        return due

    def _sleep_until_due(self, position: float) -> bool:
        """Sleep until the batch at `position` is due (`_time_left`) or a stop is requested:
        True; False as soon as a pause or a new pace is asked for."""
        while True:
            with self._condition:
                if self._stop_requested:
                    return True
                if self._paused or self._pace_request is not None:
                    return False
                left = self._time_left(position)
                if left <= 0:
                    return True
                polling = self._wait(left)
            if polling:
                self._poll()

    def _time_left(self, position: float) -> float:
        """Seconds until the batch at `position` (in epochs) is due at the pace in force,
        counted from the anchor; 0 at full speed or with no anchor yet (hold the lock)."""
        if self._pace is None or self._anchor is None:
            return 0.0
        began, at = self._anchor
        return began + (position - at) / self._pace - time.monotonic()

    def _must_park(self) -> bool:
        """Paused with no single step granted and no stop requested (hold the lock)."""
        return self._paused and not self._step_budget and not self._stop_requested

    def apply_requests(self, epoch_boundary: bool) -> None:
        """Apply pending set() requests in order; batch_size waits for an epoch boundary.
        Requests are taken and applied under one lock, so that two threads applying at once
        (a set() just as a run ends) apply them in the order they were made."""
        with self._applying:
            with self._condition:
                now = [r for r in self._pending if epoch_boundary or r[0] != "batch_size"]
                self._pending = [
                    r for r in self._pending if not epoch_boundary and r[0] == "batch_size"
                ]
            for name, value, source in now:
                self._apply(name, value, source)
