"""Run logs: every run leaves a directory with `config.json` and an append-only `events.jsonl`.

Each line of events.jsonl is one JSON object, flushed as it is written, so a crash loses at
most the line being written:

    {"v": 1, "type": "batch", "time": 1763690000.12, "step": 42, ...fields}

`v` is the schema version, `time` Unix seconds, `step` the number of batches completed when
the event happened. Non-finite numbers are written as null. Event types and their fields:

    run_start   run, config
    batch       epoch, batch, loss, [accuracy], lr, batch_size, samples_per_sec, ...
    epoch       epoch, loss, [accuracy], [val_loss], [val_accuracy], lr, seconds, ...
    histograms  epoch, batch, layers: {name: {weights, [grads], [grad_norm], [update_ratio],
                [dead_fraction]}}; a histogram is {lo, hi, counts, percentiles, nonfinite}
    confusion   epoch, matrix (rows true, columns predicted), precision, recall, class_names
    hparam      name, old, new, applies ("next batch" or "next epoch")
    pause, resume
    run_resume  from_step, epoch, batch, checkpoint, [parent]: the run goes on from the checkpoint
                taken at from_step (a resumed run, or a fork's first event after run_start);
                events with a larger step before it belong to a run that was cut off: a reader
                drops them (steps going back mark the restart point)
    checkpoint  path, epoch, reason, monitor, value
    early_stop  monitor, best, best_epoch, epoch
    diverged    loss, epoch, batch
    end         reason (finished|stopped|early_stop|diverged|interrupted|error), [error]
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

if TYPE_CHECKING:
    from .trainer import Trainer

SCHEMA_VERSION = 1
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
#: What a follower says when the writer is gone but the log has no end event.
WRITER_GONE = "the run's writer stopped without an end event (crashed or killed)"
#: The largest integer a run log may hold (step, epoch, counts): an int64.
MAX_INT = 2**63 - 1


class EventError(ValueError):
    """A run-log line that is not a valid event; the message starts with where it is
    (file:line)."""


class RunDirError(ValueError):
    """A run directory that cannot be used: it holds a run already, or cannot be written."""


class WriterGone(ValueError):
    """A run log ends without its end event and nothing writes it any more."""


# -- the one place every event field is type-checked ---------------------------------------------
# A check returns None when the value is fine, else the words for what was expected.
Check = Callable[[Any], "str | None"]


def _int(value: Any) -> str | None:
    ok = type(value) is int and 0 <= value <= MAX_INT
    return None if ok else "a non-negative integer"


def _number(value: Any) -> str | None:
    """A finite JSON number (not a boolean); integers beyond a float's range are refused."""
    if type(value) is int:
        return None if abs(value) <= MAX_INT else "a number"
    ok = type(value) is float and math.isfinite(value)
    return None if ok else "a number"


def _number_or_null(value: Any) -> str | None:
    """Non-finite numbers are written as null, so measured values may be null."""
    return None if value is None or _number(value) is None else "a number or null"


