"""Run logs: every run leaves a directory with `config.json` and an append-only `events.jsonl`
(and `summary.json`, what the runs table shows of the log: see nnlib.runsummary).

Each line of events.jsonl is one JSON object:

    {"v": 2, "type": "epoch", "time": 1763690000.12, "step": 42, ...fields}

`v` is the schema version, `time` Unix seconds, `step` the number of batches completed when
the event happened. Non-finite numbers are written as null. Batch lines are compact: only
what changed since the batch line before (`nnlib.events.BatchLines`), so a log is read in
order (`nnlib.events.Decoder`). Big fields go to the run's side file (`nnlib.arrays`). The
event types, their fields and their encoding are defined once, in `nnlib.events`
(`nnlib.events.reference()` lists them).

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
import dataclasses
import json
import math
import os
import platform
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: a heartbeat instead (see WriterLock)
    fcntl = None  # type: ignore[assignment]

from . import runsummary
from ._atomic import atomic_write_text, remove_stale_temporaries
from .arrays import ARRAYS_FILE, ArrayFileError, ArrayReader, ArrayWriter, is_packed, is_ref
from .callbacks.base import Callback, Logs
from .events import (  # noqa: F401 (re-exported: the run-log API as it was)
    MAX_INT,
    SCHEMA_VERSION,
    BatchLines,
    Check,
    Decoder,
    Event,
    EventError,
    FeatureMaps,
    decode,
    encode,
    make,
    packed_fields,
)

if TYPE_CHECKING:
    from .trainer import Trainer

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
#: What the runs table shows of the log, for its first N bytes (see nnlib.runsummary).
SUMMARY_FILE = "summary.json"
#: Held (flock, exclusive) by the process writing a run from its start until its end event.
LOCK_FILE = ".writer.lock"
#: Files a run writes into its directory: a directory holding any of them is never reused.
RUN_FILES = (
    EVENTS_FILE,
    CONFIG_FILE,
    SUMMARY_FILE,
    ARRAYS_FILE,
    "experiment.toml",
    "best.npz",
    "model.npz",
)
#: Without flock (Windows) the writer touches its lock file at least this often...
HEARTBEAT_SECONDS = 2.0
#: ...and a lock file untouched for this long means the writer is gone.
HEARTBEAT_STALE = 30.0
#: Batch lines wait at most this long before they are written (see the module docstring).
FLUSH_SECONDS = 0.2
#: The RunLogger rewrites the run's summary at an epoch end at most this often (and always
#: at the end): fast epochs would otherwise write one every few milliseconds.
SUMMARY_SECONDS = 0.5
#: Bytes of log a LogScan reads a poll: its memory stays bounded however big a log is.
SCAN_CHUNK = 1 << 22
#: What a follower says when the writer is gone but the log has no end event.
WRITER_GONE = "the run's writer stopped without an end event (crashed or killed)"
#: Bytes a writer's lock file holds from the start (spaces), where the end record goes when the
#: log cannot take it (a full disk: overwriting them needs no new space). See WriterLock.
END_RESERVE = 4096
#: The longest error text kept in an end record written there.
MAX_RESERVED_ERROR = 1000


class RunDirError(ValueError):
    """A run directory that cannot be used: it holds a run already, or cannot be written."""


class RunDirTaken(RunDirError):
    """A run directory that holds a run already, or anything else: a new run goes elsewhere."""


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
    """All events of a run (its directory or its events.jsonl), their arrays read back from
    the side file (`resolve_arrays`). A torn last line — the run was killed mid-write — is
    dropped; a bad line anywhere else is an EventError naming it."""
    events_path = _events_path(path)
    if not events_path.exists():
        raise ValueError(f"{path}: no run log ({EVENTS_FILE}) there")
    try:
        text = events_path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ValueError(f"{events_path}: cannot read the run log ({error.strerror})") from None
    lines = text.split("\n")
    events, decoder = [], Decoder()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: possibly torn
        try:
            events.append(decoder.decode(line, f"{events_path}:{number}"))
        except EventError:
            if last:
                break
            raise
    if (not events or events[-1].type != "end") and not writer_alive(events_path.parent):
        end = unlogged_end(events_path.parent)  # the log could not take it (a full disk)
        if end is not None:
            events.append(end)
    with ArrayReader(events_path.parent) as reader:
        return [resolve_arrays(event, reader) for event in events]


# -- the big arrays of an event, in the side file (nnlib.arrays) ----------------------------------
#: The key an event read back gets when its arrays cannot be read: the one-line reason.
UNREADABLE = "unreadable"


def _maps_records(event: FeatureMaps) -> list[dict[str, Any]]:
    """Every maps record of a feature_maps event: each image's layers, then the filters."""
    records = [layer for image in event.images for layer in image["layers"]]
    return records + ([event.filters] if event.filters else [])


