"""Built-in callbacks. Hooks and their order are documented in `callbacks.base`.

The names are imported on first use (nnlib._lazy): nnlib.runs needs `callbacks.base` only,
not the Monitor's layers and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy

if TYPE_CHECKING:
    from .base import Callback, History, Logs
    from .callback_list import CallbackList
    from .checkpoint import ModelCheckpoint
    from .monitor import Monitor
    from .progress import ProgressBar
    from .schedules import (
        CosineDecay,
        ExponentialDecay,
        LearningRateSchedule,
        StepDecay,
        TimeBasedDecay,
    )
    from .stopping import DivergenceGuard, EarlyStopping
    from .system import SystemMetrics

__all__ = [
    "Callback",
    "CallbackList",
    "CosineDecay",
    "DivergenceGuard",
    "EarlyStopping",
    "ExponentialDecay",
    "History",
    "LearningRateSchedule",
    "Logs",
    "ModelCheckpoint",
    "Monitor",
    "ProgressBar",
    "StepDecay",
    "SystemMetrics",
    "TimeBasedDecay",
]

#: The submodule each public name is imported from on first use.
_LAZY = {
    **dict.fromkeys(("Callback", "History", "Logs"), "base"),
    "CallbackList": "callback_list",
    "ModelCheckpoint": "checkpoint",
    "Monitor": "monitor",
    "ProgressBar": "progress",
    **dict.fromkeys(
        (
            "CosineDecay",
            "ExponentialDecay",
            "LearningRateSchedule",
            "StepDecay",
            "TimeBasedDecay",
        ),
        "schedules",
    ),
    **dict.fromkeys(("DivergenceGuard", "EarlyStopping"), "stopping"),
    "SystemMetrics": "system",
}

if not TYPE_CHECKING:  # hidden from type checkers, which then still flag a misspelt name
    __getattr__, __dir__ = _lazy.lazy(__name__, _LAZY)
