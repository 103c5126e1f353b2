"""What the view callbacks cost (Samples, Features, Diagnostics, Boundary and the test at the
end), and how much a run directory grows per epoch.

MNIST-size data: the 10,000 real MNIST test digits of /work/shared/datasets/mnist repeated to
60,000 (users train on 60k; the counts, not the pixels, set the sizes), split 54,000 / 6,000
/ test 10,000, LeNet-5 with the default settings. Then spirals with its default MLP, where the
Boundary view and the neuron maps run (`--spiral-epochs`, 0 to skip; `--epochs 0` skips the
MNIST part), at full speed as `nnlib train` runs it or paced (`--spiral-pace`, epochs a
second, as the app starts it at 2), with how many of its epoch ends got a boundary view: a
scrubbed run shows the boundary change at those.

The cost is the time spent inside the view callbacks' hooks over the time of the epochs
(both measured in the same run, so the machine's load affects both alike), plus the one
test evaluation at the end against one epoch. Run:

    PYTHONPATH=. python benchmarks/bench_views.py [--epochs 2] [--repeat 6] [--spiral-epochs 300]
        [--spiral-pace 2]
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nnlib import datasets, runs
from nnlib.arrays import ARRAYS_FILE
from nnlib.callbacks import Callback
from nnlib.callbacks.boundary import BoundaryView
from nnlib.callbacks.diagnostics import Diagnostics
from nnlib.callbacks.features import FeatureMaps
from nnlib.callbacks.samples import SampleRecorder
from nnlib.callbacks.system import SystemMetrics
from nnlib.callbacks.testset import TestEvaluator
from nnlib.config import ExperimentConfig
from nnlib.events import Boundary
from nnlib.experiment import setup
from nnlib.runs import RunLogger

MNIST = Path("/work/shared/datasets/mnist")
HOOKS = ("on_train_begin", "on_batch_begin", "on_batch_end", "on_epoch_end", "on_train_end")
#: The callbacks that compute what the views show.
VIEWS = (SampleRecorder, FeatureMaps, TestEvaluator, Diagnostics, BoundaryView, SystemMetrics)


def mnist(repeat: int) -> datasets.Dataset:
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return datasets.Dataset(
        name="mnist-60k",
        x_train=np.concatenate([images] * repeat),
        y_train=np.concatenate([labels] * repeat),
        x_test=images,
        y_test=labels,
        input_shape=(28, 28, 1),
        task="classification",
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        description="MNIST t10k repeated",
    )


def timed(callback: Callback, spent: dict[str, float], nested: list[float]) -> None:
    """Wrap the callback's hooks so that their own time adds up in spent[its class name]:
    time spent in another timed hook called from inside one (a view's event written by the
    RunLogger, with the batch lines it held) counts for that other callback only. `nested`
    is the stack of child times shared by every wrapped hook."""
    name = type(callback).__name__
    for hook in (*HOOKS, "on_event"):
        inner = getattr(callback, hook)

        def wrapper(*args, _inner=inner, **kwargs):
            nested.append(0.0)
            began = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                children = nested.pop()
                spent[name] = spent.get(name, 0.0) + elapsed - children
                if nested:
                    nested[-1] += elapsed

        setattr(callback, hook, wrapper)


class Sizes(Callback):
    """Epoch wall times and the run directory's size after each epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.sizes, self.times, self._began = run_dir, [], [], 0.0

    def on_epoch_begin(self, trainer, epoch):
        self._began = time.perf_counter()

    def on_epoch_end(self, trainer, epoch, logs):
        self.times.append(time.perf_counter() - self._began)
        self.sizes.append({p.name: p.stat().st_size for p in self.run_dir.iterdir()})


def measured_run(
    config: ExperimentConfig, data: datasets.Prepared | None = None, pace: float | None = None
) -> tuple[Sizes, dict[str, float], dict[str, int]]:
    """Train `config` (at most `pace` epochs a second) with every view callback's hooks
    timed: (epoch times and sizes, seconds per callback class, the run directory's files at
    the end)."""
    run_dir = Path(config.run_dir)
    sizes = Sizes(run_dir)
    experiment = setup(config, data=data, callbacks=[sizes])
    experiment.trainer.control.set_pace(pace)
    spent: dict[str, float] = {}
    nested: list[float] = []
    for callback in experiment.trainer.callbacks:
        if isinstance(callback, (*VIEWS, RunLogger)):
            timed(callback, spent, nested)
    experiment.fit()
    return sizes, spent, {p.name: p.stat().st_size for p in run_dir.iterdir()}


def report(sizes: Sizes, spent: dict[str, float]) -> None:
    """The views' share of the epochs (the test at the end apart)."""
    print(f"epoch (median) {float(np.median(sizes.times)):.4g} s over {len(sizes.times)} epochs")
    for name, seconds in spent.items():
        print(f"  {name:<15} {seconds:7.3f} s over the run")
    views = {view.__name__ for view in VIEWS} - {"TestEvaluator"}
    in_epochs = sum(v for k, v in spent.items() if k in views)
    print(
        f"views {in_epochs / sum(sizes.times):.2%} of the epochs' time, apart from the "
        f"RunLogger writing their events; the test at the end: "
        f"{spent.get('TestEvaluator', 0):.2f} s once"
    )


