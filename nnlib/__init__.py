"""nnlib: a numpy neural-network library — layers, losses, optimizers, a Trainer with
callback hooks, datasets and run logs. Imports nothing but numpy and the standard library.

The public names are imported on first use (PEP 562): `nnlib runs list` and `nntui --runs`
import nnlib.runs or nnlib.config, which must not pay for the layers, the datasets and the
callbacks (they were 60% of importing nnlib). The `TYPE_CHECKING` imports below show the
same names to type checkers and editors; `_LAZY` says where each lives at run time
(tests/test_layer_registry.py checks that the two agree)."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

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


def _import_on_first_use(name: str) -> object:
    """A public name, imported from its submodule the first time it is asked for (then
    kept in the namespace, so this runs once per name)."""
    try:
        where = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if where:
        value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    else:
        value = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = value
    return value


if not TYPE_CHECKING:  # hidden from type checkers, which then still flag a misspelt name
    __getattr__ = _import_on_first_use


class _Package(types.ModuleType):
    """nnlib's module type: `nnlib.gradcheck` is the function, also once the submodule of
    that name was imported (`import nnlib.gradcheck`), which makes the import system set the
    package's attribute to the submodule (the Python docs' way to customise a module)."""

    def __setattr__(self, name: str, value: object) -> None:
        if _LAZY.get(name) == name and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    """The namespace as it will be once every public name was asked for (for completion)."""
    return sorted(set(globals()) | set(__all__))
