"""How long the runs screen takes to open a folder of 200 runs (issue 11: under 1 s).

Writes 200 run directories (config.json and an events.jsonl of 10 epochs x 20 batch lines,
plus a histogram-sized event per epoch), then times, median of 5 each:
  - a cold RunIndex.refresh (every log read once: what opening the screen costs),
  - a warm refresh with nothing changed (what the screen's 1 s timer costs),
  - the runs screen itself, from push to a filled table, in a headless app at 120x40.

    python benchmarks/bench_runs_screen.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_runindex import write_run  # noqa: E402

from nnlib import runs  # noqa: E402
from nnlib.runindex import RunIndex  # noqa: E402


def make_folder(root: Path, count: int) -> None:
    layers = {
        "dense_1": {"weights": {"lo": -1, "hi": 1, "counts": [5] * 30, "percentiles": [0.0] * 7}}
    }
    for i in range(count):
        run_dir = write_run(root, f"run-{i:03d}", epochs=10, batches=20, scale=1 + i / count)
        with (run_dir / runs.EVENTS_FILE).open("a") as log:
            for epoch in range(10):
                log.write(runs.encode("histograms", 0, {"epoch": epoch, "layers": layers}))


def median_time(work, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def screen_open(root: Path) -> float:
    from nnlib.config import ExperimentConfig
    from nntui.app import NNTui
    from nntui.screens.runs import RunsScreen

    app = NNTui(ExperimentConfig(dataset="spirals"))
    async with app.run_test(size=(120, 40)) as pilot:
        start = time.perf_counter()
        await app.push_screen(RunsScreen(root))
        await pilot.pause()
        elapsed = time.perf_counter() - start
        assert app.screen.query_one("DataTable").row_count == len(app.screen.summaries)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    count = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_folder(root, count)
        lines = sum(1 for _ in (root / "run-000" / runs.EVENTS_FILE).open())
        print(f"{count} runs, {lines} log lines each")
        cold = median_time(lambda: RunIndex(root).refresh())
        index = RunIndex(root)
        index.refresh()
        warm = median_time(index.refresh)
        screen = statistics.median(asyncio.run(screen_open(root)) for _ in range(5))
        print(f"cold refresh (open): {cold * 1000:.0f} ms")
        print(f"warm refresh (timer, nothing changed): {warm * 1000:.0f} ms")
        print(f"runs screen, push to filled table: {screen * 1000:.0f} ms")


if __name__ == "__main__":
    main()
