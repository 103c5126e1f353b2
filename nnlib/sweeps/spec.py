"""The sweep file: a base experiment (the keys of `nnlib train --config`) and a `[sweep]` table
saying what to vary, how, and what to rank by. Parsed and checked whole before any trial runs:
every trial's config is built and validated here, so a bad value is reported at once, naming
where it came from, and never after an hour of other trials.

    dataset = "spirals"
    arch = "2-32-32-3"
    epochs = 20

    [sweep]
    method = "random"          # or "grid" (every combination, in order)
    trials = 8                 # random: required; grid: the number of combinations, or omit
    metric = "val_accuracy"    # loss, accuracy, val_loss or val_accuracy
    direction = "max"          # default: max for accuracies, min otherwise
    seed = 0                   # of the random draws

    [sweep.params]
    lr = { min = 0.001, max = 1.0, log = true }    # a range (grid: needs steps = N)
    batch_size = [16, 32, 64]                       # values
    arch = ["2-16-3", "2-32-32-3"]

    [sweep.early_stop]         # optional: median stopping
    after = 3                  # compare from this epoch on (1-based)
    min_trials = 2             # finished trials needed before any trial is stopped
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .._validate import is_finite_number
from ..callbacks.stopping import improvement_mode
from ..config import ConfigError, ExperimentConfig, read_toml

METHODS = ("grid", "random")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
DIRECTIONS = ("min", "max")
#: A sweep is a list of runs a person will look at; past this it is a typo, not a plan (and a
#: grid's size is worked out from its lists before any combination is made).
MAX_TRIALS = 10_000
#: Fields a sweep may not vary or set: it places every trial's run directory itself.
RESERVED = ("run_dir",)
_SWEEP_KEYS = ("method", "trials", "metric", "direction", "seed", "params", "early_stop")
_SPEC_KEYS = ("base", "method", "metric", "direction", "seed", "params", "early_stop", "trials")
_RANGE_KEYS = ("min", "max", "log", "steps")
_STOP_KEYS = ("rule", "after", "min_trials")


class SweepError(ConfigError):
    """A sweep file or table that cannot be used; the message names the key."""


@dataclass(frozen=True)
class EarlyStop:
    """Median stopping: from epoch `after` on, a trial whose best metric so far is worse than
    the median of the finished trials' best at the same epoch is stopped (Google Vizier's
    median stopping rule), once at least `min_trials` trials have finished."""

    after: int = 3
    min_trials: int = 2


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: the base config and every trial's parameters, in order."""

    base: ExperimentConfig
    method: str
    metric: str
    direction: str
    seed: int
    params: dict[str, Any]  # as written in the file (recorded in sweep.json)
    trials: tuple[dict[str, Any], ...]
    early_stop: EarlyStop | None

    def config(self, index: int) -> ExperimentConfig:
        """Trial `index`'s experiment: the base with its parameters."""
        return dataclasses.replace(self.base, **self.trials[index])

    def to_dict(self) -> dict[str, Any]:
        """What sweep.json records of the spec (read back by `from_dict`)."""
        return {
            "base": self.base.to_dict(),
            "method": self.method,
            "metric": self.metric,
            "direction": self.direction,
            "seed": self.seed,
            "params": self.params,
            "early_stop": dataclasses.asdict(self.early_stop) if self.early_stop else None,
            "trials": list(self.trials),
        }

    @classmethod
    def from_dict(cls, values: Any, where: str = "sweep.json spec") -> SweepSpec:
        """The spec recorded in a sweep.json, checked again as a file's is (the folder may
        have been edited): SweepError naming the key. Each trial's config is validated."""
        _need(isinstance(values, dict), where, "spec", "a table", values)
        _no_unknown(values, _SPEC_KEYS, where)
        _no_missing(values, _SPEC_KEYS, where)
        given = values["base"]
        _need(isinstance(given, dict), where, "base", "a table of config fields", given)
        try:
            base = ExperimentConfig.from_dict(given, source=f"{where} base")
        except ConfigError as error:
            raise SweepError(str(error)) from None
        method, metric, direction, seed = (values[key] for key in _SPEC_KEYS[1:5])
        _need(method in METHODS, where, "method", f"one of {', '.join(METHODS)}", method)
        _need(metric in METRICS, where, "metric", f"one of {', '.join(METRICS)}", metric)
        _need(direction in DIRECTIONS, where, "direction", "'min' or 'max'", direction)
        _need(_is_int(seed, 0), where, "seed", "a non-negative integer", seed)
        params, trials = values["params"], values["trials"]
        _check_recorded_trials(base, params, trials, where)
        return cls(
            base=base,
            method=method,
            metric=metric,
            direction=direction,
            seed=seed,
            params=params,
            trials=tuple(trials),
            early_stop=_early_stop(values["early_stop"], where),
        )


