"""Data-parallel training steps: `ThreadPlan(replicas=N)` (see nnlib.threads for when it pays).

A batch is split into N contiguous parts. Part 0 is trained by the model itself on the
calling thread, part k by a replica (`Sequential.replica`) on a pool thread: the same
parameter arrays, its own gradients, caches and loss object. The loss is a batch mean, so
each part's loss gradient is scaled by its share of the batch (n_k / n) before its backward,
and the replicas' gradients are then added into the model's: the model holds the whole
batch's gradient (to float rounding) and the optimizer steps once, on the model's
parameters, so weight decay and L1 apply once. The batch's loss is the parts' weighted mean,
its outputs the parts' joined (and so its accuracy exactly the whole batch's).

What a monitor reads after a step: the model's gradients are the whole batch's; the caches of
the model's layers (a ReLU's mask, a sigmoid's outputs) are part 0's, the first n / N samples.

With `processes` (`ThreadPlan(replicas=N, processes=True)`) parts 1.. are trained by child
processes instead of pool threads (nnlib.replica_process): the same parts, shares and sums in
the same order, without the GIL between them.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from .losses import Loss
from .model import Sequential
from .threads import run_round
from .training_pass import train_pass

if TYPE_CHECKING:  # imported when processes start: every Trainer would load it otherwise
    from .replica_process import ProcessReplicas


class NotSplittable(ValueError):
    """A model whose training step cannot split a batch between replicas."""


def check_splittable(model: Sequential, replicas: int) -> None:
    """NotSplittable naming the first layer of `model` whose training step cannot be split
    between `replicas` threads, and why (`Layer.not_splittable`); nothing for one."""
    if replicas == 1:
        return
    for layer in model.layers:
        if layer.not_splittable:
            raise NotSplittable(
                f"{replicas} replicas: {layer.name} ({type(layer).__name__}) cannot train on "
                f"part of a batch: {layer.not_splittable}; train this model with one replica"
            )


def split(samples: int, count: int) -> list[slice]:
    """`samples` in `count` contiguous parts whose sizes differ by at most one; one part when
    there are fewer samples than parts (an epoch's last batch of 1)."""
    if samples < count:
        return [slice(0, samples)]
    return [slice(samples * k // count, samples * (k + 1) // count) for k in range(count)]


class Replicas:
    """The model and `count` - 1 replicas of it training the parts of a batch at once; as a
    context manager it holds their thread pool and replicas, or with `processes` their child
    processes (all ended on leaving). With
    count 1, or for a batch trained whole, a step is the model's own pass. A replica keeps
    its part's caches until its next forward, as the model does: letting them go after each
    pass made every batch allocate them again (LeNet-5 at batch 64: 1.02x the time of one
    thread against 0.81x)."""

    def __init__(
        self, model: Sequential, loss: Loss, count: int = 1, processes: bool = False
    ) -> None:
        check_splittable(model, count)
        self.model, self.loss, self.count, self.processes = model, loss, count, processes
        self._runners: list[tuple[Sequential, Loss]] = [(model, loss)]
        self._pool: ThreadPoolExecutor | None = None
        self._children: ProcessReplicas | None = None  # with processes, inside the block

    def __enter__(self) -> Replicas:
        if self.count > 1 and self.processes:
            from .replica_process import ProcessReplicas

            self._children = ProcessReplicas(self.model, self.loss, self.count - 1)
        elif self.count > 1:
            self._runners += [
                (self.model.replica(), copy.copy(self.loss)) for _ in range(self.count - 1)
            ]
            self._pool = ThreadPoolExecutor(self.count - 1, thread_name_prefix="nnlib-replica")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown()
            if self._children is not None:
                self._children.close()
        finally:  # a second Ctrl+C in close() still leaves the block outside
            self._pool, self._runners, self._children = None, self._runners[:1], None

    def _width(self) -> int:
        """How many parts a batch is trained in now: 1 outside the block."""
        return 1 + (self._children.count if self._children else len(self._runners) - 1)

    def step(self, x: np.ndarray, y: np.ndarray, whole: bool = False) -> tuple[float, np.ndarray]:
        """Forward and backward of the batch (x, y), its parts at once unless `whole` (then
        the model alone takes it): the batch's mean loss and outputs, and in the model's
        gradients the batch's. Where a part's loss is not finite its backward is skipped
        and the batch's loss is not finite: the trainer then skips the update, and the
        gradients are not the batch's (with one thread they are the last step's)."""
        parts = [slice(0, len(x))] if whole else split(len(x), self._width())
        if len(parts) == 1:
            return train_pass(*self._runners[0], x, y)
        if self._children is not None:
            results = self._step_children(x, y, parts)
            twins = self._children.gradients[: len(parts) - 1]
        else:
            results = self._step_threads(x, y, parts)
            twins = [[p.grad for p in replica.parameters()] for replica, _ in self._runners[1:]]
        loss = sum(results[k][0] * (p.stop - p.start) for k, p in enumerate(parts)) / len(x)
        if math.isfinite(loss):
            self._gather(twins)
        return loss, np.concatenate([results[k][1] for k in range(len(parts))])

    def _step_threads(
        self, x: np.ndarray, y: np.ndarray, parts: list[slice]
    ) -> dict[int, tuple[float, np.ndarray]]:
        """Each part's loss and outputs, trained at once by the model and its replicas."""
        self._follow()
        results: dict[int, tuple[float, np.ndarray]] = {}

        def run(index: int) -> None:
            part = parts[index]
            share = (part.stop - part.start) / len(x)
            results[index] = train_pass(*self._runners[index], x[part], y[part], share)

        # One round a batch: each hand-over to the pool thread costs a wake-up.
        run_round(self._pool, run, range(len(parts)))
        return results

    def _step_children(
        self, x: np.ndarray, y: np.ndarray, parts: list[slice]
    ) -> dict[int, tuple[float, np.ndarray]]:
        """Each part's loss and outputs: part 0 by the model while the child processes train
        the others. Every child's answer is read before an error is raised, so none is left
        mid-message."""
        from .replica_process import ReplicaProcessError  # loaded with the children

        children = self._children
        assert children is not None
        modes = [self.model.training, *(layer.training for layer in self.model.layers)]
        for k, part in enumerate(parts[1:]):
            share = (part.stop - part.start) / len(x)
            children.send(k, x[part], y[part], share, modes)
        results: dict[int, tuple[float, np.ndarray]] = {}
        failed: ReplicaProcessError | None = None
        try:
            share = (parts[0].stop - parts[0].start) / len(x)
            results[0] = train_pass(self.model, self.loss, x[parts[0]], y[parts[0]], share)
        finally:
            for k in range(len(parts) - 1):
                try:
                    results[k + 1] = children.receive(k)
                except ReplicaProcessError as error:
                    failed = failed or error
        if failed is None:
            return results
        try:
            raise failed
        finally:  # its traceback holds this frame: no cycle back through `failed`
            del failed

    def _gather(self, twins: list[list[np.ndarray]]) -> None:
        """Add the replicas' gradients (one list per replica, in the model's parameters'
        order) into the model's: the whole batch's gradient."""
        params = self.model.parameters()
        for grads in twins:
            for param, grad in zip(params, grads, strict=True):
                param.grad += grad

    def _follow(self) -> None:
        """Point the replicas at the model's parameter values and its mode before a step: an
        optimizer that assigns new arrays instead of updating in place, or a switch to
        evaluation mode, reaches them too."""
        for replica, _ in self._runners[1:]:
            replica.training = self.model.training
            for layer, twin in zip(self.model.layers, replica.layers, strict=True):
                twin.training = layer.training
                for key, param in layer.params.items():
                    twin.params[key].value = param.value
