"""nnlib: a numpy neural-network library — layers, losses, optimizers, a Trainer with
callback hooks, datasets and run logs. Imports nothing but numpy and the standard library.

The public names are imported on first use (nnlib._lazy): importing nnlib.runs or
nnlib.config does not import the layers, the datasets and the callbacks. The `TYPE_CHECKING`
imports show the same names to type checkers; `_LAZY` says where each lives at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _lazy

if TYPE_CHECKING:
    from . import callbacks, datasets, presets, runs
    from .callbacks import (
        Callback,
        CallbackList,
        DivergenceGuard,
        EarlyStopping,
        History,
        ModelCheckpoint,
        Monitor,
        ProgressBar,
    )
    from .control import RunControl
    from .gradcheck import GradcheckResult, gradcheck
    from .layers import (
        AvgPool2D,
        BatchNorm,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        Identity,
        InputFeatures,
        Layer,
        LeakyReLU,
        MaxPool2D,
        Param,
        ReLU,
        Sigmoid,
        Softmax,
        Tanh,
    )
    from .losses import MSE, Loss, SoftmaxCrossEntropy
    from .model import Sequential, load
    from .optimizers import SGD, Adam, Optimizer, RMSProp, make_optimizer
    from .runs import RunLogger
    from .spec import SpecError, build
    from .states import RunStatus
    from .trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "CallbackList",
    "DivergenceGuard",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "Monitor",
    "ProgressBar",
    "RunControl",
    "RunLogger",
    "RunStatus",
    "Trainer",
    "callbacks",
    "datasets",
    "presets",
    "runs",
    "MSE",
    "SGD",
    "Adam",
    "GradcheckResult",
    "Layer",
    "Loss",
    "Optimizer",
    "Param",
    "RMSProp",
    "Sequential",
    "SoftmaxCrossEntropy",
    "SpecError",
    "build",
    "gradcheck",
    "load",
    "make_optimizer",
    # every built-in layer class (tests/test_layer_registry.py checks none is missing)
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "InputFeatures",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]

#: The submodule each public name is imported from on first use ("" for a submodule itself).
_LAZY = {
    **dict.fromkeys(("callbacks", "datasets", "presets", "runs"), ""),
    **dict.fromkeys(
        (
            "Callback",
            "CallbackList",
            "DivergenceGuard",
            "EarlyStopping",
            "History",
            "ModelCheckpoint",
            "Monitor",
            "ProgressBar",
        ),
        "callbacks",
    ),
    "RunControl": "control",
    "GradcheckResult": "gradcheck",
    "gradcheck": "gradcheck",
    **dict.fromkeys(
        (
            "AvgPool2D",
            "BatchNorm",
            "Conv2D",
            "Dense",
            "Dropout",
            "Flatten",
            "Identity",
            "InputFeatures",
            "Layer",
            "LeakyReLU",
            "MaxPool2D",
            "Param",
            "ReLU",
            "Sigmoid",
            "Softmax",
            "Tanh",
        ),
        "layers",
    ),
    **dict.fromkeys(("MSE", "Loss", "SoftmaxCrossEntropy"), "losses"),
    **dict.fromkeys(("Sequential", "load"), "model"),
    **dict.fromkeys(("SGD", "Adam", "Optimizer", "RMSProp", "make_optimizer"), "optimizers"),
    "RunLogger": "runs",
    **dict.fromkeys(("SpecError", "build"), "spec"),
    "RunStatus": "states",
    "Trainer": "trainer",
}


if not TYPE_CHECKING:  # hidden from type checkers, which then still flag a misspelt name
    __getattr__, __dir__ = _lazy.lazy(__name__, _LAZY)
