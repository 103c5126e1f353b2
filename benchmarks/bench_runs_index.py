"""The runs index at scale (issue 20 item 3): `nnlib runs list` and the first screen of
`nntui --runs` on 1,000 runs, cold, in under 1 s; a refresh in under 100 ms; memory bounded.

Makes a few real runs (spirals, glyphs; finished and stopped), then copies them into one
folder under distinct names with their times shifted (a day apart, so the table's start
column differs; their summaries shifted alike, recording the copied log's size and mtime as
the run's writer does). Logs only: the index reads no model file. The folder is made by a
child process, so that this one stays small: a child's peak RSS counts its parent's memory
at the fork.
Then, each in a fresh process, medians of --repeat, with the load average beside each:
  - `nnlib runs list FOLDER`, after the folder's files were dropped from the page cache
    (posix_fadvise DONTNEED: only this folder's; the interpreter's own files stay cached),
    with its peak RSS; and how much of it is Python starting and importing nnlib.cli;
  - the first screen of `nntui --runs FOLDER` (headless, 120x40): process start to a filled
    table, after the same drop, with its peak RSS; and the same on a folder of 1 run (what
    starting the app costs);
  - the index alone, cold, in a fresh process (imports done before the clock starts), wall
    and CPU time: without the folder's index file (every run's files read, the file written),
    then with it (what every later start finds: the rows of ended runs taken from it);
  - in one process: the index built cold, a refresh with nothing changed, and a refresh after
    one run (being written: its writer lock held) got 20 batch lines and an epoch line.

The processes import nnlib/nntui from --tree (default: this checkout), so the same folder
measures another version: `--tree /path/to/old/checkout --folder F` (F made by this one).

    python benchmarks/bench_runs_index.py [--runs 1000] [--folder F] [--tree T] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Files a copy takes: what the index reads.
COPIED = ("config.json", "events.jsonl", "experiment.toml")
DAY = 86_400
TIMES = re.compile(rb'"time":(\d+)')

SOURCES = {
    "spirals": dict(dataset="spirals", epochs=40, batch_size=32, seed=0),
    "glyphs-conv": dict(
        dataset="glyphs", arch="conv(4,3) relu maxpool(2) dense(10)", epochs=3, seed=1
    ),
    "glyphs-mlp": dict(dataset="glyphs", arch="784-64-10", epochs=12, batch_size=16, seed=2),
    "spirals-stopped": dict(dataset="spirals", epochs=40, batch_size=32, seed=3),
}


def make_sources(folder: Path) -> list[Path]:
    """A few real runs (one stopped at its 10th epoch)."""
    from nnlib.callbacks import Callback
    from nnlib.config import ExperimentConfig
    from nnlib.experiment import setup

    class StopAt(Callback):
        def on_epoch_end(self, trainer, epoch, logs) -> None:
            if epoch == 9:
                trainer.stop()

    made = []
    for name, values in SOURCES.items():
        run_dir = folder / name
        callbacks = [StopAt()] if name.endswith("stopped") else []
        setup(ExperimentConfig(run_dir=str(run_dir), **values), callbacks=callbacks).fit()
        made.append(run_dir)
    return made


def copy_run(source: Path, target: Path, days: int) -> None:
    """`source`'s log, config and summary as `target`, its times `days` days earlier. The
    times keep their number of digits, so the log keeps its size and the summary its place."""
    from nnlib import runs, runsummary

    target.mkdir()
    for name in COPIED:
        shutil.copyfile(source / name, target / name)
    shift = days * DAY
    log = (source / runs.EVENTS_FILE).read_bytes()
    log = TIMES.sub(lambda m: b'"time":%d' % (int(m[1]) - shift), log)
    (target / runs.EVENTS_FILE).write_bytes(log)
    summary = runsummary.read(source / runs.SUMMARY_FILE)
    digest = dataclasses.replace(
        summary.digest,
        first=round(summary.digest.first - shift, 3),
        last=round(summary.digest.last - shift, 3),
    )
    tail = runsummary.tail_of(target / runs.EVENTS_FILE, summary.bytes)
    mtime = (target / runs.EVENTS_FILE).stat().st_mtime_ns  # as its writer would record it
    moved = runsummary.Summary(digest, summary.bytes, summary.lines, tail, mtime)
    runsummary.write(target / runs.SUMMARY_FILE, moved)


def make_folder(folder: Path, count: int) -> None:
    sources = make_sources(folder / ".sources")
    for i in range(count):
        source = sources[i % len(sources)]
        copy_run(source, folder / f"{i:04d}-{source.name}", days=i // len(sources))
    shutil.rmtree(folder / ".sources")


def drop_cache(folder: Path) -> None:
    """Drop the folder's files from the page cache (written back first); best effort."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(descriptor)


