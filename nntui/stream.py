"""What a run source posts to the dashboard: the run's `nnlib.events` records, as the trainer
made them (live) or as its log holds them (recorded), and the few facts a run log does not
carry as a record of its own.

Live and recorded runs are two producers of this one stream: `nntui.bridge` forwards the
records the CallbackList hands it, `nntui.replay` reads them back from `events.jsonl`, and
`RunState` folds them the same way whichever produced them. The only types here are:

- `RunStarted`: what the dashboard knows of the run before its first batch (its model, task,
  epochs and hyperparameters), from the trainer live or from the run's config recorded;
- `Batches`: consecutive batch records sent together (a fast model trains thousands of
  batches a second; each record is the trainer's own);
- `Notice`: a line of the app's own (waiting for a run to start, a skipped bad line, a
  dataset's note, a run that could not start), which no run log holds;
- `Rewound`: a followed run was resumed, and what was shown of it is superseded.

Importable without Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnlib import events

Pairs = tuple[tuple[str, Any], ...]


def pairs(values: Mapping[str, Any]) -> Pairs:
    """An immutable copy of a dict of plain values (numpy scalars become Python numbers)."""
    return tuple((str(k), v.item() if isinstance(v, np.generic) else v) for k, v in values.items())


@dataclass(frozen=True)
class RunStarted:
    """The run as known before its first batch. `train_size` is the training samples of an
    epoch (0: unknown, then an epoch's batches are counted as they come)."""

    run_dir: str
    task: str
    arch: str
    params: int
    epochs: int
    class_names: tuple[str, ...]
    layers: tuple[str, ...]
    hyperparameters: Pairs
    input_shape: tuple[int, ...] = ()  # one sample's shape: (H, W, C) for images
    train_size: int = 0


@dataclass(frozen=True)
class Batches:
    """Consecutive batch records of the run, in order (at least one)."""

    records: tuple[events.Batch, ...]

    @property
    def step(self) -> int:
        return self.records[-1].step


@dataclass(frozen=True)
class Notice:
    """A line of the app's own: `kind` is waiting, error or note."""

    kind: str
    step: int
    message: str


@dataclass(frozen=True)
class Rewound:
    """A followed run was resumed from its checkpoint at `step`: what was shown of it is
    superseded (`nnlib.runs.continued`), and the whole run follows, read anew from its log."""

    step: int


Update = RunStarted | Batches | Notice | Rewound | events.Event


def joined(first: Batches, second: Batches) -> Batches:
    """The batches of both, in order: folds as `first` then `second` do."""
    return Batches(first.records + second.records)
