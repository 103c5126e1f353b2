"""Layers: each a small class whose forward, backward and parameters sit side by side.

Every module of this package is imported here, so a layer class registers itself (see
`Layer.kind` in base.py) just by being defined in a file of it: `nnlib.layers.<Class>`,
`nnlib.<Class>`, the spec token and model files need no list to be edited."""

import importlib
import pkgutil

from .activations import softmax
from .base import LAYER_TYPES, REGISTRY, Layer, Param, SpecArg

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

globals().update(LAYER_TYPES)

__all__ = ["LAYER_TYPES", "REGISTRY", "Layer", "Param", "SpecArg", "softmax", *sorted(LAYER_TYPES)]
