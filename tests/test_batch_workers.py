"""Batch workers (issue 21): parts of a batch's convolutions and pooling on a small thread
pool give the results of one worker, and the pool is gone when training ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import nnlib as nl
from nnlib import threads
from nnlib.layers import _windows as windows
from nnlib.threads import ThreadPlan

SPEC = "conv(4,3) relu conv(16,3,pad=same) relu maxpool(2) conv(16,3) relu dense(3)"


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nnlib-batch")]


def test_parts_split_a_batch_between_the_workers():
    assert windows.parts(64, 2) == [slice(0, 32), slice(32, 64)]
    assert windows.parts(65, 2) == [slice(0, 33), slice(33, 65)]
    assert windows.parts(256, 2) == [slice(i, i + 64) for i in range(0, 256, 64)]
    assert windows.parts(1, 2) == [slice(0, 1)]
    assert windows.parts(64) == [slice(0, 64)]


@pytest.mark.parametrize("batch", [64, 100, 7])
def test_two_workers_give_the_results_of_one(batch):
    """Forward, dL/dx and every parameter gradient of a model with every kind of conv
    kernel and a max-pool, float64: equal to float rounding (the weight gradients of two
    parts are summed in another order)."""
    results = []
    for workers in (1, 2):
        model = nl.build(SPEC, (12, 12, 3), seed=5).to(np.float64)
        rng = np.random.default_rng(6)
        x = rng.standard_normal((batch, 12, 12, 3))
        with threads.batch_workers(workers):
            out = model.forward(x)
            dx = model.backward(rng.standard_normal(out.shape))
        results.append([out, dx, *(p.grad.copy() for p in model.parameters())])
    for one, two in zip(*results, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)


def test_fit_with_two_workers_trains_as_one_and_leaves_no_thread():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((96, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    losses = []
    for plan in (ThreadPlan(workers=1), ThreadPlan(workers=2)):
        model = nl.build(SPEC, (12, 12, 3), seed=8)
        trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.05))
        history = trainer.fit(x, y, epochs=2, batch_size=64, threads=plan)
        losses.append(history.series("loss", per="batch"))
        assert threads.workers() == 1 and not _batch_threads()
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


def test_an_error_in_a_part_reaches_the_caller_after_its_round_and_the_pool_closes():
    ran: list[int] = []
    both_started = threading.Barrier(2, timeout=10)

    def task(index: int) -> None:
        both_started.wait()  # the two tasks of the round run at once
        ran.append(index)
        if index == 1:
            raise ValueError("part 1 failed")

    with pytest.raises(ValueError, match="part 1 failed"), threads.batch_workers(2):
        threads.run_parts(task, 4)
    assert sorted(ran) == [0, 1]  # the second round never started
    assert threads.workers() == 1 and not _batch_threads()


def test_batch_workers_refuse_a_second_training_at_once():
    with threads.batch_workers(2):
        refused = pytest.raises(RuntimeError, match="batch workers are already running")
        with refused, threads.batch_workers(2):
            pass
        assert threads.workers() == 2
    assert not _batch_threads()


def test_each_thread_has_its_own_batch_workers():
    """Two trainings at once in two threads: one thread's workers are not the other's (they
    were module-wide: the other's layers saw 2 workers and its pool)."""
    inside, release = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with threads.batch_workers(2):
            seen["first"] = threads.workers()
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(10)
        seen["second"] = threads.workers()
        with threads.batch_workers(2):  # not "already running": that is the other thread's
            seen["second, its own"] = threads.workers()
    finally:
        release.set()
        thread.join(10)
    assert seen == {"first": 2, "second": 1, "second, its own": 2}
    assert not _batch_threads()


def test_a_backward_with_other_workers_than_its_forward_gives_the_same_gradients():
    """128 samples are two parts on one worker or two: backward run with two workers after a
    forward with one made no parts again and ran both parts at once on one slot's buffers
    (wrong gradients in 6 of 20 tries). It now makes them again for its own workers."""
    grads = []
    for backward_workers in (1, 2):
        model = nl.build(SPEC, (12, 12, 3), seed=5).to(np.float64)
        rng = np.random.default_rng(6)
        out = model.forward(rng.standard_normal((128, 12, 12, 3)))
        with threads.batch_workers(backward_workers):
            model.backward(rng.standard_normal(out.shape))
        grads.append([p.grad.copy() for p in model.parameters()])
    for one, two in zip(*grads, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)


def _blas_now() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_limits_of_trainings_in_two_threads_hold_until_both_end():
    """A sweep's trials on one Dask worker's threads: the first to end restored BLAS's
    default under the other, and the other's end left its limit for good."""
    with threads.blas_threads(1):  # a fit on this thread first: the limit is not kept
        pass  # from the next thread (threadpoolctl gives control to the thread that set it)
    before = _blas_now()
    entered, leave_first, first_left = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with threads.blas_threads(1):
            seen_inside.extend(_blas_now())
            entered.set()
            leave_first.wait(10)
        first_left.set()

    seen_inside: list[int] = []
    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert entered.wait(10)
        assert set(seen_inside) == {1}
        with threads.blas_threads(1):
            leave_first.set()
            assert first_left.wait(10)
            assert set(_blas_now()) == {1}  # still limited: this block is inside
            refused = pytest.raises(RuntimeError, match="limited to 1 thread.* another thread")
            with refused:
                _ask_blas_from_another_thread(2)
        assert _blas_now() == before
    finally:
        leave_first.set()
        thread.join(10)


def _ask_blas_from_another_thread(count: int) -> None:
    """Enter blas_threads(count) on a new thread; its error, if any, raised here."""
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with threads.blas_threads(count):
                pass
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            errors.append(error)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]


