"""The app driven by keys with the Pilot, on a small built-in dataset that keeps training
long enough to be steered. No sleeps: every wait is a bounded loop of pilot.pause()."""

from __future__ import annotations

import threading

import pytest
from helpers import (
    SIZE,
    burst,
    end_event,
    log_text,
    long_run,
    paused,
    pilot_test,
    press,
    started,
    until,
)
from textual.pilot import Pilot
from textual.widgets import Input, Static

import nnlib.trainer
from nnlib import checkpointing, runs
from nnlib.config import ExperimentConfig
from nntui.app import NNTui
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.modals import ConfirmScreen, HelpScreen, HparamScreen, TooSmallScreen
from nntui.screens.setup import SetupScreen
from nntui.widgets.arch_editor import ArchEditor
from nntui.widgets.keybar import KeyBar
from nntui.widgets.status import StatusPanel


def hold(monkeypatch: pytest.MonkeyPatch, method: str) -> tuple[threading.Event, threading.Event]:
    """Make the training thread wait inside Trainer.`method` until released: returns
    (inside, release) events."""
    inside, release = threading.Event(), threading.Event()
    original = getattr(nnlib.trainer.Trainer, method)

    def held(self, *args):
        inside.set()
        release.wait(10)
        return original(self, *args)

    monkeypatch.setattr(nnlib.trainer.Trainer, method, held)
    return inside, release


async def quit_confirmed(pilot: Pilot, app: NNTui) -> None:
    """q during a run, the confirmation appears, y: the app exits."""
    await press(pilot, "q")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await press(pilot, "y")
    await until(pilot, lambda: app._exit)


