"""How long a jump on the dashboard's time axis takes (`nntui.history`): a recorded
1,000-epoch spirals run (`nnlib train`), opened as `nntui --open` reads it, its snapshots kept
in a History; then jumps first -> last, last -> first and between random stops, each the
`state_at` the dashboard draws from. Target: under 100 ms. Also reports building the history
(what the dashboard adds to folding a run) and the snapshots and saved states it holds. Run:

    PYTHONPATH=. python benchmarks/bench_scrub.py [--epochs 1000] [--jumps 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from nntui.history import History
from nntui.replay import open_run
from nntui.runstate import RunState


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--jumps", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        started = time.perf_counter()
        subprocess.run(
            ["nnlib", "train", "--dataset", "spirals", "--epochs",
             str(args.epochs), "--run-dir", str(run_dir), "--quiet"],
            check=True, timeout=1800,
        )  # fmt: skip
        print(f"trained {args.epochs} epochs in {time.perf_counter() - started:.1f} s")
        recorded = open_run(run_dir)
    updates = recorded.updates
    started = time.perf_counter()
    history = History(RunState)
    for update in updates:
        history.record(update)
    built = time.perf_counter() - started
    started = time.perf_counter()
    state = RunState()
    for update in updates:
        state.apply(update)
    folded = time.perf_counter() - started
    stops = history.stops
    print(
        f"{len(updates)} updates -> {len(history)} records, {len(stops)} stops, "
        f"{len(history) // history.every + 1} saved states; history built in "
        f"{built * 1000:.0f} ms (the fold alone {folded * 1000:.0f} ms)"
    )
    rng = random.Random(0)
    pairs = [(stops[0], stops[-1]), (stops[-1], stops[0])] * 5
    pairs += [(rng.choice(stops), rng.choice(stops)) for _ in range(args.jumps)]
    times = []
    for _, to in pairs:
        started = time.perf_counter()
        history.state_at(to)
        times.append(time.perf_counter() - started)
    ends = times[:10]
    print(
        f"jumps first<->last: median {statistics.median(ends) * 1000:.2f} ms, "
        f"max {max(ends) * 1000:.2f} ms; random ({args.jumps}): median "
        f"{statistics.median(times[10:]) * 1000:.2f} ms, max {max(times[10:]) * 1000:.2f} ms "
        f"(load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
