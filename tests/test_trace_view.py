"""The Trace view: the Tracer's 'trace' event (bounded, the numbers of `nnlib.trace`, served
while paused, and after a step what the step did) and the dashboard's Trace panel, which
shows the same numbers as `nnlib.trace.trace` on the same model and sample."""

from __future__ import annotations

import re
import threading
import warnings

import numpy as np
from helpers import long_run, paused, pilot_test, press, screen_text, started, until

from nnlib.callbacks.base import Callback
from nnlib.callbacks.tracer import Tracer, rule, summary
from nnlib.config import ExperimentConfig
from nnlib.events import RASTER_ALPHABET, RASTER_EMPTY, TRACE_STRIP_MAX, TRACE_VALUES_MAX
from nnlib.experiment import setup
from nnlib.optimizers import SGD, Adam
from nnlib.trace import trace
from nntui.app import NNTui
from nntui.widgets.trace import NUMBER, TracePanel

NUMBER_RE = re.compile(r"-?\d\.\d{4}e[+-]\d\d")


def test_summary_carries_every_value_of_a_small_array_and_a_strip_of_a_large_one():
    small = np.arange(TRACE_VALUES_MAX, dtype=np.float64).reshape(4, -1) - 3.5
    record = summary("W", small)
    assert record["values"] == small.ravel().tolist() and record["shape"] == [4, 8]
    large = np.linspace(-1.0, 3.0, 1000).reshape(10, 100)
    record = summary("W", large)
    assert "values" not in record and len(record["strip"]) == TRACE_STRIP_MAX
    assert (record["min"], record["max"]) == (-1.0, 3.0)
    assert record["mean"] == large.mean()
    assert record["strip"][0] == RASTER_ALPHABET[0] and record["strip"][-1] == RASTER_ALPHABET[-1]
    middling = np.linspace(0.0, 1.0, TRACE_VALUES_MAX + 8)  # fewer values than the strip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run of no values warned "Mean of empty slice"
        record = summary("W", middling)
    assert record["strip"] == "".join(record["strip"].split(RASTER_EMPTY)) != ""
    assert len(record["strip"]) == middling.size
    record = summary("grad", np.array([1.0, np.nan, np.inf]))
    assert record["values"] == [1.0, None, None] and record["max"] is None


def test_the_rule_is_the_plain_formula_only_for_plain_sgd():
    assert rule(SGD(0.1)) is None
    assert rule(SGD(0.1, momentum=0.9)) == "SGD, momentum 0.9"
    assert rule(SGD(0.1, weight_decay=0.01)) == "SGD, weight_decay 0.01"
    assert rule(Adam()).startswith("Adam, beta1 0.9")


class Traces(Callback):
    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.arrived = threading.Event()

    def on_event(self, trainer, event, data):
        if event == "trace":
            self.seen.append(dict(data))
            self.arrived.set()


def test_a_paused_run_is_traced_at_once_and_a_step_shows_its_update(tmp_path):
    """Served while parked (no step taken); after `n`, ΔW is the real change of the weights
    and, for plain SGD, −lr·dW of the batch's gradient."""
    traces = Traces()
    config = ExperimentConfig(
        dataset="spirals", arch="2-64-3", epochs=1, batch_size=10, lr=0.05, momentum=0.0, seed=0
    )
    experiment = setup(config, callbacks=[traces], run_root=tmp_path)
    trainer = experiment.trainer
    tracer = next(c for c in trainer.callbacks if isinstance(c, Tracer))
    trainer.control.pause()
    thread = threading.Thread(target=experiment.fit)
    thread.start()
    try:
        assert trainer.control.wait_until_parked(timeout=10)
        step = trainer.global_step
        tracer.request(153)  # taken modulo the 150 validation samples
        assert traces.arrived.wait(10)
        event = traces.seen[-1]
        assert trainer.global_step == step and event["index"] == 3 and "lr" not in event
        x, y = trainer.validation_data
        expected = trace(trainer.model, x[3:4], y[3:4], trainer.loss)
        assert event["loss"] == expected.loss
        first, last = event["layers"][0], expected.layers[0]
        assert first["arrays"][0]["values"] == last.input.ravel().tolist()
        weights = next(a for a in first["arrays"] if a["label"] == "W")
        assert "strip" in weights and weights["max"] == last.params["W"].max()  # 2x64 > 32
        before = {k: p.value.copy() for k, p in trainer.model.layers[-1].params.items()}
        traces.arrived.clear()
        tracer.request(3, update=True)
        trainer.control.step()
        assert traces.arrived.wait(10) and trainer.control.wait_until_parked(timeout=10)
        event = traces.seen[-1]
        assert event["lr"] == 0.05 and "rule" not in event and event["trigger"] == "step"
        update = {a["label"]: a for a in event["layers"][-1]["update"]}
        params = trainer.model.layers[-1].params
        assert update["b before"]["values"] == before["b"].ravel().tolist()
        change = np.array(update["Δb = after − before"]["values"])
        np.testing.assert_array_equal(change, (params["b"].value - before["b"]).ravel())
        db = np.array(update["batch db"]["values"])
        np.testing.assert_allclose(change, -0.05 * db, rtol=1e-5, atol=1e-8)
        change_w = params["W"].value - before["W"]  # 64x3: summarised
        assert update["ΔW = after − before"]["min"] == change_w.min()
        assert update["batch dW"]["max"] == params["W"].grad.max()
    finally:
        trainer.control.stop()
        thread.join(30)


