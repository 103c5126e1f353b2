"""Where a run is, as one enum for nnlib and the app alike (after Lightning's `trainer/states.py`).

The members are strings (`RunStatus.PAUSED == "paused"`), so a state written to a run log, a
snapshot or a test reads the same as before it was an enum. Imports nothing from nnlib, so the
trainer, its run control, the callbacks and the app can all import it without a loop.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """The states of a run.

    The trainer sets IDLE (no run yet), RUNNING, PAUSED and, when a run ends, FINISHED,
    STOPPED, DIVERGED or ERROR. The end reasons (`END_REASONS`) add EARLY_STOP and INTERRUPTED,
    which the trainer counts as STOPPED (see `trainer_state`) and the app shows as they are.
    The app adds LOADING (the data and model being prepared) and PAUSING / STOPPING (a request
    sent that the training thread has not acted on yet). A reader of a run log adds WAITING (a
    run directory whose run has not started) and CRASHED (its writer died without an `end`).
    """

    IDLE = "idle"
    WAITING = "waiting"
    LOADING = "loading"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    EARLY_STOP = "early_stop"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    ERROR = "error"
    CRASHED = "crashed"

    def __str__(self) -> str:
        """The plain value, as in f-strings and logs (not 'RunStatus.PAUSED')."""
        return self.value

    @property
    def ended(self) -> bool:
        """True for the states a run ends in."""
        return self in END_REASONS or self is RunStatus.CRASHED

    @classmethod
    def of_end(cls, reason: str) -> RunStatus:
        """The state that shows why a run ended (CRASHED when its writer died without saying);
        an unknown reason shows as STOPPED."""
        if reason in END_REASONS or reason == cls.CRASHED:
            return cls(reason)
        return cls.STOPPED

    def trainer_state(self) -> RunStatus:
        """`Trainer.state` after a run that ended for this reason: an early stop and an
        interrupt are both STOPPED there (the reason itself is in the logs and the run log)."""
        kept = (RunStatus.FINISHED, RunStatus.DIVERGED, RunStatus.ERROR)
        return self if self in kept else RunStatus.STOPPED


#: Why a run ended, as recorded in logs['reason'] and the run log's 'end' event.
END_REASONS: tuple[RunStatus, ...] = (
    RunStatus.FINISHED,
    RunStatus.STOPPED,
    RunStatus.EARLY_STOP,
    RunStatus.DIVERGED,
    RunStatus.INTERRUPTED,
    RunStatus.ERROR,
)
