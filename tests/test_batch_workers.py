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
