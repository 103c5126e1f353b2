"""How many threads training uses: BLAS threads, batch workers and replicas.

Measured on a 2-core machine (benchmarks/README.md): with another thread or process busy on
a core, OpenBLAS with 2 threads ran LeNet-5 2x and the tutorial CNN 4x slower than with 1;
on an idle machine 2 threads gained only 0-35%. So `Trainer.fit` (and with it the CLI)
defaults to one thread on machines with two cores or fewer, and the TUI — whose UI is always
another busy thread — always trains with one.

Batch workers are the other way to use a second core: convolutions and pooling run a batch
in parts (`nnlib.layers._windows.parts`), and with `ThreadPlan(workers=2)` two parts run at
once on a small shared pool, since numpy releases the GIL inside its kernels. They need a
1-thread BLAS: two threads calling a 2-thread OpenBLAS at once took 10x the CPU time of
1-thread calls (900x288 @ 288x32 GEMMs, shared machine). A worker that waits blocks instead
of spinning, so a busy second core costs little; the gain on an idle one is in
`bench_engine.py --batch-workers`.

Replicas are the third way, data parallelism over the whole training step (nnlib.replicas):
with `ThreadPlan(replicas=2)` each batch is split in two halves, trained at once by the model
on the calling thread and by a replica (the same parameter arrays, its own gradients and
caches) on a pool thread; the gradients are summed into the model's and the optimizer steps
once. Why: batch workers split only the convolutions and pooling, so a model whose time goes
elsewhere (LeNet-5's small layers, its dense layers, the Python between kernels) gained
nothing from them, while a throwaway experiment of two threads each training a copy on half
the batch took LeNet-5 at batch 64 in 0.54-0.57x the time of one thread. Threads gain only
where each numpy call is long: every call hands the GIL over, and the stacked convs' shift
kernel, at eighteen short calls a piece, gained nothing until it made two. What it costs: a
gradient per parameter and the convolutions' buffers per replica (each runner keeps its
part's caches between steps, as one model keeps its batch's), and one hand-over to the pool
thread a batch;
like batch workers it needs a 1-thread BLAS, and it runs no batch workers of its own. Where
it does not apply: a layer whose training step needs the whole batch or a random stream
(BatchNorm, Dropout, and layers from outside nnlib until they say otherwise:
`Layer.not_splittable`) is refused before training; a batch smaller than the replicas, and
the Tracer's watched step (`Trainer.unsplit_batch`), train on one thread.

AUTO uses none of them on two cores. Measured idle (README, Speed), replicas took 0.51-0.69x
the wall time of one thread at batch 256 on every model, and 0.55-0.83x at batch 64 but on
the MLP and the tutorial CNN (0.94x, 1.05x); but a choice made from the load when
`fit` starts would train one seed to different float rounding on a busy and an idle day
(parts and replicas sum the batch's gradient in another order) and break a bit-for-bit
resume. So a second core is asked for, with a ThreadPlan or `nnlib train --replicas`.

Replicas in processes (`ThreadPlan(replicas=2, processes=True)`, `nnlib train --replicas 2
--processes`) are the same data parallelism without the GIL between the parts: each replica
beyond the model's own is a child process (nnlib.replica_process). Threads hand the GIL over
at every numpy call, which kept two thread replicas from halving the small nets' steps;
processes do not share it. They add a child's start (a new interpreter, 0.12 s measured)
per fit and need the model to be picklable (layers from a module the child can import). They
sum the parts' gradients as thread replicas do, so a run resumed on either continues bit for
bit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Final, Literal

#: `Trainer.fit(threads=AUTO)`: the measured policy of `default_blas_threads`.
AUTO: Final = "auto"


@dataclass(frozen=True)
class ThreadPlan:
    """BLAS threads (None: BLAS's own default), batch workers and replicas for a run, the
    replicas on threads or (`processes`) in child processes. More than one worker needs
    `blas=1`; more than one replica `blas=1` and one worker (see the module's docstring)."""

    blas: int | None = 1
    workers: int = 1
    replicas: int = 1
    processes: bool = False

    def __post_init__(self) -> None:
        if self.blas is not None:
            _need_positive_int("blas", self.blas)
        _need_positive_int("workers", self.workers)
        _need_positive_int("replicas", self.replicas)
        if not isinstance(self.processes, bool):
            raise ValueError(f"ThreadPlan: processes must be True or False, got {self.processes!r}")
        if self.processes and self.replicas == 1:
            raise ValueError(
                "ThreadPlan: processes=True runs replicas in processes; give replicas >= 2"
            )
        self._check_together()

    def _check_together(self) -> None:
        """ValueError unless the counts go together: several workers, or several replicas,
        each call a 1-thread BLAS, and replicas run no workers of their own."""
        if self.workers > 1 and self.blas != 1:
            raise ValueError(
                f"ThreadPlan: {self.workers} batch workers need blas=1, got blas={self.blas!r}"
            )
        if self.replicas > 1 and (self.blas, self.workers) != (1, 1):
            raise ValueError(
                f"ThreadPlan: {self.replicas} replicas need blas=1 and workers=1, got "
                f"blas={self.blas!r}, workers={self.workers!r}"
            )


def _is_positive_int(value: object) -> bool:
    """An int >= 1, not a bool: the one test of a thread or worker count."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _need_positive_int(name: str, value: object) -> None:
    """ValueError naming a ThreadPlan's field `name` unless `value` is a positive int."""
    if not _is_positive_int(value):
        raise ValueError(f"ThreadPlan: {name} must be a positive integer, got {value!r}")


#: What `Trainer.fit(threads=...)` takes: AUTO, a BLAS thread count, a ThreadPlan, or None
#: (leave BLAS alone).
Threads = int | Literal["auto"] | ThreadPlan | None


def replica_count(threads: Threads) -> int:
    """How many replicas `threads` trains with: a ThreadPlan's, else 1."""
    return threads.replicas if isinstance(threads, ThreadPlan) else 1


def replica_processes(threads: Threads) -> bool:
    """Whether `threads` trains its replicas in child processes (nnlib.replica_process)."""
    return isinstance(threads, ThreadPlan) and threads.processes


def default_blas_threads() -> int | None:
    """1 on machines with at most two cores, else None (BLAS's own default)."""
    return 1 if (os.cpu_count() or 1) <= 2 else None


def resolve_threads(owner: str, threads: Threads) -> int | ThreadPlan | None:
    """The BLAS thread count or plan for `threads` (AUTO, a positive int, a ThreadPlan or
    None); ValueError naming `owner` for anything else. AUTO is `default_blas_threads`:
    no batch workers or replicas (why: the module's docstring)."""
    if threads == AUTO:
        return default_blas_threads()
    if threads is None or isinstance(threads, ThreadPlan):
        return threads
    if not _is_positive_int(threads):
        raise ValueError(
            f"{owner}: threads must be 'auto', None or a positive integer, got {threads!r} "
            "(or a nnlib.threads.ThreadPlan for batch workers)"
        )
    return threads


@contextlib.contextmanager
def blas_threads(count: int | ThreadPlan | None) -> Iterator[None]:
    """Limit BLAS to `count` threads inside the block (None: leave BLAS as it is); a
    ThreadPlan also runs its batch workers there."""
    plan = count if isinstance(count, ThreadPlan) else ThreadPlan(blas=count)
    with contextlib.ExitStack() as stack:
        if plan.blas is not None:
            stack.enter_context(_blas_limit(plan.blas))
        stack.enter_context(batch_workers(plan.workers))
        yield


@dataclass
class _Level:
    """One BLAS limit in force: how to undo it, and how many blocks of each thread use it."""

    limit: int
    undo: Any  # threadpoolctl's threadpool_limits, which restores what it changed
    users: Counter[int] = field(default_factory=Counter)


#: BLAS limits in force, the innermost last. threadpoolctl's limit is the process's, not a
#: thread's: when two fits ran at once in two threads (a sweep's trials on a Dask worker's
#: threads), the first to end restored BLAS's default under the other, and the other's end
#: left its limit in force for good. Now blocks share a limit: the first sets it, the last
#: to leave restores it; a thread nests a different one only while no other thread is in,
#: and another thread joins only the one limit in force, if it asks the same.
_levels: list[_Level] = []
_levels_guard = threading.Lock()


@contextlib.contextmanager
def _blas_limit(count: int) -> Iterator[None]:
    """BLAS limited to `count` threads inside the block (see `_levels`); RuntimeError when
    another thread's block holds BLAS at another count. An OpenMP-built OpenBLAS keeps a
    limit per thread: there each block sets and restores its own thread's."""
    if _limits_per_thread():
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=count, user_api="blas"):
            yield
        return
    me = threading.get_ident()
    with _levels_guard:
        level = _level_for(count, me)
        level.users[me] += 1
    try:
        yield
    finally:
        with _levels_guard:
            level.users[me] -= 1
            level.users += Counter()  # drops the thread at zero
            while _levels and not _levels[-1].users:
                _release_blas_control()
                _levels.pop().undo.restore_original_limits()
                _release_blas_control()


def _level_for(count: int, me: int) -> _Level:
    """(Under `_levels_guard`.) The level a block of thread `me` asking for `count` joins:
    the one in force if it has that count (and, for another thread, is the only one), else a
    new one nested on top, which only a thread alone in the blocks may set."""
    if not _levels:
        return _new_level(count)
    top = _levels[-1]
    others = {thread for level in _levels for thread in level.users} - {me}
    if top.limit == count and (len(_levels) == 1 or not others):
        return top
    if others:
        raise RuntimeError(
            f"BLAS is limited to {top.limit} thread(s) for a training in another thread; "
            f"this one asks for {count}: give both the same threads, or train one after "
            "the other"
        )
    return _new_level(count)


def _new_level(count: int) -> _Level:
    """(Under `_levels_guard`.) BLAS limited to `count` by this thread, on top of `_levels`."""
    from threadpoolctl import threadpool_limits

    _release_blas_control()
    level = _Level(count, threadpool_limits(limits=count, user_api="blas"))
    _levels.append(level)
    return level


def _limits_per_thread() -> bool:
    """Whether every BLAS loaded keeps its thread limit per calling thread (OpenBLAS built
    with OpenMP, as threadpoolctl documents); numpy's wheels ship a pthreads OpenBLAS, whose
    limit is the process's."""
    from threadpoolctl import threadpool_info

    builds = {
        (info["internal_api"], info.get("threading_layer"))
        for info in threadpool_info()
        if info["user_api"] == "blas"
    }
    return builds == {("openblas", "openmp")}


def _release_blas_control() -> None:
    """Leave OpenBLAS's limit to whichever thread sets it next. threadpoolctl (3.8 here)
    lets only the thread that set a pthreads OpenBLAS's limit change it again, and ignores
    the others without a word: after a fit on the main thread, a fit on another thread (the
    app's training thread, a sweep's trial) ran on BLAS's default, and the last of two fits
    to end could not restore what the first had set."""
    import threadpoolctl

    controller = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


class _BatchWorkers(threading.local):
    """Each thread's batch workers: a fit's plan is its own thread's (two Trainers fitting
    in two threads once shared one module-wide pool and count, and a conv layer of one
    could run two parts at once on one slot's buffers)."""

    pool: ThreadPoolExecutor | None = None
    count = 1


_batch = _BatchWorkers()


def workers() -> int:
    """How many parts of a batch run at once in this thread (1 outside `batch_workers`)."""
    return _batch.count


@contextlib.contextmanager
def batch_workers(count: int) -> Iterator[None]:
    """Run `count` parts of each batch at once inside the block: the calling thread and
    count - 1 pool threads, which are joined on leaving. One training at a time a thread."""
    if count == 1:
        yield
        return
    if _batch.pool is not None:
        raise RuntimeError("batch workers are already running in this thread")
    with ThreadPoolExecutor(count - 1, thread_name_prefix="nnlib-batch") as pool:
        _batch.pool, _batch.count = pool, count
        try:
            yield
        finally:
            _batch.pool, _batch.count = None, 1


def run_parts(task: Callable[[int], None], count: int) -> None:
    """task(index) for every index below `count`, in rounds of `workers()` at once, so that
    tasks i and i + workers() never run at the same time and may share buffers. Every task
    of a round has finished before an error is raised."""
    pool, size = _batch.pool, _batch.count
    for first in range(0, count, size):
        run_round(pool, task, range(first, min(first + size, count)))


def run_round(pool: Executor | None, task: Callable[[int], None], indices: range) -> None:
    """task(index) for every index at once: the first on the calling thread, the others on
    `pool` (None: there is only one). Every task has finished before the first error is
    raised on the calling thread, so none is left running into the next round."""
    if pool is None and len(indices) > 1:
        raise ValueError(f"run_round: {len(indices)} tasks at once need a pool")
    if len(indices) == 1:  # one part: no pool, no futures to wait for (a call a layer)
        task(indices[0])
        return
    futures: list[Future[None]] = []
    if pool is not None:
        futures = [pool.submit(task, index) for index in indices[1:]]
    try:
        task(indices[0])
    finally:
        wait(futures)
    for future in futures:
        future.result()
