"""The layer protocol: forward, backward, parameters and gradients side by side.

A layer is built once for a per-sample input shape (batch axis excluded), which fixes its
parameter shapes and its output shape. `forward` caches what `backward` needs; `backward`
takes dL/d(output) and fills `param.grad` for each trainable parameter, returning
dL/d(input).

Layers register themselves: a class that sets `kind` is entered in `REGISTRY` under that spec
token (and in `LAYER_TYPES` under its class name, for model files), with the spec arguments it
declares in `spec_args`. The spec grammar, its error messages, the README's token table and
the model loader all read the registry, so adding a layer is one module in this package.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

Shape = tuple[int, ...]
_Self = TypeVar("_Self", bound="Layer")


@dataclass(eq=False)
class Param:
    """An array of a layer's state and its gradient. Optimizers update `value` in place, but
    only where `trainable`: state a layer updates itself (BatchNorm's moving statistics, as
    Keras's `add_weight(..., trainable=False)`) is saved, loaded and copied by `get_weights`
    like any weight, and never touched by an optimizer."""

    name: str
    value: np.ndarray
    grad: np.ndarray = field(repr=False)
    regularize: bool = True  # L2 weight decay applies to weights, not to biases
    trainable: bool = True

    @classmethod
    def of(
        cls, name: str, value: np.ndarray, regularize: bool = True, trainable: bool = True
    ) -> Param:
        return cls(name, value, np.zeros_like(value), regularize, trainable)


@dataclass(frozen=True)
class SpecArg:
    """One argument of a layer's spec token, as a layer class declares it in `spec_args`
    (a plain string is an argument spelt like its constructor parameter)."""

    name: str  # as written in a spec: "kernel"
    param: str = ""  # the constructor parameter, where its name differs: "kernel_size"
    hint: str = ""  # what the usage line shows after "=": "0|same|valid" (default: the default)
    required: bool | None = None  # None: required when the constructor has no default
    documented: bool = True  # False: accepted, but left out of the usage line
    #: True: takes every positional value from here on, as a tuple (the last argument only):
    #: `features(x1, x2, sinx1)`
    variadic: bool = False

    @property
    def init_name(self) -> str:
        """The constructor parameter this argument fills."""
        return self.param or self.name


#: Every layer class with a spec token, by token. Filled by `Layer.__init_subclass__`.
REGISTRY: dict[str, type[Layer]] = {}
#: The same classes by class name: the "type" of a layer in a model file.
LAYER_TYPES: dict[str, type[Layer]] = {}

_TOKEN_NAME = re.compile(r"[a-z][a-z0-9_]*")


class Layer(ABC):
    """Base class. Subclasses override `build`, `forward` and `backward`, and register
    themselves by setting `kind`: the spec token, and the prefix of the layers' names."""

    kind: ClassVar[str] = "layer"
    #: Other spellings the spec accepts for the token ("conv2d" for "conv").
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The token's arguments, positional order; required ones first.
    spec_args: ClassVar[tuple[SpecArg | str, ...]] = ()
    #: One line for the spec's token table (README, `nnlib.spec.token_table`).
    description: ClassVar[str] = ""
    #: The attributes `forward` sets for `backward` (and for monitors, until the next
    #: forward); `release_cache` sets them to None.
    cached: ClassVar[tuple[str, ...]] = ()
    #: Whether monitors read `cached` once a step is done (an activation's mask or output:
    #: dead units, saturation); if not, a training step lets it go after the backward.
    cache_read_after_step: ClassVar[bool] = False
    #: Why a training step cannot split a batch between replicas of this layer
    #: (`ThreadPlan(replicas=...)`, nnlib.replicas), or "" when it can: each sample's output
    #: and gradients depend on that sample alone, and forward changes no state but the
    #: layer's caches (no moving statistics, no random stream). A layer from outside nnlib is
    #: refused until its class says "" (and overrides `replica` if it keeps other buffers).
    not_splittable: ClassVar[str] = (
        "nnlib cannot tell whether this layer treats each sample on its own; set "
        "not_splittable = '' on its class if it does"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _register(cls)

    @classmethod
    def arguments(cls) -> tuple[SpecArg, ...]:
        """`spec_args` as SpecArg records, strings expanded."""
        return tuple(SpecArg(a) if isinstance(a, str) else a for a in cls.spec_args)

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self.params: dict[str, Param] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.training = True
        self.dtype = np.dtype(np.float32)

    @property
    def name(self) -> str:
        """The label of this layer's histograms, logs and errors: the name given, else the one
        its model assigns (`dense_1`); the class name while a layer without one is in no model."""
        return type(self).__name__ if self._name is None else self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def has_name(self) -> bool:
        """Whether a name was given or assigned: a model names the layers that have none."""
        return self._name is not None

    # -- construction ---------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Fix parameter shapes for `input_shape` and return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The per-sample output shape for `input_shape` (unchanged, unless overridden).

        Raises ValueError for an input the layer cannot take. Allocates nothing: models walk
        every layer's shapes and sizes with it before building any of them."""
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each parameter for `input_shape`, from the constructor arguments
        alone, so that sizes are known before anything is allocated."""
        return {}

    def param_count(self, input_shape: Shape) -> int:
        """Values this layer's parameters (trainable or not) will hold once built for
        `input_shape`."""
        return sum(math.prod(shape) for shape in self.param_shapes(input_shape).values())

    def cache_size(self, input_shape: Shape) -> int:
        """Values per sample that a training step keeps beyond the layer's output (im2col
        rows, pooling planes, padded copies): part of the memory estimate before a build."""
        return 0

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (used by save and by the spec)."""
        signature = _init_signature(type(self))
        return {
            key: getattr(self, key) for key in signature.parameters if key not in ("self", "name")
        }

    def defaults(self) -> dict[str, Any]:
        """Constructor defaults, so the spec writes back only the arguments that differ."""
        signature = _init_signature(type(self))
        return {
            key: p.default
            for key, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and key != "name"
        }

    # -- computation ----------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output for a batch and cache what backward needs."""

    @abstractmethod
    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill parameter gradients from dL/d(output); return dL/d(input) if asked."""

    def release_cache(self) -> None:
        """Drop what the last forward kept for its backward. A model calls it on every layer
        before a forward: otherwise each layer's old cache stays alive while the layers
        before it make their new ones (VGG-style at batch 256: 100 MiB of the last step's
        padded copies, masks and pooling maxima at the peak)."""
        for attribute in self.cached:
            setattr(self, attribute, None)

    def release_after_backward(self) -> None:
        """`Sequential.backward_params` (a training step: one backward after a forward)
        calls it once its backward has gone through this layer: what only backward reads
        goes before the layers below make their gradients (4 stacked 16@3x3 convs at batch
        256: the padded inputs and the dense input, 24 MiB at the peak)."""
        if not self.cache_read_after_step:
            self.release_cache()

    def replica(self: _Self) -> _Self:
        """A copy that trains another part of a batch on another thread (nnlib.replicas):
        the same parameter values (the very arrays, which optimizers update in place), but
        its own gradients and caches. A shallow copy: a layer with buffers that forward
        fills in place (Conv2D's) gives the copy its own."""
        twin = copy.copy(self)
        twin.params = {
            key: dataclasses.replace(param, grad=np.zeros_like(param.grad))
            for key, param in self.params.items()
        }
        twin.release_cache()
        return twin

    # -- helpers --------------------------------------------------------------------------
    def to(self, dtype: np.dtype | type) -> Layer:
        """Cast parameters (and the compute dtype) in place; gradcheck uses float64."""
        self.dtype = np.dtype(dtype)
        for param in self.params.values():
            param.value = param.value.astype(self.dtype)
            param.grad = np.zeros_like(param.value)
        return self

    def zero_grad(self) -> None:
        """Zero every gradient (the trainer does not need it: backward overwrites them)."""
        for param in self.params.values():
            param.grad[...] = 0

    @property
    def num_params(self) -> int:
        """Values in this layer's parameters, trainable or not (as Keras counts them)."""
        return sum(p.value.size for p in self.params.values())

    def monitored_weights(self) -> Param | None:
        """The parameter a dashboard shows as this layer's weights (histograms, update
        ratio): its first trainable one, so declare the main weight first (W before b,
        gamma before beta); None for a layer without trainable parameters."""
        return next((p for p in self.params.values() if p.trainable), None)

    def check_input(self, x: np.ndarray) -> None:
        """Reject an input whose per-sample shape differs from the built one."""
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name}: expected input of shape "
                f"(batch, {_dims(self.input_shape)}), got {tuple(x.shape)}"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args}) name={self.name!r}"


