"""Faults in the views never end a run (issue 17, items 1 and 6): the Monitor's histogram math
holds for any finite range, a view that raises is reported once and turned off while training
goes on, and the boundary view draws what it can of a deep 2-D model."""

from __future__ import annotations

import io
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import events, runs
from nnlib.callbacks import Callback, Monitor, ProgressBar
from nnlib.callbacks.boundary import BoundaryView
from nnlib.callbacks.diagnostics import Diagnostics
from nnlib.callbacks.features import FeatureMaps
from nnlib.callbacks.monitor import PERCENTILES, histogram
from nnlib.callbacks.samples import SampleRecorder
from nnlib.callbacks.testset import TestEvaluator
from nnlib.config import ExperimentConfig
from nnlib.events import NEURON_LAYERS_MAX
from nnlib.experiment import setup
from nnlib.runindex import RunIndex

# -- the histogram over any finite range ----------------------------------------------------------


def quiet_histogram(values: np.ndarray, bins: int) -> dict:
    """histogram(values, bins) with every warning (numpy's overflow ones) an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return histogram(values, bins)


def test_histogram_of_gradients_from_0_to_a_subnormal_float32():
    # dense_1's gradients when `nnlib train --dataset spirals --arch 2-32-32-3 --epochs 250
    # --batch-size 32 --lr 0.2 --seed 0` failed at step 8500: 62 zeros and two subnormals.
    # bins / span overflowed float32, 0 * inf made a NaN bin index, and bincount refused it.
    grads = np.zeros((2, 32), np.float32)
    grads.flat[6], grads.flat[38] = 2.550363205071167e-43, 1.4741659844697076e-42
    summary = quiet_histogram(grads, 30)
    counts = summary["counts"]
    assert counts[0] == 62 and counts[5] == 1 and counts[29] == 1 and sum(counts) == 64
    assert (summary["lo"], summary["hi"]) == (0.0, float(grads.max()))
    events.make("histograms", 8500, {"layers": {"dense_1": {"grads": summary}}})


def test_histogram_of_gradients_from_0_to_8e_11():
    grads = np.zeros(64, np.float32)
    grads[:4] = [1e-11, 3e-11, 5e-11, 8e-11]  # centres of bins 0-2, and hi
    assert quiet_histogram(grads, 4)["counts"] == [61, 1, 1, 1]


def finite_values(dtype: type, kind: str) -> st.SearchStrategy[float]:
    """Finite values of `dtype` from one kind of range."""
    info = np.finfo(dtype)
    width = info.bits
    biggest, normal = float(info.max), float(info.smallest_normal)
    if kind == "tiny":
        tiny = float(dtype(1e-30))
        return st.floats(-tiny, tiny, width=width)
    if kind == "huge":
        big = st.floats(float(dtype(1e30)), biggest, width=width)
        return st.one_of(big, big.map(lambda v: -v))
    if kind == "subnormal":
        return st.floats(-normal, normal, width=width)
    return st.floats(-biggest, biggest, width=width)  # mixed: anything finite


@st.composite
def layers(draw: st.DrawFn) -> np.ndarray:
    """An array of float32 or float64 values from a tiny, huge, subnormal or mixed range, or
    one repeated value, with some NaN and infinities mixed in; sometimes tiled past the
    size from which bin indices are counted in pairs."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["tiny", "huge", "subnormal", "mixed", "constant"]))
    if kind == "constant":
        value = draw(finite_values(dtype, "mixed"))
        values = [value] * draw(st.integers(1, 20))
    else:
        values = draw(st.lists(finite_values(dtype, kind), min_size=1, max_size=40))
    nonfinite = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=3))
    array = np.array(values + nonfinite, dtype=dtype)
    array = array[np.random.default_rng(draw(st.integers(0, 99))).permutation(array.size)]
    if draw(st.booleans()):
        array = np.tile(array, 4096 // array.size + 1)
    return array


@settings(derandomize=True, max_examples=300, deadline=None)
@given(values=layers(), bins=st.integers(1, 40))
def test_histogram_holds_for_any_finite_range(values, bins):
    summary = quiet_histogram(values, bins)
    events.make("histograms", 1, {"layers": {"dense_1": {"weights": summary}}})  # valid
    finite = values[np.isfinite(values)]
    counts = np.array(summary["counts"])
    assert summary["nonfinite"] == values.size - finite.size
    assert len(counts) == bins and (counts >= 0).all() and counts.sum() == finite.size
    if not finite.size:
        return
    lo, hi = float(finite.min()), float(finite.max())
    assert summary["lo"] == lo and summary["hi"] >= hi
    # Percentiles: min and max exact, each inner one between the sorted values around it.
    ordered = np.sort(finite)
    percentiles = summary["percentiles"]
    assert percentiles[0] == lo and percentiles[-1] == hi
    for q, value in zip(PERCENTILES, percentiles, strict=True):
        position = q / 100 * (ordered.size - 1)
        below = int(position)
        above = min(below + 1, ordered.size - 1)
        assert float(ordered[below]) <= value <= float(ordered[above])
    if lo == hi:
        assert counts[0] == finite.size
        return
    # Counts against exact positions (v - lo) * bins / (hi - lo): below every inner bin edge,
    # all values clearly below it and none clearly above it (rounding may move a value lying
    # within a thousandth of a bin of an edge).
    unique, times = np.unique(finite, return_counts=True)
    span = Fraction(hi) - Fraction(lo)
    positions = np.array([float((Fraction(float(v)) - Fraction(lo)) * bins / span) for v in unique])
    for edge, counted in enumerate(np.cumsum(counts)[:-1], start=1):
        clearly_below = times[positions < edge - 1e-3].sum()
        assert clearly_below <= counted <= times[positions < edge + 1e-3].sum()


# -- a view that fails steps aside ----------------------------------------------------------------


def spirals(tmp: Path, arch: str = "2-8-3", callbacks: tuple[Callback, ...] = ()) -> Path:
    """Two epochs of 64 spirals points with every view attached (and the caller's callbacks);
    the run directory."""
    config = ExperimentConfig(dataset="spirals", arch=arch, epochs=2, seed=0, subset=64)
    experiment = setup(config, run_root=tmp, callbacks=list(callbacks))
    experiment.fit()
    return experiment.run_dir


def ended(run_dir: Path) -> tuple[str, list[events.Event]]:
    """The end reason a run's log gives and its 'warning' events."""
    logged = runs.read(run_dir)
    assert logged[0].type == "run_start"
    return logged[-1]["reason"], [e for e in logged if e.type == "warning"]


@pytest.mark.parametrize(
    ("view", "hook"),
    [
        (Monitor, "on_batch_begin"),
        (BoundaryView, "on_train_begin"),
        (Diagnostics, "on_event"),
        (SampleRecorder, "on_epoch_end"),
        (FeatureMaps, "on_batch_end"),
        (TestEvaluator, "on_train_end"),
        (ProgressBar, "on_epoch_begin"),
    ],
)
def test_a_view_that_raises_is_reported_once_and_training_goes_on(
    tmp_path, monkeypatch, view, hook
):
    calls = []

    def broken(self, trainer, *args):
        calls.append(args)
        raise RuntimeError("injected <fault>")

    monkeypatch.setattr(view, hook, broken)
    run_dir = spirals(tmp_path, callbacks=(ProgressBar(io.StringIO(), rich=False),))
    reason, warned = ended(run_dir)
    assert reason == "finished"
    assert [w["kind"] for w in warned] == ["view_failed"]
    assert f"{view.__name__} failed in {hook}" in warned[0]["message"]
    assert "RuntimeError: injected <fault>" in warned[0]["message"]
    assert len(calls) == 1  # turned off after its first failure
    (listed,) = RunIndex(tmp_path).refresh()  # `nnlib runs list` shows it
    assert listed.reason == "finished" and listed.epochs_done == 2


class Malformed(Callback):
    """A view whose event the run log refuses (the logger's EventError is the view's fault)."""

    essential = False

    def on_epoch_end(self, trainer, epoch, logs):
        trainer.emit("boundary", kind="a picture")


class FailingDisk(Callback):
    """An essential callback whose own write fails while the Monitor emits its histograms."""

    def on_event(self, trainer, event, data):
        if event == "histograms" and trainer.global_step:
            raise OSError("disk full")


def test_a_view_whose_event_is_malformed_steps_aside(tmp_path):
    reason, warned = ended(spirals(tmp_path, callbacks=(Malformed(),)))
    assert reason == "finished"
    assert [w["kind"] for w in warned] == ["view_failed"]
    assert "Malformed failed in on_epoch_end" in warned[0]["message"]
    assert "(EventError: emitted 'boundary'" in warned[0]["message"]


def test_an_essential_callback_fails_loudly_even_inside_a_views_emit(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        spirals(tmp_path, callbacks=(FailingDisk(),))
    (run_dir,) = tmp_path.iterdir()
    reason, warned = ended(run_dir)
    assert reason == "error" and warned == []


def test_a_view_turned_off_in_one_run_is_called_again_in_the_next(tmp_path):
    class Once(Callback):
        essential = False
        calls = 0

        def on_train_begin(self, trainer):
            Once.calls += 1
            if Once.calls == 1:
                raise RuntimeError("only the first time")

    config = ExperimentConfig(dataset="spirals", arch="2-8-3", epochs=1, seed=0, subset=64)
    experiment = setup(config, run_root=tmp_path, callbacks=[Once()])
    experiment.fit()
    experiment.trainer.fit(experiment.data.x_train, experiment.data.y_train)
    assert Once.calls == 2


# -- the boundary view of a deep 2-D model --------------------------------------------------------


def test_a_deep_2d_model_trains_and_its_boundary_shows_the_first_hidden_layers(tmp_path):
    # 65 hidden layers of 8 units: one more than a boundary event carries neurons for.
    arch = "2-" + "8-" * 65 + "3"
    run_dir = spirals(tmp_path, arch=arch)
    reason, warned = ended(run_dir)
    assert reason == "finished"
    assert "view_failed" not in {w["kind"] for w in warned}  # vanishing gradients, rightly
    boundaries = [e for e in runs.read(run_dir) if e.type == "boundary"]
    assert boundaries
    for boundary in boundaries:
        names = [layer["layer"] for layer in boundary.neurons]
        assert names == [f"dense_{i}" for i in range(1, NEURON_LAYERS_MAX + 1)]
    (listed,) = RunIndex(tmp_path).refresh()
    assert listed.reason == "finished" and listed.arch == arch
