"""Runs for the issue-10 view tests: a short real training run collected as the bridge sent it
(live) with its run directory (recorded), and those updates pinned for SVG snapshots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nnlib import events
from nnlib.config import ExperimentConfig
from nnlib.experiment import Experiment, setup
from nntui.bridge import Bridge
from nntui.stream import Batches, RunStarted, Update


def spirals_run(
    tmp: Path,
    arch: str = "2-8-8-3",
    epochs: int = 2,
    prepare: Callable[[Experiment], None] | None = None,
    **config: object,
) -> tuple[list[Update], Path]:
    """Train spirals (fixed seed) with a bridge collecting snapshots; (snapshots, run dir).
    `prepare` may set weights first (a run built to go wrong)."""
    snapshots: list[Update] = []
    experiment = setup(
        ExperimentConfig(dataset="spirals", arch=arch, epochs=epochs, seed=0, **config),  # type: ignore[arg-type]
        run_root=tmp,
        callbacks=[Bridge(snapshots.append)],
    )
    if prepare is not None:
        prepare(experiment)
    experiment.fit()
    return snapshots, experiment.run_dir


def pinned(snapshots: list[Update]) -> list[Update]:
    """A real run's snapshots with what varies between machines pinned (speeds, times, the
    run directory), for SVG snapshots."""
    out: list[Update] = []
    for snapshot in snapshots:
        if isinstance(snapshot, RunStarted):
            snapshot = replace(snapshot, run_dir="runs/20250101-120000-spirals")
        elif isinstance(snapshot, Batches):
            pace = [replace(r, samples_per_sec=50_000.0) for r in snapshot.records]
            snapshot = Batches(tuple(pace))
        elif isinstance(snapshot, events.Epoch):
            snapshot = replace(snapshot, seconds=0.05, samples_per_sec=50_000.0)
        elif isinstance(snapshot, events.Boundary) and snapshot.epoch is None:
            continue  # mid-epoch views come when the measured budget allows
        elif isinstance(snapshot, events.System):
            continue  # this machine's CPU and memory
        out.append(snapshot)
    return out
