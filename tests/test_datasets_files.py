"""A user's own .npz and .csv files: task inference, test hold-out, errors that name the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnlib.datasets as nds


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_DATA_DIR", str(tmp_path / "home"))


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------------------------------ npz


def test_npz_with_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(40, 3)),
        y_train=np.arange(40) % 3,
        x_test=rng.normal(size=(10, 3)),
        y_test=np.arange(10) % 3,
    )
    ds = nds.load(path)
    assert ds.name == "mine" and ds.task == "classification" and ds.num_classes == 3
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert (ds.train_size, ds.test_size) == (40, 10)


def test_npz_without_test_holds_out_a_seeded_stratified_fifth(tmp_path):
    path = tmp_path / "images.npz"
    x = np.random.default_rng(1).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=np.repeat(np.arange(5), 10))
    ds = nds.load(path, seed=3)
    assert ds.input_shape == (8, 8, 1) and ds.x_train.dtype == np.uint8  # channel axis added
    assert (ds.train_size, ds.test_size) == (40, 10)
    assert np.bincount(ds.y_test).tolist() == [2] * 5
    assert "20%" in ds.description
    assert np.array_equal(nds.load(path, seed=3).y_test, ds.y_test)
    assert not np.array_equal(nds.load(path, seed=4).x_test, ds.x_test)


def test_npz_regression_and_forced_task(tmp_path):
    path = tmp_path / "reg.npz"
    np.savez(path, x_train=np.ones((10, 2)), y_train=np.linspace(0, 1, 10))
    ds = nds.load(path)
    assert ds.task == "regression" and ds.y_train.shape == (8, 1) and ds.num_classes is None
    path2 = tmp_path / "ints.npz"
    np.savez(path2, x_train=np.ones((10, 2)), y_train=np.arange(10) * 100)
    assert nds.load(path2, task="regression").y_train.dtype == np.float32
    path3 = tmp_path / "floats.npz"
    np.savez(path3, x_train=np.ones((10, 2)), y_train=np.arange(10) % 2 * 1.0)
    assert nds.load(path3, task="classification").num_classes == 2


def test_npz_class_names_and_image_shape(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(
        path,
        x_train=np.zeros((10, 12), np.uint8),
        y_train=np.arange(10) % 2,
        class_names=np.array(["cat", "dog"]),
    )
    ds = nds.load(path, image_shape=(2, 2, 3))
    assert ds.input_shape == (2, 2, 3) and ds.class_names == ["cat", "dog"]
    with pytest.raises(nds.DatasetError, match=r"x_train: image_shape \(3, 3, 1\) needs 9"):
        nds.load(path, image_shape=(3, 3, 1))


def test_npz_class_names_stored_as_bytes_read_as_text(tmp_path):
    """class_names saved as bytes (numpy's S dtype) are the words, not "b'cat'"; bytes that
    are not UTF-8 text are refused, naming the array."""
    path = tmp_path / "bytes.npz"
    names = np.array([b"cat", "caf\u00e9".encode()])
    np.savez(path, x_train=np.ones((4, 2)), y_train=np.arange(4) % 2, class_names=names)
    assert nds.load(path).class_names == ["cat", "caf\u00e9"]
    np.savez(path, x_train=np.ones((4, 2)), y_train=np.arange(4) % 2, class_names=[b"a", b"\xff"])
    with pytest.raises(nds.DatasetError, match=r"bytes\.npz: class_names are not UTF-8 text"):
        nds.load(path)


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.ones((3, 2)), "y": np.arange(3)}, r"missing array 'x_train' \(found: x, y\)"),
        ({"x_train": np.ones((3, 2))}, "missing array 'y_train'"),
        (
            {"x_train": np.ones((3, 2)), "y_train": np.arange(4)},
            "x_train has 3 rows but y_train has 4",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.arange(4), "x_test": np.ones((2, 2))},
            "has x_test but not y_test",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, -1, 0])},
            r"y_train\[2\]: label -1 is negative",
        ),
        (
            {"x_train": np.array([[1.0, 2], [3, np.nan], [5, 6]]), "y_train": np.arange(3)},
            "x_train holds NaN or inf values \\(first at row 1\\)",
        ),
        (
            {"x_train": np.ones((3, 2)), "y_train": np.array([0.0, np.inf, 1.0])},
            "y_train holds NaN or inf values \\(first at row 1\\)",
        ),
        (
            {"x_train": np.array([["a", "b"]] * 3), "y_train": np.arange(3)},
            "x_train: expected numbers",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 2, 10**6])},
            r"y_train\[3\]: label 1000000 would make 1000001 classes; at most 1000",
        ),
        (
            {"x_train": np.ones((4, 2)), "y_train": np.arange(4), "class_names": np.array(["a"])},
            "1 class_names but labels go up to 3",
        ),
    ],
)
def test_npz_errors_name_the_key(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(nds.DatasetError, match=message):
        nds.load(path)


def test_npz_non_integer_labels_when_classification_is_forced(tmp_path):
    path = tmp_path / "half.npz"
    np.savez(path, x_train=np.ones((3, 2)), y_train=np.array([0.0, 1.5, 1.0]))
    with pytest.raises(nds.DatasetError, match=r"y_train\[1\]: label 1.5 is not an integer"):
        nds.load(path, task="classification")


def test_npz_unreadable_and_pickled(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(nds.DatasetError, match="junk.npz: not a readable .npz"):
        nds.load(junk)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}], dtype=object), y_train=np.arange(1))
    with pytest.raises(nds.DatasetError, match="obj.npz: array 'x_train' holds Python objects"):
        nds.load(pickled)


def test_relative_path_is_found_in_the_data_dir(tmp_path):
    np.savez(tmp_path / "rel.npz", x_train=np.ones((5, 2)), y_train=np.arange(5) % 2)
    assert nds.load("rel.npz", data_dir=tmp_path).name == "rel"


def test_unsupported_and_missing_paths(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(nds.DatasetError, match="unsupported file type .json"):
        nds.load(tmp_path / "x.json")
    with pytest.raises(nds.DatasetError, match="no such file: .*missing.csv"):
        nds.load(tmp_path / "missing.csv")
    with pytest.raises(nds.DatasetError, match="unknown option.*noise"):
        nds.load(tmp_path / "x.json", noise=1)


# ------------------------------------------------------------------------------------------ csv


def test_csv_mnist_style_label_first_without_header(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 4))
    rows = [",".join(map(str, [i % 10, *p])) for i, p in enumerate(pixels)]
    ds = nds.load(write_csv(tmp_path / "digits.csv", rows), image_shape=(2, 2, 1))
    assert ds.x_train.dtype == np.uint8 and ds.input_shape == (2, 2, 1)
    assert ds.task == "classification" and ds.num_classes == 10
    assert (ds.train_size, ds.test_size) == (16, 4)
    all_x = np.concatenate([ds.x_train, ds.x_test]).reshape(20, 4)
    assert sorted(map(tuple, all_x)) == sorted(map(tuple, pixels))


def test_csv_header_label_column_by_name_and_words_as_classes(tmp_path):
    rows = ["sepal,petal,species"] + [f"{i}.5,{i % 3}.25,{'abc'[i % 3]}x" for i in range(30)]
    path = write_csv(tmp_path / "iris.csv", rows)
    ds = nds.load(path, label_column="species")
    assert ds.class_names == ["ax", "bx", "cx"] and ds.input_shape == (2,)
    assert ds.x_train.dtype == np.float32
    assert np.array_equal(nds.load(path, label_column=-1).y_train, ds.y_train)
    assert np.array_equal(nds.load(path, label_column="2").y_train, ds.y_train)


def test_csv_default_label_column_from_header_name(tmp_path):
    rows = ["a;b;target"] + [f"{i};{i * 2};{i % 2}" for i in range(10)]
    ds = nds.load(write_csv(tmp_path / "semi.csv", rows))
    assert ds.num_classes == 2 and ds.input_shape == (2,) and "'target'" in ds.description


def test_csv_float_labels_mean_regression(tmp_path):
    rows = ["x,y"] + [f"{i},{i * 0.5 + 0.1}" for i in range(10)]
    ds = nds.load(write_csv(tmp_path / "reg.csv", rows), label_column="y")
    assert ds.task == "regression" and ds.y_train.shape == (8, 1)


@pytest.mark.parametrize(
    "rows,kwargs,message",
    [
        (["label,a,b", "1,2,3", "0,4"], {}, "line 3: 2 columns, but the header has 3"),
        (["1,2,3", "0,4,5,6"], {}, "line 2: 4 columns, but the first row has 3"),
        (["label,a,b", "1,2,3", "0,x,5"], {}, r"line 3, column 1 \('a'\): 'x' is not a number"),
        (["label,a,b", "1,2,3", "0,4,"], {}, r"line 3, column 2 \('b'\): empty cell"),
        (["label,a,b", "1,2,3", "0,nan,4"], {}, r"line 3, column 1 \('a'\): nan value"),
        (
            ["label,a,b", "1,2,3", "-1,4,5"],
            {},
            r"line 3, column 0 \('label'\): label -1 is negative",
        ),
        (
            ["label,a,b", "1,2,3", "2.5,4,5"],
            {"image_shape": (1, 2, 1)},
            r"line 3, column 0 \('label'\): label 2.5 is not an integer",
        ),
        (
            ["label,a,b", "1,2,3", "cat,4,5"],
            {},
            r"line 3, column 0 \('label'\): label 'cat' is not",
        ),
        (
            ["label,a,b", "1,2,3", "0,4,5"],
            {"image_shape": (2, 2, 1)},
            r"image_shape \(2, 2, 1\) needs 4 pixel columns but there are 2",
        ),
        (["label,a,b", "1,2,3"], {"label_column": "klass"}, "no column named 'klass'"),
        (["1,2,3", "0,4,5"], {"label_column": "klass"}, "is a name but the file has no header"),
        (["1,2,3", "0,4,5"], {"label_column": 7}, "label_column 7 is out of range for 3 columns"),
        (["label,a,b"], {}, "only a header line"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path, rows, kwargs, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(nds.DatasetError, match=message) as err:
        nds.load(path, **kwargs)
    assert "bad.csv" in str(err.value)


def test_csv_empty_and_binary(tmp_path):
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(nds.DatasetError, match="empty.csv: the file is empty"):
        nds.load(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(nds.DatasetError, match="bin.csv: not UTF-8"):
        nds.load(tmp_path / "bin.csv")


def test_csv_quoted_cells_and_blank_lines(tmp_path):
    rows = [
        '"label","a","b"',
        '"1","2","3"',
        "",
        '"0","4","5"',
        '"1","6","7"',
        '"0","8","9"',
        '"1","1","1"',
    ]
    ds = nds.load(write_csv(tmp_path / "quoted.csv", rows))
    assert ds.train_size + ds.test_size == 5 and ds.input_shape == (2,)