def shown_numbers(text: str) -> list[str]:
    return NUMBER_RE.findall(text)


def expected_numbers(result) -> list[str]:
    """Every value of every array, in the panel's order (all small in a 2-8-3 model)."""
    out = [NUMBER.format(result.loss)]
    for layer in result.layers:
        arrays = [layer.input, layer.output, layer.grad_output, layer.grad_input]
        arrays += [array for _, array in layer.parameter_rows()]
        for array in arrays:
            assert array.size <= TRACE_VALUES_MAX
            out += [NUMBER.format(v) for v in array.ravel()]
    return out


@pilot_test
async def test_the_trace_view_shows_the_numbers_of_nnlib_trace(tmp_path):
    app = NNTui(long_run(tmp_path, arch="2-8-3", momentum=0.0), start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await paused(pilot, dashboard)
        await press(pilot, "z")
        await until(pilot, lambda: dashboard.state.latest("trace") is not None, "a trace")
        panel = dashboard.query_one(TracePanel)
        await until(pilot, lambda: "sample 0 of" in panel.picture.plain, "the trace drawn")
        x, y = trainer.validation_data
        expected = trace(trainer.model, x[:1], y[:1], trainer.loss)  # parked: weights still
        assert shown_numbers(panel.picture.plain) == expected_numbers(expected)
        # Readable at 80x24: no line wider than the screen; it scrolls to the last layer.
        assert all(len(line) <= 80 for line in panel.picture.plain.split("\n"))
        last = panel.picture.plain.rstrip().split("\n")[-1].strip()
        assert "lines 1-" in screen_text(app) and last not in screen_text(app)
        for _ in range(len(panel.picture.plain.split("\n"))):
            await press(pilot, "down")
        await until(pilot, lambda: last in screen_text(app), "scrolled to the last line")
        assert "▼" not in screen_text(app)
        # Another sample: → asks for sample 1, traced at once while paused.
        await press(pilot, "right")
        await until(pilot, lambda: dashboard.state.latest("trace")["index"] == 1, "sample 1")
        # n: one batch, then what it did; the change shown is the weights' real change.
        before = trainer.model.layers[0].params["W"].value.copy()
        step = trainer.global_step
        await press(pilot, "n")
        await until(pilot, lambda: dashboard.state.latest("trace").get("lr") is not None, "step")
        await until(pilot, lambda: "after one step" in panel.picture.plain, "the update drawn")
        assert trainer.global_step == step + 1 and trainer.wait_until_parked(timeout=10)
        text = panel.picture.plain
        assert "ΔW = −lr·dW (plain SGD)" in text
        block = text.split("the step:", 1)[1]
        _, w_before, dw, change = re.split(r"W before|batch dW|ΔW = after − before", block)[:4]
        change = change.split("b before")[0]
        after = trainer.model.layers[0].params["W"].value
        assert shown_numbers(w_before) == [NUMBER.format(v) for v in before.ravel()]
        assert shown_numbers(change) == [NUMBER.format(v) for v in (after - before).ravel()]
        lr_dw = -0.05 * np.array([float(v) for v in shown_numbers(dw)])
        # after − before is a float32 subtraction: it rounds by up to an ulp of the weight
        rounding = 4 * np.finfo(np.float32).eps * float(np.abs(after).max())
        np.testing.assert_allclose(
            [float(v) for v in shown_numbers(change)], lr_dw, rtol=2e-4, atol=rounding
        )
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None, "the end")


@pilot_test
async def test_an_ended_run_without_a_trace_says_how_to_get_one(tmp_path):
    """A trace is made on the training thread: once the run has ended, z cannot make one,
    and the view says so instead of promising one at the next batch."""
    app = NNTui(long_run(tmp_path, arch="2-8-3"), start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await started(pilot)
        panel = dashboard.query_one(TracePanel)
        assert "at the next batch" in panel.draw(80, 20).plain
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None, "the end")
        await press(pilot, "z")
        await until(pilot, lambda: "No trace was made" in screen_text(app), "the note")
        assert dashboard.state.latest("trace") is None
        assert "f forks the run" in screen_text(app)  # wrapped to the panel, not cut off
