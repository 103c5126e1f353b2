"""Complete checkpoints: everything a run needs to continue exactly, in one atomic .npz.

A checkpoint is a model file (`Sequential.save`: the architecture and every parameter,
BatchNorm's moving statistics included) with the training state beside it under `training/`:

    training/state.npy                       JSON text: position, generators, optimizer
                                             hyperparameters and step count, callbacks' state,
                                             hyperparameter changes requested but not applied
    training/optimizer/<param>/<slot>.npy    the optimizer's arrays (velocity, m, v, ...)

No pickle anywhere; `nnlib.model.load` reads a checkpoint as a model for inference (it skips
`training/`). The position is the epoch, the batches and samples of it already trained, the
running sums behind the epoch's logs and the shuffle generator's state at the epoch's start,
so the same permutation is drawn again and training goes on at the next sample; dropout
layers' generators are saved as they stand. With one BLAS thread a resumed run gives the
same losses and weights, bit for bit, as the run that was never interrupted.

A run writes `checkpoints/step-<step>.npz` every `every` steps and when it stops (keeping
the newest `keep`), and `checkpoints/best.npz` when the monitored metric improves at an
epoch's end; see `Checkpointer`.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ._atomic import atomic_write
from ._files import open_regular
from ._npy import write_npz
from ._validate import is_finite_number
from .callbacks.base import Callback, Logs
from .callbacks.stopping import improvement_mode
from .config import DEFAULT_CHECKPOINT_EVERY
from .model import TRAINING_PREFIX, Sequential, _load_archive, _read_npy, npz_path

if TYPE_CHECKING:
    from .layers import Param
    from .trainer import Position, Trainer

FORMAT = "nnlib-checkpoint"
FORMAT_VERSION = 1
#: A run's checkpoints live in this folder of its run directory.
FOLDER = "checkpoints"
#: Steps between two checkpoints by default. A LeNet-5 checkpoint (SGD with momentum) is 0.5 MB
#: and took 8 ms to write against 8.3 ms a training step (glyphs, one thread, load average
#: 4.7): 0.19% of training time at 500 steps (benchmarks/bench_checkpoint.py), far under the 2%
#: budget, with at most 500 steps redone after a crash.
DEFAULT_EVERY = DEFAULT_CHECKPOINT_EVERY
#: Step checkpoints kept by default (the newest); best.npz is kept besides.
DEFAULT_KEEP = 3
BEST = "best.npz"
_STATE = TRAINING_PREFIX + "state.npy"
_SLOTS = TRAINING_PREFIX + "optimizer/"
_STEP_FILE = re.compile(r"step-(\d+)\.npz")
#: The state record is a few kilobytes; anything longer is refused from its header.
MAX_STATE_CHARS = 1 << 22
#: Bit generators a saved generator state may name.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def step_file(folder: Path, step: int) -> Path:
    return folder / f"step-{step}.npz"


# -- writing ------------------------------------------------------------------------------
def capture(trainer: Trainer, reason: str = "") -> dict[str, np.ndarray]:
    """The members of a checkpoint of `trainer` as it stands between two batches."""
    position = trainer.position()
    optimizer = trainer.optimizer.state_dict()
    arrays = trainer.model.archive_arrays()
    scalars = _split_slots(optimizer["slots"], arrays)
    callbacks = [
        {"type": type(callback).__name__, "state": state}
        for callback, state in _callback_states(trainer)
    ]
    state = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "reason": reason,
        "step": trainer.global_step,
        "epoch": position.epoch,
        "batch": position.batch,
        "offset": position.offset,
        "seen": position.seen,
        # a diverged epoch's sums are NaN: null here, NaN again when restored
        "loss_sum": _finite_or_null(position.loss_sum),
        "correct": _finite_or_null(position.correct),
        "shuffle_state": position.shuffle_state,
        "begun": position.begun,
        "batch_size": trainer.batch_size,
        # the plan's replicas: they sum a batch's gradient in their order, so a resume keeps them
        "replicas": trainer.replica_count,
        "replica_processes": trainer.replica_processes,
        # requested, not applied yet (a batch size waits for the next epoch): applied there
        "pending": [list(request) for request in trainer.control.requests()],
        "layer_rngs": {name: rng.bit_generator.state for name, rng in _generators(trainer.model)},
        "optimizer": {
            "name": optimizer["name"],
            "hyperparameters": optimizer["hyperparameters"],
            "iterations": optimizer["iterations"],
            "scalars": scalars,
        },
        "callbacks": callbacks,
    }
    arrays[_STATE[: -len(".npy")]] = np.array(json.dumps(state, allow_nan=False))
    return arrays


def _callback_states(trainer: Trainer) -> list[tuple[Callback, dict[str, Any]]]:
    """The trainer's callbacks that keep a state, each with it, in their order."""
    return [
        (callback, state)
        for callback in trainer.callbacks
        if (state := callback.state_dict()) is not None
    ]


