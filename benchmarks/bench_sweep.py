"""Sweep speed-up: 8 spirals trials on 2 local worker processes against the same 8 trials run
one after another in one process (no pool, no spawn: the plainest sequential baseline).

    PYTHONPATH=. python benchmarks/bench_sweep.py --runs 3 [--workers 2] [--epochs 150]

Both are timed in the same run, alternating (sequential first on even repeats, the sweep first
on odd ones), and the medians are compared as a ratio, since the machine's load moves both.
Each trial uses one BLAS thread, as sweep trials do. The machine's load average is printed
before and after: on a shared machine, say how busy it was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from nnlib.sweeps import create_sweep, parse_sweep, run_sweep
from nnlib.sweeps.trial import TrialTask, run_trial


def spec(epochs: int):
    return parse_sweep(
        {
            "dataset": "spirals",
            "arch": "2-32-32-3",
            "epochs": epochs,
            "batch_size": 32,
            "sweep": {
                "method": "grid",
                "params": {"lr": [0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1]},
            },
        }
    )


def sequential(epochs: int, root: Path) -> float:
    """The 8 trials one after another in this process, through the same trial function."""
    plan = spec(epochs)
    folder = create_sweep(plan, root / "sequential")
    began = time.perf_counter()
    for i in range(len(plan.trials)):
        config = plan.config(i).to_dict()
        result = run_trial(TrialTask(str(folder), i, f"trial-{i}", 1, config, "val_loss", "min"))
        assert result.state == "finished", result
    return time.perf_counter() - began


def parallel(epochs: int, workers: int, root: Path) -> float:
    """The sweep on `workers` local processes, from creating the pool to the last result."""
    folder = create_sweep(spec(epochs), root / "parallel")
    began = time.perf_counter()
    index = run_sweep(folder, workers=workers, report=lambda line: None)
    elapsed = time.perf_counter() - began
    assert all(t["state"] == "finished" for t in index["trials"]), index["trials"]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}  load average before {os.getloadavg()}")
    seq, par = [], []
    for repeat in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if repeat % 2 == 0:
                seq.append(sequential(args.epochs, root))
                par.append(parallel(args.epochs, args.workers, root))
            else:
                par.append(parallel(args.epochs, args.workers, root))
                seq.append(sequential(args.epochs, root))
        print(
            f"run {repeat + 1}: sequential {seq[-1]:.2f} s  {args.workers} workers {par[-1]:.2f} s"
        )
    s, p = statistics.median(seq), statistics.median(par)
    print(f"load average after {os.getloadavg()}")
    print(
        f"median of {args.runs}: sequential {s:.2f} s, sweep on {args.workers} workers {p:.2f} s, "
        f"ratio {p / s:.2f} (target <= 0.60)"
    )


if __name__ == "__main__":
    main()
