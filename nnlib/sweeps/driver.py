"""The sweep driver: the sweep folder and its index, and the loop that hands trials to workers.

Local worker processes and a Dask cluster take the same path: both are a
`concurrent.futures.Executor` (a `ProcessPoolExecutor`, or `Client.get_executor()`), the
driver submits at most one trial per worker at a time (so that each trial gets the median
table of the trials finished before it starts, and a Ctrl+C finds few trials running), and
records every change in `sweep.json` atomically. The driver is the only writer of the index;
trials write only their own run directories.

A trial never raises (`run_trial` reports its own failure as a result), so a future that
raises means the trial's worker was lost — killed, out of memory, its machine or the Dask
scheduler gone — not that the trial failed: the trial runs again, in a new attempt folder
(up to MAX_LOST times in a session). A sweep whose executor can take no more trials (the
scheduler is gone) stops with `WorkersLost`; `--resume` first records, from their logs, the
trials that ended while no driver was listening, then reruns the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import os
import re
import reprlib
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
from .._validate import is_finite_number
from ..runs import new_run_dir, writer_alive
from .spec import SweepError, SweepSpec, _is_int, _need, _no_missing
from .trial import (
    INDEX_FILE,
    STOP_FILE,
    TrialResult,
    TrialTask,
    attempt_name,
    best_so_far,
    ignore_terminal_signals,
    logged_result,
    run_trial,
)

VERSION = 1
#: A trial's states; `lost`: its worker was lost (MAX_LOST times, or the sweep stopped).
STATES = ("pending", "running", "finished", "pruned", "failed", "interrupted", "lost")
#: Trial states that a resumed sweep leaves alone; the others (pending, running,
#: interrupted, lost) are run again, in a new run directory.
DONE = ("finished", "pruned", "failed")
#: A sweep's states (sweep.json "state").
SWEEP_STATES = ("pending", "running", "finished", "interrupted")
#: The fields of a trial's record in sweep.json.
_TRIAL_FIELDS = (
    "index", "params", "state", "run", "attempts", "metric", "best_epoch", "epochs", "reason",
    "error", "seconds", "host", "curve",
)  # fmt: skip
#: The fields of a trial's record that hold text or null.
_TEXT_FIELDS = ("reason", "error", "host")
#: Past this, a count in sweep.json (attempts, epochs) is not one the driver wrote.
MAX_COUNT = 10**9
#: A trial whose worker is lost this many times in one session is left 'lost' (for --resume)
#: rather than run again: most likely the trial itself takes its worker down (memory).
MAX_LOST = 3
#: Seconds to wait for a Dask scheduler to answer (`nnlib sweep --connect-timeout`).
CONNECT_TIMEOUT = 20.0
DASK_MISSING = (
    "--scheduler needs Dask, an optional extra: pip install 'nntui[cluster]' "
    "(or pip install 'dask[distributed]')"
)
#: An index is a few kB per trial; past this it is not one of ours (and is not read whole).
MAX_INDEX_BYTES = 64 << 20
Report = Callable[[str], object]


class WorkersLost(Exception):
    """The sweep stopped because its executor can take no more trials (the Dask scheduler is
    gone); sweep.json says 'interrupted', and the message how to continue."""


class LocalWorkers(Executor):
    """`count` local worker processes, each a process pool of its own, so that a worker that
    dies (killed, out of memory) loses only the trial it ran, and the next trial it is given
    starts a fresh process. (One pool of `count` processes breaks whole when one of them
    dies: it ends the other workers' trials with it.) Takes one task per idle worker."""

    def __init__(self, count: int) -> None:
        self._pools: list[ProcessPoolExecutor | None] = [None] * count
        self._tasks: list[Future | None] = [None] * count

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        for slot, task in enumerate(self._tasks):
            if task is None or task.done():
                self._tasks[slot] = task = self._pool(slot, task).submit(fn, *args, **kwargs)
                return task
        raise RuntimeError(f"all {len(self._tasks)} local workers are busy")

    def _pool(self, slot: int, last: Future | None) -> ProcessPoolExecutor:
        """The idle worker `slot`'s pool: a fresh one when it has none or its process died
        under its `last` task (a broken pool takes no more tasks)."""
        pool = self._pools[slot]
        if pool is not None and not (last is not None and _broke(last)):
            return pool
        if pool is not None:
            pool.shutdown(wait=False)
        # spawn: a fresh interpreter, as Dask's nanny starts its workers (no forked locks)
        pool = self._pools[slot] = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=ignore_terminal_signals,
        )
        return pool

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for pool in self._pools:
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _broke(task: Future) -> bool:
    return not task.cancelled() and isinstance(task.exception(), BrokenExecutor)