def _generators(model: Sequential) -> list[tuple[str, np.random.Generator]]:
    """The random generator of each layer that draws (dropout), with the layer's name."""
    return [
        (layer.name, rng)
        for layer in model.layers
        if isinstance(rng := getattr(layer, "rng", None), np.random.Generator)
    ]


def _split_slots(
    slots: dict[str, dict[str, Any]], arrays: dict[str, np.ndarray]
) -> dict[str, dict[str, int]]:
    """Put the optimizer's arrays into `arrays` as members under training/optimizer/ and
    return its other slot values (step counts), which go into the JSON state record."""
    scalars: dict[str, dict[str, int]] = {}
    for name, values in slots.items():
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                arrays[f"{_SLOTS}{name}/{key}"] = value
            else:
                scalars.setdefault(name, {})[key] = value
    return scalars


def _finite_or_null(value: float) -> float | None:
    """A float for the JSON state record, which has no NaN or infinity: null stands for them."""
    return value if math.isfinite(value) else None


def _null_as_nan(value: float | None) -> float:
    """A float of the JSON state record, null read back as NaN (see `_finite_or_null`)."""
    return math.nan if value is None else float(value)


def save(trainer: Trainer, path: str | os.PathLike, reason: str = "") -> Path:
    """Write a checkpoint of `trainer` to `path` (.npz added if missing), atomically."""
    path = npz_path(path)
    arrays = capture(trainer, reason)
    return atomic_write(path, lambda handle: write_npz(handle, arrays))


