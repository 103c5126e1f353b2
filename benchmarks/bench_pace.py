"""Epochs to a validation accuracy on the 2-D sets: how long a run takes to learn with what a
user gets by default (the dataset's default architecture, lr, optimizer and batch size), the
way `nnlib train` and the app run it (nnlib.experiment.setup, views and run log included).

    python benchmarks/bench_pace.py                       # every 2-D set, seeds 0-2
    python benchmarks/bench_pace.py --datasets spirals-hard --arch \
        "features(x1,x2,sinx1,sinx2) dense(32) relu dense(32) relu dense(2)"

A script, not a test: it prints the epoch at which each run first reached the target (or
"-" when it did not within --epochs) and its wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from nnlib import datasets
from nnlib.callbacks import Callback
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup


class StopAtAccuracy(Callback):
    """Ends the run at the first epoch whose validation accuracy reaches `target`."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.reached: int | None = None

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if self.reached is None and logs.get("val_accuracy", 0.0) >= self.target:
            self.reached = epoch + 1
            trainer.stop()


def main() -> None:
    two_d = [
        info.name
        for info in datasets.available()
        if info.input_shape == (2,) and info.task == "classification"
    ]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(two_d), help="comma-separated names")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--target", type=float, default=0.95, help="validation accuracy")
    parser.add_argument("--epochs", type=int, default=600, help="give up after this many")
    parser.add_argument("--arch", help="a spec instead of the dataset's default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for name in args.datasets.split(","):
            reached, seconds = [], []
            for seed in range(args.seeds):
                config = ExperimentConfig(
                    dataset=name, arch=args.arch, seed=seed, epochs=args.epochs
                )
                stop = StopAtAccuracy(args.target)
                experiment = setup(config, callbacks=[stop], run_root=root)
                began = time.perf_counter()
                experiment.fit(threads=1)
                seconds.append(time.perf_counter() - began)
                reached.append(stop.reached)
            shown = ", ".join("-" if r is None else str(r) for r in reached)
            times = ", ".join(f"{s:.1f}" for s in seconds)
            print(
                f"{name:<14} epochs to {args.target:.0%} val. accuracy: {shown}  "
                f"(seeds 0-{args.seeds - 1}; {times} s)  arch {experiment.arch}",
                flush=True,
            )


if __name__ == "__main__":
    main()
