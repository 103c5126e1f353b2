"""Run logs: every run leaves a directory with `config.json` and an append-only `events.jsonl`.

Each line of events.jsonl is one JSON object:

    {"v": 1, "type": "batch", "time": 1763690000.12, "step": 42, ...fields}

`v` is the schema version, `time` Unix seconds, `step` the number of batches completed when
the event happened. Non-finite numbers are written as null. The event types, their fields and
their encoding are defined once, in `nnlib.events` (`nnlib.events.reference()` lists them).

Every event is written and flushed as it happens, except batch lines: those are held and
written together, by the training thread at the first batch end half FLUSH_SECONDS after the
last write (so a slow run's lines go at once), or else (training stalled, parked, or in a
long batch) by the log's writer thread once the oldest is FLUSH_SECONDS old. Any other event,
the end of the run and the run's end by a signal (which ends it through `on_train_end`) write
the held ones first. A follower therefore sees every line, a batch line within FLUSH_SECONDS,
and a crash or SIGKILL loses at most the batch lines of the last FLUSH_SECONDS and the line
being written. Why: a line encoded right after its batch runs in caches the batch emptied.
On LeNet-5 (125 batches of 64) a line at a time cost 80 us a batch (55 us encoding, 8 us for
the next line encoded after it; 24 us the write): 11.8 ms an epoch, held 2.7 ms.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: a heartbeat instead (see WriterLock)
    fcntl = None  # type: ignore[assignment]

from ._atomic import atomic_write_text, remove_stale_temporaries
from .callbacks.base import Callback, Logs
from .events import (  # noqa: F401 (re-exported: the run-log API as it was)
    MAX_INT,
    SCHEMA_VERSION,
    Check,
    Event,
    EventError,
    decode,
    encode,
    fast_line,
    make,
)

if TYPE_CHECKING:
    from .trainer import Trainer

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
#: Held (flock, exclusive) by the process writing a run from its start until its end event.
LOCK_FILE = ".writer.lock"
#: Files a run writes into its directory: a directory holding any of them is never reused.
RUN_FILES = (EVENTS_FILE, CONFIG_FILE, "experiment.toml", "best.npz", "model.npz")
#: Without flock (Windows) the writer touches its lock file at least this often...
HEARTBEAT_SECONDS = 2.0
#: ...and a lock file untouched for this long means the writer is gone.
HEARTBEAT_STALE = 30.0
#: Batch lines wait at most this long before they are written (see the module docstring).
FLUSH_SECONDS = 0.2
#: What a follower says when the writer is gone but the log has no end event.
WRITER_GONE = "the run's writer stopped without an end event (crashed or killed)"


class RunDirError(ValueError):
    """A run directory that cannot be used: it holds a run already, or cannot be written."""


class WriterGone(ValueError):
    """A run log ends without its end event and nothing writes it any more."""


#: Every known event type: its fields, each (check, required), from `nnlib.events`.
FIELDS: dict[str, dict[str, tuple[Check, bool]]] = {
    kind: {name: (check, not optional) for name, (check, optional) in cls.spec().items()}
    for kind, cls in Event.registry.items()
}
#: The fields each event type must have (derived from FIELDS).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(name for name, (_, required) in spec.items() if required)
    for kind, spec in FIELDS.items()
}


def _events_path(path: str | os.PathLike) -> Path:
    """The events file of a run directory (which may not exist yet), or `path` itself."""
    path = Path(path)
    if path.is_dir() or (not path.exists() and path.suffix != ".jsonl"):
        return path / EVENTS_FILE
    return path


def read(path: str | os.PathLike) -> list[Event]:
    """All events of a run (its directory or its events.jsonl). A torn last line — the run
    was killed mid-write — is dropped; a bad line anywhere else is an EventError naming it."""
    events_path = _events_path(path)
    if not events_path.exists():
        raise ValueError(f"{path}: no run log ({EVENTS_FILE}) there")
    try:
        text = events_path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ValueError(f"{events_path}: cannot read the run log ({error.strerror})") from None
    lines = text.split("\n")
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: possibly torn
        try:
            events.append(decode(line, f"{events_path}:{number}"))
        except EventError:
            if last:
                break
            raise
    return events


# -- is anybody still writing? ---------------------------------------------------------------------
class WriterLock:
    """The sign of life of a run's writer: an exclusive flock on <run>/.writer.lock, held from
    the run's start until its end event is written. The OS drops it when the process dies,
    even on SIGKILL, so a follower can tell a quiet run from a dead one (`writer_alive`).
    Without fcntl (Windows), the lock file's mtime is a heartbeat touched by `beat`."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._beat = 0.0

    def acquire(self) -> None:
        """Take the lock; raises ValueError when another process is writing this run.

        The lock file appears already locked (locked under another name, then renamed into
        place), so a follower that probes it between its creation and its flock cannot take a
        starting run for a dead one."""
        if fcntl is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self.beat(force=True)
            return
        if writer_alive(self.path.parent):
            raise ValueError(f"{self.path.parent}: another process is writing this run")
        staging = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}")
        self._fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file
        os.replace(staging, self.path)

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
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # drops the flock
            self._fd = None


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


