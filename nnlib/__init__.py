"""nnlib: a numpy neural-network library — layers, losses, optimizers, a Trainer with
callback hooks, datasets and run logs. Imports nothing but numpy and the standard library."""

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
