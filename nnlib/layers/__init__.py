"""Layers: each a small class whose forward, backward and parameters sit side by side.

A layer class registers itself when it is defined (see `Layer.kind` in base.py): the spec
token and model files need no list to be edited. Its module is imported here by name, so that
`nnlib.layers.<Class>` and `nnlib.<Class>` are names a type checker and an editor can see
(tests/test_layer_registry.py checks that every registered layer is exported)."""

from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax
from .base import LAYER_TYPES, REGISTRY, Layer, Param, SpecArg
from .batchnorm import BatchNorm
from .conv import Conv2D
from .dense import Dense
from .features import InputFeatures
from .pooling import AvgPool2D, MaxPool2D
from .shape import Dropout, Flatten

__all__ = [
    "LAYER_TYPES",
    "REGISTRY",
    "Layer",
    "Param",
    "SpecArg",
    "softmax",
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
