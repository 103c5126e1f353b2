"""Is anybody still writing a run? The writer's lock on <run>/.writer.lock (a heartbeat where
there is no flock), and the end record a writer leaves in it when the log cannot take it."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ..events import Event, EventError, decode
from .layout import LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows: a heartbeat instead (see WriterLock)
    fcntl = None  # type: ignore[assignment]


#: Without flock (Windows) the writer touches its lock file at least this often...
HEARTBEAT_SECONDS = 2.0
#: ...and a lock file untouched for this long means the writer is gone.
HEARTBEAT_STALE = 30.0


#: Bytes a writer's lock file holds from the start (spaces), where the end record goes when the
#: log cannot take it (a full disk: overwriting them needs no new space). See WriterLock.
END_RESERVE = 4096
#: The longest error text kept in an end record written there.
MAX_RESERVED_ERROR = 1000


# -- is anybody still writing? ---------------------------------------------------------------------
class WriterLock:
    """The sign of life of a run's writer: an exclusive flock on <run>/.writer.lock, held from
    the run's start until its end event is written. The OS drops it when the process dies,
    even on SIGKILL, so a follower can tell a quiet run from a dead one (`writer_alive`).
    Without fcntl (Windows), the lock file's mtime is a heartbeat touched by `beat`.

    The file holds END_RESERVE spaces from the start. A writer whose log cannot take its end
    event (the disk is full) writes the end record over them (`record_end`) and leaves the
    file behind: readers take the run's end from there (`unlogged_end`), so a run ended by a
    full disk reads as ended with that error, not as crashed. Only a writer that died leaves
    the file without it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._beat = 0.0
        self._holds_end = False

    def acquire(self) -> None:
        """Take the lock; raises ValueError when another process is writing this run.

        The lock file appears already locked (locked under another name, then renamed into
        place), so a follower that probes it between its creation and its flock cannot take a
        starting run for a dead one."""
        if fcntl is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self._fd, b" " * END_RESERVE)
            self.beat(force=True)
            return
        if writer_alive(self.path.parent):
            raise ValueError(f"{self.path.parent}: another process is writing this run")
        staging = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}")
        self._fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file
        os.write(self._fd, b" " * END_RESERVE)
        os.replace(staging, self.path)

    def record_end(self, line: str) -> bool:
        """Write the run's end record (its log line) over the reserved bytes, for a log that
        cannot take it; True when written. The file then stays after `release`."""
        data = line.encode("utf-8")
        if self._fd is None or len(data) > END_RESERVE:
            return False
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            if os.write(self._fd, data) != len(data):
                return False
        except OSError:
            return False
        self._holds_end = True
        return True

    def beat(self, force: bool = False) -> None:
        """Without flock, touch the lock file every HEARTBEAT_SECONDS or so."""
        now = time.monotonic()
        if (
            fcntl is None
            and self._fd is not None
            and (force or now - self._beat > HEARTBEAT_SECONDS)
        ):
            self._beat = now
            os.utime(self.path)

    def release(self) -> None:
        """After the end event: the lock file goes (a finished run leaves none behind), then
        the lock. A writer that dies leaves the file, unlocked: the sign of a crash."""
        if self._fd is not None:
            if not self._holds_end:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # drops the flock
            self._fd = None


def unlogged_end(run_dir: str | os.PathLike) -> Event | None:
    """The end record a writer left in its lock file because its log could not take it (see
    WriterLock), else None. Only meaningful once nobody writes the run."""
    path = Path(run_dir) / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        text = os.read(descriptor, END_RESERVE).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(descriptor)
    try:
        event = decode(text, str(path)) if text else None
    except EventError:
        return None
    return event if event is not None and event.type == "end" else None


def writer_alive(run_dir: str | os.PathLike) -> bool:
    """True while a process holds the run's writer lock (it has not written its end event)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None:
        try:
            return time.time() - path.stat().st_mtime < HEARTBEAT_STALE
        except OSError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False


def writer_started(run_dir: str | os.PathLike) -> bool:
    """True once a writer has taken the run's lock (it may have stopped since)."""
    return (Path(run_dir) / LOCK_FILE).exists()
