"""Layers: each a small class whose forward, backward and parameters sit side by side."""

from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax
from .base import Layer, Param
from .conv import Conv2D
from .dense import Dense
from .pooling import AvgPool2D, MaxPool2D
from .shape import Dropout, Flatten

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Dense,
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        Flatten,
        Dropout,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        Identity,
        Softmax,
    )
}

__all__ = [
    "LAYER_TYPES",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Param",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "softmax",
]
