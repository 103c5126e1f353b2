"""`Sequential`: a stack of layers with names, a train/eval mode, a summary, batched
prediction, and save/load as one self-describing `.npz`."""

from __future__ import annotations

import copy
import json
import math
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from . import _memory, _validate
from ._atomic import atomic_write
from ._files import open_regular
from ._memory import human_bytes, human_count
from ._npy import read_header, write_npz
from .layers import LAYER_TYPES, Layer, Param
from .layers.base import Shape
from .layers.pooling import fuse_relu_pool
from .losses import Loss
from .metrics import check_finite, evaluate_predictions
from .spec_text import to_spec

FORMAT = "nnlib-model"
FORMAT_VERSION = 1


#: Optimizer state per parameter assumed by the memory estimate: Adam keeps two moments and
#: SGD with momentum one, so the estimate holds for every built-in optimizer.
OPTIMIZER_SLOTS = 2

#: A replica process's own memory beyond its share of the batch: a fresh interpreter with
#: numpy and nnlib imported measured 27 MiB resident, a replica of the MLP 784-512-128-10
#: training half of a batch of 256 45 MiB (nnlib.replica_process).
REPLICA_PROCESS_BYTES = 32 << 20

#: Batch size of `predict` and `evaluate` (and so of validation): the fastest measured, 1
#: thread, 2,000 MNIST digits: LeNet-5 78 ms at 64 against 122 ms at 256 (113 at 128), the
#: MLP 21 vs 24 ms, the tutorial CNN 44 vs 50 ms. Larger batches spill the caches.
PREDICT_BATCH = 64


@dataclass(frozen=True)
class LayerSummary:
    name: str
    kind: str
    output_shape: Shape
    params: int
    activation_bytes: int  # per sample; multiply by the batch size
    param_shapes: tuple[tuple[str, Shape], ...] = ()  # ("W", (784, 512)), ...
    cache_bytes: int = 0  # per sample, kept by a training step beyond the output


@dataclass(frozen=True)
class Summary:
    input_shape: Shape
    layers: tuple[LayerSummary, ...]
    bytes_per_value: int = 4  # the model's dtype: 4 for float32, 8 for float64

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape

    def param_shapes(self) -> dict[str, Shape]:
        """Every parameter's shape, keyed like `Sequential.named_parameters` ('dense_1.W')."""
        return {
            f"{layer.name}.{key}": shape
            for layer in self.layers
            for key, shape in layer.param_shapes
        }

    def activation_bytes(self, batch_size: int) -> int:
        return batch_size * sum(layer.activation_bytes for layer in self.layers)

    def weight_bytes(self) -> int:
        """Parameters with their gradients and the optimizer's state."""
        return self.total_params * self.bytes_per_value * (2 + OPTIMIZER_SLOTS)

    def training_activation_bytes(self, batch_size: int) -> int:
        """What one training step keeps per batch: every output, the gradient flowing back
        through it, and the layers' caches (im2col rows, pooling planes)."""
        per_sample = sum(2 * layer.activation_bytes + layer.cache_bytes for layer in self.layers)
        return batch_size * per_sample

    def memory_bytes(self, batch_size: int, replicas: int = 1, processes: bool = False) -> int:
        """Estimated memory to train with `batch_size`: weights, gradients, optimizer state
        and activations; with `replicas` (nnlib.replicas), each one beyond the model's own
        adds its gradients (they share the weights and split the batch's activations) and,
        in `processes`, a child interpreter."""
        extra = (replicas - 1) * (self.total_params * self.bytes_per_value)
        if processes:
            extra += (replicas - 1) * REPLICA_PROCESS_BYTES
        return self.weight_bytes() + self.training_activation_bytes(batch_size) + extra

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
                f"training memory, batch of {batch_size}: about "
                f"{human_bytes(self.memory_bytes(batch_size))} (weights, gradients, optimizer "
                "state, activations)",
            ]
        )

    def __str__(self) -> str:
        return self.format()


class ModelTooLarge(ValueError):
    """Training the model would need more memory than the machine has free."""


