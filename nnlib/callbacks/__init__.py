"""Built-in callbacks. Hooks and their order are documented in `callbacks.base`."""

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
