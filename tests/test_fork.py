"""Fork: a new run from a checkpoint of another, with changes; the parent is recorded and kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import long_run, paused, pilot_test, press, started, until
from textual.widgets import Input

from nnlib import checkpointing, runs
from nnlib.callbacks import Callback
from nnlib.cli import main
from nnlib.config import ConfigError, ExperimentConfig
from nnlib.experiment import fork_config, setup
from nntui.app import NNTui
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.modals import HparamScreen

ARCH = "flatten dense(16) relu dropout(0.2) dense(10)"


def parent(tmp_path: Path) -> Path:
    config = ExperimentConfig(
        dataset="glyphs",
        arch=ARCH,
        subset=300,
        epochs=2,
        batch_size=32,
        optimizer="adam",
        lr=0.01,
        checkpoint_every=4,
        histogram_every=1000,
        run_dir=str(tmp_path / "parent"),
    )
    setup(config).fit(threads=1)
    return tmp_path / "parent"


def batches(run: Path) -> list[runs.Event]:
    return [e for e in runs.read(run) if e.type == "batch"]


def test_an_unchanged_fork_continues_the_parent_exactly(tmp_path: Path) -> None:
    run = parent(tmp_path)
    child = tmp_path / "child"
    argv = ["train", "--fork", f"{run}@12", "--run-dir", str(child), "--quiet", "--threads", "1"]
    assert main(argv) == 0
    assert [e["loss"] for e in batches(child)] == [e["loss"] for e in batches(run) if e.step > 12]
    assert batches(child)[0].step == 13
    mine = checkpointing.load(checkpointing.find(child)).model.get_weights()
    for name, value in checkpointing.load(checkpointing.find(run)).model.get_weights().items():
        np.testing.assert_array_equal(mine[name], value, err_msg=name)
    resumed = [e for e in runs.read(child) if e.type == "run_resume"]
    assert resumed[0]["parent"] == {"run": str(run), "step": 12}


def test_changes_apply_and_the_parent_is_recorded(tmp_path: Path) -> None:
    run = parent(tmp_path)
    before = sorted(p.name for p in run.rglob("*"))
    child = tmp_path / "child"
    argv = ["train", "--fork", f"{run}@best", "--lr", "0.002", "--epochs", "3", "--quiet"]
    assert main([*argv, "--run-dir", str(child), "--threads", "1"]) == 0
    config = json.loads((child / runs.CONFIG_FILE).read_text())
    best_step = checkpointing.load(run / checkpointing.FOLDER / checkpointing.BEST).step
    assert config["parent"] == {"run": str(run), "step": best_step}
    assert (config["lr"], config["epochs"], config["trainer"]["optimizer"]["lr"]) == (
        0.002,
        3,
        0.002,
    )
    assert ExperimentConfig.load(child / "experiment.toml").parent_step == best_step
    logged = batches(child)
    assert {e["lr"] for e in logged} == {0.002}
    # the weights it starts from are the parent's: its first loss is the parent's next one
    parents = [e["loss"] for e in batches(run) if e.step == best_step + 1]
    if parents:  # best at the last epoch leaves no next step in the parent
        assert logged[0]["loss"] == parents[0]
    assert sorted(p.name for p in run.rglob("*")) == before  # the parent is untouched


def test_fork_changes_the_optimizer_and_keeps_the_live_hyperparameters(tmp_path: Path) -> None:
    run = parent(tmp_path)
    assert fork_config(str(run)).lr == 0.01  # Adam's lr as it stood
    config = fork_config(f"{run}@12", optimizer="sgd", lr=0.05)
    assert (config.optimizer, config.parent_step, config.parent_run) == ("sgd", 12, str(run))
    experiment = setup(config.replace(run_dir=str(tmp_path / "sgd")))
    assert experiment.trainer.global_step == 12
    assert experiment.trainer.optimizer.state == {}  # Adam's moments do not fit SGD


def test_bad_fork_sources_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = parent(tmp_path)
    with pytest.raises(ConfigError, match="no checkpoint at step 5; the run has steps"):
        fork_config(f"{run}@5")
    with pytest.raises(ConfigError, match="has trained 2 of its 2 epochs"):
        setup(fork_config(str(run)).replace(run_dir=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()  # refused before a run directory was made
    assert main(["train", "--fork", f"{tmp_path}/none@last"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err


@pilot_test
async def test_the_app_forks_a_paused_run_with_the_edited_hyperparameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path / "runs"))
    config = long_run(tmp_path, checkpoint_every=0)
    app = NNTui(config, start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await started(pilot)
        await paused(pilot, dashboard)
        step = dashboard.experiment.trainer.global_step
        await press(pilot, "f")
        await until(pilot, lambda: isinstance(app.screen, HparamScreen))
        app.screen.query_one("#lr", Input).value = "0.02"
        await press(pilot, "enter")
        await until(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen is not dashboard
        )
        child = app.screen
        # the fork starts at the parent's step: wait for batches of its own
        await until(
            pilot,
            lambda: (
                child.experiment is not None and child.experiment.trainer.global_step > step + 2
            ),
        )
        assert (child.config.lr, child.config.parent_step) == (0.02, step)
        assert child.config.parent_run == str(tmp_path / "run")
        assert child.experiment.trainer.optimizer.lr == 0.02
        recorded = json.loads((child.experiment.run_dir / runs.CONFIG_FILE).read_text())
        assert recorded["parent"] == {"run": str(tmp_path / "run"), "step": step}
        child.shutdown()
    assert (tmp_path / "run" / runs.EVENTS_FILE).is_file()  # the original stays on disk
    assert checkpointing.find(tmp_path / "run", step).is_file()


@pilot_test
async def test_fork_asks_for_a_pause_and_cancel_forks_nothing(tmp_path: Path) -> None:
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await started(pilot)
        await press(pilot, "f")
        assert app.screen is dashboard  # running: f asks for a pause first
        await paused(pilot, dashboard)
        await press(pilot, "f")
        await until(pilot, lambda: isinstance(app.screen, HparamScreen))
        await press(pilot, "escape")
        await until(pilot, lambda: app.screen is dashboard)
        assert dashboard.running
        dashboard.shutdown()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--fork", ""], "'': expected RUN, RUN@last, RUN@best or RUN@<step>, got no RUN"),
        (["--fork", "@best"], "got no RUN"),
        (["--fork", "run@" + "9" * 5000], "a step of at most 18 digits"),
        (["--fork", "run@²"], "got '²' after the @"),
        (["--resume", ""], "--resume: give the run directory to continue, got ''"),
    ],
)
def test_an_empty_fork_or_resume_or_a_step_past_any_number_is_one_line(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Never a fresh run without its parent (an empty RUN was taken for no --fork at all),
    # never Python's int-digit-limit traceback, and a message of a readable size.
    argv = ["train", *args, "--dataset", "spirals", "--run-dir", str(tmp_path / "r")]
    if args[0] == "--resume":
        argv = ["train", *args]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert len(lines[0]) < 300
    assert not (tmp_path / "r").exists()


def test_a_fork_keeps_the_l1_the_parent_was_steered_to(tmp_path: Path) -> None:
    class SteerL1(Callback):
        def on_batch_end(self, trainer, batch, logs):
            if trainer.global_step == 5:
                trainer.set("l1", 0.004)

    config = ExperimentConfig(
        dataset="spirals",
        arch="2-8-3",
        epochs=1,
        l1=0.001,
        checkpoint_every=10,
        histogram_every=1000,
        run_dir=str(tmp_path / "parent"),
    )
    setup(config, callbacks=[SteerL1()]).fit(threads=1)
    run = tmp_path / "parent"
    assert ExperimentConfig.load(run / "experiment.toml").l1 == 0.001
    assert fork_config(f"{run}@10").l1 == 0.004  # as it stood at the checkpoint
    assert fork_config(f"{run}@10", l1=0.0).l1 == 0.0
