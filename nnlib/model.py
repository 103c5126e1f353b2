"""`Sequential`: a stack of layers with names, a train/eval mode, a summary, batched
prediction, and save/load as one self-describing `.npz`."""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _validate
from ._atomic import atomic_write
from .layers import LAYER_TYPES, Layer, Param
from .layers.base import Shape
from .losses import Loss
from .metrics import check_finite, evaluate_predictions

FORMAT = "nnlib-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str
    output_shape: Shape
    params: int
    activation_bytes: int  # per sample; multiply by the batch size


@dataclass(frozen=True)
class Summary:
    input_shape: Shape
    layers: tuple[LayerSummary, ...]
    bytes_per_value: int = 4  # the model's dtype: 4 for float32, 8 for float64

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def activation_bytes(self, batch_size: int) -> int:
        return batch_size * sum(layer.activation_bytes for layer in self.layers)

    def format(self, batch_size: int = 64) -> str:
        """A Keras-like table of layers, output shapes, parameters and memory."""
        rows = [("layer", "output shape", "params", f"act. mem/batch {batch_size}")]
        for layer in self.layers:
            rows.append(
                (
                    layer.name,
                    str((None, *layer.output_shape)),
                    f"{layer.params:,}",
                    human_bytes(layer.activation_bytes * batch_size),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        rule = "-" * len(lines[0])
        param_bytes = self.total_params * self.bytes_per_value
        return "\n".join(
            [
                f"input shape: {(None, *self.input_shape)}",
                lines[0],
                rule,
                *lines[1:],
                rule,
                f"total params: {self.total_params:,} ({human_bytes(param_bytes)})",
                f"activations per batch of {batch_size}: "
                f"{human_bytes(self.activation_bytes(batch_size))}",
            ]
        )

    def __str__(self) -> str:
        return self.format()


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB"."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GiB"


class Sequential:
    """Layers applied in order. Built for a per-sample `input_shape` (batch axis excluded).

    >>> model = Sequential([Dense(10)], input_shape=(4,), seed=0)
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: Sequence[int] | None = None,
        seed: int | None = 0,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ValueError("Sequential: a model needs at least one layer")
        for position, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {position} is {layer!r}, not a layer")
        self.seed = seed
        self.dtype = np.dtype(dtype)
        self.input_shape: Shape | None = None
        self.training = True
        self._name_layers()
        if input_shape is not None:
            self.build(input_shape)

    def _name_layers(self) -> None:
        counts: dict[str, int] = {}
        taken = {layer.name for layer in self.layers if layer.name}
        for layer in self.layers:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            if layer.name is None:
                number = counts[layer.kind]
                while f"{layer.kind}_{number}" in taken:
                    number += 1
                layer.name = f"{layer.kind}_{number}"
                taken.add(layer.name)
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Sequential: layer name {duplicates[0]!r} is used twice")

    def build(self, input_shape: Sequence[int]) -> Sequential:
        """Infer every layer's shapes and draw the initial weights from the model's seed."""
        shape = tuple(int(d) for d in input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"Sequential: input_shape must be positive sizes, got {input_shape}")
        self.input_shape = shape
        rng = np.random.default_rng(self.seed)
        for layer in self.layers:
            layer.dtype = self.dtype
            shape = layer.build(shape, rng)
        return self

    # -- computation ----------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._require_built()
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"model input: expected shape (batch, "
                f"{', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Backpropagate dL/d(output); returns dL/d(input). Gradients are overwritten, not
        accumulated, so no zero_grad is needed between steps."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def backward_params(self, grad: np.ndarray) -> None:
        """Like `backward` but stops at the first layer with parameters and asks it for no
        dL/d(input): training never uses it and the layers before it have nothing to fill.
        (An MLP starts with a Flatten; without this its first Dense pays a needless GEMM.)"""
        first = next((k for k, layer in enumerate(self.layers) if layer.params), 0)
        for layer in reversed(self.layers[first + 1 :]):
            grad = layer.backward(grad)
        self.layers[first].backward(grad, need_input_grad=False)

    def train(self, mode: bool = True) -> Sequential:
        """Training mode (dropout active) or, with mode=False, evaluation mode."""
        self.training = mode
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Outputs for `x` in evaluation mode, computed in batches to bound memory."""
        batch_size = _validate.positive_int("predict", "batch_size", batch_size)
        was_training = self.training
        self.eval()
        try:
            outputs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        if not outputs:
            return np.zeros((0, *self.layers[-1].output_shape), dtype=self.dtype)
        return np.concatenate(outputs)

    def evaluate(
        self, x: np.ndarray, y: np.ndarray, loss: Loss, batch_size: int = 256
    ) -> dict[str, float]:
        """Mean loss (and accuracy for a classification loss) over `x`, in batches."""
        check_finite("evaluate x", np.asarray(x))
        return evaluate_predictions(self.predict(x, batch_size), y, loss)

    # -- parameters -----------------------------------------------------------------------
    def parameters(self) -> list[Param]:
        return [param for layer in self.layers for param in layer.params.values()]

    def named_parameters(self) -> dict[str, Param]:
        """Parameters keyed 'layer.param', e.g. 'dense_1.W'."""
        return {param.name: param for param in self.parameters()}

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(
            f"no layer named {name!r}; layers are {', '.join(layer.name for layer in self.layers)}"
        )

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, keyed like `named_parameters`."""
        return {name: p.value.copy() for name, p in self.named_parameters().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        params = self.named_parameters()
        for name, value in weights.items():
            if name not in params:
                raise ValueError(f"set_weights: the model has no parameter {name!r}")
            if value.shape != params[name].value.shape:
                raise ValueError(
                    f"set_weights: {name} has shape {params[name].value.shape}, got {value.shape}"
                )
            params[name].value[...] = value

    def to(self, dtype: np.dtype | type) -> Sequential:
        """Cast every parameter; gradcheck runs a float64 copy."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.to(dtype)
        return self

    # -- description ----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The architecture in the spec grammar; `build(model.spec, shape)` rebuilds it."""
        from .spec import to_spec

        return to_spec(self)

    @property
    def output_shape(self) -> Shape:
        self._require_built()
        return self.layers[-1].output_shape

    def summary(self) -> Summary:
        """Per layer: output shape, parameter count and activation memory per sample."""
        self._require_built()
        return Summary(
            self.input_shape,
            tuple(
                LayerSummary(
                    layer.name,
                    type(layer).__name__,
                    layer.output_shape,
                    layer.num_params,
                    int(np.prod(layer.output_shape)) * self.dtype.itemsize,
                )
                for layer in self.layers
            ),
            self.dtype.itemsize,
        )

    def _require_built(self) -> None:
        if self.input_shape is None:
            raise ValueError(
                "Sequential: the model is not built; pass input_shape=... or call "
                "model.build(input_shape)"
            )

    # -- persistence ----------------------------------------------------------------------
    def architecture(self) -> dict:
        """JSON-able description that rebuilds the model (without weights)."""
        self._require_built()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "input_shape": self.input_shape,
            "seed": self.seed,
            "dtype": self.dtype.name,
            "layers": [
                {"type": type(layer).__name__, "name": layer.name, "config": layer.config()}
                for layer in self.layers
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write architecture and weights to one `.npz`, atomically (temp file, then rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = (
                path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
            )
        arrays = {f"param/{name}": value for name, value in self.get_weights().items()}
        arrays["architecture"] = np.array(json.dumps(self.architecture()))
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
        return path

    def __repr__(self) -> str:
        return f"Sequential({self.spec!r}, input_shape={self.input_shape})"


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild a model saved by `Sequential.save`; a corrupt, truncated or mismatched file
    raises ValueError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an nnlib model (not an .npz archive, or truncated)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "architecture" not in archive.files:
                raise ValueError(f"{path}: not an nnlib model (no architecture record)")
            architecture = json.loads(str(archive["architecture"]))
            weights = {
                key[len("param/") :]: archive[key]
                for key in archive.files
                if key.startswith("param/")
            }
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupt or truncated model file ({error})") from None
    except (
        OSError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        KeyError,
        NotImplementedError,
    ) as error:
        raise ValueError(f"{path}: corrupt or truncated model file ({error})") from None
    model = from_architecture(architecture, source=str(path))
    expected = model.named_parameters()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        detail = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(f"{path}: weights do not match the architecture ({detail})")
    for name, value in weights.items():
        if value.shape != expected[name].value.shape:
            raise ValueError(
                f"{path}: {name} has shape {value.shape}, the architecture needs "
                f"{expected[name].value.shape}"
            )
    model.set_weights(weights)
    return model


def from_architecture(architecture: dict, source: str = "architecture") -> Sequential:
    """Rebuild an (untrained) model from `Sequential.architecture()`."""
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise ValueError(f"{source}: not an nnlib model architecture")
    try:
        if architecture.get("version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{source}: written by a newer nnlib (format version "
                f"{architecture['version']}, this one reads {FORMAT_VERSION})"
            )
        layers = []
        for record in architecture["layers"]:
            cls = LAYER_TYPES.get(record.get("type"))
            if cls is None:
                raise ValueError(f"{source}: unknown layer type {record.get('type')!r}")
            config = {
                k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()
            }
            layers.append(cls(**config, name=record["name"]))
        return Sequential(
            layers,
            input_shape=architecture["input_shape"],
            seed=architecture.get("seed"),
            dtype=architecture.get("dtype", "float32"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # A hand-edited or damaged record: say which file, not just which Python error.
        if str(error).startswith(source):
            raise
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{source}: invalid architecture record ({detail})") from None


__all__ = ["Sequential", "Summary", "from_architecture", "load"]