@dataclasses.dataclass
class Workers:
    """Where trials run: the executor, how many trials at once, a description, and whether
    it can still take trials (Dask: while the client is connected to `hub`, its scheduler)."""

    executor: Executor
    capacity: int
    where: str
    hub: str = "the local workers"
    usable: Callable[[], bool] = lambda: True


def create_sweep(
    spec: SweepSpec,
    sweep_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    name: str = "sweep",
) -> Path:
    """Make the sweep folder (`sweep_dir`, new or empty; else a fresh one under `root`, named
    by `folder_name`) and write its index with every trial pending. Returns the folder's
    absolute path."""
    path = new_run_dir(root, folder_name(name)) if sweep_dir is None else _empty(sweep_dir)
    path = path.resolve()
    index = {
        "version": VERSION,
        "created": time.time(),
        "state": "pending",
        "spec": _portable(spec).to_dict(),
        "best": None,
        "trials": [_fresh_record(i, params) for i, params in enumerate(spec.trials)],
    }
    try:
        write_index(path, index)
    except OSError as error:
        raise SweepError(f"{path}: cannot write {INDEX_FILE} ({error.strerror})") from None
    return path


def _empty(sweep_dir: str | os.PathLike) -> Path:
    """The folder a sweep was given, made when it is not there; SweepError when
    it cannot be, or holds anything: a sweep folder is never reused."""
    path = Path(sweep_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        held = next(path.iterdir(), None)
    except OSError as error:
        raise SweepError(f"{path}: cannot be used as a sweep folder ({error.strerror})") from None
    if held is not None:
        raise SweepError(
            f"{path}: is not empty ({held.name}); a sweep folder is never reused: give a "
            "new one, or continue that sweep with --resume"
        )
    return path


def _fresh_record(i: int, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Trial `i`'s record as nothing has run it yet (pending, no attempt, every result
    null), `fields` aside: a new sweep's trials, and an attempt's start, which clears what
    an earlier attempt left."""
    empty = {"state": "pending", "attempts": 0, "epochs": 0, "curve": []}
    return {**dict.fromkeys(_TRIAL_FIELDS), "index": i, "params": params, **empty, **fields}


def folder_name(name: str) -> str:
    """A new sweep folder's name after its date: `sweep-<name>`, or `<name>` alone when it
    already says sweep (sweep.toml gives `…-sweep`, lr-sweep.toml `…-lr-sweep`; never
    `…-sweep-sweep`)."""
    return name if "sweep" in name.lower() else f"sweep-{name}"


def read_index(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """A sweep folder's index, checked as a file a person may have edited: every field the
    driver and the report use has its type and range (SweepError naming the file and the
    field, never another exception)."""
    path = Path(sweep_dir) / INDEX_FILE
    index = _load_json(path, sweep_dir)
    if not isinstance(index, dict) or not isinstance(index.get("trials"), list):
        raise SweepError(f"{path}: not a readable sweep index (no list of trials)")
    if index.get("version") != VERSION:
        raise SweepError(
            f"{path}: index version {reprlib.repr(index.get('version'))}; this nnlib reads "
            f"{VERSION}"
        )
    spec = SweepSpec.from_dict(index.get("spec"), where=f"{path}: spec")
    trials = index["trials"]
    if len(trials) != len(spec.trials):
        raise SweepError(f"{path}: {len(spec.trials)} trials planned, the list disagrees")
    state = index.get("state")
    _need(state in SWEEP_STATES, str(path), "state", f"one of {', '.join(SWEEP_STATES)}", state)
    for i, trial in enumerate(trials):
        _check_trial(trial, i, spec, f"{path}: trial {i}", _stem(index, i))
    index["best"] = _best(index)  # worked out, not trusted
    return index


def _load_json(path: Path, sweep_dir: str | os.PathLike) -> Any:
    """The JSON in the index file `path`: whatever the file holds, SweepError or a value,
    never another exception."""
    data = _index_bytes(path, sweep_dir)
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise SweepError(f"{path}: nested too deeply; not a sweep index") from None
    except ValueError as error:  # not JSON, not UTF-8, a number past Python's digit limit
        raise SweepError(f"{path}: not a readable sweep index ({error})") from None


def _index_bytes(path: Path, sweep_dir: str | os.PathLike) -> bytes:
    """The index file's bytes, read only up to MAX_INDEX_BYTES; SweepError when there is no
    index, it cannot be read, or is larger."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INDEX_BYTES + 1)
    except FileNotFoundError:
        raise SweepError(f"{sweep_dir}: not a sweep folder (no {INDEX_FILE})") from None
    except OSError as error:
        raise SweepError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_INDEX_BYTES:
        raise SweepError(f"{path}: larger than {MAX_INDEX_BYTES:,} bytes; not a sweep index")
    return data


def _check_trial(trial: Any, i: int, spec: SweepSpec, where: str, stem: str) -> None:
    """A trial's record, as `_start`, `_record` and the report use it."""
    _need(isinstance(trial, dict), where, "the record", "a table", trial)
    _no_missing(trial, _TRIAL_FIELDS, where)
    attempts = trial["attempts"]
    checks = [
        ("index", trial["index"] == i, str(i)),
        ("params", trial["params"] == spec.trials[i], f"the spec's trial {i}"),
        ("state", trial["state"] in STATES, f"one of {', '.join(STATES)}"),
        ("attempts", _is_count(attempts), "a count"),
        ("run", trial["run"] is None or _names_attempt(trial["run"], stem, attempts), stem),
        ("metric", _is_number_or_none(trial["metric"]), "a finite number or null"),
        ("best_epoch", trial["best_epoch"] is None or _is_count(trial["best_epoch"]), "a count"),
        ("epochs", _is_count(trial["epochs"]), "a count"),
        ("seconds", _is_number_or_none(trial["seconds"]), "a finite number or null"),
        ("curve", _is_curve(trial["curve"]), "a list of finite numbers or nulls"),
        *[(key, isinstance(trial[key], str | None), "text or null") for key in _TEXT_FIELDS],
    ]
    for key, ok, expected in checks:
        _need(ok, where, key, expected, trial[key])


def _names_attempt(run: Any, stem: str, attempts: int) -> bool:
    """Whether `run` is the folder of one of the `attempts` attempts of the trial `stem` (and
    so a name in the sweep folder, never a path elsewhere)."""
    named = _attempt_of(run) if isinstance(run, str) else None
    if named is None or not _is_count(attempts):
        return False
    # the name written out again: the same stem (which has no dot), the number as written
    return run == attempt_name(stem, named[1]) and 1 <= named[1] <= attempts


#: An attempt folder's name: the stem up to its first dot, then `.N` (N of at most 9 digits)
#: for attempt N from the second on.
_ATTEMPT_NAME = re.compile(r"([^.]*)(?:\.([0-9]{1,9}))?")


def _attempt_of(name: str) -> tuple[str, int] | None:
    """The trial stem and attempt number a folder name says (`trial-003` 1, `trial-003.2`
    2), None when the part after its first dot is not a plain number; the one reading of
    attempt folders' names, for the index's checks and for the folders on disk."""
    named = _ATTEMPT_NAME.fullmatch(name)
    if named is None:
        return None
    return named[1], int(named[2] or 1)


def _is_count(value: Any) -> bool:
    return _is_int(value, 0, MAX_COUNT - 1)


def _is_number_or_none(value: Any) -> bool:
    return value is None or is_finite_number(value)


def _is_curve(value: Any) -> bool:
    return isinstance(value, list) and all(_is_number_or_none(v) for v in value)


def write_index(sweep_dir: Path, index: dict[str, Any]) -> None:
    """Write sweep.json atomically, with the best trial worked out afresh."""
    index["best"] = _best(index)
    atomic_write_text(sweep_dir / INDEX_FILE, json.dumps(index, indent=1, allow_nan=False))


def _best(index: dict[str, Any]) -> int | None:
    """The index of the best finished trial with a metric, or None."""
    top = next(iter(ranked(index)), None)
    if top is None or top["state"] != "finished" or top["metric"] is None:
        return None
    return top["index"]


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
    # zip_longest: None past a curve's end, as for no value
    return tuple(_median(epoch, min_trials) for epoch in itertools.zip_longest(*curves))


def _median(values: tuple[float | None, ...], least: int) -> float | None:
    """The median of the values given (not None), or None when there are fewer than `least`."""
    given = [value for value in values if value is not None]
    return statistics.median(given) if len(given) >= least else None


def executor_for(
    workers: int | None,
    scheduler: str | None,
    needed: int,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> contextlib.AbstractContextManager[Workers]:
    """Where the trials run: `workers` local processes (default: one per core; each trial
    uses one BLAS thread), or the Dask cluster at `scheduler` (default: as many at once as
    the cluster has worker threads), given up on after `connect_timeout` seconds."""
    if scheduler is None:
        return _local_workers(workers, needed)
    return _dask_workers(scheduler, workers, connect_timeout)


@contextlib.contextmanager
def _local_workers(workers: int | None, needed: int) -> Iterator[Workers]:
    """`workers` local processes (default: one per core), no more than the `needed` trials."""
    count = max(1, min(workers or os.cpu_count() or 1, needed))
    where = f"{count} local worker process{'es' if count > 1 else ''}"
    with LocalWorkers(count) as executor:
        yield Workers(executor, count, where)


@contextlib.contextmanager
def _dask_workers(scheduler: str, workers: int | None, connect_timeout: float) -> Iterator[Workers]:
    """The Dask cluster at `scheduler` as Workers (`workers` at a time, default its worker
    threads), usable while its client is connected; the client closed after."""
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

    def connected() -> bool:
        """Whether the client is connected to its scheduler, once it has tried to reconnect
        for `connect_timeout` seconds if it lost it (a scheduler restarted in time is kept:
        the client cancels every task when the connection drops, and they run again)."""
        deadline = time.monotonic() + connect_timeout + 5.0
        while client.status == "connecting" and time.monotonic() < deadline:
            time.sleep(0.1)  # Dask offers no event for the end of its reconnection
        return client.status == "running"

    try:
        count = workers or max(1, sum(client.nthreads().values()))
        executor = client.get_executor(pure=False)
        where = f"Dask at {scheduler}, {count} at a time"
        yield Workers(executor, count, where, f"the Dask scheduler at {scheduler}", connected)
        if client.status == "running":  # else there is nothing left to wait for
            executor.shutdown(wait=True)
    finally:
        client.close()


def run_sweep(
    sweep_dir: str | os.PathLike,
    workers: int | None = None,
    scheduler: str | None = None,
    report: Report = print,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Run the sweep's trials that are not done (all of a new sweep; the pending, running,
    interrupted and lost ones of a resumed one, after recording those that ended on their own
    since) and return the index. Its state is 'finished' when every trial is done; else (a
    trial lost its worker MAX_LOST times) 'interrupted', for `--resume`.

    A KeyboardInterrupt (Ctrl+C) stops the sweep cleanly: the running trials are asked to
    stop through the stop file and awaited, so that their logs end; the index then says
    'interrupted', and `run_sweep` on the same folder continues it. The interrupt is raised
    again once that is done. WorkersLost when the executor can take no more trials.
    """
    path = Path(sweep_dir).resolve()
    index = read_index(path)
    stop_file = path / STOP_FILE
    stop_file.unlink(missing_ok=True)  # a resumed sweep's old request
    _reconcile(path, index, report)
    todo = [trial["index"] for trial in index["trials"] if trial["state"] not in DONE]
    with executor_for(workers, scheduler, len(todo), connect_timeout) as pool:
        report(
            f"sweep: {path}  {len(todo)} of {len(index['trials'])} trials to run on {pool.where}"
        )
        index["state"] = "running"
        write_index(path, index)
        trials = _Trials(path, index, SweepSpec.from_dict(index["spec"]), pool, report, todo)
        interrupted = trials.run()
    stop_file.unlink(missing_ok=True)
    _settle(index, interrupted)
    write_index(path, index)
    if interrupted:
        raise KeyboardInterrupt
    if trials.stopped is not None:
        raise WorkersLost(
            f"{path}: the sweep stopped: {trials.stopped}; trials its workers go on running are "
            f"recorded from their logs by --resume; continue with: nnlib sweep --resume {path}"
        )
    return index


def _settle(index: dict[str, Any], interrupted: bool) -> None:
    """The states a session leaves: a trial still 'running' was submitted as the interrupt
    came and never reported (interrupted); the sweep is finished only when every trial is
    done and nothing interrupted it."""
    for trial in index["trials"]:
        if trial["state"] == "running":
            trial["state"] = "interrupted"
    complete = all(trial["state"] in DONE for trial in index["trials"])
    index["state"] = "finished" if complete and not interrupted else "interrupted"


@dataclasses.dataclass
class _Trials:
    """The trials of one `run_sweep` call: those to start, those running on `pool`, how often
    each lost its worker, and why the executor can take no more (None while it can)."""

    path: Path
    index: dict[str, Any]
    spec: SweepSpec
    pool: Workers
    report: Report
    todo: list[int]
    running: dict[Future, int] = dataclasses.field(default_factory=dict)
    losses: dict[int, int] = dataclasses.field(default_factory=dict)
    stopped: str | None = None

    def run(self) -> bool:
        """Start and collect trials while `go_on`; True when Ctrl+C stopped them (`stop`).
        The trials still running then are lost: the executor is gone, and how they end is
        not known here."""
        interrupted = False
        try:
            while self.go_on():
                self.start()
                self.collect()
            if not self.pool.usable() and self.stopped is None:
                self.stopped = f"lost {self.pool.hub}"
        except KeyboardInterrupt:
            interrupted = True
            self.stop()
        for i in self.running.values():
            _lose(self.index, i, str(self.stopped))
        return interrupted

    def go_on(self) -> bool:
        """Until every trial ran, or the executor stopped taking trials (then the running
        ones are awaited) or is gone (then they are not: nothing would be heard of them)."""
        return self.pool.usable() and bool(self.running or self._startable())

    def _startable(self) -> bool:
        """Trials are left to start and the executor has not stopped taking them."""
        return bool(self.todo) and self.stopped is None

    def start(self) -> None:
        """Submit trials while the executor has room; one it refuses was never started."""
        while self._startable() and len(self.running) < self.pool.capacity:
            before = dict(self.index["trials"][self.todo[0]])
            task = _start(self.path, self.index, self.spec, self.todo.pop(0))
            try:
                self.running[self.pool.executor.submit(run_trial, task)] = task.index
            except Exception as error:  # the executor cannot take trials any more
                self.index["trials"][task.index] = before  # never started
                self.stopped = f"the workers cannot take trials ({_why(error)})"
            write_index(self.path, self.index)

    def collect(self) -> None:
        """Record the trials that end within a second; a lost one is retried (`_retry`)."""
        done, _ = wait(list(self.running), timeout=1.0, return_when=FIRST_COMPLETED)
        for future in done:
            i = self.running.pop(future)
            lost = _finish(self.index, i, future, self.report)
            if lost is not None:
                self._retry(i, lost)
        if done:
            write_index(self.path, self.index)

    def _retry(self, i: int, lost: str) -> None:
        """Trial `i` lost its worker: run it again first, up to MAX_LOST times, unless the
        executor itself is gone."""
        self.losses[i] = self.losses.get(i, 0) + 1
        run = self.index["trials"][i]["run"]
        if not self.pool.usable():
            self.stopped = f"lost {self.pool.hub} ({lost})"
        elif self.losses[i] < MAX_LOST:
            self.todo.insert(0, i)
            self.report(f"{run} lost its worker ({lost}): it runs again")
        else:
            self.report(f"{run} lost its worker {MAX_LOST} times: left for --resume")

    def stop(self) -> None:
        """Ctrl+C: ask the running trials to stop through the stop file, and await them so
        that their logs end."""
        self.report(f"stopping: {len(self.running)} running trial(s) end at their next batch")
        (self.path / STOP_FILE).touch()
        for future in list(self.running):
            wait([future])
            _finish(self.index, self.running.pop(future), future, self.report)


def _reconcile(path: Path, index: dict[str, Any], report: Report) -> None:
    """Make the record agree with the sweep folder before trials are run again: a trial not
    done takes its newest attempt folder on disk (the driver may not have heard of it: Dask
    reruns a task whose worker died), and is recorded from that folder's log when it ended
    there on its own (its worker went on after the driver was gone). SweepError when an
    earlier session's worker is still writing one: running it again would run it twice."""
    open_trials = [t for t in index["trials"] if t["state"] not in DONE and t["attempts"] > 0]
    if not open_trials:
        return
    newest = _newest_attempts(path)
    for trial in open_trials:
        stem = _stem(index, trial["index"])
        if stem in newest:
            _adopt(path, index, trial, attempt_name(stem, newest[stem]), newest[stem], report)
    write_index(path, index)


def _newest_attempts(path: Path) -> dict[str, int]:
    """By trial stem, the highest attempt number with a folder in the sweep folder (`stem`
    is attempt 1, `stem.N` attempt N; other names are not attempts)."""
    newest: dict[str, int] = {}
    for entry in os.scandir(path):
        named = _attempt_of(entry.name)
        if named is not None and entry.is_dir(follow_symlinks=False):
            stem, number = named
            newest[stem] = max(newest.get(stem, 0), number)
    return newest


def _adopt(
    path: Path, index: dict[str, Any], trial: dict[str, Any], run: str, attempt: int, report: Report
) -> None:
    """Make the newest attempt folder on disk, `run`, the trial's, and record the trial from
    its log when it ended there; SweepError while an earlier session's worker writes it."""
    trial["attempts"] = max(trial["attempts"], attempt)
    trial["run"] = run
    folder = path / run
    if writer_alive(folder):
        raise SweepError(
            f"{folder}: a worker of the sweep's earlier session is still running this "
            f"trial; let it end, or stop it (nnlib control {folder} stop), then --resume"
        )
    spec = index["spec"]
    result = logged_result(folder, trial["index"], spec["metric"], spec["direction"])
    if result is not None and result.state in DONE:
        _record(index, result)
        report(f"{run} {result.state} while no driver was listening: recorded")


def _stem(index: dict[str, Any], i: int) -> str:
    """Trial `i`'s first attempt folder: trial-000 (wider for sweeps of over 1,000 trials)."""
    width = max(3, len(str(len(index["trials"]) - 1)))
    return f"trial-{i:0{width}d}"


def _start(path: Path, index: dict[str, Any], spec: SweepSpec, i: int) -> TrialTask:
    """Mark trial `i` running in its next attempt (its folder is claimed by the worker: a new
    or empty one, never one an earlier attempt used)."""
    trial = index["trials"][i]
    stem, attempt = _stem(index, i), trial["attempts"] + 1
    run = attempt_name(stem, attempt)
    trial.update(_fresh_record(i, trial["params"], state="running", run=run, attempts=attempt))
    stop = spec.early_stop
    return TrialTask(
        sweep_dir=str(path),
        index=i,
        stem=stem,
        attempt=trial["attempts"],
        config=spec.config(i).to_dict(),
        metric=spec.metric,
        direction=spec.direction,
        medians=median_table(index, stop.min_trials) if stop else (),
        after=stop.after if stop else 0,
    )


def _finish(index: dict[str, Any], i: int, future: Future, report: Report) -> str | None:
    """Record trial `i`'s result; or, when the future raised instead (`run_trial` never
    does: its worker was lost), mark it lost and return why."""
    try:
        result: TrialResult = future.result()
    except Exception as error:
        _lose(index, i, _why(error))
        return _why(error)
    _record(index, result)
    trial = index["trials"][i]
    metric = index["spec"]["metric"]
    shown = f"{metric} {result.metric:.4g}" if result.metric is not None else f"no {metric}"
    line = f"{trial['run']} {result.state}: {shown}"
    report(line + (f"  ({result.error})" if result.error else ""))
    return None


def _record(index: dict[str, Any], result: TrialResult) -> None:
    """Write how a trial ended into its record."""
    trial = index["trials"][result.index]
    if result.run is not None:  # the folder the worker claimed (a taken one moves it on)
        trial.update(run=result.run, attempts=max(trial["attempts"], result.attempt))
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


def _lose(index: dict[str, Any], i: int, why: str) -> None:
    index["trials"][i].update(state="lost", error=f"worker lost: {why}")


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


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