def test_with_limits_per_thread_each_block_sets_and_restores_its_own(monkeypatch):
    """An OpenMP-built OpenBLAS keeps a limit per thread: each thread's block must set its
    own and restore it itself (a shared limit would leave the second thread unlimited and
    the first thread's limit in force after it)."""
    import threadpoolctl

    calls: list[tuple[int, str, int]] = []

    class Recorded:
        def __init__(self, limits: int, user_api: str) -> None:
            self.limits = limits

        def __enter__(self):
            calls.append((threading.get_ident(), "set", self.limits))

        def __exit__(self, *exc):
            calls.append((threading.get_ident(), "restore", self.limits))

    monkeypatch.setattr(threads, "_limits_per_thread", lambda: True)
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", Recorded)
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with threads.blas_threads(1):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with threads.blas_threads(2):  # another count: no refusal, it is this thread's alone
        leave.set()
        thread.join(10)
    me, them = threading.get_ident(), thread.ident
    assert calls == [(them, "set", 1), (me, "set", 2), (them, "restore", 1), (me, "restore", 2)]
    assert not threads._levels


def test_one_thread_nests_blas_limits_and_restores_each():
    before = _blas_now()
    with threads.blas_threads(1):
        with threads.blas_threads(2):
            assert set(_blas_now()) == {2}
        assert set(_blas_now()) == {1}
    assert _blas_now() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, r"ThreadPlan: workers must be a positive integer, got 0"),
        ({"blas": True}, r"ThreadPlan: blas must be a positive integer, got True"),
        ({"blas": 2, "workers": 2}, r"ThreadPlan: 2 batch workers need blas=1, got blas=2"),
        ({"blas": None, "workers": 2}, r"2 batch workers need blas=1, got blas=None"),
    ],
)
def test_thread_plan_refuses_what_cannot_run(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThreadPlan(**kwargs)


def test_fit_refuses_a_bad_threads_value_naming_what_it_takes():
    model = nl.build("dense(2)", (3,), seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, int)
    with pytest.raises(
        ValueError, match=r"fit: threads must be .*, got 'two' \(or a nnlib.threads.ThreadPlan"
    ):
        trainer.fit(x, y, threads="two")  # type: ignore[arg-type]