@pilot_test
async def test_pause_step_resume_and_stop(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await paused(pilot, dashboard)
        status = dashboard.query_one(StatusPanel)
        assert "PAUSED" in str(status.render())
        step = trainer.global_step
        await press(pilot, "n")
        await until(
            pilot, lambda: trainer.global_step == step + 1 and trainer.wait_until_parked(timeout=0)
        )
        await until(pilot, lambda: dashboard.state.progress.step == step + 1)
        assert trainer.global_step == step + 1 and dashboard.state.status == "paused"
        await press(pilot, "space")
        await until(pilot, lambda: trainer.global_step > step + 5)
        assert dashboard.state.status == "running"
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.end.reason == "stopped"
        assert "STOPPED" in str(status.render())
        assert dashboard.running is False
        keys = str(dashboard.query_one(KeyBar).render())
        assert "Smoothing" in keys and "Pause" not in keys and "Edit hparams" not in keys
    assert end_event(tmp_path).type == "end"
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_lr_keys_change_the_trainer_and_show_at_once(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await paused(pilot, dashboard)
        await press(pilot, "plus")
        assert trainer.pending() == {"lr": 0.1}
        shown = str(dashboard.query_one(StatusPanel).render())
        assert "0.05 → 0.1" in shown or "0.05→0.1" in shown  # at 80 columns beside the pace
        await press(pilot, "plus")
        assert trainer.pending()["lr"] == 0.2
        await press(pilot, "n")  # applied before the next batch
        await until(pilot, lambda: trainer.optimizer.lr == 0.2 and not trainer.pending())
        await press(pilot, "minus", "minus", "minus")
        assert trainer.pending()["lr"] == pytest.approx(0.025)
        await press(pilot, "space")
        await until(pilot, lambda: trainer.optimizer.lr == pytest.approx(0.025))
        await until(pilot, lambda: len(dashboard.state.marks) >= 2)
        log = await log_text(pilot, dashboard)
        assert "lr 0.05 → 0.2" in log or "lr 0.05 → 0.1" in log
    hparams = [e for e in runs.read(tmp_path / "run") if e.type == "hparam"]
    assert hparams and hparams[0]["name"] == "lr"


@pilot_test
async def test_quit_during_a_run_asks_and_no_keeps_running(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await press(pilot, "q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "n")
        await until(pilot, lambda: app.screen is dashboard)
        step = trainer.global_step
        await until(pilot, lambda: trainer.global_step > step + 3)
        await quit_confirmed(pilot, app)
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_quit_while_paused_ends_the_run_log(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await paused(pilot, dashboard)
        await press(pilot, "q", "y")
        await until(pilot, lambda: app._exit)
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_an_exception_in_training_shows_in_the_ui(tmp_path, monkeypatch):
    original = nnlib.trainer.Trainer._train_batch

    def failing(self, xb, yb):
        if self.global_step == 7:
            raise RuntimeError("exploded on purpose")
        return original(self, xb, yb)

    monkeypatch.setattr(nnlib.trainer.Trainer, "_train_batch", failing)
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.status == "error"
        assert "exploded on purpose" in str(dashboard.query_one(StatusPanel).render())
        log = await log_text(pilot, dashboard)
        assert "run failed: RuntimeError: exploded on purpose" in log
        assert any("exploded on purpose" in n.message for n in app._notifications)
        await press(pilot, "1", "2", "3")  # the app keeps working
        assert app.screen is dashboard and not app._exit
    assert end_event(tmp_path)["reason"] == "error"


@pilot_test
async def test_a_bad_dataset_shows_an_error_instead_of_crashing(tmp_path):
    config = long_run(tmp_path, dataset=str(tmp_path / "missing.npz"))
    app = NNTui(config, start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.end.reason == "error" and "missing.npz" in dashboard.state.end.error


@pilot_test
async def test_setup_t_starts_training_and_escape_returns(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        await until(pilot, lambda: app.screen.query_one(ArchEditor).valid)
        await press(pilot, "t")
        dashboard = await started(pilot)
        await press(pilot, "escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "y")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        await until(pilot, lambda: dashboard.state.end is not None or not dashboard.is_attached)
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_an_invalid_spec_shows_its_error_and_the_app_keeps_running(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        editor = app.screen.query_one(ArchEditor)
        arch = editor.query_one("#arch", Input)
        arch.focus()
        arch.value = ""
        await press(pilot, *"conv(3")
        await until(pilot, lambda: editor.result is not None and editor.result.spec == "conv(3")
        message = str(editor.query_one("#arch-message", Static).render())
        assert "never closed" in message and arch.has_class("-invalid")
        arch.value = ""
        await press(pilot, *"2-8-5")
        await until(pilot, lambda: editor.result is not None and editor.result.spec == "2-8-5")
        assert "dense(3)" in str(editor.query_one("#arch-message", Static).render())
        await press(pilot, "tab")
        await press(pilot, "t")  # refused with a notification, not started
        assert isinstance(app.screen, SetupScreen)
        assert any("dense(3)" in n.message for n in app._notifications)
        arch.value = ""
        arch.focus()
        await press(pilot, *"2-8-3")
        await until(pilot, lambda: editor.valid)


@pilot_test
async def test_presets_adapt_or_refuse(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        editor = app.screen.query_one(ArchEditor)
        editor.apply_preset("lenet")
        assert "needs images" in str(editor.query_one("#arch-message", Static).render())
        editor.apply_preset("mlp")
        assert editor.spec == "2-512-128-3"
        await until(pilot, lambda: editor.valid)


@pilot_test
async def test_hyperparameter_fields_are_validated_in_place(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        lr = app.screen.query_one("#lr", Input)
        lr.focus()
        lr.value = ""
        await press(pilot, "minus", "1")
        assert lr.has_class("-invalid")
        assert "lr must be a positive number" in str(app.screen.query_one("#hp-error").render())
        lr.value = "0.2"
        await pilot.pause()
        assert not lr.has_class("-invalid")
        assert app.screen.current_config().lr == 0.2


@pilot_test
async def test_edit_dialog_shows_the_trainers_message_in_place(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await press(pilot, "e")
        await until(pilot, lambda: isinstance(app.screen, HparamScreen))
        dialog = app.screen
        dialog.query_one("#momentum", Input).value = "1.5"
        await press(pilot, "enter")
        assert isinstance(app.screen, HparamScreen)
        assert "momentum" in str(dialog.query_one("#hp-edit-error").render())
        dialog.query_one("#momentum", Input).value = "0.5"
        dialog.query_one("#batch_size", Input).value = "20"
        dialog.query_one("#batch_size", Input).focus()
        await press(pilot, "enter")
        await until(pilot, lambda: app.screen is dashboard)
        await until(pilot, lambda: trainer.optimizer.momentum == 0.5)
        await until(pilot, lambda: trainer.batch_size == 20)


@pilot_test
async def test_help_lists_every_key_and_the_palette_has_the_actions(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await press(pilot, "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        described = {description for _, description in app.screen.keys}
        assert {
            "Pause/Resume",
            "Step",
            "lr×2",
            "lr÷2",
            "Stop",
            "Quit",
            "Help",
            "Edit hparams",
            "Save model",
        } <= described
        await press(pilot, "escape")
        await until(pilot, lambda: app.screen is dashboard)
        await press(pilot, "ctrl+p")
        await press(pilot, *"pause")
        await press(pilot, "enter")
        trainer = dashboard.experiment.trainer
        await until(pilot, lambda: trainer.paused)
        dashboard.shutdown()


@pilot_test
async def test_save_model_when_stopped_and_config_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None)
        await press(pilot, "w")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PathScreen")
        app.screen.query_one(Input).value = str(tmp_path / "mine.npz")
        await press(pilot, "enter")
        await until(pilot, lambda: app.screen is dashboard)
        assert (tmp_path / "mine.npz").exists()
        await press(pilot, "escape")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        await press(pilot, "ctrl+s")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PathScreen")
        await press(pilot, "enter")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
    saved = ExperimentConfig.load(tmp_path / "experiment.toml")
    assert (saved.dataset, saved.arch, saved.batch_size) == ("spirals", "2-16-16-3", 10)


@pilot_test
async def test_a_tiny_terminal_says_so(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=(40, 10)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        assert "too small" in str(app.screen.query_one(Static).render())
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))


@pilot_test
async def test_quit_while_loading_still_leaves_a_complete_log(tmp_path):
    app = NNTui(long_run(tmp_path, dataset="glyphs", arch="784-16-10"), start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await quit_confirmed(pilot, app)
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_a_dialog_opened_while_tiny_does_not_leave_the_notice_behind(tmp_path):
    """q on the "too small" notice asks over it; the terminal grows while the question is
    open; answering "no" must show the dashboard, not the stale notice."""
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=(40, 10)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        await press(pilot, "q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await press(pilot, "n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert not any(isinstance(s, TooSmallScreen) for s in app.screen_stack)
        app.screen.shutdown()


@pilot_test
async def test_save_model_waits_for_a_single_step_to_finish(tmp_path, monkeypatch):
    """`n` runs one batch while the dashboard still says "paused": `w` must not read the
    weights (on the UI thread) while that batch is updating them."""
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await paused(pilot, dashboard)
        inside, release = hold(monkeypatch, "_train_batch")
        await press(pilot, "n")
        await until(pilot, inside.is_set)
        await press(pilot, "w")
        opened = app.screen.__class__.__name__ == "PathScreen"
        release.set()
        assert not opened
        assert any("batch" in n.message for n in app._notifications)
        dashboard.shutdown()


@pilot_test
async def test_keys_wait_until_the_run_has_begun(tmp_path, monkeypatch):
    """Between setup() and fit's start the trainer is idle, and Trainer.set would apply a
    value at once on the calling thread: a key then must not change the optimizer from the
    UI thread (nor emit events to the run's callbacks from it)."""
    inside, release = hold(monkeypatch, "_check_data")
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, inside.is_set)
        await press(pilot, "plus")
        lr = dashboard.experiment.trainer.optimizer.lr if dashboard.experiment else 0.05
        release.set()
        assert lr == 0.05
        assert any("loading" in n.message for n in app._notifications)
        dashboard.shutdown()


@pilot_test
async def test_a_failure_outside_the_run_still_ends_it_in_the_ui(tmp_path, monkeypatch):
    """An error before setup() (threadpoolctl missing from an older install) must show, not
    leave the dashboard "loading" forever."""
    import nntui.sources as sources

    def broken(count):
        raise ImportError("No module named 'threadpoolctl'")

    monkeypatch.setattr(sources, "blas_threads", broken)
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, lambda: dashboard.state.end is not None)
        assert "threadpoolctl" in dashboard.state.end.error and not dashboard.running


@pilot_test
async def test_a_burst_of_keys_applies_in_order_focus_changes_included(tmp_path):
    """Tab then 77 in one read: the 77 goes to the field Tab moved to (it went to the field
    Tab left); and a whole edit typed ahead from the dashboard lands as typed."""
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await paused(pilot, dashboard)
        await press(pilot, "e")
        await until(pilot, lambda: isinstance(app.screen, HparamScreen))
        dialog = app.screen
        fields = [field.id for field in dialog.query(Input)]
        assert fields == ["lr", "momentum", "weight_decay", "l1", "batch_size"]
        dialog.query_one("#l1", Input).focus()
        await until(pilot, lambda: app.focused.id == "l1", "l1 focused")
        await burst(pilot, "tab", "7", "7")
        batch = dialog.query_one("#batch_size", Input)
        await until(pilot, lambda: batch.value == "77", "77 in the batch size")
        assert dialog.query_one("#l1", Input).value == "0"
        await press(pilot, "escape")
        await until(pilot, lambda: app.screen is dashboard)
        # From the dashboard: open the dialog, move to the batch size, type, apply.
        await burst(pilot, "e", "tab", "tab", "tab", "tab", "3", "3", "enter")
        await until(pilot, lambda: trainer.pending().get("batch_size") == 33, "batch size 33")
        assert app.screen is dashboard
        assert trainer.pending() == {"batch_size": 33}


@pilot_test
async def test_ctrl_c_quits_as_q_does(tmp_path):
    """Ctrl+C asks while a run is in progress (once, however often it is pressed); once the
    run has ended it quits at once."""
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await press(pilot, "ctrl+c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the quit question")
        depth = len(app.screen_stack)
        await press(pilot, "ctrl+c")
        assert len(app.screen_stack) == depth and not app._exit
        await press(pilot, "n")
        await until(pilot, lambda: app.screen is dashboard)
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None, "the run's end")
        await press(pilot, "ctrl+c")
        await until(pilot, lambda: app._exit, "the app's exit")
    assert end_event(tmp_path)["reason"] == "stopped"


@pilot_test
async def test_ctrl_c_quits_from_a_text_field(tmp_path):
    """Even with the field's text selected (as it is when the field takes focus)."""
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        field = app.screen.query_one(ArchEditor).query_one(Input)
        field.focus()
        await until(pilot, lambda: app.focused is field, "the spec field focused")
        await press(pilot, "ctrl+c")
        await until(pilot, lambda: app._exit, "the app's exit")


@pilot_test
async def test_A_applies_the_last_warnings_fix(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        trainer = dashboard.experiment.trainer
        await press(pilot, "A")  # nothing to apply yet: the run goes on as it was
        assert trainer.pending() == {}
        await paused(pilot, dashboard)
        # The training thread is parked: the warning goes through the run's callbacks (the
        # run log, the app's bridge) as Diagnostics would send it.
        trainer.emit(
            "warning",
            kind="loss_rising",
            message="the training loss rose 2 epochs in a row (0.5 → 0.7)",
            suggestion="the learning rate (0.05) is probably too high: halve it",
            fix={"name": "lr", "value": 0.025},
        )
        await until(pilot, lambda: "warning" in dashboard.state.events, "the warning")
        assert "(A: lr 0.025)" in await log_text(pilot, dashboard)
        await press(pilot, "A")
        assert trainer.pending() == {"lr": 0.025}
        await press(pilot, "n")
        await until(pilot, lambda: trainer.optimizer.lr == 0.025, "the lr applied")
    logged = [e for e in runs.read(tmp_path / "run") if e.type == "warning"]
    assert {"name": "lr", "value": 0.025} in [e["fix"] for e in logged]


@pilot_test
async def test_A_forks_a_fork_warning_from_the_last_checkpoint_before_its_evidence(
    tmp_path, monkeypatch
):
    """A warning whose change comes too late live (dead ReLUs, thrown weights) carries a
    fork: A stops this run and starts one from the newest checkpoint before the step the
    evidence began at, with the change; with no checkpoint that early it forks nothing."""
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path / "runs"))
    app = NNTui(long_run(tmp_path, checkpoint_every=20), start=True)
    folder = tmp_path / "run" / checkpointing.FOLDER
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        await until(pilot, lambda: len(checkpointing.step_checkpoints(folder)) >= 3, "checkpoints")
        await paused(pilot, dashboard)
        trainer = dashboard.experiment.trainer
        steps = sorted(checkpointing.step_checkpoints(folder))  # the 3 kept: 20 apart

        def warn(before: int) -> None:
            trainer.emit(
                "warning",
                kind="dead_relu",
                message="relu_1: 94% of its units output 0 for every sample",
                suggestion="restart or fork from before they died with a lower learning rate",
                layer="relu_1",
                fork={"before": before, "name": "lr", "value": 0.025},
            )

        warn(steps[0])  # the oldest checkpoint kept is not before it
        await until(pilot, lambda: "warning" in dashboard.state.events, "the warning")
        await press(pilot, "A")
        assert app.screen is dashboard and dashboard.running
        notes = [n.message for n in app._notifications]
        assert f"no checkpoint before step {steps[0]} to fork from: nothing forked" in notes

        warn(steps[-1])  # before the newest: the one before that
        await until(
            pilot, lambda: dashboard.state.events["warning"].fork["before"] == steps[-1], "it"
        )
        line = f"(A: fork from before step {steps[-1]} with lr 0.025)"
        assert line in " ".join((await log_text(pilot, dashboard)).split())  # unwrapped
        await press(pilot, "A")
        await until(
            pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen is not dashboard
        )
        child = app.screen
        assert (child.config.parent_run, child.config.parent_step) == (
            str(tmp_path / "run"),
            steps[-2],
        )
        assert child.config.lr == 0.025
        note = next(n.message for n in app._notifications if n.title == "Forked")
        assert f"step-{steps[-2]}.npz" in note and "ctrl+r" in note
        await until(pilot, lambda: child.experiment is not None, "the fork set up")
        assert child.experiment.trainer.optimizer.lr == 0.025
        child.shutdown()
    assert (tmp_path / "run" / runs.EVENTS_FILE).is_file()  # the parent stays on disk