class EventTail:
    """The complete lines appended to an events.jsonl since the last `read`, decoded. One
    poll at a time, so a caller (a UI thread, say) can stop between two polls. A last line
    without its newline (being written, or torn by a crash) waits for the rest; a file that
    does not exist yet reads as no events.

    A malformed line goes to `on_bad_line` (an EventError naming file:line) and is skipped;
    without one, the events before it are returned and the next `read` raises the error.
    `ended` says the end event was read; `orphaned` that the writer stopped without one."""

    def __init__(
        self, path: str | os.PathLike, on_bad_line: Callable[[EventError], None] | None = None
    ) -> None:
        self.path = _events_path(path)
        self.on_bad_line = on_bad_line
        self.ended = False
        self.orphaned = False
        self._position = 0
        self._line = 0

    def read(self) -> list[Event]:
        # Asked before reading: a writer gone by now wrote its end event before it let go.
        # Started is asked first: a lock file that appears after it is a run just starting.
        started = writer_started(self.path.parent)
        alive = started and writer_alive(self.path.parent)
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._position)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        events = []
        start = 0
        while (cut := chunk.find(b"\n", start)) >= 0:
            line = chunk[start:cut].decode("utf-8", errors="replace")
            try:
                event = decode(line, f"{self.path}:{self._line + 1}") if line.strip() else None
            except EventError as error:
                if self.on_bad_line is None and events:
                    break  # the events before it now; the error at the next read
                if self.on_bad_line is None:
                    raise
                self.on_bad_line(error)
                event = None
            self._line, self._position, start = (
                self._line + 1,
                self._position + cut + 1 - start,
                cut + 1,
            )
            if event is not None:
                events.append(event)
                self.ended = self.ended or event.type == "end"
        read_all = chunk.find(b"\n", start) < 0
        if read_all and not self.ended and started and not alive:
            self.orphaned = True
        return events


def follow(
    path: str | os.PathLike, poll: float = 0.2, idle_timeout: float | None = None
) -> Iterator[Event]:
    """Yield events as a run writes them, until its 'end' event (or `idle_timeout` seconds
    without a new line). Waits for the file to appear. Raises WriterGone when the run's
    writer stopped without writing its end event, EventError on a bad line."""
    tail, idle = EventTail(path), 0.0
    while True:
        events = tail.read()
        for event in events:
            yield event
            if event.type == "end":
                return
        if tail.orphaned:
            raise WriterGone(f"{tail.path.parent}: {WRITER_GONE}")
        if events:
            idle = 0.0
            continue
        if idle_timeout is not None and idle >= idle_timeout:
            return
        time.sleep(poll)
        idle += poll


def default_runs_dir() -> Path:
    """$NNLIB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("NNLIB_RUNS_DIR", "runs"))


def new_run_dir(root: str | os.PathLike | None = None, name: str = "run") -> Path:
    """A fresh directory root/<date-time>-<name>[-n] that no other run uses."""
    root = Path(root) if root is not None else default_runs_dir()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40] or "run"
    for attempt in range(1000):
        candidate = root / (f"{stamp}-{safe}" + (f"-{attempt}" if attempt else ""))
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise RunDirError(_unusable(root, error)) from None
    raise RunDirError(f"{root}: could not create a new run directory")


def claim_run_dir(path: str | os.PathLike) -> Path:
    """A directory a new run may write: made if missing, refused (RunDirError, one line) when
    it already holds a run — a run directory is never reused, so no earlier run is lost — or
    when it cannot be written. Stale temporaries of killed writes in it are removed."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        held = [name for name in RUN_FILES if (path / name).exists()]
        if not held:
            # Prove it is writable now, not after the dataset has loaded.
            with tempfile.TemporaryFile(dir=path):
                pass
    except OSError as error:
        raise RunDirError(_unusable(path, error)) from None
    if held:
        raise RunDirError(
            f"{path}: already holds a run ({', '.join(held)}); a run directory is never "
            "reused: give a new one, or none for a fresh one under the runs folder"
        )
    remove_stale_temporaries(path)
    return path


