"""Fuzzing the spec parser and builder (issue 8, items 10 and 18): random text heavy in the
grammar's characters, on random input shapes. Only SpecError (a ValueError) may escape —
never MemoryError, RecursionError, OverflowError or TypeError — and a build never allocates
beyond the memory it was told is free, because the size check refuses first."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import _memory as memory_module
from nnlib.spec import plan, warnings_for

FREE = 8 * 2**20  # what the builder is told is available
# Allocation beyond the checked estimate: numpy's temporaries while drawing weights (float64
# before the cast to float32) and Python objects for the layers.
SLACK = 4 * 2**20

ALPHABET = "convdenslrupaxigthfmk()[],=x-:|>. 0123456789"
WORDS = [
    "conv(",
    "dense(",
    "maxpool(",
    "avgpool(",
    "dropout(",
    "relu",
    "leakyrelu(",
    "softmax",
    "flatten",
    "tanh",
    "stride=",
    "pad=",
    "same",
    "valid",
    "init=",
    "he",
    "alpha=",
    "3x5",
    "->",
    ")",
    ", ",
    " ",
    "-",
    ":tanh",
    "99999",
    "1e400",
    "0.5",
]

random_text = st.lists(
    st.one_of(st.sampled_from(WORDS), st.text(alphabet=ALPHABET, max_size=6)), max_size=12
).map("".join)
small = st.integers(1, 6).map(str)
argument = st.one_of(
    small,
    small,
    small,
    st.integers(0, 12).map(str),
    st.integers(10**4, 10**8).map(str),
    st.sampled_from(["3x5", "0.5", "1e400", "9" * 30, "pad=same", "pad=1", "stride=2", "x"]),
)


def _call(name: str, most: int) -> st.SearchStrategy[str]:
    return st.lists(argument, min_size=1, max_size=most).map(
        lambda args: f"{name}({','.join(args)})"
    )


layer_token = st.one_of(
    st.sampled_from(["relu", "tanh", "sigmoid", "softmax", "flatten", "identity", "leakyrelu"]),
    _call("conv", 4),
    _call("dense", 2),
    _call("maxpool", 2),
    _call("avgpool", 2),
    _call("dropout", 1),
)
mlp = st.lists(st.integers(0, 10**6).map(str), min_size=2, max_size=4).map("-".join)
spec_text = st.one_of(
    random_text,
    mlp,
    st.lists(layer_token, min_size=1, max_size=6).map(" ".join),
)
shapes = st.one_of(
    st.tuples(st.integers(1, 32), st.integers(1, 32), st.integers(1, 3)),
    st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple),
    st.lists(st.integers(-2, 10**12), min_size=0, max_size=4).map(tuple),
)


@pytest.fixture(scope="module", autouse=True)
def little_memory():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_module, "available_memory", lambda: (FREE, "fuzz"))
        yield


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(spec=spec_text, shape=shapes)
def test_only_spec_errors_escape_and_building_stays_within_the_free_memory(spec, shape):
    tracemalloc.start()
    try:
        nl.build(spec, shape, seed=0, batch_size=8)
    except nl.SpecError as error:
        assert str(error)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < FREE + SLACK, (spec, shape, peak)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(spec=spec_text, shape=shapes)
def test_plan_agrees_with_build(spec, shape):
    try:
        summary = plan(spec, shape)
    except nl.SpecError as planned:
        with pytest.raises(nl.SpecError) as built:
            nl.build(spec, shape)
        assert str(built.value) == str(planned)
        return
    model = nl.build(spec, shape)
    assert model.summary() == summary
    assert summary.total_params == sum(p.value.size for p in model.parameters())


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    spec=st.one_of(spec_text, st.text(max_size=30)),
    loss=st.sampled_from(
        [None, "softmax_cross_entropy", "mse", nl.SoftmaxCrossEntropy(), nl.MSE()]
    ),
)
def test_warnings_for_any_text_is_a_list_of_sentences(spec, loss):
    texts = warnings_for(spec, loss)
    assert isinstance(texts, list) and all(isinstance(t, str) and t for t in texts)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    units=st.lists(st.integers(1, 10**6), min_size=1, max_size=4),
    filters=st.integers(1, 4096),
    kernel=st.integers(1, 9),
    side=st.integers(9, 256),
)
def test_large_layers_build_within_the_free_memory_or_are_refused(units, filters, kernel, side):
    spec = f"conv({filters},{kernel},pad=same) relu " + " ".join(f"dense({u})" for u in units)
    tracemalloc.start()
    try:
        nl.build(spec, (side, side, 3), batch_size=8)
    except nl.SpecError as error:
        assert str(error).startswith("too big to train here"), str(error)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < FREE + SLACK, (spec, side, peak)