def store_arrays(event: Event, writer: ArrayWriter) -> Event:
    """The event as its line is written: its packed fields (histograms, sample predictions,
    feature maps: `nnlib.events.packed_fields`) appended to the side file as blocks, which
    the line refers to. Other events are returned as they are."""
    stored = {
        name: packer.store(getattr(event, name), writer)
        for name, packer in packed_fields(type(event)).items()
        if getattr(event, name) is not None
    }
    return dataclasses.replace(event, **stored) if stored else event


def has_arrays(event: Event) -> bool:
    """Whether a record read back refers to blocks of the side file."""
    if any(
        is_packed(getattr(event, name), packer.name)
        for name, packer in packed_fields(type(event)).items()
    ):
        return True
    return isinstance(event, FeatureMaps) and any(
        is_ref(record["data"]) for record in _maps_records(event)
    )


def resolve_arrays(event: Event, reader: ArrayReader) -> Event:
    """The event as it was emitted: what it keeps in the side file read back. When that
    cannot be (the file is missing, truncated or damaged, or its blocks do not fit the
    line), the event comes back without it (a feature_maps event with no images, a
    histograms event with no layers, samples without predictions) and with
    extra[UNREADABLE], the one-line reason, for its view to show. Lines of older logs hold
    their arrays and come back as they are."""
    if not has_arrays(event):
        return event
    try:
        return _loaded(event, reader)
    except ArrayFileError as error:
        reason = f"the {event.type} event of step {event.step} cannot be read: {error}"
        emptied = {name: packer.empty for name, packer in packed_fields(type(event)).items()}
        extra = {**event.extra, UNREADABLE: reason}
        return dataclasses.replace(event, **emptied, extra=extra)


def _loaded(event: Event, reader: ArrayReader) -> Event:
    """`event` with its side-file fields read; ArrayFileError if one cannot be, or reads back
    as what its field may not hold."""
    loaded = {}
    for name, packer in packed_fields(type(event)).items():
        stored = getattr(event, name)
        if is_packed(stored, packer.name):
            value = packer.load(stored, reader)
            check = type(event).spec()[name][0]
            expected = check(value)
            if expected is not None or is_packed(value, packer.name):
                raise ArrayFileError(
                    f"{reader.path}: the blocks of {name} read back as what it may not hold "
                    f"({expected or 'a reference'})"
                )
            loaded[name] = value
    event = dataclasses.replace(event, **loaded) if loaded else event
    return _loaded_maps(event, reader) if isinstance(event, FeatureMaps) else event


def _loaded_maps(event: FeatureMaps, reader: ArrayReader) -> FeatureMaps:
    """A feature_maps event whose pixels (schema 1: a reference per maps record) are read."""
    loaded = {}
    for record in _maps_records(event):
        if is_ref(record["data"]):
            pixels = reader.read(record["data"])
            if pixels.dtype != np.uint8 or list(pixels.shape) != record["shape"]:
                raise ArrayFileError(
                    f"{reader.path} at byte {record['data']['offset']:,}: a "
                    f"{pixels.dtype} array of shape {pixels.shape}, where the maps of "
                    f"{record['name']!r} are uint8 of shape {tuple(record['shape'])}"
                )
            loaded[id(record)] = pixels.ravel().tolist()

    def resolved(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "data": loaded.get(id(record), record["data"])}

    images = [
        {**image, "layers": [resolved(layer) for layer in image["layers"]]}
        for image in event.images
    ]
    filters = resolved(event.filters) if event.filters else None
    return dataclasses.replace(event, images=images, filters=filters)


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


