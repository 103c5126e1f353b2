"""What remote steering costs a headless epoch: the command-file poll at every batch boundary.

Two measurements, side by side in one process (never a wall time asserted anywhere):

1. The poll alone: `CommandDoor.poll` with nothing new (one os.stat), timed over many calls,
   and as a fraction of one batch of the epoch below.
2. Whole epochs with and without the door (a run directory and a RunLogger in both), run
   alternately, the door going first every other time; the ratio of the medians.

    python benchmarks/bench_steer.py                 # moons MLP, batch 32, 7 pairs
    python benchmarks/bench_steer.py --dataset glyphs --arch 784-128-10 --pairs 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nnlib as nl
from nnlib.config import ExperimentConfig
from nnlib.experiment import load_data
from nnlib.remote import CommandDoor
from nnlib.runs import RunLogger


def epoch_seconds(data, arch: str, batch_size: int, door: bool, root: Path) -> tuple[float, int]:
    """One epoch (after a one-epoch warm-up) in a fresh run directory; (seconds, batches)."""
    run_dir = Path(tempfile.mkdtemp(dir=root))
    model = nl.build(arch, data.input_shape, seed=0)
    callbacks = [CommandDoor(run_dir)] if door else []
    trainer = nl.Trainer(
        model,
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.01),
        callbacks=[*callbacks, RunLogger(run_dir=run_dir, batch_every=1000)],
    )
    trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=batch_size, threads=1)
    began = time.perf_counter()
    trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=batch_size, threads=1)
    return time.perf_counter() - began, trainer.steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="moons")
    parser.add_argument("--arch", default="2-32-32-2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=7)
    args = parser.parse_args()
    data = load_data(ExperimentConfig(dataset=args.dataset, validation_split=0.0))
    with tempfile.TemporaryDirectory() as root:
        door_dir = Path(root) / "door"
        door_dir.mkdir()
        door = CommandDoor(door_dir)
        trainer = nl.Trainer(nl.build(args.arch, data.input_shape), nl.MSE(), nl.SGD())
        door.on_train_begin(trainer)
        calls = 100_000
        began = time.perf_counter()
        for _ in range(calls):
            door.poll()
        poll = (time.perf_counter() - began) / calls
        with_door, without = [], []
        for pair in range(args.pairs):
            for use in (pair % 2 == 0, pair % 2 == 1):
                seconds, batches = epoch_seconds(data, args.arch, args.batch_size, use, Path(root))
                (with_door if use else without).append(seconds)
    per_batch = statistics.median(without) / batches
    print(f"{args.dataset} {args.arch} batch {args.batch_size}: {batches} batches an epoch")
    print(f"poll with nothing new: {poll * 1e6:.2f} us = {poll / per_batch:.3%} of a batch")
    ratio = statistics.median(with_door) / statistics.median(without)
    print(
        f"epoch median: {statistics.median(without) * 1e3:.1f} ms without the door, "
        f"{statistics.median(with_door) * 1e3:.1f} ms with it: ratio {ratio:.4f} "
        f"({args.pairs} pairs, alternating)"
    )


if __name__ == "__main__":
    main()