@dataclass(frozen=True)
class NewRunDir:
    """The directory of a new run before the run has started: `discard` takes back what was
    made for it, so that a start that fails (an error, a signal, a closed terminal) never
    leaves a half-made run folder behind."""

    path: Path
    #: The directories made for the run: its own, then the parents made for it (innermost
    #: first); empty when it was claimed as it stood.
    made: tuple[Path, ...] = ()
    #: What a claimed directory held already, which `discard` leaves alone.
    kept: frozenset[str] = frozenset()

    def started(self) -> bool:
        """The run has opened its log: from then on the folder is a run, however it ends."""
        return (self.path / EVENTS_FILE).exists()

    def discard(self) -> None:
        """Remove what was made for a run that never started: its directory (with what was
        written into it), or in a claimed directory what was added since, then the parent
        folders made for it while they are empty (another run may have been put there)."""
        if self.started():
            return
        if not self.made:
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.path):
                    if entry.name not in self.kept:
                        _remove(Path(entry.path), entry.is_dir(follow_symlinks=False))
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in self.made[1:]:
            try:
                folder.rmdir()
            except OSError:
                break


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def reserve_run_dir(
    path: str | os.PathLike | None, root: str | os.PathLike | None = None, name: str = "run"
) -> NewRunDir:
    """`claim_run_dir(path)`, or with no path `new_run_dir(root, name)`, remembering what
    was made, for `NewRunDir.discard`."""
    if path is None:
        parents = _missing(Path(root) if root is not None else default_runs_dir())
        made = new_run_dir(root, name)
        return NewRunDir(made, (made, *parents))
    path, missing = Path(path), _missing(Path(path))
    try:
        kept = frozenset() if missing else frozenset(os.listdir(path))
    except OSError:  # claim_run_dir names the problem
        kept = frozenset()
    return NewRunDir(claim_run_dir(path), missing, kept)


def _missing(path: Path) -> tuple[Path, ...]:
    """`path` and its parents that do not exist yet, innermost first."""
    return tuple(p for p in (path, *path.parents) if not os.path.lexists(p))


def _unusable(path: Path, error: OSError) -> str:
    return f"{path}: cannot be used as a run directory ({error.strerror or error})"


