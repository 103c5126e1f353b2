"""Property-based tests of the sweep file parser: whatever a sweep table holds, parsing either
gives trials that are all valid experiments, or one SweepError/ConfigError naming the
problem — never another exception, and never a grid enumerated past the limit. And of the
sweep folder's index, sweep.json, as --resume reads it: tampered, it is one SweepError naming
the file, or an index every part of the driver handles."""

from __future__ import annotations

import copy
import functools
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from nnlib.config import ConfigError, ExperimentConfig
from nnlib.sweeps import create_sweep, driver, median_table, ranked, read_index
from nnlib.sweeps.report import best_line, failures, ranking_table, unfinished
from nnlib.sweeps.spec import MAX_TRIALS, SweepError, SweepSpec, load_sweep, parse_sweep
from nnlib.sweeps.trial import INDEX_FILE

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


# -- sweep.json, as --resume reads it --------------------------------------------------------------
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["trial-000", "trial-001.2", "../x", "finished", "lost", "min", "max"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def a_sweep_index(tmp_path: Path) -> dict:
    """A sweep's index as a run of it leaves it: trials finished, failed, lost and pending."""
    table = {"metric": "val_loss", "params": {"lr": [0.01, 0.02, 0.03, 0.04]}}
    folder = create_sweep(parse_sweep({"dataset": "spirals", "sweep": table}), tmp_path / "s")
    index = json.loads((folder / INDEX_FILE).read_text())
    index["trials"][0].update(
        state="finished", run="trial-000", attempts=1, metric=0.5, best_epoch=1, epochs=2,
        reason="finished", seconds=1.5, host="node", curve=[0.7, 0.5],
    )  # fmt: skip
    index["trials"][1].update(state="failed", run="trial-001.2", attempts=2, error="diverged")
    index["trials"][2].update(state="lost", run="trial-002", attempts=1, error="worker lost")
    return index


def paths_into(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list positions) to a value inside `value`, `value` itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_into(item, (*prefix, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            found += paths_into(item, (*prefix, position))
    return found


@st.composite
def tampered(draw: st.DrawFn, index: dict) -> dict:
    """`index` with one to three values replaced by any JSON value, or deleted."""
    index = copy.deepcopy(index)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_into(index)[1:]))
        parent = functools.reduce(lambda value, key: value[key], path[:-1], index)
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
        if not paths_into(index)[1:]:
            break
    return index


def check_resumable(folder: Path) -> None:
    """`read_index` gives a SweepError naming the file, or an index that every part of the
    driver and the report handles: ranked, median table, table, lines, written back, and its
    open trials reconciled and started."""
    try:
        index = read_index(folder)
    except SweepError as error:
        assert str(error).startswith(str(folder)), error
        return
    spec = SweepSpec.from_dict(index["spec"])
    ranked(index)
    median_table(index, 1)
    Console(file=io.StringIO(), width=120).print(ranking_table(index))
    failures(index)
    unfinished(index, str(folder))
    best_line(index, str(folder))
    driver._reconcile(folder, index, report=lambda line: None)
    for trial in index["trials"]:
        if trial["state"] not in driver.DONE:
            task = driver._start(folder, index, spec, trial["index"])
            assert task.stem == f"trial-{trial['index']:03d}" and "/" not in trial["run"]
    driver.write_index(folder, index)
    assert read_index(folder)["trials"] == index["trials"]


@pytest.fixture(scope="module")
def sweep_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("fuzzed")
    index = a_sweep_index(tmp_path_factory.mktemp("made"))
    return folder, index


@settings(derandomize=True, max_examples=300, deadline=None)
@given(data=st.data())
def test_a_tampered_sweep_index_is_one_sweep_error_or_resumable(sweep_index, data):
    folder, index = sweep_index
    changed = data.draw(tampered(index))
    (folder / INDEX_FILE).write_text(json.dumps(changed))
    check_resumable(folder)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda i: i["trials"][0].update(attempts="x"), "trial 0: attempts must be"),
        (lambda i: i["trials"][0].update(metric="x"), "trial 0: metric must be"),
        # an integer past a float's range: refused, not an OverflowError from math.isfinite
        (lambda i: i["trials"][0].update(metric=10**400), "trial 0: metric must be"),
        (lambda i: i["trials"][0].update(curve=[0.5, -(10**400)]), "trial 0: curve must be"),
        (lambda i: i["trials"][3].update(run="../../elsewhere"), "trial 3: run must be"),
        (lambda i: i["trials"][3].update(params={"lr": 5}), "trial 3: params must be"),
        (lambda i: i["spec"].update(direction="up"), "direction must be"),
        (lambda i: i["spec"].update(early_stop={"after": "x"}), "after must be"),
    ],
)
def test_tampered_fields_of_a_sweep_index_are_named(tmp_path, change, words):
    index = a_sweep_index(tmp_path)
    change(index)
    (tmp_path / "s" / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(SweepError) as caught:
        read_index(tmp_path / "s")
    assert str(caught.value).startswith(str(tmp_path / "s" / INDEX_FILE)), caught.value
    assert words in str(caught.value), caught.value


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"version": 1, "x": ' + "9" * 5000 + "}", "not a readable sweep index"),
        ('{"version": 1, "spec": [], "trials": []}', "spec: spec must be a table, got []"),
        ("[]", "not a readable sweep index"),
    ],
)
def test_an_index_nested_too_deep_or_with_a_huge_number_is_one_sweep_error(tmp_path, text, words):
    (tmp_path / INDEX_FILE).write_text(text)
    with pytest.raises(SweepError) as caught:
        read_index(tmp_path)
    assert words in str(caught.value) and len(str(caught.value)) < 400, caught.value
