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
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import numpy as np

from .losses import Loss
from .model import Sequential
from .threads import run_round


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


def _quiet() -> np.errstate:
    """Overflow and invalid values in a forward pass are a divergence the trainer reports,
    not warns of. numpy's error state is per thread, so each part's thread enters it."""
    return np.errstate(over="ignore", invalid="ignore")


def train_pass(
    model: Sequential, loss: Loss, x: np.ndarray, y: np.ndarray, share: float = 1.0
) -> tuple[float, np.ndarray]:
    """Forward, loss and backward of a batch (or of a part that is `share` of one): the mean
    loss and the outputs, and the gradients in the model's parameters. A loss that is not
    finite gets no backward (the trainer skips that update). The loss is a batch mean, so a
    part's loss gradient is scaled by its share: the parts' gradients then add up to the
    batch's."""
    with _quiet():
        outputs = model.forward(x)
        value = loss(outputs, y)
    if math.isfinite(value):
        gradient = loss.backward()
        model.backward_params(gradient if share == 1.0 else gradient * share)
    return value, outputs


class Replicas:
    """The model and `count` - 1 replicas of it training the parts of a batch at once; as a
    context manager it holds their thread pool (and the replicas, dropped on leaving). With
    count 1, or for a batch trained whole, a step is the model's own pass. A replica keeps
    its part's caches until its next forward, as the model does: letting them go after each
    pass made every batch allocate them again (LeNet-5 at batch 64: 1.02x the time of one
    thread against 0.81x)."""

    def __init__(self, model: Sequential, loss: Loss, count: int = 1) -> None:
        check_splittable(model, count)
        self.model, self.loss, self.count = model, loss, count
        self._runners: list[tuple[Sequential, Loss]] = [(model, loss)]
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Replicas:
        if self.count > 1:
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
        if self._pool is not None:
            self._pool.shutdown()
        self._pool, self._runners = None, self._runners[:1]

    def step(self, x: np.ndarray, y: np.ndarray, whole: bool = False) -> tuple[float, np.ndarray]:
        """Forward and backward of the batch (x, y), its parts at once unless `whole` (then
        the model alone takes it): the batch's mean loss and outputs, and in the model's
        gradients the batch's. Where a part's loss is not finite its backward is skipped
        and the batch's loss is not finite: the trainer then skips the update, and the
        gradients are not the batch's (with one thread they are the last step's)."""
        parts = [slice(0, len(x))] if whole else split(len(x), len(self._runners))
        if len(parts) == 1:
            return train_pass(*self._runners[0], x, y)
        self._follow()
        results: dict[int, tuple[float, np.ndarray]] = {}

        def run(index: int) -> None:
            part = parts[index]
            share = (part.stop - part.start) / len(x)
            results[index] = train_pass(*self._runners[index], x[part], y[part], share)

        # One round a batch: each hand-over to the pool thread costs a wake-up.
        run_round(self._pool, run, range(len(parts)))
        loss = sum(results[k][0] * (p.stop - p.start) for k, p in enumerate(parts)) / len(x)
        if math.isfinite(loss):
            self._gather()
        return loss, np.concatenate([results[k][1] for k in range(len(parts))])

    def _gather(self) -> None:
        """Add the replicas' gradients into the model's: the whole batch's gradient."""
        params = self.model.parameters()
        for replica, _ in self._runners[1:]:
            for param, twin in zip(params, replica.parameters(), strict=True):
                param.grad += twin.grad

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