class RunLogger(Callback):
    """Write the run directory: config.json at the start, then every event as it happens
    (batch lines within FLUSH_SECONDS, see the module docstring).

    `run_dir` is used as is when given; otherwise a new directory is made under `root`.
    `batch_every` thins batch metrics to one line per that many batches. Every event is made
    into its `nnlib.events` record, so a callback emitting a malformed one fails at once with an
    EventError naming the field, rather than writing a log nobody can read (a batch line's
    values, held for up to FLUSH_SECONDS, are checked when it is written: its EventError comes
    from the hook that writes it). Events that callbacks placed before the logger emit at the
    start of the run (the initial histograms) are kept and written right after 'run_start'.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        root: str | os.PathLike | None = None,
        name: str = "run",
        config: dict[str, Any] | None = None,
        batch_every: int = 1,
        append: bool = False,
    ) -> None:
        if batch_every < 1:
            raise ValueError(f"RunLogger: batch_every must be >= 1, got {batch_every}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.root = root
        self.name = name
        self.config = dict(config or {})
        self.batch_every = batch_every
        self.append = append  # a resumed run: config.json and run_start are there already
        self._handle: Any = None
        self._lock: WriterLock | None = None
        self._early: list[str] = []  # encoded events that came before the log was open
        # Batch lines not written yet: (step, logs, time), the oldest held since `_since`
        # (monotonic). The mutex guards them and the handle; the condition on it wakes the
        # writer thread. (A plain lock: `with` on the condition was 10 us a batch on LeNet-5.)
        self._held: list[tuple[int, dict[str, Any], float]] = []
        self._since = 0.0
        self._written = 0.0  # when lines were last written (monotonic)
        self._mutex = threading.Lock()
        self._wake = threading.Condition(self._mutex)
        self._writer: threading.Thread | None = None
        self._failed: Exception | None = None  # what the writer thread could not write

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.run_dir is None:
            self.run_dir = new_run_dir(self.root, self.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Held until the end event is written: followers tell a quiet run from a dead one.
        self._lock = WriterLock(self.run_dir)
        self._lock.acquire()
        remove_stale_temporaries(self.run_dir)
        # The trainer's own view goes under "trainer", so the caller's config keys (an
        # experiment's "optimizer" name, say) are never overwritten.
        trainer_view = {
            "model": {
                "spec": trainer.model.spec,
                "input_shape": trainer.model.input_shape,
                "params": trainer.model.summary().total_params,
            },
            "optimizer": {"name": trainer.optimizer.name, **trainer.optimizer.config()},
            "loss": trainer.loss.name,
            "epochs": trainer.epochs,
            "batch_size": trainer.batch_size,
        }
        config = {**self.config, "trainer": trainer_view, "versions": versions()}
        lines, synced = [], None
        if not self.append:
            start = make(
                "run_start", trainer.global_step, {"run": str(self.run_dir), "config": config}
            )
            # config.json holds the config as run_start carries it (made JSON-safe once). Its
            # fsync is the writer thread's: it took 1-9 ms on a shared disk, at every start.
            synced = self.run_dir / CONFIG_FILE
            atomic_write_text(synced, json.dumps(start["config"], indent=2), sync=False)
            lines.append(start.line())
        lines += self._early
        self._early = []
        self._handle = (self.run_dir / EVENTS_FILE).open("a", encoding="utf-8")
        self._emit_lines("".join(lines))
        self._writer = threading.Thread(
            target=self._write_late, args=(synced,), name="nnlib-run-log", daemon=True
        )
        self._writer.start()

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        step = logs["step"]
        if step % self.batch_every or self._handle is None:
            return
        # Held, not written: encoding one line right after a batch ran in cold caches.
        now = time.monotonic()
        with self._mutex:
            self._held.append((step, dict(logs), time.time()))  # the time rounded when written
            if now - self._written >= FLUSH_SECONDS / 2:  # the writer thread waits longer
                self._emit_lines("")
            elif len(self._held) == 1:
                self._since = now
                self._wake.notify()
        if self._failed is not None:
            self._raise_failure()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self._write("epoch", trainer.global_step, logs)

    def on_event(self, trainer: Trainer, event: str, data: dict[str, Any]) -> None:
        step, data = (
            data.get("step", trainer.global_step),
            {k: v for k, v in data.items() if k != "step"},
        )
        if self._handle is None and trainer.state == "running":
            self._early.append(make(event, step, data).line())  # from an earlier on_train_begin
            return
        self._write(event, step, data)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        try:
            self._write("end", trainer.global_step, {k: v for k, v in logs.items() if k != "step"})
        finally:
            with self._mutex:
                handle, self._handle, self._held = self._handle, None, []
                self._wake.notify()  # the writer thread ends
            if self._writer is not None:
                self._writer.join()
                self._writer = None
            if handle is not None:
                handle.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _write(self, event_type: str, step: int, data: dict[str, Any]) -> None:
        """Write one event now, after the batch lines held before it."""
        if self._handle is None:
            return
        line = fast_line(event_type, step, data) or make(event_type, step, data).line()
        with self._mutex:
            self._emit_lines(line)
        if self._failed is not None:
            self._raise_failure()

    def _emit_lines(self, line: str) -> None:
        """Write the held batch lines, then `line`, and flush (hold `_mutex`). A held line that
        does not make a record is left out and its EventError raised once the rest is written."""
        if self._handle is None:
            return
        held, self._held = self._held, []
        lines, error = [], None
        for step, data, moment in held:  # one after another: the encoder stays in the caches
            when = round(moment, 3)
            try:
                lines.append(
                    fast_line("batch", step, data, when) or make("batch", step, data, when).line()
                )
            except EventError as bad:
                error = error or bad
        lines.append(line)
        self._handle.write("".join(lines))
        self._handle.flush()
        self._written = time.monotonic()
        if self._lock is not None:
            self._lock.beat()
        if error is not None:
            raise error

    def _raise_failure(self) -> None:
        """Raise what the writer thread could not write, on the training thread."""
        with self._mutex:
            failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def _write_late(self, synced: Path | None) -> None:
        """The writer thread: puts `synced` (config.json) on the disk, then writes batch lines
        held for FLUSH_SECONDS, so that they reach followers in time while training is slow,
        stalled or parked (a running training thread writes them earlier: this thread acting
        mid-batch made the next batch end wait for it)."""
        if synced is not None:
            _fsync(synced)
        with self._wake:
            while self._handle is not None:
                if not self._held:
                    self._wake.wait()
                    continue
                due = self._since + FLUSH_SECONDS - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
                try:
                    self._emit_lines("")
                except Exception as error:  # raised on the training thread, at its next line
                    self._failed = error


def _fsync(path: Path) -> None:
    """Put a written file's data on the disk; a file that cannot be opened for it (gone, or a
    system without fsync on a read-only handle) stays as the page cache has it."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def versions() -> dict[str, str]:
    from . import __version__

    return {"nnlib": __version__, "numpy": np.__version__, "python": platform.python_version()}
