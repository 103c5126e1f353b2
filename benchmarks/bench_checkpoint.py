"""What complete checkpoints cost a LeNet-5 run, as a share of its training time.

    python benchmarks/bench_checkpoint.py [--runs 5] [--every 500]

One process, one BLAS thread, glyphs (28x28x1, batch 64, SGD momentum 0.9): the median time of
a training step (over `--runs` epochs), and the median time of writing one complete checkpoint
(`nnlib.checkpointing.save`: weights, optimizer velocities, state record; atomic, fsync'd),
both measured here side by side. Checkpointing every N steps costs save / (N * step) of the
training time, whatever the epoch's length; the share of one epoch is printed with the
machine's load average, since these machines are shared and noisy. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from nnlib import checkpointing
from nnlib.config import DEFAULT_CHECKPOINT_EVERY, ExperimentConfig
from nnlib.experiment import lenet5, load_data
from nnlib.losses import SoftmaxCrossEntropy
from nnlib.optimizers import SGD
from nnlib.spec import build
from nnlib.threads import blas_threads
from nnlib.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="epochs and rounds of saves")
    parser.add_argument("--every", type=int, default=DEFAULT_CHECKPOINT_EVERY)
    args = parser.parse_args()
    data = load_data(ExperimentConfig(dataset="glyphs"))
    model = build(lenet5(data.num_classes), data.input_shape, seed=0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(lr=0.01, momentum=0.9))
    steps = -(-len(data.x_train) // 64)
    epoch_times, save_times = [], []
    with tempfile.TemporaryDirectory() as folder, blas_threads(1):
        for run in range(args.runs):
            began = time.perf_counter()
            trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=64, seed=run, threads=1)
            epoch_times.append(time.perf_counter() - began)
            for _ in range(5):
                began = time.perf_counter()
                path = checkpointing.save(trainer, Path(folder) / "c.npz")
                save_times.append(time.perf_counter() - began)
        size = path.stat().st_size
    step = statistics.median(epoch_times) / steps
    save = statistics.median(save_times)
    print(f"load average (1 min) after the measurement: {os.getloadavg()[0]:.2f}")
    print(f"LeNet-5 on glyphs: {steps} steps an epoch, median step {step * 1000:.1f} ms")
    print(f"checkpoint: {size / 1e6:.2f} MB, median save {save * 1000:.1f} ms")
    print(
        f"every {args.every} steps: {100 * save / (args.every * step):.3f}% of training time "
        f"(an MNIST epoch of 938 steps writes {938 / args.every:.1f} of them)"
    )


if __name__ == "__main__":
    main()