def timed(
    command: list[str], env: dict[str, str], cwd: Path, until_line: bool = False
) -> tuple[float, int, str]:
    """Wall seconds of a fresh process run in `cwd` (to its first line of output when
    `until_line`, else to its exit), its peak RSS in MB, and its output. (`python -m` and
    `-c` put the working folder first on sys.path: it must be the tree measured.)"""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    if until_line:
        first = process.stdout.readline()
        elapsed = time.perf_counter() - start
        out = first + process.stdout.read()
    else:
        out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if not until_line:
        elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    err = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {err[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, out


#: The first screen of `nntui --runs FOLDER` through its real entry (`nntui.cli.main`: flags,
#: the default experiment, the app), headless at 120x40: prints when its table is filled.
SCREEN = textwrap.dedent(
    """
    import os, sys
    from nntui import cli
    from nntui.app import NNTui
    from nntui.screens.runs import RunsScreen
    from textual.widgets import DataTable

    async def filled(pilot):
        while True:
            screen = pilot.app.screen
            if isinstance(screen, RunsScreen):
                rows = screen.query_one(DataTable).row_count
                if rows:
                    print(rows, flush=True)
                    os._exit(0)
            await pilot.pause()

    run = NNTui.run
    NNTui.run = lambda app, **_: run(app, headless=True, size=(120, 40), auto_pilot=filled)
    cli.main(["--runs", sys.argv[1]])
    """
)

#: The folder index file (nnlib.runs.folderindex.INDEX_FILE), named here so that a tree that
#: has none is measured too.
INDEX_FILE = ".nnlib-index.json"

#: The index built cold in a fresh process, its imports done first: wall and CPU seconds.
COLD = textwrap.dedent(
    """
    import json, sys, time
    from nnlib.runindex import RunIndex

    start, cpu = time.perf_counter(), time.process_time()
    count = len(RunIndex(sys.argv[1]).refresh())
    print(json.dumps([count, time.perf_counter() - start, time.process_time() - cpu]))
    """
)

#: The index in one process: cold, refreshed unchanged, refreshed after one run grew.
REFRESH = textwrap.dedent(
    """
    import json, statistics, sys, time
    from pathlib import Path
    from nnlib import runs
    from nnlib.runindex import RunIndex

    root, repeat = Path(sys.argv[1]), int(sys.argv[2])
    start = time.perf_counter()
    index = RunIndex(root)
    count = len(index.refresh())
    cold = time.perf_counter() - start

    def median(work):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    unchanged = median(index.refresh)
    live = sorted(path for path in root.iterdir() if path.is_dir())[0]  # not the index file
    kept = {name: (live / name).read_bytes() for name in (runs.EVENTS_FILE, "summary.json")
            if (live / name).exists()}
    lock = runs.WriterLock(live)
    lock.acquire()
    step, states = [10**6], set()

    def grow_then_refresh():
        with (live / runs.EVENTS_FILE).open("a") as log:
            for _ in range(20):
                step[0] += 1
                log.write(runs.encode("batch", step[0], {"epoch": 0, "batch": 0, "loss": 0.5}))
            log.write(runs.encode("epoch", step[0], {"epoch": 0, "loss": 0.5}))
        start = time.perf_counter()
        rows = {s.name: s for s in index.refresh()}
        elapsed = time.perf_counter() - start
        states.add(rows[live.name].state)  # "running", as its writer lives
        return elapsed

    try:
        changed = statistics.median(grow_then_refresh() for _ in range(repeat))
    finally:
        lock.release()
        for name, data in kept.items():  # the folder as it was, for the next measurement
            (live / name).write_bytes(data)
    print(json.dumps({"runs": count, "cold": cold, "unchanged": unchanged, "changed": changed,
                      "states": sorted(states)}))
    """
)


def load() -> str:
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def report(name: str, samples: list[tuple[float, int, str]]) -> None:
    seconds = statistics.median(s[0] for s in samples)
    rss = max(s[1] for s in samples)
    loads = ", ".join(s[2] for s in samples)
    print(
        f"{name}: {seconds * 1000:.0f} ms (median of {len(samples)}), peak RSS {rss} MB  [{loads}]"
    )


def _median_ms(samples: list[tuple], at: int) -> str:
    return f"{statistics.median(s[at] for s in samples) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--folder", type=Path, help="made when missing, kept")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the nnlib/nntui to measure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:  # the child that makes the folder
        make_folder(args.folder, args.runs)
        return
    scratch = None
    if args.folder is None:
        scratch = tempfile.TemporaryDirectory()
        args.folder = Path(scratch.name) / "runs"
    try:
        if not args.folder.exists():
            args.folder.mkdir(parents=True)
            started = time.perf_counter()
            maker = [sys.executable, __file__, "--make", "--folder", str(args.folder)]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            subprocess.run([*maker, "--runs", str(args.runs)], env=env, check=True)
            print(f"made {args.runs} runs in {time.perf_counter() - started:.0f} s")
        run_dirs = [p for p in args.folder.iterdir() if p.is_dir()]
        size = sum(p.stat().st_size for d in run_dirs for p in d.iterdir() if p.is_file())
        print(f"{len(run_dirs)} runs, {size / 1e6:.0f} MB; nnlib from {args.tree}; {load()}")
        # With bytecode caches, as an installed package has them: a first, unmeasured run of
        # each command writes them (PYTHONDONTWRITEBYTECODE would compile every module anew).
        env = {**os.environ, "PYTHONPATH": str(args.tree), "COLUMNS": "200"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        python = sys.executable

        def sample(command: list[str], until_line: bool = False) -> tuple[float, int, str]:
            drop_cache(args.folder)
            before = load()
            seconds, rss, _ = timed(command, env, args.tree, until_line)
            return seconds, rss, before

        listing = [python, "-m", "nnlib.cli", "runs", "list", str(args.folder)]
        screen = [python, "-c", SCREEN, str(args.folder)]
        for command in (listing, screen):
            timed(command, env, args.tree, until_line=command is screen)
        report("nnlib runs list, cold", [sample(listing) for _ in range(args.repeat)])
        imports = [python, "-c", "import nnlib.cli, nnlib.runindex"]
        report("  of which Python + imports", [sample(imports) for _ in range(args.repeat)])
        report(
            "nntui --runs, process start to filled table, cold",
            [sample(screen, until_line=True) for _ in range(args.repeat)],
        )
        with tempfile.TemporaryDirectory() as small:  # what the app costs before the index
            shutil.copytree(sorted(run_dirs)[0], Path(small) / "run")
            one = [python, "-c", SCREEN, small]
            report(
                "  of which the app itself (a folder of 1 run)",
                [sample(one, until_line=True) for _ in range(args.repeat)],
            )
        index_file = args.folder / INDEX_FILE
        for without in (True, False):
            samples = []
            for _ in range(args.repeat):
                if without:
                    index_file.unlink(missing_ok=True)
                drop_cache(args.folder)
                before = load()
                _, _, out = timed([python, "-c", COLD, str(args.folder)], env, args.tree)
                samples.append((*json.loads(out), before))
            size = index_file.stat().st_size if index_file.exists() else 0
            print(
                f"index alone, cold, {'without' if without else 'from'} the index file "
                f"({size / 1e6:.1f} MB after): {_median_ms(samples, 1)} wall, "
                f"{_median_ms(samples, 2)} CPU (median of {len(samples)}, {samples[0][0]} runs) "
                f"[{', '.join(s[3] for s in samples)}]"
            )
        drop_cache(args.folder)
        before = load()
        _, rss, out = timed([python, "-c", REFRESH, str(args.folder), "5"], env, args.tree)
        result = json.loads(out)
        print(
            f"index in one process ({result['runs']} runs, {before}, peak RSS {rss} MB): cold "
            f"{result['cold'] * 1000:.0f} ms, refresh with nothing changed "
            f"{result['unchanged'] * 1000:.1f} ms, refresh with one run grown "
            f"{result['changed'] * 1000:.1f} ms (medians of 5; that run read as "
            f"{', '.join(result['states'])})"
        )
    finally:
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    main()
