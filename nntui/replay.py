"""Open a run directory: its `events.jsonl` records and `config.json`, as the stream a live
run sends (`nntui.stream`), so the dashboard shows a finished run, or follows one that is
still being written (a headless `nnlib train` on a server), without training.

Importable without Textual. The records are passed on as the log holds them, in its order:
`RunState` folds them as it folds a live run's, so nothing here imitates how the live run
was assembled. What the replay adds is what the config says before the first record
(`RunStarted`), consecutive batch records sent together (`Batches`), and the end of a run
whose writer died without one. A resumed run is read as `nnlib.runs.continued` reads it (as
the runs table, the export and `nnlib plot` do): the records a resume superseded are never
shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nnlib import events, runs
from nnlib._atomic import remove_stale_temporaries
from nnlib.config import ConfigError, ExperimentConfig
from nnlib.runindex import config_count, config_object, planned, run_dir_of

from .stream import Batches, Notice, Rewound, RunStarted, Update, pairs

#: The end reason of a run whose writer stopped without an end event.
CRASHED = "crashed"

#: The hyperparameters shown when a run's config does not name its optimizer's.
DEFAULT_HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "l1", "batch_size")


def run_started(config: Mapping[str, Any], run_dir: str) -> RunStarted:
    """What a run's config (config.json, or its run_start record's) says of it, as the live
    bridge says it from the trainer; a field of the wrong type is read as unknown, as the
    runs table reads it (a hand-written config may hold anything)."""
    trainer = config_object(config, "trainer")
    info = config_object(config, "dataset_info")
    _, arch, epochs = planned(config)
    task = _task(trainer, info)
    return RunStarted(
        run_dir,
        task,
        arch,
        config_count(config_object(trainer, "model").get("params")),
        epochs,
        _class_names(info, task),
        (),
        pairs(_hyperparameters(config, trainer)),
        _input_shape(info.get("input_shape")),
        config_count(info.get("train")),
    )


def _task(trainer: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """The task the dataset's listing names; for a config without one, the loss's (mse is
    a regression's)."""
    if info.get("task"):
        return str(info["task"])
    return "regression" if trainer.get("loss") == "mse" else "classification"


def _class_names(info: Mapping[str, Any], task: str) -> tuple[str, ...]:
    """A classification's classes as the dashboard labels them (the config records their
    count, not their names): their indices."""
    classes = config_count(info.get("num_classes")) if task == "classification" else 0
    return tuple(map(str, range(classes)))


def _hyperparameters(config: Mapping[str, Any], trainer: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer's settings the trainer recorded (its lr also as `base_lr`), else the
    config's own, and the batch size; those unknown left out."""
    optimizer = {k: v for k, v in config_object(trainer, "optimizer").items() if k != "name"}
    values: dict[str, Any] = (
        {**optimizer, "base_lr": optimizer.get("lr")}
        if optimizer
        else {k: config.get(k) for k in DEFAULT_HYPERPARAMETERS[:-1]}
    )
    values["batch_size"] = trainer.get("batch_size", config.get("batch_size"))
    return {k: v for k, v in values.items() if v is not None}


def _input_shape(shape: Any) -> tuple[int, ...]:
    """A recorded input shape, when it is a list of integers; else none."""
    return tuple(shape) if isinstance(shape, list) and all(type(n) is int for n in shape) else ()


class RunReplay:
    """A run log's records as the run's stream, incrementally: `feed` takes the records read
    so far and returns the updates they make."""

    def __init__(self, config: Mapping[str, Any] | None = None, run_dir: str = "") -> None:
        self.config: Mapping[str, Any] = config or {}
        self.run_dir = run_dir
        self.ended = False
        self._started = False
        self._step = 0
        self._epoch = 0

    @property
    def step(self) -> int:
        """The latest step read."""
        return self._step

    @property
    def started(self) -> bool:
        """True once the first record has been read."""
        return self._started

    def feed(self, records: Iterable[runs.Event]) -> list[Update]:
        """The updates of these records (the next ones of the run, in order), as the run-log
        readers give them: what a record keeps in the side file already read back."""
        out: list[Update] = []
        batches: list[events.Batch] = []
        for record in records:
            out += self._note(record)
            if isinstance(record, events.Batch):
                batches.append(record)
                continue
            if batches:
                out.append(Batches(tuple(batches)))
                batches = []
            if not isinstance(record, events.RunStart):  # RunStarted stands for it
                self.ended = self.ended or isinstance(record, events.End)
                out.append(record)
        if batches:
            out.append(Batches(tuple(batches)))
        return out

    def _note(self, record: runs.Event) -> list[Update]:
        """Keep what the stream needs from a record (the config and directory its run_start
        names, when not known; the latest step and epoch), and before the first record, say
        RunStarted."""
        if isinstance(record, events.RunStart):
            if not self.config and isinstance(record.config, Mapping):
                self.config = record.config
            self.run_dir = self.run_dir or record.run
        started: list[Update] = [] if self._started else [run_started(self.config, self.run_dir)]
        self._started = True
        self._step = max(self._step, record.step)
        self._epoch = getattr(record, "epoch", None) or self._epoch
        return started

    def crashed(self) -> list[Update]:
        """The end of a run whose writer stopped without writing its end record."""
        self.ended = True
        data = {"reason": CRASHED, "epoch": self._epoch, "error": runs.WRITER_GONE}
        return [events.make("end", self._step, data, when=0.0)]


def updates_from_records(
    records: Iterable[runs.Event], config: Mapping[str, Any] | None = None, run_dir: str = ""
) -> list[Update]:
    """All the updates of a run log's records (`config` is the run's config.json)."""
    return RunReplay(config, run_dir).feed(records)


@dataclass
class RecordedRun:
    """A run directory opened for the dashboard: what its log held when opened
    (`updates`), and `poll` for what was written since."""

    run_dir: Path
    config: Mapping[str, Any]
    tail: runs.RunTail
    replay: RunReplay
    updates: list[Update] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        """The latest attempt of the run has ended (a resume may still follow)."""
        return self.replay.ended

    def poll(self) -> list[Update]:
        """Updates of the records written since the last poll; a bad line is skipped with
        an error notice naming it (file:line), so following goes on. When the writer has
        stopped without an end event, the run ends as CRASHED. When the run was resumed, a
        Rewound comes first and the whole run follows, as `runs.continued` reads it. Raises
        OSError if the log cannot be read."""
        skipped: list[runs.EventError] = []
        self.tail.on_bad_line = skipped.append
        events = self.tail.read()
        out: list[Update] = []
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
        """The dataset the run's config names (as the runs table names it), else the run's."""
        return planned(self.replay.config)[0] or Path(self.run_dir.name).stem

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
    path = run_dir_of(path)
    if not runs.writer_alive(path):
        remove_stale_temporaries(path)  # what a killed writer left
    config, tail, records = _read_run(path)
    replay = RunReplay(config, str(path))
    updates = replay.feed(records)
    if tail.orphaned:
        updates += replay.crashed()
    return RecordedRun(path, config, tail, replay, updates)


def _read_run(path: Path) -> tuple[dict[str, Any], runs.RunTail, list[events.Event]]:
    """A run directory's config (empty when it has none yet), its log's tail and the records
    read so far (a resumed run's as `runs.continued` reads them); ValueError in one line
    naming the file that cannot be read."""
    config: Any = {}
    config_file = path / runs.CONFIG_FILE
    try:
        if config_file.exists():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        tail = runs.RunTail(path / runs.EVENTS_FILE)
        records: list[events.Event] = []
        while more := tail.read():  # up to a bad line, which the next read raises
            records = more if tail.restarted else records + more
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file}: not valid JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the run ({error})") from None
    except RecursionError:
        raise ValueError(f"{config_file}: JSON nested too deeply") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: expected a JSON object")
    return config, tail, records
