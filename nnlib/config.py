"""Experiment configuration: one set of fields for `nnlib train` flags, TOML config files and
the TUI's setup screen, validated in one place.

A config file is flat TOML with the same names as the CLI flags (dashes become underscores):

    dataset = "glyphs"
    arch = "conv(8,3) relu maxpool(2) dense(64) relu dense(10)"
    epochs = 5
    batch_size = 64
    optimizer = "sgd"
    lr = 0.05
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text
from ._files import read_regular
from ._validate import is_finite_number, shown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

OPTIMIZER_NAMES = ("sgd", "adam", "rmsprop")
DEFAULT_DATASET = "glyphs"
#: A config file is a dozen short lines; anything past this is not one (and is not read whole).
MAX_CONFIG_BYTES = 1 << 20
#: Steps between two checkpoints of a run by default (nnlib.checkpointing measures its cost).
DEFAULT_CHECKPOINT_EVERY = 500


class ConfigError(ValueError):
    """A config field or file that cannot be used; the message names the field."""


@dataclass
class ExperimentConfig:
    """Everything that defines a training run. `arch=None` picks a default for the dataset."""

    dataset: str = DEFAULT_DATASET
    arch: str | None = None
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: L1 regularization of the weights (the optimizer's `l1`), beside weight_decay's L2
    l1: float = 0.0
    seed: int = 0
    #: the share of the training data held out for validation (TensorFlow Playground's
    #: ratio of training to test data, the other way round)
    validation_split: float = 0.1
    subset: int | None = None
    #: the noise of a generated dataset, in its generator's unit (None: the dataset's own)
    noise: float | None = None
    data_dir: str | None = None
    run_dir: str | None = None
    histogram_every: int = 50
    #: the label column of a CSV dataset, by header name or 0-based index (None: auto)
    label_column: int | str | None = None
    #: complete checkpoints every N steps (0: only when the run stops); see nnlib.checkpointing
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    #: a fork: the run directory it starts from and the step of that run's checkpoint
    parent_run: str | None = None
    parent_step: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> ExperimentConfig:
        """Raise ConfigError naming the first bad field (checked in the order of the fields'
        groups below)."""
        self._check_experiment()
        self._check_optimizer()
        self._check_preparation()
        self._check_run()
        return self

    def _check_experiment(self) -> None:
        """What is trained on what, for how long, from which seed."""
        _require(
            _nonblank(self.dataset),
            "dataset",
            "a dataset name or a file path",
            self.dataset,
        )
        _require(
            self.arch is None or _nonblank(self.arch),
            "arch",
            "an architecture spec such as 784-128-10",
            self.arch,
        )
        for name in ("epochs", "batch_size", "histogram_every"):
            value = getattr(self, name)
            _require(_int_at_least(value, 1), name, "a positive integer", value)
        _require(_int_at_least(self.seed, 0), "seed", "a non-negative integer", self.seed)
        _require(
            self.subset is None or _int_at_least(self.subset, 1),
            "subset",
            "a positive number of samples",
            self.subset,
        )

    def _check_optimizer(self) -> None:
        """The optimizer and its hyperparameters."""
        _require(
            self.optimizer in OPTIMIZER_NAMES,
            "optimizer",
            f"one of {', '.join(OPTIMIZER_NAMES)}",
            self.optimizer,
        )
        _require(is_finite_number(self.lr) and self.lr > 0, "lr", "a positive number", self.lr)
        _require(
            is_finite_number(self.momentum) and 0 <= self.momentum < 1,
            "momentum",
            "a number in [0, 1)",
            self.momentum,
        )
        _require(
            is_finite_number(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            "a number >= 0",
            self.weight_decay,
        )
        _require(is_finite_number(self.l1) and self.l1 >= 0, "l1", "a number >= 0", self.l1)

    def _check_preparation(self) -> None:
        """How the data is split and generated, and which CSV column holds its labels."""
        _require(
            is_finite_number(self.validation_split) and 0 <= self.validation_split < 1,
            "validation_split",
            "a fraction in [0, 1)",
            self.validation_split,
        )
        _require(
            self.noise is None or (is_finite_number(self.noise) and self.noise >= 0),
            "noise",
            "a number >= 0 (or unset: the dataset's default)",
            self.noise,
        )
        _require(
            self.label_column is None or _is_int(self.label_column) or _nonblank(self.label_column),
            "label_column",
            "a CSV column name or index",
            self.label_column,
        )

    def _check_run(self) -> None:
        """The run's checkpoints, the run it forks and its folders."""
        _require(
            _int_at_least(self.checkpoint_every, 0),
            "checkpoint_every",
            "a non-negative integer (0: only when the run stops)",
            self.checkpoint_every,
        )
        _require(
            (self.parent_run is None) == (self.parent_step is None),
            "parent_step",
            "given together with parent_run (a fork names both)",
            self.parent_step,
        )
        _require(
            self.parent_step is None or _int_at_least(self.parent_step, 0),
            "parent_step",
            "a non-negative step",
            self.parent_step,
        )
        for name in ("data_dir", "run_dir", "parent_run"):
            value = getattr(self, name)
            _require(value is None or _nonblank(value), name, "a folder path", value)

    # -- conversions ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, None included (the run's config.json records them all)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A validated copy with `changes`; None values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> ExperimentConfig:
        """Validate `values`; errors (unknown or bad fields) are prefixed with `source`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(known))}"
            )
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExperimentConfig:
        """Read a TOML config file. Every way a file can be unusable (see `read_toml`, and
        bad fields) raises ConfigError naming the file."""
        return cls.from_dict(read_toml(path), source=str(Path(path)))

    def to_toml(self) -> str:
        """The config as TOML (that `load` reads back equal); unset (None) fields are left
        out. Raises ConfigError for a string TOML cannot hold (a lone surrogate)."""
        lines = ["# nnlib experiment: `nnlib train --config FILE` or `nntui --config FILE`"]
        for name, value in self.to_dict().items():
            if value is not None:
                lines.append(f"{name} = {_toml_value(name, value)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the TOML file atomically (its folder is made if missing)."""
        return atomic_write_text(Path(path), self.to_toml())


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The table of a TOML file (an experiment config, a sweep). Every way a file can be
    unusable (missing, unreadable, too large, not UTF-8, not TOML, nested past the parser's
    recursion limit) raises ConfigError naming the file."""
    path = Path(path)
    data = read_regular(path, "config file", ConfigError, MAX_CONFIG_BYTES)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: cannot read the config file (not UTF-8 text: byte {error.start})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (arrays or tables nested too deeply)") from None


#: TOML basic-string escapes (toml.io/en/v1.0.0#string): these, and \u with four hex
#: digits for the other control characters, which may not appear raw.
_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_value(name: str, value: Any) -> str:
    """`value` of field `name` as TOML: a boolean, a number, or else a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_string(name, str(value))


def _toml_string(name: str, text: str) -> str:
    """`text` as a TOML basic string, escaped (`_TOML_ESCAPES`); ConfigError naming field
    `name` for what UTF-8 cannot encode (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(
            f"{name} cannot be saved as TOML: it holds {text[error.start]!r}, "
            "which is not a Unicode character (TOML files are UTF-8)"
        ) from None
    escaped = "".join(
        _TOML_ESCAPES.get(char)
        or (f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in text
    )
    return f'"{escaped}"'


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(value: Any, low: int) -> bool:
    """Whether `value` is an integer (not a bool) of at least `low`."""
    return _is_int(value) and value >= low


def _nonblank(value: Any) -> bool:
    """Whether `value` is a string with something in it besides whitespace."""
    return isinstance(value, str) and value.strip() != ""


def _require(ok: bool, field_name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{field_name} must be {expected}, got {shown(value)}")
