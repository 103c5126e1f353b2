"""Open a run directory: its `events.jsonl` and `config.json` as the same snapshots the live
bridge sends, so the dashboard shows a finished run, or follows one that is still being
written (a headless `nnlib train` on a server), without training.

Importable without Textual. Each snapshot is built by the bridge's own functions
(`batch_point`, `epoch_end`, `event_snapshot`, `run_ended`) from the same `nnlib.events`
records the bridge makes of the trainer's events live. A resumed run is read as
`nnlib.runs.continued` reads it (as the runs table, the export and `nnlib plot` do): the
records a resume superseded are never shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nnlib import events, runs
from nnlib._atomic import remove_stale_temporaries
from nnlib.arrays import ArrayReader
from nnlib.config import ConfigError, ExperimentConfig

from .bridge import (
    BatchPoint,
    Notice,
    Progress,
    Rewound,
    RunEnded,
    RunStarted,
    Snapshot,
    batch_point,
    epoch_end,
    event_snapshot,
    layer_owners,
    pairs,
    run_ended,
)

#: Events that callbacks emit while an epoch ends, before the logger writes the epoch's own
#: line: live, the bridge shows the epoch first, so the replay holds them until it.
AFTER_THEIR_EPOCH = ("checkpoint", "early_stop")
#: The end reason of a run whose writer stopped without an end event.
CRASHED = "crashed"

#: The hyperparameters shown when a run's config does not name its optimizer's.
DEFAULT_HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "l1", "batch_size")


class RunReplay:
    """Turns a run log's events into snapshots, incrementally: `feed` takes the events read
    so far and returns their snapshots. Batch points are gathered into one Progress per
    stretch between two other events (where the bridge flushes its buffer too)."""

    def __init__(self, config: Mapping[str, Any] | None = None, run_dir: str = "") -> None:
        self.config: Mapping[str, Any] = config or {}
        self.run_dir = run_dir
        self.ended = False
        self._started = False
        self._state = "running"
        self._epoch = 0
        self._done = 0  # batches done in the current epoch
        self._longest = 0  # the most batches an epoch took so far
        self._step = 0
        self._points: list[BatchPoint] = []
        self._logs: Mapping[str, Any] = {}
        self._relu_owner: dict[str, str] = {}
        self._held: list[runs.Event] = []  # waiting for their epoch's line (AFTER_THEIR_EPOCH)

    # -- the run's facts from its config ---------------------------------------------------------
    @property
    def _trainer(self) -> Mapping[str, Any]:
        return self.config.get("trainer") or {}

    @property
    def _info(self) -> Mapping[str, Any]:
        return self.config.get("dataset_info") or {}

    def _hyperparameters(self) -> dict[str, Any]:
        """In force: as the trainer reports them (its optimizer's config, base_lr, lr and the
        batch size), from the latest batch event, else from the config."""
        optimizer = {k: v for k, v in (self._trainer.get("optimizer") or {}).items() if k != "name"}
        values: dict[str, Any] = (
            {**optimizer, "base_lr": optimizer.get("lr")}
            if optimizer
            else {k: self.config.get(k) for k in DEFAULT_HYPERPARAMETERS[:-1]}
        )
        values["batch_size"] = self._trainer.get("batch_size", self.config.get("batch_size"))
        values.update((k, self._logs[k]) for k in list(values) if k in self._logs)
        return {k: v for k, v in values.items() if v is not None}

    def _steps_per_epoch(self) -> int:
        train = self._info.get("train")
        batch_size = self._logs.get("batch_size") or self._trainer.get("batch_size")
        if train and batch_size:
            return math.ceil(int(train) / int(batch_size))
        return max(self._longest, self._done)

    def _run_started(self) -> RunStarted:
        model = self._trainer.get("model") or {}
        task = str(
            self._info.get("task")
            or ("regression" if self._trainer.get("loss") == "mse" else "classification")
        )
        classes = int(self._info.get("num_classes") or 0) if task == "classification" else 0
        shape = self._info.get("input_shape")
        return RunStarted(
            self.run_dir,
            task,
            str(model.get("spec") or self.config.get("arch") or ""),
            int(model.get("params") or 0),
            self._epochs,
            tuple(str(i) for i in range(classes)),
            (),
            pairs(self._hyperparameters()),
            tuple(shape) if isinstance(shape, list) and all(type(n) is int for n in shape) else (),
        )

    @property
    def _epochs(self) -> int:
        return int(self._trainer.get("epochs") or self.config.get("epochs") or 0)

    @property
    def step(self) -> int:
        """The latest step read."""
        return self._step

    @property
    def started(self) -> bool:
        """True once the first event has been read."""
        return self._started

    # -- events ----------------------------------------------------------------------------------
    def feed(self, events: Iterable[runs.Event]) -> list[Snapshot]:
        """The snapshots of these events (the next ones of the run, in order). Raises
        ValueError naming the event when one lacks what it should hold."""
        return self._convert(self._in_live_order(events))

    def _convert(self, events: Iterable[runs.Event]) -> list[Snapshot]:
        out: list[Snapshot] = []
        # The side file, read from the run's directory (known by the run_start event at the
        # latest) once an event refers to it: an event whose arrays cannot be read says so
        # in its view (runs.resolve_arrays); the rest of the run shows.
        reader: ArrayReader | None = None
        try:
            for event in events:
                if event.type == "feature_maps":
                    reader = reader or ArrayReader(self.run_dir or ".")
                    event = runs.resolve_arrays(event, reader)
                self._convert_one(event, out)
        finally:
            if reader is not None:
                reader.close()
        if self._points:
            self._flush(out)
        return out

    def _convert_one(self, event: runs.Event, out: list[Snapshot]) -> None:
        try:
            self._event(event, out)
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            ArithmeticError,
        ) as error:
            raise ValueError(
                f"{runs.EVENTS_FILE}: the {event.type} event at step {event.step} is "
                f"malformed ({type(error).__name__}: {error})"
            ) from None

    def _in_live_order(self, events: Iterable[runs.Event]) -> Iterator[runs.Event]:
        """The events in the order the live app shows them: a checkpoint or an early stop
        after the line of the epoch it concerns (see AFTER_THEIR_EPOCH), and the final
        checkpoint after the end of the run."""
        for event in events:
            if event.type in AFTER_THEIR_EPOCH:
                self._held.append(event)
                continue
            if event.type == "epoch":
                yield event
                yield from self._release()
                continue
            if event.type == "end":
                # A checkpoint held now was written as the run ended (the final one): live,
                # the bridge, placed before the savers, has sent the end of the run by then.
                held = self._release()
                yield from (e for e in held if e.type != "checkpoint")
                yield event
                yield from (e for e in held if e.type == "checkpoint")
                continue
            if event.type == "batch" and event["epoch"] != self._epoch:
                yield from self._release()  # no epoch line came: a run stopped mid-epoch
            yield event

    def _release(self) -> list[runs.Event]:
        held, self._held = self._held, []
        return held

    def crashed(self) -> list[Snapshot]:
        """The end of a run whose writer stopped without writing its end event."""
        out = self._convert(self._release())
        self.ended = True
        out.append(RunEnded(CRASHED, self._step, self._epoch, runs.WRITER_GONE))
        return out

    def _event(self, event: runs.Event, out: list[Snapshot]) -> None:
        kind, data, step = event.type, event.data, event.step
        logs = {**data, "step": step}
        if kind == "run_start":
            if not self.config and isinstance(data.get("config"), Mapping):
                self.config = data["config"]
            self.run_dir = self.run_dir or str(data.get("run", ""))
        if not self._started:
            self._started = True
            out.append(self._run_started())
        self._step = max(self._step, step)
        if kind == "batch":
            if int(data["epoch"]) != self._epoch:  # the bridge's on_epoch_begin
                self._flush(out)
                self._epoch, self._done = int(data["epoch"]), 0
            if logs.get("lr") is None:  # optional in a batch line: the rate in force
                logs["lr"] = self._hyperparameters().get("lr", math.nan)
            self._points.append(batch_point(logs))
            self._logs, self._done = data, int(data["batch"]) + 1
        elif kind == "epoch":
            self._flush(out)
            self._longest = max(self._longest, self._done)
            out.append(epoch_end(int(data["epoch"]), logs))
        elif kind == "end":
            self._flush(out)
            self.ended = True
            out.append(run_ended(logs))
        elif kind != "run_start":
            if isinstance(event, events.Histograms):
                # The Monitor lists layers in model order: each ReLU after its weighted layer.
                _, owners = layer_owners(
                    (name, "weights" in entry, "dead_fraction" in entry)
                    for name, entry in event.layers.items()
                )
                self._relu_owner.update(owners)
            else:
                if kind in ("pause", "resume"):
                    self._state = "paused" if kind == "pause" else "running"
                self._flush(out)
            out.append(event_snapshot(event, self._epoch, self._relu_owner))

    def _flush(self, out: list[Snapshot]) -> None:
        points, self._points = tuple(self._points), []
        out.append(
            Progress(
                self._epoch,
                self._epochs,
                self._done,
                self._steps_per_epoch(),
                self._step,
                float(self._logs.get("samples_per_sec") or 0.0),
                points,
                pairs(self._hyperparameters()),
                (),
                self._state,
            )
        )


def snapshots_from_events(
    events: Iterable[runs.Event], config: Mapping[str, Any] | None = None, run_dir: str = ""
) -> list[Snapshot]:
    """All the snapshots of a run log's events (`config` is the run's config.json)."""
    return RunReplay(config, run_dir).feed(events)


@dataclass
class RecordedRun:
    """A run directory opened for the dashboard: what its log held when opened
    (`snapshots`), and `poll` for what was written since."""

    run_dir: Path
    config: Mapping[str, Any]
    tail: runs.RunTail
    replay: RunReplay
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        """The latest attempt of the run has ended (a resume may still follow)."""
        return self.replay.ended

    def poll(self) -> list[Snapshot]:
        """Snapshots of the events written since the last poll; a bad line is skipped with
        an error notice naming it (file:line), so following goes on. When the writer has
        stopped without an end event, the run ends as CRASHED. When the run was resumed, a
        Rewound comes first and the whole run follows, as `runs.continued` reads it. Raises
        OSError if the log cannot be read."""
        skipped: list[runs.EventError] = []
        self.tail.on_bad_line = skipped.append
        events = self.tail.read()
        out: list[Snapshot] = []
        if self.tail.restarted:
            self.replay = RunReplay(self.config, str(self.run_dir))
            resumed = [e for e in events if e.type == "run_resume"]
            out.append(Rewound(resumed[-1]["from_step"]))
        out += [
            Notice("error", self.replay.step, f"skipped a bad line: {error}") for error in skipped
        ]
        out += self.replay.feed(events)
        if self.tail.orphaned and not self.replay.ended:
            out += self.replay.crashed()
        return out

    def waiting(self) -> str | None:
        """While no event has been read: what the run is waiting for, and whether anything is
        writing it; None once the run has begun."""
        if self.replay.started:
            return None
        what = (
            f"{runs.EVENTS_FILE} is empty"
            if self.tail.path.exists()
            else f"no {runs.EVENTS_FILE} yet"
        )
        alive = runs.writer_alive(self.run_dir)
        return f"waiting for the run to start ({what}; " + (
            "its writer is alive)" if alive else "no process is writing it)"
        )

    @property
    def dataset(self) -> str:
        info = self.replay.config.get("dataset_info") or {}
        name = info.get("name") or self.replay.config.get("dataset") or self.run_dir.name
        return Path(str(name)).stem

    def experiment(self) -> ExperimentConfig:
        """The run's experiment, to start again from the setup screen (in a new run
        directory: never appended to this one); the defaults if its config is not one."""
        known = {f.name for f in fields(ExperimentConfig)}
        values = {k: v for k, v in self.replay.config.items() if k in known}
        try:
            return ExperimentConfig.from_dict({**values, "run_dir": None})
        except (ConfigError, TypeError, ValueError):
            return ExperimentConfig()


def open_run(path: str | Path) -> RecordedRun:
    """Read a run directory (or its events.jsonl). A directory without a log yet is a run
    about to start: it opens, to be followed. Raises ValueError with one clear line when the
    directory does not exist, or its config or log cannot be read (a bad line anywhere but
    last, a newer schema)."""
    path = Path(path)
    if path.is_file() and path.name == runs.EVENTS_FILE:
        path = path.parent
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory")
    events_file = path / runs.EVENTS_FILE
    if not runs.writer_alive(path):
        remove_stale_temporaries(path)  # what a killed writer left
    config: Any = {}
    config_file = path / runs.CONFIG_FILE
    try:
        if config_file.exists():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        tail = runs.RunTail(events_file)
        events = []
        while more := tail.read():  # up to a bad line, which the next read raises
            events = more if tail.restarted else events + more
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file}: not valid JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the run ({error})") from None
    except RecursionError:
        raise ValueError(f"{config_file}: JSON nested too deeply") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: expected a JSON object")
    replay = RunReplay(config, str(path))
    snapshots = replay.feed(events)
    if tail.orphaned:
        snapshots += replay.crashed()
    return RecordedRun(path, config, tail, replay, snapshots)
