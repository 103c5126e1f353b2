"""Optimizers. Hyperparameters are plain attributes, read afresh at every step, so a trainer
(or the TUI, from another thread through the trainer) may change them between any two steps.

All state is kept per parameter name, in the parameter's dtype, so float32 stays float32.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from . import _validate
from .layers import Param

#: One parameter's optimizer state: arrays shaped like it (Adam's m and v) and step counts.
Slots = dict[str, np.ndarray | int]


class Optimizer(ABC):
    """Base class: `step` applies weight decay, L1 and the decayed lr, `update` the rule
    itself."""

    name: ClassVar[str] = "optimizer"
    #: Hyperparameters a user may change while training, with their validators.
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "weight_decay", "l1", "decay")

    def __init__(
        self, lr: float, decay: float = 0.0, weight_decay: float = 0.0, l1: float = 0.0
    ) -> None:
        self.lr = lr
        self.decay = decay
        self.weight_decay = weight_decay
        self.l1 = l1
        self.iterations = 0
        self.state: dict[str, Slots] = {}

    def __setattr__(self, key: str, value: Any) -> None:
        # Validate every hyperparameter on assignment, whoever assigns it.
        if key in type(self).hyperparameters:
            value = self.validate(key, value)
        object.__setattr__(self, key, value)

    def validate(self, key: str, value: Any) -> float:
        """`value` as a float if it suits hyperparameter `key`, else a ValueError naming it."""
        owner = type(self).__name__
        if key == "lr":
            return _validate.positive_float(owner, "learning rate (lr)", value)
        if key in ("momentum", "rho", "beta1", "beta2"):
            return _validate.float_in(owner, key, value, 0.0, 1.0)
        return _validate.non_negative_float(owner, key, value)

    @property
    def current_lr(self) -> float:
        """The learning rate in force: lr / (1 + t * decay), Keras's time-based decay."""
        return self.lr / (1.0 + self.iterations * self.decay)

    def step(self, params: Iterable[Param]) -> None:
        """Apply one update to every trainable parameter from its `grad`; the others (a
        BatchNorm's moving statistics) belong to their layer, which updates them itself.

        Weights (not biases) are regularized through their gradient, before the rule: L2
        adds `weight_decay * w`, the gradient of `weight_decay / 2 * sum(w²)`, and L1 adds
        `l1 * sign(w)`, the gradient of `l1 * sum(|w|)` (as Keras's l1 regularizer); the
        loss reported leaves both penalties out."""
        lr = self.current_lr
        self.iterations += 1
        for param in params:
            if not param.trainable:
                continue
            grad = param.grad
            if self.weight_decay and param.regularize:
                grad = grad + self.weight_decay * param.value
            if self.l1 and param.regularize:
                grad = grad + self.l1 * np.sign(param.value)
            self.update(param, grad, lr, self.state.setdefault(param.name, {}))

    @abstractmethod
    def update(self, param: Param, grad: np.ndarray, lr: float, state: Slots) -> None:
        """Update `param.value` in place."""

    def config(self) -> dict[str, float]:
        """The hyperparameters as set (lr before decay), for logs and run configs."""
        return {key: getattr(self, key) for key in type(self).hyperparameters}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (for a checkpoint): the hyperparameters as
        set, the step count and, per parameter, copies of its slots (arrays such as
        velocities or moments, and integers such as Adam's step count)."""
        return {
            "name": self.name,
            "hyperparameters": self.config(),
            "iterations": self.iterations,
            "slots": {
                name: {
                    key: value.copy() if isinstance(value, np.ndarray) else int(value)
                    for key, value in slots.items()
                }
                for name, slots in self.state.items()
            },
        }

    def load_state(self, state: dict[str, Any], hyperparameters: bool = True) -> None:
        """Take back a `state_dict` of the same kind of optimizer (ValueError otherwise);
        with hyperparameters=False the ones set now are kept (a fork that changes lr)."""
        if state.get("name") != self.name:
            raise ValueError(
                f"{type(self).__name__}: cannot take the state of a {state.get('name')!r} "
                f"optimizer, expected {self.name!r}"
            )
        if hyperparameters:
            self._set_hyperparameters(state["hyperparameters"])
        iterations = state["iterations"]
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise ValueError(
                f"{type(self).__name__}: iterations must be a non-negative integer, "
                f"got {iterations!r}"
            )
        self.iterations = iterations
        self.state = {
            name: {
                key: value.copy() if isinstance(value, np.ndarray) else value
                for key, value in slots.items()
            }
            for name, slots in state["slots"].items()
        }

    def _set_hyperparameters(self, values: dict[str, Any]) -> None:
        """Set a saved state's hyperparameters; ValueError for one this kind of optimizer
        does not have (a state made by another version or edited by hand)."""
        for key, value in values.items():
            if key not in self.config():
                raise ValueError(f"{type(self).__name__} has no hyperparameter {key!r}")
            setattr(self, key, value)


def slot(state: Slots, key: str, like: np.ndarray) -> np.ndarray:
    """The state array `key`, zeros on first use. (`state.setdefault(key, np.zeros_like(...))`
    would allocate, and for a large weight map and unmap, a zero array at every step.)"""
    array = state.get(key)
    if not isinstance(array, np.ndarray):
        array = state[key] = np.zeros_like(like)
    return array


class SGD(Optimizer):
    """SGD with (Nesterov) momentum, in Keras's formulation:
    v = momentum * v - lr * g;  w += v   (or w += momentum * v - lr * g with Nesterov)."""

    name = "sgd"
    hyperparameters = ("lr", "momentum", "weight_decay", "l1", "decay")

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        decay: float = 0.0,
        weight_decay: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__(lr, decay, weight_decay, l1)
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def update(self, param: Param, grad: np.ndarray, lr: float, state: Slots) -> None:
        if not self.momentum and "velocity" not in state:
            param.value -= lr * grad
            return
        velocity = slot(state, "velocity", param.value)
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            param.value += self.momentum * velocity - lr * grad
        else:
            param.value += velocity

    def config(self) -> dict[str, float]:
        return {**super().config(), "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    name = "adam"
    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay", "l1", "decay")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        decay: float = 0.0,
        weight_decay: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__(lr, decay, weight_decay, l1)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def update(self, param: Param, grad: np.ndarray, lr: float, state: Slots) -> None:
        m = slot(state, "m", param.value)
        v = slot(state, "v", param.value)
        t = state["t"] = int(state.get("t", 0)) + 1
        m *= self.beta1
        m += (1.0 - self.beta1) * grad
        v *= self.beta2
        v += (1.0 - self.beta2) * grad * grad
        # A Python float: a numpy float64 scalar would promote the float32 update to float64.
        step = lr * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        param.value -= step * m / (np.sqrt(v) + self.eps)


class RMSProp(Optimizer):
    """RMSProp (Hinton): divide the gradient by a running RMS of recent gradients."""

    name = "rmsprop"
    hyperparameters = ("lr", "rho", "eps", "weight_decay", "l1", "decay")

    def __init__(
        self,
        lr: float = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-7,
        decay: float = 0.0,
        weight_decay: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__(lr, decay, weight_decay, l1)
        self.rho = rho
        self.eps = eps

    def update(self, param: Param, grad: np.ndarray, lr: float, state: Slots) -> None:
        mean_square = slot(state, "mean_square", param.value)
        mean_square *= self.rho
        mean_square += (1.0 - self.rho) * grad * grad
        param.value -= lr * grad / (np.sqrt(mean_square) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "rmsprop": RMSProp}


def make_optimizer(name: str, **hyperparameters: Any) -> Optimizer:
    """Build an optimizer by name ('sgd', 'adam', 'rmsprop'), ignoring unset (None) values."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}"
        ) from None
    accepted = set(inspect.signature(cls).parameters)
    unknown = [k for k, v in hyperparameters.items() if v is not None and k not in accepted]
    if unknown:
        raise ValueError(f"{cls.__name__} has no hyperparameter {unknown[0]!r}")
    return cls(**{k: v for k, v in hyperparameters.items() if v is not None})
