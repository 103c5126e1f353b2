"""Reading a run's log: all of it (`read`), a poll at a time (`EventTail`; `RunTail` with the
resume rule, `continued`), folded into the runs table's digest (`LogScan`), or followed as it
is written (`follow`). A log is read in order (its batch lines are compact: see
nnlib.events.Decoder) and a torn last line waits for the rest."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import runsummary
from ..arrays import ArrayReader
from ..events import Decoder, Event, EventError
from .layout import EVENTS_FILE, SUMMARY_FILE, log_file
from .lock import unlogged_end, writer_alive, writer_started
from .sidefile import has_arrays, resolve_arrays

#: Bytes of log a LogScan reads a poll: its memory stays bounded however big a log is.
SCAN_CHUNK = 1 << 22
#: What a follower says when the writer is gone but the log has no end event.
WRITER_GONE = "the run's writer stopped without an end event (crashed or killed)"


class WriterGone(ValueError):
    """A run log ends without its end event and nothing writes it any more."""


def read(path: str | os.PathLike) -> list[Event]:
    """All events of a run (its directory or its events.jsonl), their arrays read back from
    the side file (`resolve_arrays`). A torn last line — the run was killed mid-write — is
    dropped; a bad line anywhere else is an EventError naming it."""
    events_path = log_file(path)
    if not events_path.exists():
        raise ValueError(f"{path}: no run log ({EVENTS_FILE}) there")
    try:
        text = events_path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ValueError(f"{events_path}: cannot read the run log ({error.strerror})") from None
    events = _decoded_lines(text, events_path)
    if (not events or events[-1].type != "end") and not writer_alive(events_path.parent):
        _add_unlogged_end(events, events_path.parent)
    return _resolved(events, events_path.parent)


def _decoded_lines(text: str, events_path: Path) -> list[Event]:
    """The records of a whole log's text, in order: a bad last line (no newline after it:
    torn) is dropped, a bad line anywhere else raised."""
    lines = text.split("\n")
    events, decoder = [], Decoder()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(decoder.decode(line, f"{events_path}:{number}"))
        except EventError:
            if number == len(lines):
                break
            raise
    return events


def _add_unlogged_end(events: list[Event], run_dir: Path) -> bool:
    """Append the end event a gone writer left in its lock file, its log having refused it
    (a full disk); True when there was one."""
    end = unlogged_end(run_dir)
    if end is not None:
        events.append(end)
    return end is not None


def _resolved(events: list[Event], run_dir: Path) -> list[Event]:
    """The events with what they keep in the run's side file read back (`resolve_arrays`),
    the side file opened only when one of them refers to it."""
    if not any(map(has_arrays, events)):
        return events
    with ArrayReader(run_dir) as reader:
        return [resolve_arrays(event, reader) for event in events]


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
        self.path = log_file(path)
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
        stopped = writer_started(self.path.parent) and not writer_alive(self.path.parent)
        chunk, at_end = self._chunk(limit)
        events, start = self._decoded(chunk)
        if events:
            self.ended = events[-1].type == "end"
            events = _resolved(events, self.path.parent) if self.arrays else events
        # Read to the end, and nobody writes more: the run has ended, said so or not.
        gone = at_end and chunk.find(b"\n", start) < 0 and stopped
        if gone and not self.ended:
            self.ended = _add_unlogged_end(events, self.path.parent)
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
                if self.on_bad_line is not None:
                    self.on_bad_line(error)
                    event = None
                elif events:
                    break  # the events before it now; the error at the next read
                else:
                    raise
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
            if summary.untouched(file_status(self._tail.path)):
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
        status = file_status(self._tail.path)
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


def file_status(file: Any) -> tuple[int, int] | None:
    """(size, mtime_ns) of a path or an open file; None when there is none or it cannot be
    asked."""
    try:
        status = os.stat(file) if isinstance(file, Path) else os.fstat(file.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return status.st_size, status.st_mtime_ns
