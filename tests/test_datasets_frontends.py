"""How the CLI and the app meet the dataset loaders (issue 8, item 19): dataset notes as one
plain line / a notification, one resolver for `nnlib train` and `nntui`, "no such file" for a
missing path, and the CSV label column from the command line and the config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from helpers import until

import nnlib.datasets as nds
from nnlib import cli
from nnlib.config import ExperimentConfig
from nntui import cli as tui_cli
from nntui.app import NNTui
from nntui.screens.dashboard import DashboardScreen


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NNLIB_DATA_DIR", str(home))
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("NNLIB_MNIST_MIRRORS", "http://127.0.0.1:9/")  # never contacted
    return home


def partial_mnist(data_dir: Path, n: int = 40) -> None:
    """Only the t10k files, uncompressed (no published checksum to match)."""
    rng = np.random.default_rng(0)
    nds.write_idx(
        data_dir / "mnist" / "t10k-images-idx3-ubyte",
        rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
    )
    nds.write_idx(
        data_dir / "mnist" / "t10k-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8)
    )


def train(*args: str) -> int:
    return cli.main(["train", "--epochs", "1", "--quiet", *args])


# ------------------------------------------------------------------------------- notes


def test_partial_mnist_is_one_plain_note_line_in_the_cli(tmp_path, data_home, capsys):
    partial_mnist(data_home)
    code = train("--dataset", "mnist", "--arch", "784-10", "--run-dir", str(tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "first 32 as train and the last 8 as test" in notes[0]
    assert "Warning" not in err and "warnings.warn" not in err


def test_partial_mnist_note_is_a_notification_in_the_app(tmp_path, data_home):
    partial_mnist(data_home)
    config = ExperimentConfig(
        dataset="mnist", arch="784-10", epochs=1, run_dir=str(tmp_path / "r"), seed=0
    )

    async def run() -> None:
        app = NNTui(config, start=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(
                pilot,
                lambda: (
                    isinstance(app.screen, DashboardScreen) and app.screen.state.end is not None
                ),
            )
            assert isinstance(app.screen, DashboardScreen) and app.screen.state.end is not None
            notes = [n for n in app._notifications if n.title == "Dataset"]
            assert len(notes) == 1 and "only the test files" in notes[0].message
            assert not notes[0].markup  # a folder path is never read as markup

    asyncio.run(run())


# ---------------------------------------------------------------------- one resolver


def test_a_csv_in_the_data_folder_is_found_by_both_front_ends(tmp_path, data_home, capsys):
    data_home.mkdir(parents=True)
    (data_home / "mine.csv").write_text("".join(f"{i % 2},{i},{i * 2}\n" for i in range(20)))
    assert train("--dataset", "mine.csv", "--run-dir", str(tmp_path / "r")) == 0
    config, extra = tui_cli.experiment_from_args(
        tui_cli.parser().parse_args(["--dataset", "mine.csv"])
    )
    assert extra is not None and extra.name == "mine.csv" and extra.num_classes == 2
    assert nds.resolve("mine.csv") == data_home / "mine.csv"


@pytest.mark.parametrize("name", ["missing.csv", "sub/missing", "./gone"])
def test_a_missing_path_says_no_such_file(tmp_path, capsys, name):
    assert train("--dataset", name, "--run-dir", str(tmp_path / "r")) == 2
    assert f"no such file: {name.removeprefix('./')}" in capsys.readouterr().err
    assert tui_cli.main(["--dataset", name]) == 2
    assert f"--dataset: no such file: {name.removeprefix('./')}" in capsys.readouterr().err


def test_a_plain_unknown_name_still_lists_the_built_in_datasets(capsys):
    assert tui_cli.main(["--dataset", "nosuchset"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nosuchset'" in err and "glyphs" in err


# ---------------------------------------------------------------------- label column


def write_labelled(path: Path) -> Path:
    """Label in the last column, called 'kind' (not a name the loader guesses)."""
    rows = ["a,b,kind"] + [f"{i},{i * 0.5},{i % 3}" for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("column", ["kind", "2", "-1"])
def test_label_column_flag_in_nnlib_train_and_evaluate(tmp_path, capsys, column):
    path = write_labelled(tmp_path / "kinds.csv")
    run = tmp_path / "r"
    assert train("--dataset", str(path), "--label-column", column, "--run-dir", str(run)) == 0
    saved = ExperimentConfig.load(run / "experiment.toml")
    assert saved.label_column == (int(column) if column.lstrip("-").isdigit() else column)
    capsys.readouterr()
    # evaluate takes the column from the run's config.json, and the flag overrides it
    assert cli.main(["evaluate", str(run / "model.npz"), "--dataset", str(path)]) == 0
    assert "accuracy" in capsys.readouterr().out
    code = cli.main(["evaluate", str(run / "model.npz"), "--dataset", str(path),
                     "--label-column", "a"])  # fmt: skip
    assert code == 2  # column 'a' as labels: 30 classes, the model has 3 outputs


def test_without_the_flag_the_first_column_is_the_label(tmp_path, capsys):
    path = write_labelled(tmp_path / "kinds.csv")
    # column 0 ('a') holds 0..29, each once: 30 classes, which trains but is not what we want
    config, extra = tui_cli.experiment_from_args(
        tui_cli.parser().parse_args(["--dataset", str(path)])
    )
    assert extra.num_classes == 30
    config, extra = tui_cli.experiment_from_args(
        tui_cli.parser().parse_args(["--dataset", str(path), "--label-column", "kind"])
    )
    assert extra.num_classes == 3 and config.label_column == "kind"


def test_label_column_in_a_config_file(tmp_path):
    path = write_labelled(tmp_path / "kinds.csv")
    toml = tmp_path / "exp.toml"
    ExperimentConfig(dataset=str(path), label_column="kind").save(toml)
    assert 'label_column = "kind"' in toml.read_text()
    config, extra = tui_cli.experiment_from_args(
        tui_cli.parser().parse_args(["--config", str(toml)])
    )
    assert extra.num_classes == 3
    with pytest.raises(ValueError, match="label_column must be a CSV column name or index"):
        ExperimentConfig(label_column="")


def test_label_column_with_a_built_in_dataset_is_a_usage_error(capsys):
    assert tui_cli.main(["--dataset", "spirals", "--label-column", "0"]) == 2
    assert "--label-column: applies to .csv dataset files" in capsys.readouterr().err


def test_picking_a_built_in_dataset_in_the_app_drops_the_csv_label_column(tmp_path):
    from textual.widgets import OptionList

    from nntui.screens.setup import SetupScreen
    from nntui.widgets.dataset_picker import DatasetPicker

    path = write_labelled(tmp_path / "kinds.csv")
    config, extra = tui_cli.experiment_from_args(
        tui_cli.parser().parse_args(["--dataset", str(path), "--label-column", "kind"])
    )

    async def run() -> None:
        app = NNTui(config, datasets=nds.available() + [extra])
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SetupScreen)
            assert screen.current_config().label_column == "kind"
            # Picked by hand: the list's first row is spirals, a built-in set.
            screen.query_one(DatasetPicker).query_one(OptionList).focus()
            await pilot.press("home")
            await pilot.pause()
            chosen = screen.current_config()
            assert chosen.dataset == "spirals" and chosen.label_column is None

    asyncio.run(run())