def _check_recorded_trials(base: ExperimentConfig, params: Any, trials: Any, where: str) -> None:
    """The parameters and trials a sweep.json records: each trial a table of those
    parameters only, its config valid."""
    _need(
        isinstance(params, dict) and len(params) > 0 and set(params) <= set(_parameters()),
        where,
        "params",
        "a table of config fields to vary",
        params,
    )
    _need(
        isinstance(trials, list) and 0 < len(trials) <= MAX_TRIALS,
        where,
        "trials",
        f"a list of 1 to {MAX_TRIALS:,} trials",
        trials,
    )
    for index, trial in enumerate(trials):
        _need(
            isinstance(trial, dict) and set(trial) <= set(params),
            f"{where} trial {index}",
            "params",
            f"a table of values for {', '.join(params)}",
            trial,
        )
        _checked(base, trial, f"{where} trial {index}")


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep file; SweepError (a ConfigError) names the file and the key."""
    return parse_sweep(read_toml(path), source=str(Path(path)))


def parse_sweep(values: dict[str, Any], source: str = "sweep") -> SweepSpec:
    """Check a sweep file's table (as TOML gives it) and draw or enumerate its trials."""
    table, base = _split_file(values, source)
    where = f"{source} [sweep]"
    _no_unknown(table, _SWEEP_KEYS, where)
    method = table.get("method", "grid")
    _need(method in METHODS, where, "method", f"one of {', '.join(METHODS)}", method)
    seed = table.get("seed", 0)
    _need(_is_int(seed, 0), where, "seed", "a non-negative integer", seed)
    metric, direction = _ranking(table, base, where)
    params = table.get("params")
    if not isinstance(params, dict) or not params:
        _refuse(
            where,
            "params",
            "a table of the parameters to vary, e.g. [sweep.params] lr = [0.01, 0.1]",
            params,
        )
    choices = {
        name: _choices(base, name, value, method, f"{where} params.{name}")
        for name, value in params.items()
    }
    trials = _trials(base, choices, method, table.get("trials"), seed, where)
    return SweepSpec(
        base=base,
        method=method,
        metric=metric,
        direction=direction,
        seed=seed,
        params=params,
        trials=trials,
        early_stop=_early_stop(table.get("early_stop"), where),
    )


def _split_file(values: dict[str, Any], source: str) -> tuple[dict[str, Any], ExperimentConfig]:
    """A sweep file's [sweep] table and its base experiment (every other key; none that the
    sweep sets for each trial itself)."""
    values = dict(values)
    table = values.pop("sweep", None)
    if not isinstance(table, dict):
        raise SweepError(f"{source}: a sweep file needs a [sweep] table (method, params, ...)")
    for name in RESERVED:
        if name in values:
            raise SweepError(
                f"{source}: {name} cannot be set in a sweep file: every trial gets its own run "
                "directory in the sweep folder"
            )
    return table, ExperimentConfig.from_dict(values, source=source)