# -- reading ------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (built, with its weights), the training state record
    and the optimizer's arrays per parameter."""

    path: Path
    model: Sequential
    state: dict[str, Any]
    slots: dict[str, dict[str, np.ndarray]]

    @property
    def step(self) -> int:
        return self.state["step"]

    @property
    def epoch(self) -> int:
        return self.state["epoch"]


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save`; every way it can be unusable (missing, not a
    regular file, not a checkpoint, a model file without training state, corrupt,
    mismatched) raises CheckpointError naming the file. Sizes are checked from headers
    before data is read."""
    path = Path(path)
    with open_regular(path, "checkpoint file", CheckpointError) as handle:
        return _load_file(handle, path)


def _load_file(handle: BinaryIO, path: Path) -> Checkpoint:
    source = str(path)
    try:
        with zipfile.ZipFile(handle) as archive:
            model = _load_archive(archive, source)
            if _STATE not in archive.namelist():
                raise CheckpointError(
                    f"{path}: a model file without training state, not a checkpoint "
                    "(it loads for inference with nnlib.model.load)"
                )
            state = _read_state(archive, source)
            slots = _read_slots(archive, source, model, state)
    except CheckpointError:
        raise
    except ValueError as error:
        if str(error).startswith(source):
            raise CheckpointError(str(error)) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({error})") from None
    except (OSError, RuntimeError, zipfile.BadZipFile, zlib.error, EOFError, KeyError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({error})") from None
    return Checkpoint(path, model, state, slots)


def _read_state(archive: zipfile.ZipFile, source: str) -> dict[str, Any]:
    def text_record(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if shape == () and dtype.kind == "U" and dtype.itemsize <= 4 * MAX_STATE_CHARS:
            return None
        return f"the training state should be a short text, found a {dtype} array of {shape}"

    try:
        state = json.loads(str(_read_npy(archive, _STATE, source, text_record).item()))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{source}: the training state is not JSON ({error})") from None
    _check_state(state, source)
    return state


#: A test of one value of the JSON state record.
_Test = Callable[[Any], bool]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive_count(value: Any) -> bool:
    return _is_count(value) and value >= 1


def _or_null(test: _Test) -> _Test:
    """`test` that also passes null (a NaN sum, a run without a shuffle generator)."""

    def nullable(value: Any) -> bool:
        return value is None or test(value)

    return nullable


def _list_of(item_ok: _Test) -> _Test:
    """The test for a JSON list whose every item passes `item_ok`."""

    def test(value: Any) -> bool:
        return isinstance(value, list) and all(map(item_ok, value))

    return test


def _dict_of(item_ok: _Test) -> _Test:
    """The test for a JSON object whose every value passes `item_ok`."""

    def test(value: Any) -> bool:
        return isinstance(value, dict) and all(map(item_ok, value.values()))

    return test


def _is_request(request: Any) -> bool:
    """True for a queued steering request: [name, value, source]."""
    return (
        isinstance(request, list)
        and len(request) == 3
        and isinstance(request[0], str)
        and is_finite_number(request[1])
        and isinstance(request[2], str)
    )


def _is_optimizer_state(optimizer: Any) -> bool:
    """True for an optimizer's record: its name, hyperparameters, iterations and per-slot
    step counts."""
    return (
        isinstance(optimizer, dict)
        and isinstance(optimizer.get("name"), str)
        and isinstance(optimizer.get("hyperparameters"), dict)
        and _is_count(optimizer.get("iterations"))
        and _dict_of(_dict_of(_is_count))(optimizer.get("scalars"))
    )


def _is_callback_state(record: Any) -> bool:
    """True for a callback's record: {type, state}."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("type"), str)
        and isinstance(record.get("state"), dict)
    )


def _rng_ok(state: Any) -> bool:
    """True if `state` is a bit generator's state numpy takes back."""
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        return False
    try:
        getattr(np.random, state["bit_generator"])().state = state
    except (ValueError, TypeError, KeyError, OverflowError):
        return False
    return True


#: The state record's fields, each (name, value when absent, test, what it must be), in the
#: order they are checked: its format and version first, the rest once the version is known
#: to be one this nnlib reads.
_HEADER_FIELDS: tuple[tuple[str, Any, _Test, str], ...] = (
    ("format", None, lambda value: value == FORMAT, repr(FORMAT)),
    ("version", None, _is_count, "a non-negative integer"),
)
_STATE_FIELDS: tuple[tuple[str, Any, _Test, str], ...] = (
    *(
        (name, None, _is_count, "a non-negative integer")
        for name in ("step", "epoch", "batch", "offset", "seen", "batch_size")
    ),
    ("batch_size", None, _is_positive_count, "a positive integer"),
    ("replicas", 1, _is_positive_count, "a positive integer"),
    ("replica_processes", False, lambda value: isinstance(value, bool), "true or false"),
    ("loss_sum", "missing", _or_null(is_finite_number), "a finite number or null (NaN)"),
    ("correct", "missing", _or_null(is_finite_number), "a finite number or null (NaN)"),
    ("begun", False, lambda value: isinstance(value, bool), "true or false"),
    ("pending", [], _list_of(_is_request), "a list of [name, value, source] requests"),
    ("shuffle_state", None, _or_null(_rng_ok), "a generator state or null"),
    ("layer_rngs", None, _dict_of(_rng_ok), "an object of generator states"),
    (
        "optimizer",
        None,
        _is_optimizer_state,
        "an object with name, hyperparameters, iterations and scalars",
    ),
    ("callbacks", None, _list_of(_is_callback_state), "a list of {type, state} objects"),
)


def _check_state(state: Any, source: str) -> None:
    """Raise CheckpointError naming the first field of the state record that is wrong."""
    if not isinstance(state, dict):
        raise _wrong_field(source, "record", state, "an object")
    _check_fields(state, source, _HEADER_FIELDS)
    if state["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: written by a newer nnlib (checkpoint version {state['version']}, this "
            f"one reads {FORMAT_VERSION})"
        )
    _check_fields(state, source, _STATE_FIELDS)


def _check_fields(
    state: dict[str, Any], source: str, fields: tuple[tuple[str, Any, _Test, str], ...]
) -> None:
    """CheckpointError for the first of `fields` whose value (or, absent, its stand-in) fails
    its test."""
    for name, absent, test, expected in fields:
        if not test(state.get(name, absent)):
            raise _wrong_field(source, name, state.get(name), expected)


def _wrong_field(source: str, name: str, value: Any, expected: str) -> CheckpointError:
    """The error for a field of the state record that is not what it must be, quoting it."""
    shown = json.dumps(value)[:60]
    return CheckpointError(f"{source}: training state: {name} must be {expected}, got {shown}")


def _read_slots(
    archive: zipfile.ZipFile, source: str, model: Sequential, state: dict[str, Any]
) -> dict[str, dict[str, np.ndarray]]:
    """The optimizer's arrays, each checked (a parameter of the model, its shape and dtype)
    from its header before its data is read."""
    params = model.named_parameters()
    slots: dict[str, dict[str, np.ndarray]] = {
        name: dict(values) for name, values in state["optimizer"]["scalars"].items()
    }
    for member in archive.namelist():
        if member == _STATE or not member.startswith(TRAINING_PREFIX):
            continue
        name, key = _slot_member(member, params, source)
        slots.setdefault(name, {})[key] = _read_slot(archive, member, params[name].value, source)
    return slots


def _read_slot(
    archive: zipfile.ZipFile, member: str, expected: np.ndarray, source: str
) -> np.ndarray:
    """One optimizer array, of its parameter's shape and dtype (checked from its header) and
    finite."""

    def check(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
        if tuple(shape) != expected.shape or dtype != expected.dtype:
            return (
                f"{member} is {dtype} {tuple(shape)}, the parameter is "
                f"{expected.dtype} {expected.shape}"
            )
        return None

    value = _read_npy(archive, member, source, check)
    if not np.isfinite(value).all():
        raise CheckpointError(f"{source}: {member} holds NaN or infinite values")
    return value.copy()


def _slot_member(member: str, params: dict[str, Param], source: str) -> tuple[str, str]:
    """(parameter, slot) that a member under training/ holds; CheckpointError unless it is
    training/optimizer/<parameter>/<slot>.npy for a parameter of the model."""
    name, _, key = member[len(_SLOTS) : -len(".npy")].rpartition("/")
    if not member.startswith(_SLOTS) or not member.endswith(".npy") or name not in params:
        raise CheckpointError(
            f"{source}: unexpected member {member!r} (expected "
            "training/optimizer/<parameter>/<slot>.npy for a parameter of the model)"
        )
    return name, key


# -- restoring ----------------------------------------------------------------------------
def restore(
    trainer: Trainer,
    checkpoint: Checkpoint,
    hyperparameters: bool = True,
    extra: dict[str, Any] | None = None,
) -> None:
    """Put `checkpoint` into `trainer` so that its next `fit` continues exactly where the
    checkpoint was taken. With hyperparameters=False the optimizer's hyperparameters and
    the batch size set now are kept (a fork's changes); an optimizer of another kind
    starts its state afresh. `extra` fields go into the run's resume event. With
    hyperparameters, the batch size in force and the changes requested but not yet applied
    come back too (the next fit keeps that batch size, whatever it is given).

    Raises CheckpointError when the weights do not fit the trainer's model, or a requested
    change does not suit it; nothing is changed then."""
    source = str(checkpoint.path)
    state = checkpoint.state
    pending = _pending_requests(trainer, state, source) if hyperparameters else []
    model = trainer.model
    weights = checkpoint.model.get_weights()
    _check_weights_fit(model, weights, source)
    model.set_weights(weights)
    saved = state["optimizer"]
    if saved["name"] == trainer.optimizer.name:
        trainer.optimizer.load_state(
            {
                "name": saved["name"],
                "hyperparameters": saved["hyperparameters"],
                "iterations": saved["iterations"],
                "slots": checkpoint.slots,
            },
            hyperparameters=hyperparameters,
        )
    _restore_layer_rngs(model, state["layer_rngs"])
    _restore_callbacks(trainer, state["callbacks"])
    if hyperparameters:
        trainer.batch_size = state["batch_size"]
        trainer.control.restore_requests(pending)
    trainer.global_step = state["step"]
    trainer.epoch = state["epoch"]
    trainer.resume_from = _resume_position(state, source, hyperparameters, extra)


def _pending_requests(
    trainer: Trainer, state: dict[str, Any], source: str
) -> list[tuple[str, float, str]]:
    """The changes requested but not applied when the checkpoint was taken, each checked
    against the trainer before anything is restored."""
    pending = [tuple(request) for request in state.get("pending", [])]
    for name, value, _ in pending:
        try:
            trainer.validate_hyperparameter(name, value, memory=False)
        except ValueError as error:
            raise CheckpointError(f"{source}: a requested change: {error}") from None
    return pending


def _check_weights_fit(model: Sequential, weights: dict[str, np.ndarray], source: str) -> None:
    """CheckpointError unless the checkpoint's weights are exactly this model's parameters,
    with their shapes."""
    mine = {name: p.value for name, p in model.named_parameters().items()}
    missing, unexpected = sorted(set(mine) - set(weights)), sorted(set(weights) - set(mine))
    if missing or unexpected:
        detail = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which it lacks"
        raise CheckpointError(
            f"{source}: the checkpoint's weights do not fit this model ({model.spec}): the "
            f"checkpoint {detail}"
        )
    for name, value in weights.items():
        if value.shape != mine[name].shape:
            raise CheckpointError(
                f"{source}: {name} has shape {value.shape} in the checkpoint, this model's "
                f"is {mine[name].shape}"
            )


def _restore_layer_rngs(model: Sequential, saved: dict[str, Any]) -> None:
    """Put each saved generator state back into the layer of that name that draws (dropout)."""
    for name, rng in _generators(model):
        if name in saved:
            rng.bit_generator.state = saved[name]


def _resume_position(
    state: dict[str, Any], source: str, hyperparameters: bool, extra: dict[str, Any] | None
) -> Position:
    """Where the next `fit` goes on: the state record's position, read back."""
    from .trainer import Position

    return Position(
        epoch=state["epoch"],
        batch=state["batch"],
        offset=state["offset"],
        seen=state["seen"],
        loss_sum=_null_as_nan(state["loss_sum"]),
        correct=_null_as_nan(state["correct"]),
        shuffle_state=state["shuffle_state"],
        begun=state.get("begun", state["batch"] > 0),
        source=source,
        batch_size=state["batch_size"] if hyperparameters else None,
        replicas=state.get("replicas", 1) if hyperparameters else 1,
        replica_processes=state.get("replica_processes", False) and hyperparameters,
        extra=dict(extra or {}),
    )


def _restore_callbacks(trainer: Trainer, saved: list[dict[str, Any]]) -> None:
    """Each saved callback state goes to the callback of the same type and rank among those
    of its type (the second StepDecay's to the second StepDecay); states without a match,
    and callbacks without a state, are left alone."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in saved:
        by_type.setdefault(record["type"], []).append(record["state"])
    seen: dict[str, int] = {}
    for callback, _ in _callback_states(trainer):
        kind = type(callback).__name__
        rank = seen[kind] = seen.get(kind, -1) + 1
        states = by_type.get(kind, [])
        if rank < len(states):
            callback.load_state(states[rank])


# -- a run's checkpoints ------------------------------------------------------------------
def step_checkpoints(folder: str | os.PathLike) -> dict[int, Path]:
    """The step checkpoints in `folder` by step (none when it does not exist)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    return {
        int(match.group(1)): Path(folder) / name
        for name in names
        if (match := _STEP_FILE.fullmatch(name))
    }


#: The longest step number a RUN@<step> may give (a step is an int64: 19 digits at most).
MAX_STEP_DIGITS = 18
_DIGITS = re.compile("[0-9]+")


def find(run_dir: str | os.PathLike, which: str | int = "last") -> Path:
    """The checkpoint of run `run_dir` at `which`: "last" (the newest), "best", or a step.
    CheckpointError says what there is when it is not there."""
    folder = Path(run_dir) / FOLDER
    steps = step_checkpoints(folder)
    best = folder / BEST
    if which == "last" and steps:
        return steps[max(steps)]
    if which in steps:
        return steps[which]
    # "best", "last" of a run with no step checkpoint, or a step whose checkpoint is the best
    if best.is_file() and (which in ("best", "last") or load(best).step == which):
        return best
    raise CheckpointError(_not_found(run_dir, which, steps, best.is_file()))


def _not_found(
    run_dir: str | os.PathLike, which: str | int, steps: dict[int, Path], has_best: bool
) -> str:
    """Why `find` has no checkpoint at `which`, and what the run has instead."""
    folder = Path(run_dir) / FOLDER
    if which == "best":
        return f"{run_dir}: no best checkpoint ({folder / BEST} is missing)"
    if which == "last":
        return f"{run_dir}: no checkpoint in {folder} (the run wrote none before it ended)"
    available = ", ".join(map(str, sorted(steps))) or "none"
    return f"{run_dir}: no checkpoint at step {which}; the run has steps {available}" + (
        " and best" if has_best else ""
    )


def parse_source(text: str) -> tuple[str, str | int]:
    """ "RUN", "RUN@last", "RUN@best" or "RUN@<step>" as (run, which). A step is ASCII digits,
    at most 18 of them (a step count fits an int64 long before that; and past 4,300 digits
    Python refuses to convert a string to an int at all)."""
    run, at, which = text.rpartition("@")
    if not at:
        run, which = text, "last"
    expected = f"{reprlib.repr(text)}: expected RUN, RUN@last, RUN@best or RUN@<step>"
    if not run:
        raise CheckpointError(f"{expected}, got no RUN")
    if which in ("last", "best"):
        return run, which
    if not _DIGITS.fullmatch(which):
        raise CheckpointError(f"{expected}, got {reprlib.repr(which)} after the @")
    if len(which) > MAX_STEP_DIGITS:
        raise CheckpointError(
            f"{expected}, got a step of {len(which):,} digits; a step of at most "
            f"{MAX_STEP_DIGITS} digits"
        )
    return run, int(which)


# -- the callback -------------------------------------------------------------------------
class Checkpointer(Callback):
    """Write complete checkpoints into `folder`: step-<step>.npz every `every` steps (0: only
    when the run stops) and when the run stops at a batch boundary, keeping the newest
    `keep`; and best.npz whenever `monitor` improves at an epoch's end (None: never).
    They log no event (the files are the record; a run_resume event names the one used),
    which keeps a run's log as small as it was.

    A run that ends in the middle of a batch (an exception, a Ctrl+C inside numpy) writes no
    checkpoint then: its last one is the resume point."""

    def __init__(
        self,
        folder: str | os.PathLike,
        every: int = DEFAULT_EVERY,
        keep: int = DEFAULT_KEEP,
        monitor: str | None = "val_loss",
        mode: str = "auto",
    ) -> None:
        for name, value, ok, low in (
            ("every", every, _is_count, 0),
            ("keep", keep, _is_positive_count, 1),
        ):
            if not ok(value):
                raise ValueError(f"Checkpointer: {name} must be an integer >= {low}, got {value!r}")
        self.folder = Path(folder)
        self.every = every
        self.keep = keep
        self.monitor = monitor
        self.mode = improvement_mode(monitor, mode) if monitor else "min"
        self.best = math.inf if self.mode == "min" else -math.inf
        self._written: tuple[int, int] | None = None  # (step, epoch) of the last one

    def state_dict(self) -> dict[str, Any]:
        return {"best": _finite_or_null(self.best)}

    def load_state(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        if best is not None and is_finite_number(best):
            self.best = float(best)

    def on_train_begin(self, trainer: Trainer) -> None:
        start = trainer.resume_from
        self._written = (trainer.global_step, start.epoch) if start is not None else None

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self._save_step(trainer, f"every {self.every} steps")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        value = logs.get(self.monitor) if self.monitor else None
        if not isinstance(value, float) or not math.isfinite(value):
            return
        if value < self.best if self.mode == "min" else value > self.best:
            self.best = value
            save(trainer, self.folder / BEST, f"best {self.monitor}")

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if trainer.consistent and trainer.global_step > 0:
            self._save_step(trainer, f"run end ({logs.get('reason')})")

    def _save_step(self, trainer: Trainer, why: str) -> None:
        where = (trainer.global_step, trainer.position().epoch)
        if where == self._written:
            return
        save(trainer, step_file(self.folder, trainer.global_step), why)
        self._written = where
        steps = step_checkpoints(self.folder)
        for step in sorted(steps)[: -self.keep]:
            steps[step].unlink(missing_ok=True)
