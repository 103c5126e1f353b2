"""Built-in generated datasets: determinism, shapes, dtypes, label ranges; registry and load()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnlib.datasets as nds
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup

CLASSIFICATION_2D = {
    "spirals": 3,
    "moons": 2,
    "circles": 2,
    "xor": 2,
    "blobs": 4,
    "spirals-hard": 2,
}
REGRESSION = {"sine": 1, "surface": 2}
SMALL = {"n_train": 120, "n_test": 40}


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_DATA_DIR", str(tmp_path / "data"))


def _same(a: nds.Dataset, b: nds.Dataset) -> bool:
    return all(
        np.array_equal(getattr(a, k), getattr(b, k))
        for k in ("x_train", "y_train", "x_test", "y_test")
    )


@pytest.mark.parametrize("name", [*CLASSIFICATION_2D, *REGRESSION, "glyphs"])
def test_generators_are_deterministic_for_a_seed(name):
    a = nds.load(name, seed=3, **SMALL)
    b = nds.load(name, seed=3, **SMALL)
    c = nds.load(name, seed=4, **SMALL)
    assert _same(a, b)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)


@pytest.mark.parametrize("name,k", CLASSIFICATION_2D.items())
def test_2d_classification_shapes_and_labels(name, k):
    ds = nds.load(name, **SMALL)
    assert ds.x_train.shape == (120, 2) and ds.x_test.shape == (40, 2)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.task == "classification" and ds.num_classes == k and ds.input_shape == (2,)
    assert ds.class_names == [str(i) for i in range(k)]
    assert set(np.unique(ds.y_train)) == set(range(k))
    counts = np.bincount(ds.y_train, minlength=k)
    if name != "xor":  # xor labels come from the quadrant, the others are balanced
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name,d", REGRESSION.items())
def test_regression_shapes(name, d):
    ds = nds.load(name, **SMALL)
    assert ds.x_train.shape == (120, d) and ds.y_train.shape == (120, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
    assert ds.task == "regression" and ds.num_classes is None and ds.class_names is None


def test_default_sizes_match_available():
    infos = {i.name: i for i in nds.available()}
    for name in [*CLASSIFICATION_2D, *REGRESSION]:
        ds = nds.load(name)
        assert (ds.train_size, ds.test_size) == (infos[name].train_size, infos[name].test_size)
        assert infos[name].on_disk and infos[name].source == "generated"
        assert infos[name].noise is not None  # the default the setup screen shows
    assert infos["mnist"].source == "download" and not infos["mnist"].on_disk


def test_test_set_does_not_depend_on_n_train():
    a = nds.load("moons", n_train=100, n_test=50)
    b = nds.load("moons", n_train=300, n_test=50)
    assert np.array_equal(a.x_test, b.x_test)


def test_generator_options_are_validated():
    assert nds.load("spirals", arms=5, **SMALL).num_classes == 5
    assert nds.load("blobs", centers=6, **SMALL).num_classes == 6
    assert nds.load("moons", noise=0.0, **SMALL).x_train.dtype == np.float32
    with pytest.raises(nds.DatasetError, match="noise"):
        nds.load("moons", noise=-1)
    with pytest.raises(nds.DatasetError, match="n_train"):
        nds.load("xor", n_train=0)
    assert nds.load("spirals", turns=2.5, **SMALL).description.startswith("3 spiral arms of 2.5")
    with pytest.raises(nds.DatasetError, match="spirals-hard: turns must be > 0"):
        nds.load("spirals-hard", turns=0)
    with pytest.raises(nds.DatasetError, match="unknown option.*colour"):
        nds.load("circles", colour="red")
    with pytest.raises(nds.DatasetError, match="label_column"):
        nds.load("sine", label_column=0)


def test_glyphs_images():
    ds = nds.load("glyphs", n_train=200, n_test=50)
    assert ds.x_train.shape == (200, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and np.bincount(ds.y_train).tolist() == [20] * 10
    assert ds.class_names == [str(d) for d in range(10)] and ds.is_image
    # ink is drawn: every image has bright pixels and a mostly dark background
    # ink level >= 1 - 0.35 * 1.5 at the default distortion: a stroke pixel >= 121 (min seen 140)
    assert (ds.x_train.reshape(200, -1).max(axis=1) > 115).all()
    assert np.median(ds.x_train) < 40
    # the clean font renders each digit identically apart from ink level and noise: a template
    clean = nds.load("glyphs", n_train=20, n_test=0, augment=0.0)
    assert clean.x_train.shape == (20, 28, 28, 1)


def test_names_are_case_and_underscore_tolerant():
    assert "fashion-mnist" in nds.names()
    with pytest.raises(nds.DatasetError, match="files not found"):
        nds.load("Fashion_MNIST", download=False)


def test_unknown_name_lists_the_builtins():
    with pytest.raises(nds.DatasetError, match="not a built-in name.*spirals"):
        nds.load("no-such-set")


def test_dataset_rejects_bad_arrays():
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 0, 1], np.int64)
    kwargs = dict(
        name="t",
        x_test=x,
        y_test=y,
        input_shape=(2,),
        task="classification",
        num_classes=2,
        class_names=["a", "b"],
    )
    with pytest.raises(nds.DatasetError, match="x_train has dtype float64"):
        nds.Dataset(x_train=x.astype(np.float64), y_train=y, **kwargs)
    with pytest.raises(nds.DatasetError, match=r"y_train\[3\] = 5"):
        nds.Dataset(x_train=x, y_train=np.array([0, 1, 0, 5]), **kwargs)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(nds.DatasetError, match="x_train holds NaN or inf.*row 2"):
        nds.Dataset(x_train=bad, y_train=y, **kwargs)
    with pytest.raises(nds.DatasetError, match="3 rows"):
        nds.Dataset(x_train=x[:3], y_train=y, **kwargs)


def test_import_pulls_in_no_ui_library():
    code = (
        "import sys, nnlib.datasets; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'textual', 'plotext')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "epochs", "reached"), [("spirals", 20, True), ("spirals-hard", 20, False)]
)
def test_spirals_hard_takes_a_while_where_spirals_is_learned_at_once(
    tmp_path, name, epochs, reached
):
    """Issue 19 item 5: with the default architecture and hyperparameters every other 2-D set
    passes 95% validation accuracy within 6 epochs; spirals-hard is far from it after 20 (it
    takes 109 to 349, see the README)."""
    config = ExperimentConfig(dataset=name, epochs=epochs, run_dir=str(tmp_path / "run"))
    accuracy = setup(config).fit(threads=1).series("val_accuracy")[-1]
    assert (accuracy > 0.95) if reached else (accuracy < 0.8)