def _ranking(table: dict[str, Any], base: ExperimentConfig, where: str) -> tuple[str, str]:
    """What the trials are ranked by: the metric (by default the validation loss when there
    is validation data, which a val_ metric needs) and its direction (by default the
    metric's own)."""
    metric = table.get("metric", "val_loss" if base.validation_split > 0 else "loss")
    _need(metric in METRICS, where, "metric", f"one of {', '.join(METRICS)}", metric)
    if metric.startswith("val_") and base.validation_split == 0:
        raise SweepError(
            f"{where}: metric {metric!r} needs validation data, but validation_split is 0"
        )
    direction = table.get("direction", improvement_mode(metric, "auto"))
    _need(direction in DIRECTIONS, where, "direction", "'min' or 'max'", direction)
    return metric, direction


# -- parameters -------------------------------------------------------------------------------
class _Range:
    """`{ min, max, log }`: drawn uniformly (or log-uniformly); integers when both ends are."""

    def __init__(self, low: float, high: float, log: bool) -> None:
        self.low, self.high, self.log = low, high, log
        self.integer = _is_int(low) and _is_int(high)

    @classmethod
    def from_table(cls, value: dict[str, Any], where: str) -> _Range:
        """The range a parameter's table gives; SweepError naming the key that is wrong."""
        _no_unknown(value, _RANGE_KEYS, where)
        low, high = _number(value, "min", where), _number(value, "max", where)
        log = value.get("log", False)
        _need(low < high, where, "max", f"greater than min ({low!r})", high)
        _need(isinstance(log, bool), where, "log", "true or false", log)
        _need(not log or low > 0, where, "min", "positive for a log range", low)
        return cls(low, high, log)

    def draw(self, rng: random.Random) -> int | float:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(round(value), self.low), self.high) if self.integer else value

    def grid(self, steps: int) -> list[int | float]:
        points = []
        for i in range(steps):
            t = i / (steps - 1)
            if self.log:
                value = math.exp(
                    math.log(self.low) + t * (math.log(self.high) - math.log(self.low))
                )
            else:
                value = self.low + t * (self.high - self.low)
            points.append(round(value) if self.integer else value)
        return list(dict.fromkeys(points))  # integer steps may repeat


def _choices(
    base: ExperimentConfig, name: str, value: Any, method: str, where: str
) -> list[Any] | _Range:
    """A parameter's values (a list) or, for random draws, its range; each end or value is
    checked as a config field of its own."""
    known = _parameters()
    if name not in known:
        raise SweepError(f"{where}: unknown parameter; parameters: {', '.join(known)}")
    if isinstance(value, list):
        if not value:
            raise SweepError(f"{where}: an empty list of values; give at least one")
        if len(value) > MAX_TRIALS:
            raise SweepError(f"{where}: {len(value):,} values; at most {MAX_TRIALS:,}")
        for i, item in enumerate(value):
            _checked(base, {name: item}, f"{where}[{i}]")
        return value
    if not isinstance(value, dict):
        raise SweepError(
            f"{where}: expected a list of values or a range {{ min = ..., max = ... }}, "
            f"got {value!r}"
        )
    return _range_choices(base, name, value, method, where)


def _range_choices(
    base: ExperimentConfig, name: str, value: dict[str, Any], method: str, where: str
) -> list[Any] | _Range:
    """A range parameter: the range itself for random draws, or its `steps` points (which a
    grid needs); its ends and points checked as config values."""
    span = _Range.from_table(value, where)
    for key, end in (("min", span.low), ("max", span.high)):
        if not (key == "max" and not span.integer):  # a float range never reaches its max
            _checked(base, {name: end}, f"{where}.{key}")
    steps = value.get("steps")
    if steps is None:
        if method == "grid":
            raise SweepError(f"{where}: a range in a grid needs steps = N (N >= 2 points)")
        return span
    _need(_is_int(steps, 2, MAX_TRIALS), where, "steps", "an integer >= 2", steps)
    points = span.grid(steps)
    for i, item in enumerate(points):
        _checked(base, {name: item}, f"{where} step {i}")
    return points


