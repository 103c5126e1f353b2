"""Fuzzing the TOML experiment config (issue 8): any valid config saves and loads back equal
(control characters, unicode, quotes and backslashes in every string field; numbers anywhere
in range), and loading random or mutated TOML raises ConfigError and nothing else."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib.config import OPTIMIZER_NAMES, ConfigError, ExperimentConfig

FUZZ = settings(derandomize=True, max_examples=150, deadline=None)

#: Characters TOML must escape or that break naive quoting, and any other (non-surrogate) one.
_nasty = st.sampled_from(['"', "\\", "'", "\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u2028", "é"])
_char = st.one_of(_nasty, st.characters(exclude_categories=("Cs",)))
_text = st.text(_char, min_size=1, max_size=20).filter(lambda text: text.strip() != "")


def _floats(low: float, high: float | None = None, **kwargs) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False, **kwargs)


configs = st.builds(
    ExperimentConfig,
    dataset=_text,
    arch=st.none() | _text,
    epochs=st.integers(1, 2**63 - 1),
    batch_size=st.integers(1, 10**6),
    optimizer=st.sampled_from(OPTIMIZER_NAMES),
    lr=_floats(0, exclude_min=True),
    momentum=_floats(0, 1, exclude_max=True),
    weight_decay=_floats(0),
    seed=st.integers(0, 2**63 - 1),
    validation_split=_floats(0, 1, exclude_max=True),
    subset=st.none() | st.integers(1, 10**9),
    data_dir=st.none() | _text,
    run_dir=st.none() | _text,
    histogram_every=st.integers(1, 10**6),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("configs")


@FUZZ
@given(config=configs)
def test_save_then_load_gives_the_same_config(folder, config):
    path = config.save(folder / "experiment.toml")
    loaded = ExperimentConfig.load(path)
    assert loaded == config
    for field in dataclasses.fields(config):  # the same types, too (an int stays an int)
        assert type(getattr(loaded, field.name)) is type(getattr(config, field.name))


def _load_text(folder, data: bytes) -> None:
    """Load `data` as a config file: a config or a ConfigError, nothing else."""
    path = folder / "fuzzed.toml"
    path.write_bytes(data)
    try:
        ExperimentConfig.load(path)
    except ConfigError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error).strip()


@FUZZ
@given(data=st.binary(max_size=200) | st.text(_char, max_size=200).map(str.encode))
def test_loading_random_text_raises_only_config_error(folder, data):
    _load_text(folder, data)


#: Pieces TOML is made of: a mutation built from them gets past the first character.
_toml_piece = st.sampled_from(
    ["[", "]", "{", "}", "=", '"', "'", '"""', "\\", ".", ",", "#", "\n", " ", "-", "+", "e"]
    + ["0", "1.5", "inf", "nan", "true", "1979-05-27", "x", "lr", "seed", "[[a]]", "\\u0000"]
)


@st.composite
def mutated_toml(draw) -> bytes:
    text = draw(configs).to_toml()
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "nest"]))
        if kind == "nest":  # deep arrays or inline tables: past any recursion limit
            depth = draw(st.integers(1, 5000))
            opening, closing = draw(st.sampled_from([("[", "]"), ("{a=", "}")]))
            piece = opening * depth + closing * depth
        else:
            piece = draw(_toml_piece)
        end = at + (0 if kind in ("insert", "nest") else draw(st.integers(1, 8)))
        text = text[:at] + ("" if kind == "delete" else piece) + text[end:]
    return text.encode("utf-8")


@FUZZ
@given(data=mutated_toml())
def test_loading_mutated_toml_raises_only_config_error(folder, data):
    _load_text(folder, data)


def test_control_characters_are_escaped_as_toml_requires():
    config = ExperimentConfig(dataset='a\x00b\x1f"\\\x7f\tc\nd')
    line = next(line for line in config.to_toml().splitlines() if line.startswith("dataset"))
    assert line == 'dataset = "a\\u0000b\\u001F\\"\\\\\\u007F\\tc\\nd"'


def test_a_string_toml_cannot_hold_is_refused_naming_the_field(tmp_path):
    config = ExperimentConfig(run_dir="runs/\udcff")  # a lone surrogate, as from a bad file name
    with pytest.raises(ConfigError, match="run_dir cannot be saved as TOML"):
        config.save(tmp_path / "experiment.toml")
    assert not (tmp_path / "experiment.toml").exists()


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("seed", "abc", "seed must be a non-negative integer, got 'abc'"),
        ("epochs", 2.0, "epochs must be a positive integer, got 2.0"),
        ("lr", math.inf, "lr must be a positive number, got inf"),
        ("dataset", ["glyphs"], "dataset must be a dataset name or a file path, got ['glyphs']"),
    ],
)
def test_bad_values_in_the_python_api_are_config_errors_naming_the_field(field, value, words):
    with pytest.raises(ConfigError) as caught:
        ExperimentConfig(**{field: value})
    assert isinstance(caught.value, ValueError) and str(caught.value) == words
