"""Runs for the issue-10 view tests: a short real training run collected as bridge snapshots
(live) and its run directory (recorded), and a fixed replay with a boundary event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers import classification_run

from nnlib import events
from nnlib.config import ExperimentConfig
from nnlib.experiment import Experiment, setup
from nntui import bridge as b


def spirals_run(
    tmp: Path,
    arch: str = "2-8-8-3",
    epochs: int = 2,
    prepare: Callable[[Experiment], None] | None = None,
    **config: object,
) -> tuple[list[b.Snapshot], Path]:
    """Train spirals (fixed seed) with a bridge collecting snapshots; (snapshots, run dir).
    `prepare` may set weights first (a run built to go wrong)."""
    snapshots: list[b.Snapshot] = []
    experiment = setup(
        ExperimentConfig(dataset="spirals", arch=arch, epochs=epochs, seed=0, **config),  # type: ignore[arg-type]
        run_root=tmp,
        callbacks=[b.Bridge(snapshots.append)],
    )
    if prepare is not None:
        prepare(experiment)
    experiment.fit()
    return snapshots, experiment.run_dir


def boundary_replay(boundary: events.Boundary, *extra: b.Snapshot) -> list[b.Snapshot]:
    """The fixed synthetic run of the snapshot tests with `boundary` (and `extra`) added."""
    return [*classification_run(), boundary, *extra]