#: Batches of an MNIST epoch (60,000 samples of 64): the bytes per epoch are scaled to it.
MNIST_BATCHES = 938
#: What the run folder may grow by per MNIST-size epoch (side files included, checkpoints and
#: model files aside), and a batch line's size, at most (issue 20).
EPOCH_TARGET, BATCH_LINE_TARGET = 100_000, 80


def log_bytes(run_dir: Path, batch_size: int) -> None:
    """The log's bytes by event type over the last epoch (the events after the previous
    epoch's line, up to its own), and what an MNIST-size epoch adds to the run folder: those,
    with the batch lines and histograms scaled to MNIST_BATCHES, plus the side file's share
    (arrays.bin over the epochs, its maps at the start included), against the targets."""
    import json
    from collections import Counter

    lines = (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    # A compact batch line (log schema 2) has no "type"; every other line names its own.
    records = [json.loads(line).get("type", "batch") for line in lines]
    ends = [i for i, kind in enumerate(records) if kind == "epoch"]
    first = ends[-2] + 1 if len(ends) > 1 else 0
    by_type, count = Counter(), Counter()
    span = slice(first, ends[-1] + 1)
    for line, kind in zip(lines[span], records[span], strict=True):
        by_type[kind] += len(line)
        count[kind] += 1
    scale = MNIST_BATCHES / max(count["batch"], 1)
    side = run_dir / ARRAYS_FILE
    per_epoch_side = (side.stat().st_size if side.exists() else 0) / len(ends)
    total = sum(by_type.values()) + per_epoch_side
    total += (by_type["batch"] + by_type["histograms"]) * (scale - 1)
    print(f"bytes by event type in the last epoch, {count['batch']} batches (per line):")
    for kind, size in by_type.most_common():
        print(f"  {kind:<14} {size:>9,}  ({size / max(count[kind], 1):,.0f})")
    print(f"  {ARRAYS_FILE:<14} {per_epoch_side:>9,.0f}  (a share of the side file)")
    batch_line = by_type["batch"] / max(count["batch"], 1)
    print(
        f"an MNIST-size epoch ({MNIST_BATCHES} batches of {batch_size}) adds {total:,.0f} bytes "
        f"(target {EPOCH_TARGET:,}); a batch line {batch_line:.0f} bytes (target "
        f"{BATCH_LINE_TARGET})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--spiral-epochs", type=int, default=300)
    parser.add_argument("--spiral-pace", type=float, default=None)
    args = parser.parse_args()
    if args.epochs:
        mnist_run(args)
    if args.spiral_epochs:
        spirals_run(args.spiral_epochs, args.spiral_pace)


def mnist_run(args: argparse.Namespace) -> None:
    data = datasets.prepare(mnist(args.repeat), validation_split=0.1, seed=0)
    with tempfile.TemporaryDirectory() as root:
        config = ExperimentConfig(
            dataset="mnist-60k", epochs=args.epochs, run_dir=str(Path(root) / "run")
        )
        sizes, spent, final = measured_run(config, data)
        print(
            f"load average {os.getloadavg()[0]:.2f} (2 cores); LeNet-5 on train "
            f"{len(data.x_train):,}, validation {len(data.x_val):,}, test {len(data.x_test):,}"
        )
        report(sizes, spent)
        events = [s.get("events.jsonl", 0) for s in sizes.sizes]
        growth = np.diff([0, *events])
        print(f"events.jsonl after each epoch: {events} bytes; growth {growth.tolist()}")
        log_bytes(Path(root) / "run", config.batch_size)
    print(
        f"samples.npz (once): {final.get('samples.npz', 0):,} bytes; "
        f"model files: {final.get('model.npz', 0) + final.get('best.npz', 0):,} bytes"
    )


def spirals_run(epochs: int, pace: float | None) -> None:
    """Spirals with its default model: the views' share, and the epoch ends with a view."""
    with tempfile.TemporaryDirectory() as root:
        run_dir = Path(root) / "run"
        config = ExperimentConfig(dataset="spirals", epochs=epochs, run_dir=str(run_dir))
        sizes, spent, _ = measured_run(config, pace=pace)
        views = [e for e in runs.read(run_dir) if isinstance(e, Boundary)]
    speed = "full speed" if pace is None else f"paced to {pace:g} epochs a second"
    print(f"\nload average {os.getloadavg()[0]:.2f}; spirals, its default model, {speed}")
    report(sizes, spent)
    ends = {e.epoch for e in views} - {None}
    print(
        f"boundary views: {len(views)}, {len(ends)} of {epochs} epoch ends; "
        f"{spent.get('BoundaryView', 0) / max(len(views), 1) * 1000:.2f} ms a view "
        f"(BoundaryView's hooks; its events written: RunLogger)"
    )


if __name__ == "__main__":
    main()