def _trials(
    base: ExperimentConfig,
    choices: dict[str, list[Any] | _Range],
    method: str,
    trials: Any,
    seed: int,
    where: str,
) -> tuple[dict[str, Any], ...]:
    """Every trial's parameters: the grid's combinations in order, or `trials` random draws
    (seeded, so a sweep file always means the same trials)."""
    if method == "grid":
        return _grid_trials(choices, trials, where)
    _need(
        _is_int(trials, 1, MAX_TRIALS),
        where,
        "trials",
        f"the number of random trials, 1 to {MAX_TRIALS:,}",
        trials,
    )
    rng = random.Random(seed)
    drawn = []
    for index in range(trials):
        params = {
            name: span.draw(rng) if isinstance(span, _Range) else rng.choice(span)
            for name, span in choices.items()
        }
        _checked(base, params, f"{where} trial {index}")
        drawn.append(params)
    return tuple(drawn)


def _grid_trials(
    choices: dict[str, list[Any] | _Range], trials: Any, where: str
) -> tuple[dict[str, Any], ...]:
    """Every combination of the values, in order, its size checked before any is made
    (`trials`, when given, must say it)."""
    grid = [values for values in choices.values() if isinstance(values, list)]
    assert len(grid) == len(choices), "_choices gives a grid only lists"
    size = math.prod(map(len, grid))
    if size > MAX_TRIALS:
        raise SweepError(f"{where}: the grid has {size:,} combinations; at most {MAX_TRIALS:,}")
    _need(
        trials is None or trials == size,
        where,
        "trials",
        f"left out or the grid's {size} combinations",
        trials,
    )
    names = list(choices)
    return tuple(
        dict(zip(names, combination, strict=True)) for combination in itertools.product(*grid)
    )


def _early_stop(table: Any, where: str) -> EarlyStop | None:
    if table is None:
        return None
    where = f"{where} early_stop"
    _need(isinstance(table, dict), where, "early_stop", "a table (after, min_trials)", table)
    _no_unknown(table, _STOP_KEYS, where)
    rule = table.get("rule", "median")
    _need(rule == "median", where, "rule", "'median' (the one rule there is)", rule)
    after = table.get("after", EarlyStop.after)
    _need(_is_int(after, 1), where, "after", "an epoch number >= 1", after)
    least = table.get("min_trials", EarlyStop.min_trials)
    _need(_is_int(least, 1), where, "min_trials", "an integer >= 1", least)
    return EarlyStop(after=after, min_trials=least)


# -- checks -----------------------------------------------------------------------------------
def _parameters() -> list[str]:
    """The config fields a sweep may vary."""
    return [f.name for f in dataclasses.fields(ExperimentConfig) if f.name not in RESERVED]


def _checked(base: ExperimentConfig, params: dict[str, Any], where: str) -> ExperimentConfig:
    try:
        return dataclasses.replace(base, **params)
    except ConfigError as error:
        raise SweepError(f"{where}: {error}") from None


def _no_unknown(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")


def _no_missing(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """SweepError naming the first of `keys` that a recorded table (sweep.json) lacks."""
    missing = [key for key in keys if key not in table]
    if missing:
        raise SweepError(f"{where}: {missing[0]} is missing")


def _need(ok: bool, where: str, key: str, expected: str, value: Any) -> None:
    if not ok:
        _refuse(where, key, expected, value)


def _refuse(where: str, key: str, expected: str, value: Any) -> NoReturn:
    """SweepError: `key` must be `expected`, shown with the value it has (reprlib: a value of
    any size is shown in a line)."""
    raise SweepError(f"{where}: {key} must be {expected}, got {reprlib.repr(value)}")


def _number(table: dict[str, Any], key: str, where: str) -> float:
    """`table[key]` as a finite number; SweepError naming it otherwise."""
    value = table.get(key)
    if not is_finite_number(value):
        _refuse(where, key, "a finite number", value)
    return value


def _is_int(value: Any, least: float = -math.inf, most: float = math.inf) -> bool:
    """An integer, not a bool, within [least, most]: the one test of a sweep's counts."""
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most
