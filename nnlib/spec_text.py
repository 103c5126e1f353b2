"""Writing a model back as spec text (`model.spec`, `nnlib.spec_text.to_spec`).

Apart from the parser in `nnlib.spec` so that `nnlib.model` can use it without importing the
parser, which builds models: with it here, no two nnlib modules import each other.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

from .layers import REGISTRY, Layer, SpecArg
from .layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .layers.dense import Dense
from .layers.shape import Flatten

if TYPE_CHECKING:
    from .model import Sequential

#: The hidden activations the MLP shorthand can name (`2-16-16-3:tanh`).
MLP_ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "leakyrelu": LeakyReLU,
}


def required(cls: type[Layer], arg: SpecArg) -> bool:
    """Whether a spec must give `arg`: as declared, else when `__init__` has no default."""
    if arg.required is not None:
        return arg.required
    parameter = inspect.signature(cls.__init__).parameters[arg.init_name]
    return parameter.default is inspect.Parameter.empty


def to_token(layer: Layer) -> str:
    """One layer in spec form, with only its non-default arguments."""
    cls = type(layer)
    if REGISTRY.get(cls.kind) is not cls:
        raise ValueError(
            f"{layer.name}: {cls.__name__} has no spec token (a layer class "
            "registers one by setting `kind`)"
        )
    config, defaults = layer.config(), layer.defaults()
    parts: list[str] = []
    for arg in cls.arguments():
        value = config[arg.init_name]  # registration checked it names a constructor parameter
        if arg.variadic:
            parts.extend(format_value(item) for item in value)
        elif required(cls, arg):
            parts.append(format_value(value))
        elif value != defaults.get(arg.init_name, value):
            parts.append(f"{arg.name}={format_value(value)}")
    return token_text(cls.kind, parts)


def token_text(kind: str, parts: list[str], separator: str = ",") -> str:
    """A token as written: its kind, with its arguments in parentheses when it has any
    (`to_token` writes them with ",", a layer's usage with ", ")."""
    return f"{kind}({separator.join(parts)})" if parts else kind


def format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


def to_spec(model: Sequential) -> str:
    """The model's architecture as spec text (the MLP shorthand when it fits)."""
    layers = [
        layer for layer in model.layers if not (isinstance(layer, Flatten) and layer.implicit)
    ]
    shorthand = _as_mlp(layers, model.input_shape)
    return shorthand or " ".join(to_token(layer) for layer in layers)


def _as_mlp(layers: list[Layer], input_shape: tuple[int, ...] | None) -> str | None:
    """The MLP shorthand of `layers` (784-128-10, 2-16-2:tanh), or None unless they are
    he-initialised Dense layers with one kind of shorthand activation between them."""
    if input_shape is None:
        return None
    dense = [layer for layer in layers[0::2] if type(layer) is Dense and layer.init == "he"]
    if len(dense) != len(layers) // 2 + 1:  # an even count too: its dense would be one fewer
        return None
    activation = _mlp_activation(layers[1::2])
    if activation is None:
        return None
    sizes = [math.prod(input_shape), *(layer.units for layer in dense)]
    text = "-".join(map(str, sizes))
    return text if activation == "relu" else f"{text}:{activation}"


def _mlp_activation(activations: list[Layer]) -> str | None:
    """The shorthand's name for `activations` ("relu", the default, when there are none);
    None unless they are all one kind it names, with default arguments: one token, which is
    then the kind itself."""
    tokens = {to_token(layer) for layer in activations} or {"relu"}
    token = tokens.pop()
    return token if not tokens and token in MLP_ACTIVATIONS else None
