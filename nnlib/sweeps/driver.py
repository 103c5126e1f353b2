"""The sweep driver: the sweep folder and its index, and the loop that hands trials to workers.

Local worker processes and a Dask cluster take the same path: both are a
`concurrent.futures.Executor` (a `ProcessPoolExecutor`, or `Client.get_executor()`), the
driver submits at most one trial per worker at a time (so that each trial gets the median
table of the trials finished before it starts, and a Ctrl+C finds few trials running), and
records every change in `sweep.json` atomically. The driver is the only writer of the index;
trials write only their own run directories.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..runs import new_run_dir
from .spec import SweepError, SweepSpec
from .trial import (
    INDEX_FILE,
    STOP_FILE,
    TrialResult,
    TrialTask,
    best_so_far,
    ignore_terminal_signals,
    run_trial,
)

VERSION = 1
#: Trial states that a resumed sweep leaves alone; the others (pending, running,
#: interrupted) are run again, in a new run directory.
DONE = ("finished", "pruned", "failed")
#: Seconds to wait for a Dask scheduler to answer (`nnlib sweep --connect-timeout`).
CONNECT_TIMEOUT = 20.0
DASK_MISSING = (
    "--scheduler needs Dask, an optional extra: pip install 'nntui[cluster]' "
    "(or pip install 'dask[distributed]')"
)
#: An index is a few kB per trial; past this it is not one of ours (and is not read whole).
MAX_INDEX_BYTES = 64 << 20
Report = Callable[[str], object]


def create_sweep(
    spec: SweepSpec,
    sweep_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    name: str = "sweep",
) -> Path:
    """Make the sweep folder (`sweep_dir`, new or empty; else a fresh one under `root`) and
    write its index with every trial pending. Returns the folder's absolute path."""
    if sweep_dir is None:
        path = new_run_dir(root, f"sweep-{name}")
    else:
        path = Path(sweep_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
            held = next(path.iterdir(), None)
        except OSError as error:
            raise SweepError(
                f"{path}: cannot be used as a sweep folder ({error.strerror})"
            ) from None
        if held is not None:
            raise SweepError(
                f"{path}: is not empty ({held.name}); a sweep folder is never reused: give a "
                "new one, or continue that sweep with --resume"
            )
    path = path.resolve()
    index = {
        "version": VERSION,
        "created": time.time(),
        "state": "pending",
        "spec": _portable(spec).to_dict(),
        "best": None,
        "trials": [
            {
                "index": i,
                "params": params,
                "state": "pending",
                "run": None,
                "attempts": 0,
                "metric": None,
                "best_epoch": None,
                "epochs": 0,
                "reason": None,
                "error": None,
                "seconds": None,
                "host": None,
                "curve": [],
            }
            for i, params in enumerate(spec.trials)
        ],
    }
    try:
        write_index(path, index)
    except OSError as error:
        raise SweepError(f"{path}: cannot write {INDEX_FILE} ({error.strerror})") from None
    return path


def read_index(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """A sweep folder's index, checked enough to resume it; SweepError naming the file."""
    path = Path(sweep_dir) / INDEX_FILE
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INDEX_BYTES + 1)
    except FileNotFoundError:
        raise SweepError(f"{sweep_dir}: not a sweep folder (no {INDEX_FILE})") from None
    except OSError as error:
        raise SweepError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_INDEX_BYTES:
        raise SweepError(f"{path}: larger than {MAX_INDEX_BYTES:,} bytes; not a sweep index")
    try:
        index = json.loads(data.decode("utf-8"))
        if index.get("version") != VERSION:
            raise SweepError(
                f"{path}: index version {index.get('version')!r}; this nnlib reads {VERSION}"
            )
        spec = SweepSpec.from_dict(index["spec"])
        trials = index["trials"]
        if not isinstance(trials, list) or len(trials) != len(spec.trials):
            raise SweepError(f"{path}: {len(spec.trials)} trials planned, the list disagrees")
    except SweepError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SweepError(
            f"{path}: not a readable sweep index ({type(error).__name__}: {error})"
        ) from None
    return index


def write_index(sweep_dir: Path, index: dict[str, Any]) -> None:
    """Write sweep.json atomically, with the best trial worked out afresh."""
    ranking = ranked(index)
    index["best"] = ranking[0]["index"] if ranking and ranking[0]["state"] == "finished" else None
    atomic_write_text(sweep_dir / INDEX_FILE, json.dumps(index, indent=1, allow_nan=False))


def ranked(index: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials best first: finished ones by their metric, then pruned ones by theirs, then
    the rest (failed, interrupted, pending) in order."""
    direction = index["spec"]["direction"]
    sign = 1.0 if direction == "min" else -1.0
    rank = {"finished": 0, "pruned": 1}

    def key(trial: dict[str, Any]) -> tuple[int, float, int]:
        metric = trial["metric"]
        if metric is None or trial["state"] not in rank:
            return (2, 0.0, trial["index"])
        return (rank[trial["state"]], sign * metric, trial["index"])

    return sorted(index["trials"], key=key)


def median_table(index: dict[str, Any], min_trials: int) -> tuple[float | None, ...]:
    """Per epoch, the median of the finished trials' best-so-far metric (None where fewer
    than `min_trials` finished trials reached that epoch)."""
    direction = index["spec"]["direction"]
    curves = [
        best_so_far(trial["curve"], direction)
        for trial in index["trials"]
        if trial["state"] == "finished"
    ]
    table: list[float | None] = []
    for epoch in range(max((len(curve) for curve in curves), default=0)):
        values = [c[epoch] for c in curves if epoch < len(c) and c[epoch] is not None]
        table.append(statistics.median(values) if len(values) >= min_trials else None)
    return tuple(table)


@contextlib.contextmanager
def executor_for(
    workers: int | None,
    scheduler: str | None,
    needed: int,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Iterator[tuple[Executor, int, str]]:
    """The executor trials run on, how many run at once, and a description: `workers` local
    processes (default: one per core; each trial uses one BLAS thread), or the Dask cluster
    at `scheduler` (default: as many at once as the cluster has worker threads), given up on
    after `connect_timeout` seconds."""
    if scheduler is None:
        count = max(1, min(workers or os.cpu_count() or 1, needed))
        # spawn: a fresh interpreter per worker, as Dask's nanny starts them (no forked locks).
        with ProcessPoolExecutor(
            max_workers=count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=ignore_terminal_signals,
        ) as executor:
            yield executor, count, f"{count} local worker process{'es' if count > 1 else ''}"
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise SweepError(DASK_MISSING) from None
    try:
        client = Client(scheduler, timeout=f"{connect_timeout}s")
    except (OSError, TimeoutError, ValueError) as error:
        raise SweepError(
            f"--scheduler: cannot reach the Dask scheduler at {scheduler!r} ({error})"
        ) from None
    try:
        count = workers or max(1, sum(client.nthreads().values()))
        with client.get_executor(pure=False) as executor:
            yield executor, count, f"Dask at {scheduler}, {count} at a time"
    finally:
        client.close()


def run_sweep(
    sweep_dir: str | os.PathLike,
    workers: int | None = None,
    scheduler: str | None = None,
    report: Report = print,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Run the sweep's trials that are not done (all of a new sweep; the pending, running and
    interrupted ones of a resumed one) and return the index.

    A KeyboardInterrupt (Ctrl+C) stops the sweep cleanly: the running trials are asked to
    stop through the stop file and awaited, so that their logs end; the index then says
    'interrupted', and `run_sweep` on the same folder continues it. The interrupt is raised
    again once that is done.
    """
    path = Path(sweep_dir).resolve()
    index = read_index(path)
    spec = SweepSpec.from_dict(index["spec"])
    stop_file = path / STOP_FILE
    stop_file.unlink(missing_ok=True)  # a resumed sweep's old request
    todo = [trial["index"] for trial in index["trials"] if trial["state"] not in DONE]
    total = len(index["trials"])
    running: dict[Future, int] = {}
    interrupted = False
    with executor_for(workers, scheduler, len(todo), connect_timeout) as (
        executor,
        capacity,
        where,
    ):
        report(f"sweep: {path}  {len(todo)} of {total} trials to run on {where}")
        index["state"] = "running"
        write_index(path, index)
        try:
            while todo or running:
                while todo and len(running) < capacity:
                    task = _start(path, index, spec, todo.pop(0))
                    write_index(path, index)
                    try:
                        running[executor.submit(run_trial, task)] = task.index
                    except BrokenExecutor as error:  # the pool's processes died
                        index["trials"][task.index]["state"] = "pending"
                        index["state"] = "interrupted"
                        write_index(path, index)
                        raise SweepError(
                            f"{path}: the workers cannot take trials ({error}); "
                            "the finished trials are kept: continue with --resume"
                        ) from None
                done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    _finish(index, running.pop(future), future, report)
                if done:
                    write_index(path, index)
        except KeyboardInterrupt:
            interrupted = True
            report(f"stopping: {len(running)} running trial(s) end at their next batch")
            stop_file.touch()
            for future in list(running):
                wait([future])
                _finish(index, running.pop(future), future, report)
    for trial in index["trials"]:
        if trial["state"] == "running":  # submitted as the interrupt came: never reported
            trial["state"] = "interrupted"
    stop_file.unlink(missing_ok=True)
    index["state"] = "interrupted" if interrupted else "finished"
    write_index(path, index)
    if interrupted:
        raise KeyboardInterrupt
    return index


def _start(path: Path, index: dict[str, Any], spec: SweepSpec, i: int) -> TrialTask:
    """Mark trial `i` running in a new run directory (never one an earlier attempt used)."""
    trial = index["trials"][i]
    trial["attempts"] += 1
    width = max(3, len(str(len(index["trials"]) - 1)))
    name = f"trial-{i:0{width}d}" + (f".{trial['attempts']}" if trial["attempts"] > 1 else "")
    trial.update(state="running", run=name, metric=None, best_epoch=None, epochs=0, curve=[])
    trial.update(reason=None, error=None, seconds=None, host=None)
    config = spec.config(i).replace(run_dir=str(path / name))
    stop = spec.early_stop
    return TrialTask(
        sweep_dir=str(path),
        index=i,
        run_name=name,
        config=config.to_dict(),
        metric=spec.metric,
        direction=spec.direction,
        medians=median_table(index, stop.min_trials) if stop else (),
        after=stop.after if stop else 0,
    )


def _finish(index: dict[str, Any], i: int, future: Future, report: Report) -> None:
    """Record trial `i`'s result (a lost worker or a broken pool fails the trial)."""
    try:
        result: TrialResult = future.result()
    except Exception as error:  # the worker died or could not run the task
        result = TrialResult(i, "failed", error=f"worker lost: {type(error).__name__}: {error}")
    trial = index["trials"][i]
    trial.update(
        state=result.state,
        reason=result.reason,
        metric=result.metric,
        best_epoch=result.best_epoch,
        epochs=result.epochs,
        curve=result.curve,
        error=result.error,
        seconds=round(result.seconds, 3),
        host=result.host or None,
    )
    metric = index["spec"]["metric"]
    shown = f"{metric} {result.metric:.4g}" if result.metric is not None else f"no {metric}"
    line = f"{trial['run']} {result.state}: {shown}"
    report(line + (f"  ({result.error})" if result.error else ""))


def best_trial(index: dict[str, Any]) -> dict[str, Any] | None:
    """The best finished trial, or None."""
    best = index.get("best")
    return index["trials"][best] if isinstance(best, int) else None


def _portable(spec: SweepSpec) -> SweepSpec:
    """The spec with a dataset file or data folder that exists here made absolute, so that
    workers in another folder (on the shared storage) find it."""
    changes = {}
    for name in ("dataset", "data_dir"):
        value = getattr(spec.base, name)
        if value and Path(value).exists():
            changes[name] = str(Path(value).resolve())
    return spec if not changes else dataclasses.replace(spec, base=spec.base.replace(**changes))
