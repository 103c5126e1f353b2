"""What the Samples, Features and test callbacks cost, and how much a run directory grows per
epoch, on MNIST-size data: the 10,000 real MNIST test digits of /work/shared/datasets/mnist
repeated to 60,000 (users train on 60k; the counts, not the pixels, set the sizes), split
54,000 / 6,000 / test 10,000, LeNet-5 with the default settings.

The cost is the time spent inside the view callbacks' hooks over the time of each epoch
(both measured in the same run, so the machine's load affects both alike), plus the one
test evaluation at the end against one epoch. Run:

    PYTHONPATH=. python benchmarks/bench_views.py [--epochs 2] [--repeat 6]
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nnlib import datasets
from nnlib.callbacks import Callback
from nnlib.callbacks.features import FeatureMaps
from nnlib.callbacks.samples import SampleRecorder
from nnlib.callbacks.testset import TestEvaluator
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup

MNIST = Path("/work/shared/datasets/mnist")
HOOKS = ("on_train_begin", "on_batch_end", "on_epoch_end", "on_train_end")


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


def timed(callback: Callback, spent: dict[str, float]) -> None:
    """Wrap the callback's hooks so their time adds up in spent[its class name]."""
    name = type(callback).__name__
    for hook in HOOKS:
        inner = getattr(callback, hook)

        def wrapper(*args, _inner=inner, **kwargs):
            began = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    data = datasets.prepare(mnist(args.repeat), validation_split=0.1, seed=0)
    with tempfile.TemporaryDirectory() as root:
        run_dir = Path(root) / "run"
        config = ExperimentConfig(dataset="mnist-60k", epochs=args.epochs, run_dir=str(run_dir))
        sizes = Sizes(run_dir)
        experiment = setup(config, data=data, callbacks=[sizes])
        spent: dict[str, float] = {}
        views = (SampleRecorder, FeatureMaps, TestEvaluator)
        for callback in experiment.trainer.callbacks:
            if isinstance(callback, views):
                timed(callback, spent)
        experiment.fit()
        final = {p.name: p.stat().st_size for p in run_dir.iterdir()}
    print(
        f"load average {os.getloadavg()[0]:.2f} (2 cores); train {len(data.x_train):,}, "
        f"validation {len(data.x_val):,}, test {len(data.x_test):,}"
    )
    epoch = float(np.median(sizes.times))
    print(f"epoch (median) {epoch:.1f} s")
    in_epochs = {k: v for k, v in spent.items() if k != "TestEvaluator"}
    total = sum(in_epochs.values()) / len(sizes.times)
    for name, seconds in spent.items():
        print(f"  {name:<15} {seconds:7.3f} s over the run")
    print(
        f"views per epoch {total:.3f} s = {total / epoch:.2%} of an epoch "
        f"(the test at the end: {spent.get('TestEvaluator', 0):.2f} s once)"
    )
    events = [s.get("events.jsonl", 0) for s in sizes.sizes]
    growth = np.diff([0, *events])
    print(f"events.jsonl after each epoch: {events} bytes; growth {growth.tolist()}")
    print(
        f"samples.npz (once): {final.get('samples.npz', 0):,} bytes; "
        f"model files: {final.get('model.npz', 0) + final.get('best.npz', 0):,} bytes"
    )


if __name__ == "__main__":
    main()