def _register(cls: type[Layer]) -> None:
    """Enter a layer class in the registry, refusing a token, alias or argument that would
    make the spec ambiguous or unbuildable (a mistake in the class, found at import)."""
    owner = _full_name(cls)
    for token in (cls.kind, *cls.aliases):
        if not _TOKEN_NAME.fullmatch(token):
            raise TypeError(f"{owner}: spec token {token!r} must be lowercase letters and digits")
        taken = REGISTRY.get(token) or next(
            (other for other in REGISTRY.values() if token in other.aliases), None
        )
        if taken is not None and _full_name(taken) != owner:  # the same class defined again
            raise TypeError(
                f"{owner}: spec token {token!r} is already taken by {_full_name(taken)}"
            )
    same_name = LAYER_TYPES.get(cls.__name__)
    if same_name is not None and _full_name(same_name) != owner:
        raise TypeError(
            f"{owner}: model files name layers by class, and {_full_name(same_name)} is "
            f"already called {cls.__name__!r}"
        )
    parameters = _init_signature(cls).parameters
    arguments = cls.arguments()
    if any(arg.variadic for arg in arguments[:-1]):
        raise TypeError(f"{owner}: only the last spec argument may be variadic")
    for arg in arguments:
        if arg.init_name not in parameters:
            raise TypeError(
                f"{owner}: spec argument {arg.name!r} names no constructor parameter "
                f"({arg.init_name!r})"
            )
    REGISTRY[cls.kind] = cls
    LAYER_TYPES[cls.__name__] = cls


def _full_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _dims(shape: Shape) -> str:
    return ", ".join(str(d) for d in shape)


@functools.cache
def _init_signature(cls: type[Layer]) -> inspect.Signature:
    """A layer class's constructor signature, made once: `model.spec` asks for every layer's
    (a RunLogger's start on LeNet-5 spent 0.45 ms in inspect.signature)."""
    return inspect.signature(cls.__init__)
