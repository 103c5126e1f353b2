"""Stop signals while `nnlib` runs: SIGINT, SIGTERM and SIGHUP end a command the way
Ctrl+C does, and a training run through its ordinary end (log closed, model saved)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from .common import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from ..trainer import Trainer

#: The signals that end `nnlib` the way Ctrl+C does (SIGHUP: the terminal or SSH session went).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """A stop signal that arrived while no training run could take it: the command ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, handled alike while `nnlib` runs (a context manager that
    restores the previous handlers, unless a signal came: then the process is ending, and
    they stay ignored until it has).

    The first signal raises Interrupted, unless a trainer is attached: then it asks the
    trainer to stop at the next batch boundary, so that the run ends the ordinary way (its
    `end` event logged, model.npz written). Every later signal is ignored, so a second Ctrl+C
    can neither interrupt the final save nor turn the exit into a traceback. SIGINT is taken
    even when the shell started us with it ignored (as background jobs are); SIGTERM and
    SIGHUP stay ignored if they were (nohup).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.trainer: Trainer | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else Python refuses
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if signum != signal.SIGINT and previous is signal.SIG_IGN:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # After a signal the process is ending: ignored by the OS from here, also while Python
        # shuts down and puts back the default handlers that a late signal would kill it by.
        # (Not in the handler: Python reports a signal that was pending alongside the first
        # and found ignored as "ignored due to race condition". signal.signal runs the
        # pending ones through our handler first.)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if self.received is None else signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        if self.trainer is not None:
            self.trainer.control.stop("interrupted", source="signal")
        else:
            raise Interrupted(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT), as shells report a death by signal."""
        return 128 + self.received if self.received is not None else EXIT_INTERRUPTED
