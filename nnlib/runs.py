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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._atomic import atomic_write_text
from .callbacks.base import Callback, Logs

if TYPE_CHECKING:
    from .trainer import Trainer

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "run_start": ("run", "config"),
    "batch": ("epoch", "batch", "loss"),
    "epoch": ("epoch", "loss"),
    "histograms": ("layers",),
    "confusion": ("matrix",),
    "hparam": ("name", "old", "new"),
    "pause": (),
    "resume": (),
    "checkpoint": ("path",),
    "early_stop": ("monitor",),
    "diverged": ("loss",),
    "end": ("reason",),
}


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
    """Parse and check one line; raises ValueError naming `where` on a bad record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict) or "type" not in record:
        raise ValueError(f"{where}: not an event record")
    if record.get("v", 0) > SCHEMA_VERSION:
        raise ValueError(
            f"{where}: schema version {record['v']} is newer than this nnlib "
            f"reads ({SCHEMA_VERSION})"
        )
    event_type = record.pop("type")
    missing = [f for f in REQUIRED_FIELDS.get(event_type, ()) if f not in record]
    if missing:
        raise ValueError(f"{where}: {event_type} event lacks {', '.join(missing)}")
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
    was killed mid-write — is dropped; a bad line anywhere else is an error naming it."""
    events_path = _events_path(path)
    if not events_path.exists():
        raise ValueError(f"{path}: no run log ({EVENTS_FILE}) there")
    lines = events_path.read_text(encoding="utf-8", errors="replace").split("\n")
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: possibly torn
        try:
            events.append(decode(line, f"{events_path}:{number}"))
        except ValueError:
            if last:
                break
            raise
    return events


class EventTail:
    """The complete lines appended to an events.jsonl since the last `read`, decoded. One
    poll at a time, so a caller (a UI thread, say) can stop between two polls. A last line
    without its newline (being written, or torn by a crash) waits for the rest; a file that
    does not exist yet reads as no events."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = _events_path(path)
        self._position = 0
        self._line = 0

    def read(self) -> list[Event]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._position)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        cut = chunk.rfind(b"\n")
        if cut < 0:
            return []
        self._position += cut + 1
        events = []
        for raw in chunk[:cut].split(b"\n"):
            self._line += 1
            line = raw.decode("utf-8", errors="replace")
            if line.strip():
                events.append(decode(line, f"{self.path}:{self._line}"))
        return events


def follow(
    path: str | os.PathLike, poll: float = 0.2, idle_timeout: float | None = None
) -> Iterator[Event]:
    """Yield events as a run writes them, until its 'end' event (or `idle_timeout` seconds
    without a new line). Waits for the file to appear."""
    tail, idle = EventTail(path), 0.0
    while True:
        events = tail.read()
        for event in events:
            yield event
            if event.type == "end":
                return
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
    raise ValueError(f"{root}: could not create a new run directory")


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
    ) -> None:
        if batch_every < 1:
            raise ValueError(f"RunLogger: batch_every must be >= 1, got {batch_every}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.root = root
        self.name = name
        self.config = dict(config or {})
        self.batch_every = batch_every
        self._handle: Any = None
        self._early: list[str] = []  # encoded events that came before the log was open

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.run_dir is None:
            self.run_dir = new_run_dir(self.root, self.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        atomic_write_text(self.run_dir / CONFIG_FILE, json.dumps(_plain(config), indent=2))
        self._handle = (self.run_dir / EVENTS_FILE).open("a", encoding="utf-8")
        self._write("run_start", trainer.global_step, {"run": str(self.run_dir), "config": config})
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
        self._write("end", trainer.global_step, {k: v for k, v in logs.items() if k != "step"})
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _write(self, event_type: str, step: int, data: dict[str, Any]) -> None:
        if self._handle is None:
            return
        self._handle.write(encode(event_type, step, data))
        self._handle.flush()


def versions() -> dict[str, str]:
    from . import __version__

    return {"nnlib": __version__, "numpy": np.__version__, "python": platform.python_version()}
