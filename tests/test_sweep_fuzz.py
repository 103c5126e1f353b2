"""Property-based tests of the sweep file parser: whatever a sweep table holds, parsing either
gives trials that are all valid experiments, or one SweepError/ConfigError naming the
problem — never another exception, and never a grid enumerated past the limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib.config import ConfigError, ExperimentConfig
from nnlib.sweeps.spec import MAX_TRIALS, SweepError, load_sweep, parse_sweep

FIELDS = ["lr", "momentum", "batch_size", "epochs", "arch", "weight_decay", "seed", "run_dir"]
scalars = st.one_of(
    st.integers(-5, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
)
ranges = st.dictionaries(
    st.sampled_from(["min", "max", "log", "steps", "other"]), scalars, max_size=4
)
values = st.one_of(st.lists(scalars, max_size=5), ranges, scalars)
tables = st.fixed_dictionaries(
    {},
    optional={
        "method": st.one_of(st.sampled_from(["grid", "random"]), scalars),
        "trials": st.one_of(st.integers(-2, 20), scalars),
        "metric": st.sampled_from(["loss", "accuracy", "val_loss", "val_accuracy", "f1"]),
        "direction": st.sampled_from(["min", "max", "up"]),
        "seed": scalars,
        "params": st.one_of(st.dictionaries(st.sampled_from(FIELDS), values, max_size=3), scalars),
        "early_stop": st.one_of(
            st.dictionaries(st.sampled_from(["after", "min_trials", "rule"]), scalars), scalars
        ),
    },
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(tables, st.sampled_from([0.0, 0.1]))
def test_a_sweep_table_gives_valid_trials_or_one_clear_error(table, split):
    try:
        spec = parse_sweep({"dataset": "spirals", "validation_split": split, "sweep": table})
    except SweepError as error:
        assert str(error).startswith("sweep"), error
        return
    assert 1 <= len(spec.trials) <= MAX_TRIALS
    assert set(spec.params) <= set(FIELDS) - {"run_dir"}
    for index in range(len(spec.trials)):
        config = spec.config(index)
        assert isinstance(config, ExperimentConfig) and config.run_dir is None
    if spec.method == "grid":
        sizes = [len(v) if isinstance(v, list) else None for v in spec.params.values()]
        if None not in sizes:
            assert len(spec.trials) == math.prod(sizes)
    assert spec.direction in ("min", "max")
    assert not spec.metric.startswith("val_") or split > 0


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.floats(1e-6, 1.0), st.floats(1.01, 100.0), st.booleans(), st.integers(0, 2**32))
def test_random_draws_stay_in_their_range_and_repeat_for_a_seed(low, factor, log, seed):
    high = low * factor
    table = {
        "method": "random",
        "trials": 20,
        "seed": seed,
        "params": {"lr": {"min": low, "max": high, "log": log}, "batch_size": [8, 16]},
    }
    spec = parse_sweep({"dataset": "spirals", "sweep": table})
    assert all(low <= t["lr"] <= high and t["batch_size"] in (8, 16) for t in spec.trials)
    assert spec.trials == parse_sweep({"dataset": "spirals", "sweep": table}).trials


def test_a_grid_too_large_is_refused_before_it_is_enumerated():
    params = {name: list(range(1, 12)) for name in ("epochs", "batch_size", "seed", "subset")}
    with pytest.raises(SweepError, match="14,641 combinations; at most 10,000"):
        parse_sweep({"dataset": "spirals", "sweep": {"params": params}})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("dataset = 'spirals'\n", "needs a [sweep] table"),
        ("run_dir = 'x'\n[sweep]\n", "run_dir cannot be set in a sweep file"),
        ("[sweep]\nparams = {}\n", "params must be a table of the parameters to vary"),
        ("[sweep.params]\nlr = []\n", "params.lr: an empty list"),
        ("[sweep.params]\nlr = {min = 0.1, max = 1}\n", "a range in a grid needs steps"),
        ("[sweep.params]\nspeed = [1]\n", "params.speed: unknown parameter"),
        ("[sweep]\nmethod = 'random'\n[sweep.params]\nlr = [0.1]\n", "trials must be"),
        (
            "validation_split = 0.0\n[sweep]\nmetric = 'val_loss'\n[sweep.params]\nlr = [1]\n",
            "needs validation data",
        ),
        (
            "[sweep.params]\nlr = {min = 0, max = 1, log = true, steps = 3}\n",
            "positive for a log range",
        ),
        ("[sweep.params\n", "not valid TOML"),
    ],
)
def test_bad_sweep_files_name_the_file_and_the_key(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    assert str(caught.value).startswith(str(path)) and words in str(caught.value)


def test_grid_steps_span_a_range_and_integer_steps_do_not_repeat():
    table = {"params": {"lr": {"min": 0.001, "max": 0.1, "log": True, "steps": 3}}}
    lrs = [t["lr"] for t in parse_sweep({"sweep": table}).trials]
    assert lrs == pytest.approx([0.001, 0.01, 0.1])
    table = {"params": {"epochs": {"min": 1, "max": 2, "steps": 5}}}
    assert [t["epochs"] for t in parse_sweep({"sweep": table}).trials] == [1, 2]