def _str(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _str_or_null(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "a string or null"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object"


def _scalar(value: Any) -> str | None:
    ok = value is None or isinstance(value, str | bool) or _number(value) is None
    return None if ok else "a number, string, boolean or null"


def _list_of(check: Check, what: str) -> Check:
    def check_list(value: Any) -> str | None:
        ok = isinstance(value, list) and all(check(item) is None for item in value)
        return None if ok else f"a list of {what}"

    return check_list


_HISTOGRAM: dict[str, tuple[Check, bool]] = {
    "lo": (_number, True),
    "hi": (_number, True),
    "counts": (_list_of(_int, "non-negative integers"), True),
    "percentiles": (_list_of(_number, "numbers"), True),
    "nonfinite": (_int, False),
}


def _histogram(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "a histogram object"
    problems = _fields(value, _HISTOGRAM)
    return f"a histogram object ({problems[0]})" if problems else None


_LAYER: dict[str, tuple[Check, bool]] = {
    "weights": (_histogram, False),
    "grads": (_histogram, False),
    "grad_norm": (_number_or_null, False),
    "update_ratio": (_number_or_null, False),
    "dead_fraction": (_number_or_null, False),
}


def _layers(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "an object of layers"
    for name, entry in value.items():
        if not isinstance(entry, dict):
            return f"an object of layers (layer {name!r} is not an object)"
        problems = _fields(entry, _LAYER)
        if problems:
            return f"an object of layers (layer {name!r}: {problems[0]})"
    return None


def _matrix(value: Any) -> str | None:
    """A square matrix of counts (rows true, columns predicted)."""
    expected = "a square list of lists of non-negative integers"
    if not isinstance(value, list) or not value:
        return expected
    rows = _list_of(_int, "counts")
    ok = all(isinstance(row, list) and len(row) == len(value) and not rows(row) for row in value)
    return None if ok else expected


_COMMON: dict[str, tuple[Check, bool]] = {
    "v": (_int, False),
    "time": (_number, False),
    "step": (_int, False),
}
_METRICS: dict[str, tuple[Check, bool]] = {
    name: (_number_or_null, False)
    for name in ("accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_sec")
}
#: Every known event type: its fields, each (check, required). Other fields pass unchecked
#: (a callback may log its own metrics); an unknown type is kept, with only the common fields
#: checked, for the readers of a later schema to show as a plain notice.
FIELDS: dict[str, dict[str, tuple[Check, bool]]] = {
    "run_start": {"run": (_str, True), "config": (_object, True)},
    "batch": {
        "epoch": (_int, True),
        "batch": (_int, True),
        "loss": (_number_or_null, True),
        "batch_size": (_int, False),
        **_METRICS,
    },
    "epoch": {"epoch": (_int, True), "loss": (_number_or_null, True), **_METRICS},
    "histograms": {"layers": (_layers, True), "epoch": (_int, False), "batch": (_int, False)},
    "confusion": {
        "matrix": (_matrix, True),
        "epoch": (_int, False),
        "precision": (_list_of(_number, "numbers"), False),
        "recall": (_list_of(_number, "numbers"), False),
        "class_names": (_list_of(_str, "strings"), False),
    },
    "hparam": {
        "name": (_str, True),
        "old": (_scalar, True),
        "new": (_scalar, True),
        "applies": (_str, False),
    },
    "pause": {},
    "resume": {},
    "run_resume": {
        "from_step": (_int, True),
        "epoch": (_int, False),
        "batch": (_int, False),
        "checkpoint": (_str, False),
        "parent": (_object, False),
    },
    "checkpoint": {
        "path": (_str, True),
        "epoch": (_int, False),
        "reason": (_str, False),
        "monitor": (_str, False),
        "value": (_number_or_null, False),
    },
    "early_stop": {
        "monitor": (_str, True),
        "best": (_number_or_null, False),
        "best_epoch": (_int, False),
        "epoch": (_int, False),
    },
    "diverged": {"loss": (_number_or_null, True), "epoch": (_int, False), "batch": (_int, False)},
    "end": {"reason": (_str, True), "error": (_str_or_null, False), "epoch": (_int, False)},
}
#: The fields each event type must have (derived from FIELDS).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(name for name, (_, required) in spec.items() if required)
    for kind, spec in FIELDS.items()
}


def _fields(record: dict[str, Any], spec: dict[str, tuple[Check, bool]]) -> list[str]:
    """What is wrong with `record` under `spec`: missing fields first, then bad values."""
    missing = [name for name, (_, required) in spec.items() if required and name not in record]
    if missing:
        return [f"lacks {', '.join(missing)}"]
    problems = []
    for name, (check, _) in spec.items():
        if name in record:
            expected = check(record[name])
            if expected is not None:
                problems.append(f"{name} must be {expected}, got {_shown(record[name])}")
    return problems


def _shown(value: Any) -> str:
    """A short, one-line picture of a bad value for a message."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Event:
    """One line of a run log. Fields beyond type/time/step are in `data`."""

    type: str
    time: float
    step: int
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def encode(event_type: str, step: int, data: dict[str, Any]) -> str:
    """One events.jsonl line (with the trailing newline)."""
    record = {
        "v": SCHEMA_VERSION,
        "type": event_type,
        "time": round(time.time(), 3),
        "step": int(step),
        **_plain(data),
    }
    return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"


def decode(line: str, where: str = "events") -> Event:
    """Parse and check one line, every known field by its type; raises EventError (a
    ValueError) naming `where` on a bad record, and never any other exception."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise EventError(f"{where}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:  # a huge integer; nesting too deep
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise EventError(f"{where}: not a readable JSON line ({reason})") from None
    if not isinstance(record, dict) or "type" not in record:
        raise EventError(f"{where}: not an event record")
    event_type = record.pop("type")
    if not isinstance(event_type, str):
        raise EventError(f"{where}: type must be a string, got {_shown(event_type)}")
    problems = _fields(record, _COMMON)
    if not problems and record.get("v", 0) > SCHEMA_VERSION:
        raise EventError(
            f"{where}: schema version {record['v']} is newer than this nnlib "
            f"reads ({SCHEMA_VERSION})"
        )
    problems += _fields(record, FIELDS.get(event_type, {}))
    if problems:
        raise EventError(f"{where}: {event_type} event {'; '.join(problems)}")
    record.pop("v", None)
    return Event(event_type, float(record.pop("time", 0.0)), int(record.pop("step", 0)), record)


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


def _unusable(path: Path, error: OSError) -> str:
    return f"{path}: cannot be used as a run directory ({error.strerror or error})"


class RunLogger(Callback):
    """Write the run directory: config.json at the start, then every event as it happens.

    `run_dir` is used as is when given; otherwise a new directory is made under `root`.
    `batch_every` thins batch metrics to one line per that many batches. Events that callbacks
    placed before the logger emit at the start of the run (the initial histograms) are kept
    and written right after 'run_start'.
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
        if not self.append:
            atomic_write_text(self.run_dir / CONFIG_FILE, json.dumps(_plain(config), indent=2))
        self._handle = (self.run_dir / EVENTS_FILE).open("a", encoding="utf-8")
        if not self.append:
            self._write(
                "run_start", trainer.global_step, {"run": str(self.run_dir), "config": config}
            )
        early, self._early = self._early, []
        for line in early:
            self._handle.write(line)
        self._handle.flush()

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if logs["step"] % self.batch_every == 0:
            self._write("batch", logs["step"], logs)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self._write("epoch", trainer.global_step, logs)

    def on_event(self, trainer: Trainer, event: str, data: dict[str, Any]) -> None:
        step, data = (
            data.get("step", trainer.global_step),
            {k: v for k, v in data.items() if k != "step"},
        )
        if self._handle is None and trainer.state == "running":
            self._early.append(encode(event, step, data))  # from an earlier on_train_begin
            return
        self._write(event, step, data)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        try:
            self._write("end", trainer.global_step, {k: v for k, v in logs.items() if k != "step"})
        finally:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _write(self, event_type: str, step: int, data: dict[str, Any]) -> None:
        if self._handle is None:
            return
        self._handle.write(encode(event_type, step, data))
        self._handle.flush()
        if self._lock is not None:
            self._lock.beat()


def versions() -> dict[str, str]:
    from . import __version__

    return {"nnlib": __version__, "numpy": np.__version__, "python": platform.python_version()}