class EventTail:
    """The complete lines appended to an events.jsonl since the last `read`, decoded. One
    poll at a time, so a caller (a UI thread, say) can stop between two polls. A last line
    without its newline (being written, or torn by a crash) waits for the rest; a file that
    does not exist yet reads as no events.

    A malformed line goes to `on_bad_line` (an EventError naming file:line) and is skipped;
    without one, the events before it are returned and the next `read` raises the error.
    `ended` says the latest record read is an end event (a resumed run writes more after
    it); `orphaned` that the writer stopped without one. A writer that could not append its
    end (a full disk) left it in its lock file: it is read from there (`unlogged_end`).
    `seek` starts it where a run summary left off; `read(limit)` reads at most about that
    many bytes a poll, so that a big log is read in bounded memory. With `arrays` (the
    default) what events keep in the run's side file is read back (`resolve_arrays`); a
    reader of summaries passes False and never opens it."""

    def __init__(
        self,
        path: str | os.PathLike,
        on_bad_line: Callable[[EventError], None] | None = None,
        arrays: bool = True,
    ) -> None:
        self.path = _events_path(path)
        self.on_bad_line = on_bad_line
        self.arrays = arrays
        self.ended = False
        self.orphaned = False
        self._position = 0
        self._line = 0
        self._decoder = Decoder()

    @property
    def position(self) -> tuple[int, int]:
        """(bytes, lines) of the log read so far: whole lines only."""
        return self._position, self._line

    def seek(self, position: int, line: int, ended: bool) -> None:
        """Go on from byte `position`, the end of line `line`, as if the lines before had
        been read and the last record read was (`ended`) or was not an end. (A run's writer
        starts a complete batch line after every point a summary covers.)"""
        self._position, self._line, self.ended = position, line, ended
        self._decoder = Decoder()

    def read(self, limit: int | None = None) -> list[Event]:
        # Asked before reading: a writer gone by now wrote its end event before it let go.
        # Started is asked first: a lock file that appears after it is a run just starting.
        started = writer_started(self.path.parent)
        alive = started and writer_alive(self.path.parent)
        chunk, at_end = self._chunk(limit)
        events, start = self._decoded(chunk)
        if events:
            self.ended = events[-1].type == "end"
            if self.arrays and any(map(has_arrays, events)):
                with ArrayReader(self.path.parent) as reader:
                    events = [resolve_arrays(event, reader) for event in events]
        # Read to the end, and nobody writes more: the run has ended, said so or not.
        gone = at_end and chunk.find(b"\n", start) < 0 and started and not alive
        if gone and not self.ended:
            end = unlogged_end(self.path.parent)
            if end is not None:
                events.append(end)
                self.ended = True
        self.orphaned = gone and not self.ended
        return events

    def _chunk(self, limit: int | None) -> tuple[bytes, bool]:
        """The bytes from the position on (about `limit` of them, whole lines), and whether
        they reach the end of the file."""
        at_end = True
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._position)
                chunk = handle.read(-1 if limit is None else limit)
                if limit is not None and len(chunk) == limit:
                    rest = handle.readline()  # a line longer than the limit is read whole
                    chunk += rest
                    at_end = not rest.endswith(b"\n")
        except FileNotFoundError:
            chunk = b""
        return chunk, at_end

    def _decoded(self, chunk: bytes) -> tuple[list[Event], int]:
        """The events of the chunk's whole lines, and where the lines taken end in it."""
        events: list[Event] = []
        start = 0
        while (cut := chunk.find(b"\n", start)) >= 0:
            line = chunk[start:cut].decode("utf-8", errors="replace")
            try:
                where = f"{self.path}:{self._line + 1}"
                event = self._decoder.decode(line, where) if line.strip() else None
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
        return events, start


