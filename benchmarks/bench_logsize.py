"""What a run writes (issue 20, run-log size): the bytes one MNIST-size LeNet-5 epoch adds to
its run folder with every default view on (target: at most 100 kB, side files included,
checkpoints and weights aside), and the bytes of one batch line (target: at most 80).

The data has MNIST's shape, made here with no network: 66,000 training and 10,000 test images
of 28x28x1 drawn by the offline glyphs generator (stroke-font digits, which compress like
handwritten ones), 1/11 held out for validation, so that an epoch trains 60,000 samples in
938 batches of 64 and validates 6,000 (MNIST's own split under the default 10%). The run is
`nnlib train --arch lenet` as the app starts it (`nnlib.experiment.setup`: the Monitor, every
view, the run log), for two epochs. A callback notes the folder's size as each epoch begins
(by then the epoch before is all written); the folder after the run gives the second
epoch's, which also holds the run's end (its test result and end event).

    python benchmarks/bench_logsize.py [--epochs 2] [--folder F]

Bytes are per file type; each event type's share counts its lines and the side-file blocks
they refer to.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnlib import runs  # noqa: E402
from nnlib.callbacks import Callback  # noqa: E402
from nnlib.config import ExperimentConfig  # noqa: E402
from nnlib.datasets.glyphs import glyphs  # noqa: E402
from nnlib.experiment import setup  # noqa: E402

#: What the size target leaves aside: model files.
ASIDE = ("checkpoints", "best.npz", "model.npz")


def folder_bytes(run_dir: Path) -> dict[str, int]:
    """Bytes per file of the run folder, checkpoints and weights aside."""
    sizes = {}
    for path in run_dir.rglob("*"):
        relative = path.relative_to(run_dir)
        if path.is_file() and relative.parts[0] not in ASIDE:
            sizes[str(relative)] = path.stat().st_size
    return sizes


class FolderSizes(Callback):
    """The run folder's files as each epoch begins."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.at_epoch: list[dict[str, int]] = []

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.at_epoch.append(folder_bytes(self.run_dir))


def make_data(path: Path) -> None:
    data = glyphs(n_train=66_000, n_test=10_000, seed=0)
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)  # fmt: skip


def block_bytes(stored: object) -> int:
    """Bytes of the side-file blocks a line's value refers to (any depth)."""
    if isinstance(stored, dict):
        if "packed" in stored and isinstance(stored.get("blocks"), list):
            return sum(size for _, size in stored["blocks"])
        if set(stored) == {"file", "offset", "bytes"}:
            return int(stored["bytes"])
        return sum(block_bytes(value) for value in stored.values())
    if isinstance(stored, list):
        return sum(block_bytes(value) for value in stored)
    return 0


def by_type(log: Path, start: int, end: int) -> dict[str, list[int]]:
    """Per event type in log bytes [start, end): lines, line bytes, side-file bytes."""
    shares: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    with log.open("rb") as handle:
        handle.seek(start)
        for raw in handle.read(end - start).splitlines(keepends=True):
            record = json.loads(raw)
            kind = record.get("type", "batch")
            shares[kind][0] += 1
            shares[kind][1] += len(raw)
            shares[kind][2] += block_bytes(record)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--folder", type=Path, help="where the run goes (kept); else a temporary one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "mnist-size.npz"
        make_data(data)
        run_dir = (args.folder or Path(scratch)) / "run"
        config = ExperimentConfig(
            dataset=str(data), arch="lenet", epochs=args.epochs, batch_size=64,
            validation_split=1 / 11, run_dir=str(run_dir), seed=0,
        )  # fmt: skip
        sizes = FolderSizes(run_dir)
        experiment = setup(config, callbacks=[sizes])
        print(
            f"LeNet-5, {len(experiment.data.x_train):,} training and "
            f"{len(experiment.data.x_val):,} validation images of 28x28x1, batch 64"
        )
        started = time.perf_counter()
        experiment.fit()
        seconds = time.perf_counter() - started
        snapshots = [*sizes.at_epoch, folder_bytes(run_dir)]
        log = run_dir / runs.EVENTS_FILE
        print(f"{args.epochs} epochs in {seconds:.0f} s")
        print(f"at the start: {sum(snapshots[0].values()):,} B {snapshots[0]}")
        for epoch, (before, after) in enumerate(zip(snapshots, snapshots[1:], strict=False)):
            added = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n)}
            total = sum(added.values())
            print(f"epoch {epoch + 1} adds {total:,} B ({total / 1000:.1f} kB): {added}")
            start, end = before.get(runs.EVENTS_FILE, 0), after[runs.EVENTS_FILE]
            for kind, (count, line, side) in sorted(
                by_type(log, start, end).items(), key=lambda item: -sum(item[1][1:])
            ):
                print(f"    {kind:>14}: {count:4d} lines {line:7,d} B + side file {side:7,d} B")
        lines = [raw for raw in log.read_bytes().splitlines(keepends=True) if b'"type"' not in raw]
        lengths = [len(raw) for raw in lines]
        compact = [len(raw) for raw in lines if b'"time"' not in raw]
        print(
            f"batch lines (with their newline): {len(lengths):,}, mean "
            f"{statistics.mean(lengths):.1f} B, median {statistics.median(lengths):.0f} B, max "
            f"{max(compact)} B; {len(lengths) - len(compact)} complete ones (the first, and the "
            f"first after each point a summary covers) up to {max(lengths)} B"
        )


if __name__ == "__main__":
    main()
