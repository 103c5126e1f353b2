"""The boundary view (issue 10, item 1): the 'boundary' event of a model with known weights is
exactly what those weights say, its sizes are bounded, the view runs in eval mode and gives
train mode back, and it costs what its budget allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnlib import events
from nnlib.callbacks.boundary import POINT_FIELDS, BoundaryView
from nnlib.losses import loss_for
from nnlib.optimizers import make_optimizer
from nnlib.spec import build
from nnlib.trainer import Trainer


def level(char: str) -> int:
    return events.RASTER_ALPHABET.index(char)


def levels(row: str) -> list[int]:
    return [level(c) for c in row]


CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=np.float32)


def _trainer(arch: str, features: int, task: str = "classification") -> Trainer:
    model = build(arch, (features,), seed=0)
    return Trainer(model, loss_for(task), make_optimizer("sgd", lr=0.1))


def _view(trainer: Trainer, x: np.ndarray, y: np.ndarray, grid: int = 8) -> BoundaryView:
    view = BoundaryView(x, y, grid=grid)
    view.applies = True
    view._fixed = view._static(trainer)
    return view


def _shown(view: BoundaryView, trainer: Trainer) -> dict:
    """A view's fields with its run's data points (sent once, in 'boundary_points')."""
    return {
        **view.compute(trainer),
        **{k: view._fixed[k] for k in POINT_FIELDS if k in view._fixed},
    }


def test_a_hand_set_linear_classifier_gives_exactly_its_half_plane():
    trainer = _trainer("dense(2)", 2)
    dense = trainer.model.layers[0]
    dense.params["W"].value[:] = [[0.0, 4.0], [0.0, 0.0]]  # class 1 where x > 0
    dense.params["b"].value[:] = 0.0
    fields = _shown(_view(trainer, CORNERS, np.array([0, 1, 0, 1])), trainer)
    assert fields["kind"] == "classes"
    assert fields["predicted"] == ["00001111"] * 8
    assert fields["lo"] == pytest.approx([-1.2, -1.2]) and fields["hi"] == pytest.approx([1.2, 1.2])
    # Confidence depends on |x| only: the same in every row, mirrored about the middle.
    confidence = fields["confidence"]
    assert len(set(confidence)) == 1 and confidence[0] == confidence[0][::-1]
    assert level(confidence[0][0]) > level(confidence[0][3])  # far from the boundary: sure
    # The four points, at the corners, in their classes (top row is the high y).
    assert fields["train"][0] == "0......1" and fields["train"][-1] == "0......1"
    assert set("".join(fields["train"][1:-1])) == {"."}
    record = events.make("boundary", 3, fields)
    assert events.decode(record.line()) == record


def test_hidden_units_of_known_weights_draw_their_own_planes():
    trainer = _trainer("dense(2) relu dense(2)", 2)
    first = trainer.model.layers[0]
    first.params["W"].value[:] = [[1.0, 0.0], [0.0, 1.0]]  # unit 1: relu(x), unit 2: relu(y)
    first.params["b"].value[:] = [0.0, 0.5]
    fields = _view(trainer, CORNERS, np.array([0, 1, 0, 1])).compute(trainer)
    (layer,) = fields["neurons"]  # the output layer is not a hidden one
    assert layer["layer"] == "dense_1" and len(layer["units"]) == 2
    x_unit, y_unit = layer["units"]
    assert x_unit["weights"] == [1.0, 0.0] and y_unit["bias"] == 0.5
    # relu(x): zero (level 31/32 of 63, the middle) on the left, growing to the right.
    row = levels(x_unit["map"][0])
    assert set(row[:4]) == {32} and row[4] < row[5] < row[6] < row[7] == 63
    assert len(set(x_unit["map"])) == 1  # the same in every row
    assert levels(y_unit["map"][0]) > levels(y_unit["map"][-1])  # the top row is the high y


def test_a_1d_regression_gives_the_fitted_curve_and_2d_the_surface_with_its_truth():
    x = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]
    trainer = _trainer("dense(1)", 1, "regression")
    dense = trainer.model.layers[0]
    dense.params["W"].value[:] = 1.0  # y = x
    dense.params["b"].value[:] = 0.0
    fields = _shown(_view(trainer, x, x.copy(), grid=16), trainer)
    assert fields["kind"] == "curve" and len(fields["predicted"]) == 1
    curve = fields["predicted"][0]
    assert len(curve) == 16 and levels(curve) == sorted(levels(curve))  # rising, like y = x
    marked = [row.index("0") for row in fields["train"] if "0" in row]
    assert len(fields["train"]) == 32 and marked == sorted(marked, reverse=True)  # y = x
    xy = np.random.default_rng(0).uniform(-1, 1, (400, 2)).astype(np.float32)
    trainer = _trainer("dense(1)", 2, "regression")
    fields = _shown(_view(trainer, xy, xy[:, :1] + xy[:, 1:], grid=16), trainer)
    assert fields["kind"] == "surface" and len(fields["predicted"]) == 16
    assert len(fields["truth"]) == 8 and len(fields["truth"][0]) == 8
    assert level(fields["truth"][-1][0]) < level(
        fields["truth"][0][-1]
    )  # x + y: low bottom left, high top right


def test_the_view_runs_in_eval_mode_and_gives_train_mode_back():
    trainer = _trainer("dense(8) relu dropout(0.5) dense(2)", 2)
    view = _view(trainer, CORNERS, np.array([0, 1, 0, 1]))
    trainer.model.train()
    first, second = view.compute(trainer), view.compute(trainer)
    assert first == second  # dropout off: the same pass twice
    assert trainer.model.training and all(layer.training for layer in trainer.model.layers)


def test_only_models_with_one_or_two_input_features_get_a_view():
    emitted: list[str] = []
    trainer = _trainer("dense(2)", 3)
    trainer.emit = lambda kind, **data: emitted.append(kind)  # type: ignore[method-assign]
    view = BoundaryView(np.zeros((4, 3), np.float32), np.zeros(4))
    view.on_train_begin(trainer)
    view.on_epoch_end(trainer, 0, {})
    assert not view.applies and emitted == []


def test_views_are_spaced_to_cost_at_most_the_budget():
    view = BoundaryView(CORNERS, np.zeros(4), budget=0.03)
    assert view.every() == 1  # nothing measured yet
    view.cost, view._step_seconds = 0.003, 0.001  # a view costs 3 steps
    assert view.every() == 100 and view.cost / (view.every() * view._step_seconds) <= 0.03
    view.cost = 0.0000001
    assert view.every() == 1


def test_the_step_time_is_measured_between_views_and_spaces_the_next(monkeypatch):
    """No per-batch timing: a view divides the wall time since the latest view by the steps
    in between, and the next view comes `every()` steps later."""
    import nnlib.callbacks.boundary as boundary

    trainer = _trainer("dense(2)", 2)
    trainer.emit = lambda *args, **data: None  # type: ignore[method-assign]
    now = [100.0]
    monkeypatch.setattr(boundary.time, "perf_counter", lambda: now[0])
    view = BoundaryView(CORNERS, np.array([0, 1, 0, 1]), budget=0.03)
    view.on_train_begin(trainer)  # the first view, at step 0, measures nothing yet
    assert view._step_seconds == 0 and view.next_step == 1
    view.cost = 0.003  # what a view costs, as if measured
    trainer.global_step, now[0] = 1, 100.5  # one step took 0.5 s
    view.on_batch_end(trainer, 0, {})
    assert view._step_seconds == 0.5
    view.cost = 0.003
    trainer.global_step, now[0] = 2, 100.5 + 0.001  # the views' own time is not a step's
    view._shown_at = 100.5
    view._emit(trainer)
    assert view._step_seconds == pytest.approx(0.001)
    assert view.next_step == 2 + view.every()


def test_sizes_are_bounded_and_bad_grids_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="grid must be 2 to 64 cells, got 65"):
        BoundaryView(CORNERS, np.zeros(4), grid=65)
    line = '{"type":"boundary","kind":"classes","lo":[0,0],"hi":[1,1],"predicted":["%s"]}'
    with pytest.raises(events.EventError, match="predicted must be 1 to 64 equal strings"):
        events.decode(line % ("0" * 65), "f:1")
    with pytest.raises(events.EventError, match="predicted must be"):
        events.decode(line % "0!", "f:1")
    assert events.decode(line % ("0" * 64), "f:1").predicted == ["0" * 64]


def test_a_spirals_event_carries_the_neurons_of_2_32_32_3_and_stays_small(tmp_path):
    from views_helpers import spirals_run

    snapshots, _ = spirals_run(tmp_path, arch="2-32-32-3", epochs=1)
    boundaries = [s for s in snapshots if isinstance(s, events.Boundary)]
    assert boundaries and boundaries[-1].epoch == 0
    assert math.isclose(len(boundaries[-1].predicted[0]), 48)
    for event in boundaries:
        assert [(layer["layer"], len(layer["units"])) for layer in event.neurons] == [
            ("dense_1", 32),
            ("dense_2", 32),
        ]
        # 64 units share the cells: 12x12 maps (16x16 for up to 36 units).
        maps = [unit["map"] for layer in event.neurons for unit in layer["units"]]
        assert {(len(m), len(m[0])) for m in maps} == {(12, 12)}
        assert len(event.neurons[1]["units"][0]["weights"]) == 32
    sizes = [len(event.line()) for event in boundaries]
    assert max(sizes) < 30_000, sizes  # 2 rasters of 48x48, 64 maps of 12x12, 1,088 weights


def test_neurons_are_drawn_for_the_layers_that_fit_the_event():
    trainer = _trainer("dense(8) relu dense(65) relu dense(16) relu dense(3)", 2)
    fields = _view(trainer, CORNERS, np.array([0, 1, 0, 1]), grid=48).compute(trainer)
    # 65 units are more than a layer may show; the output layer is not hidden.
    assert [layer["layer"] for layer in fields["neurons"]] == ["dense_1", "dense_3"]
    assert len(fields["neurons"][0]["units"][0]["map"]) == 16  # 24 units: 16x16
    wide = _trainer("2-" + "64-" * 10 + "3", 2)
    fields = _view(wide, CORNERS, np.array([0, 1, 0, 1]), grid=48).compute(wide)
    # 576 units of 4x4 fill the 9,216 cells: the first 9 layers; weights while they fit.
    assert len(fields["neurons"]) == 9 and len(fields["neurons"][0]["units"][0]["map"]) == 4
    with_weights = [
        len(layer["units"]) for layer in fields["neurons"] if "weights" in layer["units"][0]
    ]
    assert sum(with_weights) <= events.NEURON_WEIGHTS_MAX and with_weights
    record = events.make("boundary", 3, fields)
    assert events.decode(record.line()) == record


def test_an_event_with_more_neuron_cells_than_allowed_is_refused():
    unit = {"map": ["0" * 16] * 16, "scale": 1.0, "bias": 0.0}
    layers = [{"layer": f"dense_{i}", "units": [unit] * 64} for i in range(1, 4)]
    fields = {"kind": "classes", "lo": [0, 0], "hi": [1, 1], "predicted": ["0"], "neurons": layers}
    with pytest.raises(events.EventError, match="9216 map cells and 4096 weights in all"):
        events.make("boundary", 3, fields)