# -- a log with resumes in it ----------------------------------------------------------------------
def continued(events: Iterable[Event]) -> list[Event]:
    """A run's records as the run itself went, however often it was resumed: the one rule
    every reader that shows a run follows (the runs table, the CSV export, `nnlib plot`, the
    app's replay), so that they all show the same run.

    A `run_resume` (from_step S, epoch E) starts an attempt that goes on from the checkpoint
    at step S; its records supersede the earlier attempt's from S on. Dropped are the earlier
    records with a step past S (written after the checkpoint, lost with the process, done
    again), the earlier attempt's `end` (the run went on), and what that attempt reported at
    S before its end about epoch E or later (a stop mid-epoch reports the part it trained:
    its epoch line, confusion matrix, test result; the resumed attempt reports the whole
    epoch). Batches up to S stay: the checkpoint holds them. The resumed attempt's own first
    records, written at S before its run_resume line (histograms, a boundary), stay too.

    `events` may be any subsequence of a log that keeps its end and run_resume records."""
    kept: list[Event] = []
    end = -1  # where the current attempt's end is in `kept`
    for event in events:
        if event.type == "run_resume":
            kept = [
                record
                for index, record in enumerate(kept)
                if not _superseded(record, index, end, event)
            ]
            end = -1
        elif event.type == "end":
            end = len(kept)
        kept.append(event)
    return kept


def _superseded(record: Event, index: int, end: int, resume: Event) -> bool:
    """Whether `record`, at `index` of the records kept before `resume` (the earlier
    attempt's end at `end`, -1 if none), is replaced by what the resumed attempt writes."""
    step, epoch = resume["from_step"], resume.get("epoch")
    if record.step > step or index == end:
        return True
    reported = record.get("epoch")
    return (
        index < end
        and record.step == step
        and record.type != "batch"
        and epoch is not None
        and reported is not None
        and reported >= epoch
    )


class RunTail:
    """A run's records as `continued` reads them, a poll at a time, for a reader that keeps
    a view of the run current (the runs table, `nnlib plot --watch`, the app following a
    run). `read` returns the records written since the last one, or, when they hold a
    run_resume, the whole log read again with the rule: `restarted` then says that what was
    returned before is superseded and the view is to be built afresh. A resume is rare, so
    this costs one more read of the log then, and nothing is kept in memory meanwhile.
    `ended`, `orphaned` and `on_bad_line` are the EventTail's (a bad line is reported again
    when the log is read again)."""

    def __init__(
        self,
        path: str | os.PathLike,
        on_bad_line: Callable[[EventError], None] | None = None,
        arrays: bool = True,
    ) -> None:
        self._tail = EventTail(path, on_bad_line, arrays)
        self.restarted = False

    @property
    def path(self) -> Path:
        return self._tail.path

    @property
    def ended(self) -> bool:
        return self._tail.ended

    @property
    def orphaned(self) -> bool:
        return self._tail.orphaned

    @property
    def on_bad_line(self) -> Callable[[EventError], None] | None:
        return self._tail.on_bad_line

    @on_bad_line.setter
    def on_bad_line(self, handler: Callable[[EventError], None] | None) -> None:
        self._tail.on_bad_line = handler

    @property
    def position(self) -> tuple[int, int]:
        return self._tail.position

    def seek(self, position: int, line: int, ended: bool) -> None:
        """EventTail.seek: from a point the records before which are known (a summary)."""
        self._tail.seek(position, line, ended)

    def read(self, limit: int | None = None) -> list[Event]:
        events = self._tail.read(limit)
        self.restarted = any(event.type == "run_resume" for event in events)
        if not self.restarted:
            return events
        self._tail = EventTail(self._tail.path, self._tail.on_bad_line, self._tail.arrays)
        events = []
        while more := self._tail.read():  # up to a bad line, which the next read raises
            events += more
        return continued(events)


