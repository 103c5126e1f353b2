"""prepare(): subset, stratified validation split, normalisation fitted on train rows only."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib.datasets as nds


def make(x_train, y_train, task="classification", k=None) -> nds.Dataset:
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)
    k = k if k is not None else (int(y_train.max()) + 1 if task == "classification" else None)
    return nds.Dataset(
        name="t",
        x_train=x_train,
        y_train=y_train,
        x_test=x_train[:3],
        y_test=y_train[:3],
        input_shape=x_train.shape[1:],
        task=task,
        num_classes=k,
        class_names=[str(i) for i in range(k)] if k else None,
    )


def test_auto_scales_uint8_images_to_float32():
    ds = nds.load("glyphs", n_train=60, n_test=20)
    p = nds.prepare(ds)
    assert p.normalization == {"kind": "scale", "factor": 255.0}
    for x in (p.x_train, p.x_val, p.x_test):
        assert x.dtype == np.float32
    assert p.x_train.min() >= 0 and p.x_train.max() == 1.0
    assert np.array_equal(p.x_train, ds.x_train.astype(np.float32) / 255)
    assert p.x_val.shape == (0, 28, 28, 1) and p.y_val.shape == (0,) and p.y_val.dtype == np.int64
    assert (p.input_shape, p.task, p.num_classes) == ((28, 28, 1), "classification", 10)
    assert p.class_names == ds.class_names and p.dataset is ds


def test_auto_standardizes_floats_with_train_statistics_only():
    ds = nds.load("blobs", n_train=400, n_test=100)
    p = nds.prepare(ds, validation_split=0.25, seed=1)
    assert p.normalization["kind"] == "standardize"
    assert np.allclose(p.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(p.x_train.std(axis=0), 1, atol=1e-4)
    # the statistics are those of the 300 remaining train rows, not of val or test
    keep, _ = nds.preprocess.split_indices(ds.y_train, 0.25, seed=1)
    train_rows = ds.x_train[keep]
    assert np.allclose(p.normalization["mean"], train_rows.mean(axis=0), atol=1e-5)
    assert not np.allclose(p.normalization["mean"], ds.x_train.mean(axis=0), atol=1e-5)
    assert np.allclose(p.x_test, (ds.x_test - train_rows.mean(0)) / train_rows.std(0), atol=1e-4)
    assert all(a.dtype == np.float32 for a in (p.x_train, p.x_val, p.x_test))


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(3), [60, 30, 10])
    ds = make(np.arange(100, dtype=np.float32)[:, None], y)
    p = nds.prepare(ds, validation_split=0.2, seed=5)
    assert np.bincount(p.y_val).tolist() == [12, 6, 2]
    assert np.bincount(p.y_train).tolist() == [48, 24, 8]
    # no row is lost or duplicated, and order is kept within each part
    rows = (
        np.concatenate([p.x_train, p.x_val]) * p.normalization["std"][0]
        + p.normalization["mean"][0]
    )
    assert sorted(np.rint(rows[:, 0]).astype(int)) == list(range(100))
    assert np.all(np.diff(p.x_train[:, 0]) > 0)


def test_split_is_seeded_and_rounding_is_exact():
    y = np.repeat(np.arange(3), [7, 7, 7])
    a = nds.train_val_split(np.arange(21), y, 0.3, seed=0)
    b = nds.train_val_split(np.arange(21), y, 0.3, seed=0)
    c = nds.train_val_split(np.arange(21), y, 0.3, seed=1)
    assert len(a[2]) == round(0.3 * 21) == 6 and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[2], c[2])
    assert sorted(np.bincount(a[3]).tolist()) == [2, 2, 2]


def test_regression_split_is_random_and_targets_stay_2d():
    ds = nds.load("sine", n_train=100, n_test=10)
    p = nds.prepare(ds, validation_split=0.1)
    assert p.y_val.shape == (10, 1) and p.y_train.shape == (90, 1)
    assert p.y_train.dtype == np.float32 and p.task == "regression"


def test_subset_keeps_the_first_rows_before_the_split():
    ds = nds.load("glyphs", n_train=200, n_test=10)
    p = nds.prepare(ds, subset=100)
    assert len(p.x_train) == 100
    assert np.array_equal(p.y_train, ds.y_train[:100])
    q = nds.prepare(ds, subset=100, validation_split=0.1)
    assert len(q.x_train) + len(q.x_val) == 100
    with pytest.raises(nds.DatasetError, match="subset=500 is larger than the 200"):
        nds.prepare(ds, subset=500)
    with pytest.raises(nds.DatasetError, match="subset must be a positive integer"):
        nds.prepare(ds, subset=0)


def test_explicit_modes_and_transform():
    ds = nds.load("moons", n_train=50, n_test=10)
    none = nds.prepare(ds, normalize=None)
    assert none.normalization == {"kind": "none"} and np.array_equal(none.x_train, ds.x_train)
    scaled = nds.prepare(ds, normalize="scale")
    assert np.isclose(np.abs(scaled.x_train).max(), 1.0)
    assert np.array_equal(scaled.transform(ds.x_test), scaled.x_test)
    std = nds.prepare(ds, normalize="standardize")
    assert np.allclose(std.transform(ds.x_train), std.x_train)
    with pytest.raises(nds.DatasetError, match="normalize must be one of"):
        nds.prepare(ds, normalize="minmax")
    with pytest.raises(nds.DatasetError, match=r"validation fraction must be in \[0, 1\)"):
        nds.prepare(ds, validation_split=1.0)


def test_constant_feature_does_not_divide_by_zero():
    x = np.stack([np.ones(10), np.arange(10)], axis=1).astype(np.float32)
    p = nds.prepare(make(x, np.arange(10) % 2))
    assert np.isfinite(p.x_train).all() and np.all(p.x_train[:, 0] == 0)


def test_nan_written_into_a_dataset_later_is_caught():
    ds = nds.load("xor", n_train=20, n_test=5)
    ds.x_test[3, 0] = np.inf
    with pytest.raises(nds.DatasetError, match="x_test holds NaN or inf values \\(first at row 3"):
        nds.prepare(ds)


def test_helpers():
    x, y = np.arange(10)[:, None], np.arange(10)
    xs, ys = nds.shuffle(x, y, seed=2)
    assert np.array_equal(xs[:, 0], ys) and not np.array_equal(ys, y)
    z, mean, std = nds.standardize(np.array([[1.0], [3.0]], np.float32))
    assert z.tolist() == [[-1.0], [1.0]] and mean.tolist() == [2.0] and std.tolist() == [1.0]
    s, factor = nds.scale(np.array([0, 255], np.uint8))
    assert s.dtype == np.float32 and s.tolist() == [0.0, 1.0] and factor == 255.0
