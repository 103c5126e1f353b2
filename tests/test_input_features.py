"""The input-feature layer (issue 19, item 5): TensorFlow Playground's features of a 2-D point
as the first token of a spec. Its input gradient passes gradcheck and it survives the spec and
save/load for every subset and order of features; the Boundary view still draws the plane."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib.callbacks.boundary import BoundaryView
from nnlib.layers.features import FEATURES
from nnlib.losses import loss_for
from nnlib.optimizers import make_optimizer

SETTINGS = settings(derandomize=True, max_examples=40, deadline=None)

#: Any non-empty selection of features, in any order.
selections = st.lists(st.sampled_from(list(FEATURES)), min_size=1, max_size=7, unique=True)
points = st.integers(0, 2**32 - 1).map(
    lambda seed: np.random.default_rng(seed).uniform(-3, 3, (4, 2))
)


def expected(names: list[str], x: np.ndarray) -> np.ndarray:
    """The features written out by hand (Playground's list)."""
    a, b = x[:, 0], x[:, 1]
    values = {
        "x1": a,
        "x2": b,
        "x1sq": a**2,
        "x2sq": b**2,
        "x1x2": a * b,
        "sinx1": np.sin(a),
        "sinx2": np.sin(b),
    }
    return np.stack([values[name] for name in names], axis=1)


@SETTINGS
@given(names=selections, x=points)
def test_the_layer_passes_gradcheck_for_any_selection(names, x):
    layer = nl.InputFeatures(names)
    result = nl.gradcheck(layer, x)
    assert set(result.errors) == {"input"}  # no parameters
    assert result.max_error < 1e-6, str(result)
    built = nl.build(f"features({','.join(names)})", (2,)).to(np.float64)
    np.testing.assert_allclose(built.forward(x), expected(names, x), rtol=1e-12)


@SETTINGS
@given(names=selections, x=points)
def test_a_model_with_features_passes_gradcheck(names, x):
    model = nl.build(f"features({', '.join(names)}) dense(5) tanh dense(3)", (2,), seed=1)
    result = nl.gradcheck(model, x, np.array([0, 1, 2, 1]), nl.SoftmaxCrossEntropy())
    assert result.max_error < 1e-6, str(result)


@settings(SETTINGS, max_examples=20)
@given(names=selections, seed=st.integers(0, 1000))
def test_features_round_trip_through_the_spec_and_save_load(tmp_path_factory, names, seed):
    spec = f"features({','.join(names)}) dense(4) relu dense(2)"
    model = nl.build(spec, (2,), seed=seed)
    assert model.spec == spec
    assert nl.build(model.spec, (2,)).layers[0].names == tuple(names)
    summary = model.summary()
    assert (summary.layers[0].name, summary.layers[0].output_shape) == ("features_1", (len(names),))
    assert summary.layers[0].params == 0 and model.layers[0].params == {}
    same = nl.load(model.save(tmp_path_factory.mktemp("model") / "features.npz"))
    assert same.spec == spec and same.layers[0].names == tuple(names)
    x = np.random.default_rng(seed).uniform(-2, 2, (16, 2)).astype(np.float32)
    np.testing.assert_array_equal(same.predict(x), model.predict(x))


@pytest.mark.parametrize(
    ("spec", "shape", "words"),
    [
        ("features dense(2)", (2,), ["missing names", "features(x1|x2|x1sq"]),
        ("features(x3) dense(2)", (2,), ["unknown feature 'x3'", "sinx2"]),
        ("features(x1,X1) dense(2)", (2,), ["feature 'x1' is given twice"]),
        ("features(names=x1) dense(2)", (2,), ["written by position"]),
        ("features(x1,2) dense(2)", (2,), ["unknown feature 2"]),
        ("features(x1) dense(2)", (3,), ["2-D point", "(3,)"]),
        ("conv(2,3) features(x1) dense(2)", (5, 5, 1), ["spec token 2", "2-D point"]),
    ],
)
def test_a_bad_features_token_names_what_is_wrong(spec, shape, words):
    with pytest.raises(nl.SpecError) as error:
        nl.build(spec, shape)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("names", ["x1", [], ["x1", ["x2"]]])
def test_the_constructor_refuses_what_is_not_a_list_of_feature_names(names):
    with pytest.raises(ValueError, match="InputFeatures"):
        nl.InputFeatures(names)


def test_the_boundary_view_draws_over_the_plane_not_the_features():
    """A linear classifier of x1² + x2² is a disc in the plane: the view's grid is still the
    2-D input box, and it shows the disc."""
    model = nl.build("features(x1sq,x2sq) dense(2)", (2,), seed=0)
    dense = model.layers[1]
    dense.params["W"].value[:] = [[0.0, 1.0], [0.0, 1.0]]  # class 1 where x1² + x2² > 0.5
    dense.params["b"].value[:] = [0.0, -0.5]
    trainer = nl.Trainer(model, loss_for("classification"), make_optimizer("sgd", lr=0.1))
    corners = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    view = BoundaryView(corners, np.array([1, 1, 1, 1]), grid=8)
    view.applies = True
    view._fixed = view._static(trainer)
    fields = view.compute(trainer)
    assert fields["lo"] == pytest.approx([-1.2, -1.2]) and fields["hi"] == pytest.approx([1.2, 1.2])
    # Cell centres at ±0.15, ±0.45, ±0.75, ±1.05: inside the disc (radius √0.5 ≈ 0.71) when
    # x1² + x2² < 0.5.
    assert fields["predicted"] == [
        "11111111",
        "11111111",
        "11000011",
        "11000011",
        "11000011",
        "11000011",
        "11111111",
        "11111111",
    ]