class LayerError(ValueError):
    """A layer cannot take its input; `position` is its index in the model's layers."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def check_fits(
    summary: Summary, batch_size: int = 64, replicas: int = 1, processes: bool = False
) -> None:
    """Refuse, before anything is allocated, a model whose training would need more memory
    than is available (weights, gradients, optimizer state and a batch's activations, and
    the `replicas`' share: `Summary.memory_bytes`). `Sequential.build`, `nnlib.spec.plan`
    (the CLI's summary and the TUI's editor), `load`, `Trainer.fit` and a batch size steered
    during a run all come through here."""
    batch_size = _validate.positive_int("memory check", "batch_size", batch_size)
    needed = summary.memory_bytes(batch_size, replicas, processes)
    available, source = _memory.available_memory()
    if needed > available:
        on = ""
        if replicas > 1:
            on = f" on {replicas} replicas{' in processes' if processes else ''}"
        raise ModelTooLarge(
            f"too big to train here: the model needs about {human_bytes(needed)} to train "
            f"with batch size "
            f"{batch_size}{on} ({human_count(summary.total_params)} parameters: "
            f"{human_bytes(summary.weight_bytes())} with their gradients and optimizer state; "
            f"activations {human_bytes(summary.training_activation_bytes(batch_size))}), "
            f"but only {human_bytes(available)} is available ({source})"
        )


def check_growth(
    summary: Summary,
    held: int,
    batch_size: int,
    replicas: int = 1,
    processes: bool = False,
    asked: str = "batch size",
) -> None:
    """ModelTooLarge, in one line that starts with `asked`, when training with `batch_size`
    needs more memory than with `held`, the batch a run holds already, by more than is
    available: a steered batch size, checked against what it adds (a smaller one adds
    nothing)."""
    extra = summary.memory_bytes(batch_size, replicas, processes) - summary.memory_bytes(
        held, replicas, processes
    )
    if extra <= 0:
        return
    available, source = _memory.available_memory()
    if extra > available:
        raise ModelTooLarge(
            f"{asked} needs about {human_bytes(extra)} more than {held} to train, only "
            f"{human_bytes(available)} is available ({source})"
        )


def input_gradient(layer: Layer, grad: np.ndarray) -> np.ndarray:
    """dL/d(input) of `layer` for dL/d(output) `grad`; a TypeError naming the layer if its
    backward gives none (a custom layer may return None only when need_input_grad=False)."""
    result = layer.backward(grad)
    if result is None:
        raise TypeError(
            f"{layer.name}: backward returned None, expected dL/d(input) as an array "
            "(None is allowed only when need_input_grad=False)"
        )
    return result


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
        self.dtype = _float_dtype(dtype)
        self.input_shape: Shape | None = None
        self._output_shape: Shape | None = None
        self.training = True
        self._name_layers()
        if input_shape is not None:
            self.build(input_shape)

    def _name_layers(self) -> None:
        counts: dict[str, int] = {}
        taken = {layer.name for layer in self.layers if layer.has_name}
        for layer in self.layers:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            if not layer.has_name:
                number = counts[layer.kind]
                while f"{layer.kind}_{number}" in taken:
                    number += 1
                layer.name = f"{layer.kind}_{number}"
                taken.add(layer.name)
        duplicates = sorted(
            n for n, k in Counter(layer.name for layer in self.layers).items() if k > 1
        )
        if duplicates:
            raise ValueError(f"Sequential: layer name {duplicates[0]!r} is used twice")

    def plan(self, input_shape: Sequence[int]) -> Summary:
        """Every layer's output shape, parameter shapes and memory for `input_shape`, worked
        out from the layers' arguments without allocating anything, so that a typo such as
        conv(100000,99) is refused in microseconds instead of after gigabytes. A layer that
        cannot take its input raises LayerError naming it."""
        start = shape = _validate.shape("Sequential", "input_shape", input_shape)
        itemsize = self.dtype.itemsize
        rows = []
        for position, layer in enumerate(self.layers):
            try:
                output = tuple(layer.compute_output_shape(shape))
                params = layer.param_shapes(shape)
                cache = layer.cache_size(shape)
            except ValueError as error:
                raise LayerError(str(error), position) from None
            rows.append(
                LayerSummary(
                    layer.name,
                    type(layer).__name__,
                    output,
                    sum(math.prod(p) for p in params.values()),
                    math.prod(output) * itemsize,
                    tuple(params.items()),
                    cache * itemsize,
                )
            )
            shape = output
        return Summary(start, tuple(rows), itemsize)

    def build(self, input_shape: Sequence[int], batch_size: int = 64) -> Sequential:
        """Infer every layer's shapes and draw the initial weights from the model's seed.

        Shapes and the memory needed to train with `batch_size` are checked first (`plan`,
        `check_fits`), so a model that cannot be built, or would not fit, allocates nothing."""
        summary = self.plan(input_shape)
        check_fits(summary, batch_size)
        shape = self.input_shape = summary.input_shape
        rng = np.random.default_rng(self.seed)
        for layer in self.layers:
            layer.dtype = self.dtype
            shape = layer.build(shape, rng)
        self._output_shape = shape
        fuse_relu_pool(self.layers)
        return self

    # -- computation ----------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        input_shape, _ = self._built_shapes()
        x = np.asarray(x)
        if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
            raise ValueError(
                f"model input: expected shape (batch, "
                f"{', '.join(map(str, input_shape))}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        for layer in self.layers:
            layer.release_cache()  # the last step's caches are not kept beside the new ones
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Backpropagate dL/d(output); returns dL/d(input). Gradients are overwritten, not
        accumulated, so no zero_grad is needed between steps."""
        for layer in reversed(self.layers):
            grad = input_gradient(layer, grad)
        return grad

    def backward_params(self, grad: np.ndarray) -> None:
        """Like `backward` but stops at the first layer with parameters and asks it for no
        dL/d(input): training never uses it and the layers before it have nothing to fill.
        (An MLP starts with a Flatten; without this its first Dense pays a needless GEMM.)
        A training step's one backward: each layer lets go of what only its backward reads
        as soon as it is done (`Layer.release_after_backward`)."""
        first = next((k for k, layer in enumerate(self.layers) if layer.params), 0)
        for layer in reversed(self.layers[first + 1 :]):
            grad = input_gradient(layer, grad)
            layer.release_after_backward()
        self.layers[first].backward(grad, need_input_grad=False)
        self.layers[first].release_after_backward()

    def replica(self) -> Sequential:
        """A copy whose layers are replicas (`Layer.replica`): the same parameter values, its
        own gradients and caches. nnlib.replicas trains a part of each batch with one."""
        twin = copy.copy(self)
        twin.layers = [layer.replica() for layer in self.layers]
        return twin

    def train(self, mode: bool = True) -> Sequential:
        """Training mode (dropout active) or, with mode=False, evaluation mode."""
        self.training = mode
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    def predict(self, x: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Outputs for `x` in evaluation mode, computed in batches to bound memory."""
        batch_size = _validate.positive_int("predict", "batch_size", batch_size)
        was_training = self.training
        self.eval()
        try:
            outputs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        if not outputs:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(outputs)

    def evaluate(
        self, x: np.ndarray, y: np.ndarray, loss: Loss, batch_size: int = PREDICT_BATCH
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
        self.dtype = _float_dtype(dtype)
        for layer in self.layers:
            layer.to(dtype)
        return self

    # -- description ----------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The architecture in the spec grammar; `build(model.spec, shape)` rebuilds it."""
        return to_spec(self)

    @property
    def output_shape(self) -> Shape:
        return self._built_shapes()[1]

    @property
    def built_input_shape(self) -> Shape:
        """The per-sample input shape, for code that runs only on a built model (the
        `input_shape` attribute is None before `build`)."""
        return self._built_shapes()[0]

    def summary(self) -> Summary:
        """Per layer: output shape, parameter count and activation memory per sample."""
        return self.plan(self._built_shapes()[0])

    def _built_shapes(self) -> tuple[Shape, Shape]:
        """The per-sample input and output shapes; ValueError saying how to build the model
        when it is not built yet."""
        if self.input_shape is None or self._output_shape is None:
            raise ValueError(
                "Sequential: the model is not built; pass input_shape=... or call "
                "model.build(input_shape)"
            )
        return self.input_shape, self._output_shape

    # -- persistence ----------------------------------------------------------------------
    def architecture(self) -> dict:
        """JSON-able description that rebuilds the model (without weights)."""
        input_shape, _ = self._built_shapes()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "input_shape": input_shape,
            "seed": self.seed,
            "dtype": self.dtype.name,
            "layers": [
                {"type": type(layer).__name__, "name": layer.name, "config": layer.config()}
                for layer in self.layers
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write architecture and weights to one `.npz`, atomically (temp file, then rename)."""
        path = npz_path(path)
        atomic_write(path, lambda handle: write_npz(handle, self.archive_arrays()))
        return path

    def archive_arrays(self) -> dict[str, np.ndarray]:
        """The members of a model file (architecture and every parameter, non-trainable ones
        included), by name; a checkpoint writes these and its training state beside."""
        arrays = {f"param/{name}": value for name, value in self.get_weights().items()}
        arrays["architecture"] = np.array(json.dumps(self.architecture()))
        return arrays

    def __repr__(self) -> str:
        return f"Sequential({self.spec!r}, input_shape={self.input_shape})"


def npz_path(path: str | os.PathLike) -> Path:
    """`path` with the .npz suffix np.savez would give it (added, never replaced)."""
    path = Path(path)
    if path.suffix == ".npz":
        return path
    return path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")


#: The architecture record is a short JSON text (a few hundred bytes a layer): anything
#: longer is refused from its header, before it is decompressed.
MAX_ARCHITECTURE_CHARS = 1 << 22
_ARCHITECTURE = "architecture.npy"
_PARAM_PREFIX = "param/"
#: Members under this prefix are a checkpoint's training state (nnlib.checkpointing): a
#: checkpoint is a model file with them beside, and loading it as a model skips them.
TRAINING_PREFIX = "training/"

_NpyCheck = Callable[[tuple[int, ...], np.dtype], str | None]


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild a model saved by `Sequential.save`.

    Everything is checked before it is decompressed: the archive's member list, the
    architecture (through the same shape and memory check as `build`), and each weight's
    .npy header (float32 or float64, exactly the shape the architecture needs). Weights that
    hold NaN or inf are refused: such a model outputs NaN for every input. A corrupt,
    truncated or mismatched file raises ValueError naming the file, the array and what was
    expected; so does a path that is not a regular file (`nnlib._files.open_regular`)."""
    path = Path(path)
    with open_regular(path, "model file") as handle:
        return _load_file(handle, path)


def _load_file(handle: BinaryIO, path: Path) -> Sequential:
    if not zipfile.is_zipfile(handle):
        raise ValueError(f"{path}: not an nnlib model (not an .npz archive, or truncated)")
    try:
        with zipfile.ZipFile(handle) as archive:
            return _load_archive(archive, str(path))
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupt or truncated model file ({error})") from None
    except (
        OSError,
        RuntimeError,  # an encrypted member
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        KeyError,
        NotImplementedError,
    ) as error:
        raise ValueError(f"{path}: corrupt or truncated model file ({error})") from None


def _load_archive(archive: zipfile.ZipFile, source: str) -> Sequential:
    stored = _param_members(archive.namelist(), source)
    model, summary = _plan_architecture(_read_architecture(archive, source), source)
    checks = _weight_checks(summary.param_shapes(), stored, source)
    for name, check in checks.items():  # every header before any data is read
        _check_npy(archive, stored[name], source, check)
    model.build(summary.input_shape)
    weights = {
        name: _finite(name, _read_npy(archive, stored[name], source, check), source)
        for name, check in checks.items()
    }
    model.set_weights(weights)
    return model


def _param_members(names: list[str], source: str) -> dict[str, str]:
    """The archive member of each stored weight, by weight name, once the member list is
    that of a model file: each member once, an architecture record, and nothing but weights
    beside it (and a checkpoint's training state, which a model load skips)."""
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: corrupt model file (a member is stored twice)")
    if _ARCHITECTURE not in names:
        raise ValueError(f"{source}: not an nnlib model (no architecture record)")
    stored = {
        name[len(_PARAM_PREFIX) : -len(".npy")]: name
        for name in names
        if name.startswith(_PARAM_PREFIX) and name.endswith(".npy")
    }
    others = sorted(
        set(names)
        - set(stored.values())
        - {_ARCHITECTURE}
        - {name for name in names if name.startswith(TRAINING_PREFIX)}
    )
    if others:
        raise ValueError(
            f"{source}: not an nnlib model file: unexpected member {others[0]!r} "
            "(expected architecture.npy, param/<layer>.<name>.npy and, in a checkpoint, "
            "training/...)"
        )
    return stored


def _text_record(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """The header check of the architecture record: one short text, refused by its size
    before it is decompressed."""
    if shape == () and dtype.kind == "U" and dtype.itemsize <= 4 * MAX_ARCHITECTURE_CHARS:
        return None
    return (
        f"the architecture record should be a text of at most {MAX_ARCHITECTURE_CHARS:,} "
        f"characters, found a {dtype} array of shape {shape}"
    )


def _read_architecture(archive: zipfile.ZipFile, source: str) -> object:
    """The architecture record's JSON value (not yet checked as an architecture)."""
    text = str(_read_npy(archive, _ARCHITECTURE, source, _text_record).item())
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(
            f"{source}: corrupt model file (the architecture record is not JSON: {error})"
        ) from None


def _weight_checks(
    expected: dict[str, Shape], stored: dict[str, str], source: str
) -> dict[str, _NpyCheck]:
    """The header check of every weight the architecture needs, once the file stores
    exactly those weights."""
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        detail = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(f"{source}: weights do not match the architecture ({detail})")
    return {name: _weight_check(name, expected[name]) for name in expected}


def _finite(name: str, value: np.ndarray, source: str) -> np.ndarray:
    """`value`, a weight read back, unless it holds NaN or inf: such a model outputs NaN for
    every input."""
    finite = np.isfinite(value)
    if not finite.all():
        raise ValueError(
            f"{source}: {name} holds {value.size - int(finite.sum()):,} NaN or infinite "
            f"values (of {value.size:,}); a model with non-finite weights outputs NaN for "
            "every input (was it saved after training diverged?)"
        )
    return value


def _weight_check(name: str, expected: Shape) -> _NpyCheck:
    """A header check for one weight: float32 or float64, and exactly the expected shape."""

    def check(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            return f"{name} is stored as {dtype}, expected float32 or float64"
        if tuple(shape) != tuple(expected):
            return f"{name} has shape {tuple(shape)}, the architecture needs {tuple(expected)}"
        return None

    return check


def _check_npy(archive: zipfile.ZipFile, member: str, source: str, check: _NpyCheck) -> None:
    """Refuse one .npy member if `check` says why, from its header alone: every header of a
    file is checked before any data is decompressed."""
    with archive.open(member) as handle:
        _checked_header(handle, member, source, check)


def _read_npy(archive: zipfile.ZipFile, member: str, source: str, check: _NpyCheck) -> np.ndarray:
    """Read one .npy member's header, refuse it if `check` says why, and only then read (and
    decompress) its data."""
    with archive.open(member) as handle:
        shape, fortran, dtype = _checked_header(handle, member, source, check)
        size = math.prod(shape) * dtype.itemsize
        raw = handle.read(size)
    if len(raw) != size:
        raise ValueError(f"{source}: corrupt or truncated model file ({member} is cut short)")
    return np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")


def _checked_header(
    handle: IO[bytes], member: str, source: str, check: _NpyCheck
) -> tuple[Shape, bool, np.dtype]:
    """The shape, Fortran order and dtype of a .npy member's header, once `check` accepts them."""
    shape, fortran, dtype = read_header(handle, f"{source}: {member}")
    problem = check(shape, dtype)
    if problem:
        raise ValueError(f"{source}: {problem}")
    return shape, fortran, dtype


def _float_dtype(dtype: object) -> np.dtype:
    """float32 or float64 as a numpy dtype; anything else is a ValueError."""
    try:
        result = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        result = np.dtype(object)
    if dtype is None or result.name not in ("float32", "float64"):
        raise ValueError(f"Sequential: dtype must be float32 or float64, got {dtype!r}")
    return result


def _plan_architecture(architecture: object, source: str) -> tuple[Sequential, Summary]:
    """The unbuilt model of an architecture record and its plan, size-checked like `build`."""
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise ValueError(f"{source}: not an nnlib model architecture")
    version = architecture.get("version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{source}: written by a newer nnlib (format version "
            f"{version}, this one reads {FORMAT_VERSION})"
        )
    try:
        layers = [_layer_of(record, source) for record in architecture["layers"]]
        model = Sequential(
            layers, seed=architecture.get("seed"), dtype=architecture.get("dtype", "float32")
        )
        summary = model.plan(architecture["input_shape"])
        check_fits(summary)
        np.random.default_rng(model.seed)  # a bad seed is a bad record, not a build error
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # A hand-edited or damaged record: say which file, not just which Python error.
        if str(error).startswith(source):
            raise
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{source}: invalid architecture record ({detail})") from None
    return model, summary


def _layer_of(record: Any, source: str) -> Layer:
    """One layer of an architecture record: its registered type made from its config (JSON
    lists back to the tuples the constructors take). A damaged record raises KeyError,
    TypeError or AttributeError, which the caller names."""
    cls = LAYER_TYPES.get(record.get("type"))
    if cls is None:
        raise ValueError(f"{source}: unknown layer type {record.get('type')!r}")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()}
    return cls(**config, name=record["name"])


def from_architecture(architecture: dict, source: str = "architecture") -> Sequential:
    """Rebuild an (untrained) model from `Sequential.architecture()`."""
    model, summary = _plan_architecture(architecture, source)
    return model.build(summary.input_shape)


__all__ = [
    "LayerError",
    "ModelTooLarge",
    "Sequential",
    "Summary",
    "check_fits",
    "from_architecture",
    "load",
]
