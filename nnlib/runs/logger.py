"""The RunLogger: the callback that writes a run's directory as the run goes (config.json, the
events.jsonl lines, the side file of big arrays, the summary file) while holding the run's
writer lock.

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
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import runsummary
from .._atomic import atomic_write_text, remove_stale_temporaries
from ..arrays import ArrayWriter
from ..callbacks.base import Callback, Logs
from ..events import BatchLines, Event, EventError, make
from .layout import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, new_run_dir
from .lock import MAX_RESERVED_ERROR, WriterLock
from .reading import LogScan, file_status
from .sidefile import store_arrays

if TYPE_CHECKING:
    from ..trainer import Trainer

#: Batch lines wait at most this long before they are written (see the module docstring).
FLUSH_SECONDS = 0.2
#: The RunLogger rewrites the run's summary at an epoch end at most this often (and always
#: at the end): fast epochs would otherwise write one every few milliseconds.
SUMMARY_SECONDS = 0.5


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
        records: list[Event] = []
        synced = None
        if not self.append:
            records.append(self._run_start(trainer, self.run_dir))
            synced = self.run_dir / CONFIG_FILE
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

    def _run_start(self, trainer: Trainer, run_dir: Path) -> Event:
        """A new run's run_start event, with config.json written beside it: the config as
        run_start carries it (made JSON-safe once). Its fsync is the writer thread's: it
        took 1-9 ms on a shared disk, at every start."""
        # The trainer's own view goes under "trainer", so the caller's config keys (an
        # experiment's "optimizer" name, say) are never overwritten.
        config = {**self.config, "trainer": _trainer_view(trainer), "versions": versions()}
        start = make("run_start", trainer.global_step, {"run": str(run_dir), "config": config})
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(start["config"], indent=2), sync=False)
        return start

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        step = logs["step"]
        if step % self.batch_every or self._handle is None:
            return
        # Held, not written: encoding one line right after a batch ran in cold caches.
        now = time.monotonic()
        with self._mutex:
            self._hold(step, logs, now)
        self._raise_failure()

    def _hold(self, step: int, logs: Logs, now: float) -> None:
        """Hold a batch line (hold `_mutex`): the held ones are written `now` when the last
        write is half FLUSH_SECONDS old, else the writer thread is woken for the first."""
        self._held.append((step, dict(logs), time.time()))  # the time rounded when written
        if now - self._written >= FLUSH_SECONDS / 2:  # the writer thread waits longer
            self._emit_lines()
        elif len(self._held) == 1:
            self._since = now
            self._wake.notify()

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
            self._raise_failure()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Close the run's files and let its lock go, once the writer thread wrote the last
        summary and ended; every step whether or not the end could be written."""
        with self._mutex:
            handle, self._handle, self._held = self._handle, None, []
            self._final_size = file_status(handle)  # the writer thread's last summary covers it
            self._wake.notify()  # the writer thread ends
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if handle is not None:
            # What it still held cannot be written either (a full disk): let it go.
            with contextlib.suppress(OSError):
                handle.close()
        if self._arrays is not None:
            # Its blocks went out unbuffered; a failing close (a lost network disk) must not
            # keep the lock held, which would show the run as running while this process lives.
            with contextlib.suppress(OSError):
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
        if raise_failure:
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
        lines, times, error = self._held_lines()
        lines += [record.line() for record in records]
        try:
            self._handle.write("".join(lines))
            self._handle.flush()
        except BaseException:
            self._no_summary = True  # part of it may be in the log: the digest cannot tell
            self._batch_lines.reset()  # nor can a reader of the next batch line
            raise
        self._written = time.monotonic()
        self._fold(times, records)
        if self._lock is not None:
            self._lock.beat()
        if error is not None:
            raise error

    def _held_lines(self) -> tuple[list[str], list[float], EventError | None]:
        """The held batch lines, encoded one after another (the encoder stays in the caches),
        and their times; a batch whose logs make no record is left out and the first such
        EventError returned (hold `_mutex`)."""
        held, self._held = self._held, []
        lines, times, error = [], [], None
        for step, data, moment in held:
            when = round(moment, 3)
            try:
                lines.append(self._batch_lines.line(step, data, when))
                times.append(when)
            except EventError as bad:
                error = error or bad
        return lines, times, error

    def _fold(self, times: list[float], records: Iterable[Event]) -> None:
        """Fold the batch lines (their times) and the records just written into the summary's
        digest; from a run_resume on there is none (what it supersedes is read from the log)."""
        if self._digest is None:
            return
        for when in times:
            self._digest.add_batch(when)
        for record in records:
            self._digest.add(record)
            if record.type == "run_resume":
                self._digest = None
                return

    def _raise_failure(self) -> None:
        """Raise what the writer thread could not write, if anything, on the training thread
        (nothing failed: the mutex is not taken)."""
        if self._failed is None:
            return
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
                lines, summary = self._time_left(time.monotonic())
                if lines <= 0:
                    self._emit_held()
                elif summary <= 0:
                    self._summarize(file_status(self._handle))
                else:
                    due = min(lines, summary)
                    self._wake.wait(None if due == math.inf else due)
            if self._final_size is not None:
                self._summarize(self._final_size)

    def _time_left(self, now: float) -> tuple[float, float]:
        """(Holding `_mutex`.) The time left before the held batch lines and the summary are
        due to be written (infinite: nothing to write)."""
        lines = self._since + FLUSH_SECONDS - now if self._held else math.inf
        summary = self._summarized + SUMMARY_SECONDS - now if self._summary_due else math.inf
        return lines, summary

    def _emit_held(self) -> None:
        """(The writer thread, holding `_mutex`.) Write the held batch lines; what fails is
        raised on the training thread, at its next line."""
        try:
            self._emit_lines()
        except Exception as error:
            self._failed = error

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        """(The writer thread, holding `_mutex`.) Let the mutex go for a slow step (reading or
        writing a file), so the training thread does not wait for it; held again after."""
        self._mutex.release()
        try:
            yield
        finally:
            self._mutex.acquire()

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
        with self._unlocked(), contextlib.suppress(OSError):
            lines += runsummary.count_lines(log, counted, size)
            tail = runsummary.tail_of(log, size)
            if tail is None:  # not whole lines: this digest cannot be placed in the log
                self._no_summary = True
            else:
                summary = runsummary.Summary(digest, size, lines, tail, mtime)
                runsummary.write(self.run_dir / SUMMARY_FILE, summary)
                self._counted = (size, lines)

    def _digest_from_log(self) -> None:
        """(The writer thread, holding `_mutex`.) The digest read from the log (the run was
        resumed), then kept by folding as before; its summary written. The log is read with
        the mutex let go, then what was written meanwhile with it held."""
        assert self.run_dir is not None
        scan = LogScan(self.run_dir)
        try:
            with self._unlocked():
                scan.read()
            scan.read()  # nothing is written meanwhile
        except OSError:
            self._no_summary = True
            return
        self._batch_lines.reset()  # a reader may start where the scan stopped
        self._digest, self._counted = dataclasses.replace(scan.digest), scan.position
        with self._unlocked():
            scan.save()


def _trainer_view(trainer: Trainer) -> dict[str, Any]:
    """What the trainer runs, for the run's config: the model, optimizer, loss, schedule and
    replicas."""
    return {
        "model": {
            "spec": trainer.model.spec,
            "input_shape": trainer.model.input_shape,
            "params": trainer.model.summary().total_params,
        },
        "optimizer": {"name": trainer.optimizer.name, **trainer.optimizer.config()},
        "loss": trainer.loss.name,
        "epochs": trainer.epochs,
        "batch_size": trainer.batch_size,
        "replicas": trainer.replica_count,
    }


def _fsync(path: Path) -> None:
    """Put a written file's data on the disk; a file that cannot be opened for it (gone, or a
    system without fsync on a read-only handle) stays as the page cache has it."""
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def versions() -> dict[str, str]:
    """The versions a run was made with, for its config.json."""
    from .. import __version__

    return {"nnlib": __version__, "numpy": np.__version__, "python": platform.python_version()}
