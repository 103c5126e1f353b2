"""nnlib: a numpy neural-network library — layers, losses, optimizers, a Trainer with
callback hooks, datasets and run logs. Imports nothing but numpy and the standard library."""

from . import callbacks, datasets, runs
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
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
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
    "runs",
    "MSE",
    "SGD",
    "Adam",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GradcheckResult",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Loss",
    "MaxPool2D",
    "Optimizer",
    "Param",
    "RMSProp",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SpecError",
    "Tanh",
    "build",
    "gradcheck",
    "load",
    "make_optimizer",
]