class LogScan:
    """A run's log folded into its `runsummary.LogDigest` (what the runs table shows of it)
    with the resume rule (RunTail), a poll at a time (`read`), in bounded memory. It starts
    where the run's summary file left off when that is still true of the log, else at the
    first line; `notice` names a summary file that could not be used."""

    def __init__(self, run_dir: str | os.PathLike, from_summary: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.digest = runsummary.LogDigest()
        self.notice = ""
        #: The log bytes the run's summary file covers (as far as this scan knows).
        self.saved = 0
        #: The log's (size, mtime_ns) when the summary was found written for it as it stood.
        self.untouched: tuple[int, int] | None = None
        self._reported = ""
        self._tail = RunTail(self.run_dir / EVENTS_FILE, on_bad_line=self._bad_line, arrays=False)
        if from_summary:
            self._start_from_summary()

    def _start_from_summary(self) -> None:
        try:
            summary = runsummary.read(self.run_dir / SUMMARY_FILE)
        except runsummary.SummaryError as error:
            self.notice = f"{error}; the log was read instead"
            return
        if summary is not None and summary.matches(self._tail.path):
            self.digest = dataclasses.replace(summary.digest)
            self._tail.seek(summary.bytes, summary.lines, summary.digest.end_reason is not None)
            self.saved = summary.bytes
            if summary.untouched(_stat(self._tail.path)):
                self.untouched = (summary.bytes, summary.mtime_ns)

    @property
    def position(self) -> tuple[int, int]:
        """(bytes, lines) of the log folded in."""
        return self._tail.position

    def read(self) -> bool:
        """Fold in what was appended since the last read; True when anything was. OSError
        when the log cannot be read."""
        changed = False
        while True:
            before, self._reported = self._tail.position, ""
            events = self._tail.read(SCAN_CHUNK)
            if self._tail.restarted:  # resumed: the whole log again, as runs.continued reads it
                self.digest = runsummary.LogDigest(problem=self._reported)
            for event in events:
                self.digest.add(event)
            if not events and self._tail.position == before:
                return changed
            changed = True

    def _bad_line(self, error: EventError) -> None:
        self._reported = self._reported or str(error)
        self.digest.report(str(error))

    def save(self) -> bool:
        """Write the run's summary file for what was read; False when it cannot be written
        (a folder the reader may not write, a full disk) or the log changed under it."""
        size, lines = self.position
        tail = runsummary.tail_of(self._tail.path, size)
        if tail is None:
            return False
        status = _stat(self._tail.path)
        mtime = status[1] if status is not None and status[0] == size else 0
        summary = runsummary.Summary(dataclasses.replace(self.digest), size, lines, tail, mtime)
        try:
            runsummary.write(self.run_dir / SUMMARY_FILE, summary)
        except OSError:
            return False
        self.saved = size
        return True


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
    """A directory a new run may write: made if missing, or taken when empty (stale
    temporaries of killed writes are removed first). Refused (RunDirError, one line) when it
    already holds a run — a run directory is never reused, so no earlier run is lost — or
    anything else (a user's folder is not written into), or cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        held = sorted(entry.name for entry in os.scandir(path))
        if not held:
            # Prove it is writable now, not after the dataset has loaded.
            with tempfile.TemporaryFile(dir=path):
                pass
    except OSError as error:
        raise RunDirError(_unusable(path, error)) from None
    logged = [name for name in RUN_FILES if name in held]
    if logged:
        raise RunDirTaken(
            f"{path}: already holds a run ({', '.join(logged)}); a run directory is never "
            "reused: give a new one, or none for a fresh one under the runs folder"
        )
    if held:
        raise RunDirTaken(
            f"{path}: is not empty ({held[0]}{', ...' if len(held) > 1 else ''}); a run writes "
            "only into a new or empty folder: give another, or none for a fresh one under the "
            "runs folder"
        )
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
    (batch lines within FLUSH_SECONDS, see the module docstring), and the run's summary file
    (SUMMARY_FILE, see nnlib.runsummary) from the writer thread: at the start, at epoch ends
    (at most every SUMMARY_SECONDS) and at the end. The summary is the fold of the records
    as they are written; a resumed run's (`append`) is read from its log once, after its
    run_resume, since the resume rule drops records written before it.

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
        self._arrays: ArrayWriter | None = None  # the side file of big arrays
        self._batch_lines = BatchLines()  # compact: what changed since the line before
        self._lock: WriterLock | None = None
        self._early: list[Event] = []  # events that came before the log was open
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
        # The summary: the records written, folded (None: to be read from the log, the
        # resume rule having dropped some); whether one is to be written, and when one was
        # last (monotonic); the log bytes and lines the last one covered; whether a write
        # failed (the log may then hold part of a line: no more summaries); the log's size
        # at the end, for the last one.
        self._digest: runsummary.LogDigest | None = None
        self._summary_due = False
        self._summarized = -math.inf
        self._counted = (0, 0)
        self._no_summary = False
        self._final_size: tuple[int, int] | None = None

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
        records, synced = [], None
        if not self.append:
            start = make(
                "run_start", trainer.global_step, {"run": str(self.run_dir), "config": config}
            )
            # config.json holds the config as run_start carries it (made JSON-safe once). Its
            # fsync is the writer thread's: it took 1-9 ms on a shared disk, at every start.
            synced = self.run_dir / CONFIG_FILE
            atomic_write_text(synced, json.dumps(start["config"], indent=2), sync=False)
            records.append(start)
        records += self._early
        self._early = []
        self._handle = (self.run_dir / EVENTS_FILE).open("a", encoding="utf-8")
        self._arrays = ArrayWriter(self.run_dir)
        records = [self._stored(record) for record in records]
        self._digest = None if self.append else runsummary.LogDigest()
        self._summary_due = not self.append  # a resumed run's first comes after run_resume
        self._emit_lines(records)
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
                self._emit_lines()
            elif len(self._held) == 1:
                self._since = now
                self._wake.notify()
        if self._failed is not None:
            self._raise_failure()

    def on_record(self, trainer: Trainer, record: Event) -> None:
        """Write each event and epoch as the CallbackList made it (the batch lines go from
        `on_batch_end`'s logs; the end from `on_train_end`, which closes the log)."""
        if record.type == "end":
            return
        if self._handle is None and trainer.state == "running":
            self._early.append(record)  # from an earlier on_train_begin
            return
        self._write_record(record)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        """Write the end event and let the run go. When the log cannot take it (an OSError:
        the disk is full), the end goes into the lock file instead (see WriterLock), and the
        run reads as ended that way; only if that fails too is the error raised."""
        step, data = trainer.global_step, {k: v for k, v in logs.items() if k != "step"}
        try:
            try:
                self._write("end", step, data, raise_failure=False)
            except OSError:
                if not self._record_end(step, data):
                    raise
            if self._failed is not None:
                self._raise_failure()
        finally:
            with self._mutex:
                handle, self._handle, self._held = self._handle, None, []
                self._final_size = _stat(handle)  # the writer thread's last summary covers it
                self._wake.notify()  # the writer thread ends
            if self._writer is not None:
                self._writer.join()
                self._writer = None
            if handle is not None:
                # What it still held cannot be written either (a full disk): let it go.
                with contextlib.suppress(OSError):
                    handle.close()
            if self._arrays is not None:
                self._arrays.close()
                self._arrays = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _record_end(self, step: int, data: dict[str, Any]) -> bool:
        """The end event into the lock file's reserved bytes; True when written."""
        if self._lock is None:
            return False
        error = data.get("error")
        if isinstance(error, str) and len(error) > MAX_RESERVED_ERROR:
            data = {**data, "error": error[: MAX_RESERVED_ERROR - 1] + "…"}
        return self._lock.record_end(make("end", step, data).line())

    def _write(
        self, event_type: str, step: int, data: dict[str, Any], raise_failure: bool = True
    ) -> None:
        """Write one event now, after the batch lines held before it; then raise what the
        writer thread could not write, if anything (unless told not to)."""
        if self._handle is not None:
            self._write_record(make(event_type, step, data), raise_failure)

    def _write_record(self, event: Event, raise_failure: bool = True) -> None:
        """`_write` for a record made already."""
        if self._handle is None:
            return
        with self._mutex:
            self._emit_lines([self._stored(event)])
            if event.type == "epoch":
                self._summary_due = True
                self._wake.notify()
        if raise_failure and self._failed is not None:
            self._raise_failure()

    def _stored(self, event: Event) -> Event:
        """The event as its line goes: its big arrays appended to the side file first (the
        blocks before the line that refers to them). When they cannot be written, the arrays
        stay in the line, as in older logs."""
        if self._arrays is not None:
            with contextlib.suppress(OSError, ValueError):
                return store_arrays(event, self._arrays)
        return event

    def _emit_lines(self, records: Iterable[Event] = ()) -> None:
        """Write the held batch lines, then `records`, flush, and fold them into the digest
        (hold `_mutex`). A held line that does not make a record is left out and its
        EventError raised once the rest is written."""
        if self._handle is None:
            return
        held, self._held = self._held, []
        lines, times, error = [], [], None
        for step, data, moment in held:  # one after another: the encoder stays in the caches
            when = round(moment, 3)
            try:
                lines.append(self._batch_lines.line(step, data, when))
                times.append(when)
            except EventError as bad:
                error = error or bad
        lines += [record.line() for record in records]
        try:
            self._handle.write("".join(lines))
            self._handle.flush()
        except BaseException:
            self._no_summary = True  # part of it may be in the log: the digest cannot tell
            self._batch_lines.reset()  # nor can a reader of the next batch line
            raise
        self._written = time.monotonic()
        if self._digest is not None:
            for when in times:
                self._digest.add_batch(when)
            for record in records:
                self._digest.add(record)
                if record.type == "run_resume":  # what it supersedes is read from the log
                    self._digest = None
                    break
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
                now, waits = time.monotonic(), []
                if self._held:
                    due = self._since + FLUSH_SECONDS - now
                    if due <= 0:
                        try:
                            self._emit_lines()
                        except Exception as error:  # raised on the training thread, at its next
                            self._failed = error  # line
                        continue
                    waits.append(due)
                if self._summary_due:
                    due = self._summarized + SUMMARY_SECONDS - now
                    if due <= 0:
                        self._summarize(_stat(self._handle))
                        continue
                    waits.append(due)
                self._wake.wait(min(waits, default=None))
            if self._final_size is not None:
                self._summarize(self._final_size)

    def _summarize(self, status: tuple[int, int] | None) -> None:
        """(The writer thread, holding `_mutex`.) Write the summary file for the log as it
        stands: `status` its (size, mtime_ns), all that was written by now; the mutex is let
        go meanwhile. Not written
        when the log cannot be summarised (a failed write) or the file cannot be written: the
        log stays the record, and readers read it."""
        self._summary_due, self._summarized = False, time.monotonic()
        self._batch_lines.reset()  # a reader may start where `status` says: a complete line
        if self._no_summary or status is None or self.run_dir is None:
            return
        if self._digest is None:
            self._digest_from_log()
            return
        digest, (counted, lines) = dataclasses.replace(self._digest), self._counted
        (size, mtime), log = status, self.run_dir / EVENTS_FILE
        self._mutex.release()
        try:
            lines += runsummary.count_lines(log, counted, size)
            tail = runsummary.tail_of(log, size)
            if tail is None:  # not whole lines: this digest cannot be placed in the log
                self._no_summary = True
            else:
                summary = runsummary.Summary(digest, size, lines, tail, mtime)
                runsummary.write(self.run_dir / SUMMARY_FILE, summary)
                self._counted = (size, lines)
        except OSError:
            pass
        finally:
            self._mutex.acquire()

    def _digest_from_log(self) -> None:
        """(The writer thread, holding `_mutex`.) The digest read from the log (the run was
        resumed), then kept by folding as before; its summary written. The log is read with
        the mutex let go, then what was written meanwhile with it held."""
        assert self.run_dir is not None
        scan = LogScan(self.run_dir)
        self._mutex.release()
        try:
            scan.read()
        except OSError:
            self._no_summary = True
            return
        finally:
            self._mutex.acquire()
        try:
            scan.read()  # nothing is written meanwhile
        except OSError:
            self._no_summary = True
            return
        self._batch_lines.reset()  # a reader may start where the scan stopped
        self._digest, self._counted = dataclasses.replace(scan.digest), scan.position
        self._mutex.release()
        try:
            scan.save()
        finally:
            self._mutex.acquire()


def _stat(file: Any) -> tuple[int, int] | None:
    """(size, mtime_ns) of a path or an open file; None when there is none or it cannot be
    asked."""
    try:
        status = os.stat(file) if isinstance(file, Path) else os.fstat(file.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return status.st_size, status.st_mtime_ns


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
