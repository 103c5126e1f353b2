"""Issue 8, recorded runs in the app (`nntui --open`) at 80x24: marked as recorded, no
steering keys, a run whose writer died shows CRASHED without an ETA, a run not started yet
says what it waits for, bad lines while following are named, and the Log shows a recorded
run's lines in the live order and the state takes the optional fields a run log may leave
out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SIZE, log_text, pilot_test, press, train, until

from nnlib import checkpointing, events, runs
from nnlib._memory import human_bytes
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.app import NNTui
from nntui.bridge import Bridge
from nntui.cli import main
from nntui.replay import open_run, updates_from_records
from nntui.runstate import RunState
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Update
from nntui.widgets.eventlog import LogLines
from nntui.widgets.keybar import KeyBar
from nntui.widgets.status import StatusPanel


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[Update]]:
    run_dir = tmp_path_factory.mktemp("recorded") / "spirals"
    return run_dir, train(run_dir)


def lines_of(run_dir: Path) -> list[str]:
    return (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)


def copy(run_dir: Path, target: Path, lines: list[str]) -> Path:
    target.mkdir()
    (target / runs.CONFIG_FILE).write_text((run_dir / runs.CONFIG_FILE).read_text())
    (target / runs.EVENTS_FILE).write_text("".join(lines))
    return target


async def dashboard_of(pilot, app: NNTui) -> DashboardScreen:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
    return app.screen


def status(dashboard: DashboardScreen) -> str:
    return str(dashboard.query_one(StatusPanel).render())


@pilot_test
async def test_a_recorded_run_is_marked_and_lists_no_steering_keys_which_say_it_ended(finished):
    run_dir, _ = finished
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.end is not None)
        assert "RECORDED · FINISHED" in status(dashboard)
        keys = str(dashboard.query_one(KeyBar).render())
        assert "Save model" not in keys  # the model is not in this process
        assert "Smoothing" in keys and "What am I looking at?" in keys
        for steering in ("Pause", "Step", "lr×2", "lr÷2", "Stop", "Edit hparams"):
            assert steering not in keys  # the run has ended: the keys only say so
        app.clear_notifications()  # "Recorded run: finished at step …"
        await press(pilot, "w")
        assert not app._notifications and app.screen is dashboard
        await press(pilot, "plus", "s", "e")  # space plays an ended run (time axis)
        said = [n.message for n in app._notifications]
        assert said == ["the run has ended (finished); it cannot be steered"] * 3
        assert app.screen is dashboard


@pilot_test
async def test_A_on_a_recorded_runs_fork_warning_gives_the_command_that_forks_it(tmp_path):
    """Its model is in no process here: A names the checkpoint before the evidence in the
    `nnlib train --fork` command, and forks nothing."""
    run_dir = tmp_path / "dead"
    config = ExperimentConfig(
        dataset="spirals", arch="2-16-16-3", epochs=4, seed=0, run_dir=str(run_dir)
    )
    setup(config.replace(checkpoint_every=20)).fit()
    steps = sorted(checkpointing.step_checkpoints(run_dir / checkpointing.FOLDER))  # 3 kept
    warning = events.make(
        "warning",
        steps[-1],
        {
            "kind": "dead_relu",
            "message": "relu_1: 94% of its units output 0",
            "suggestion": "fork from before they died with a lower learning rate",
            "fork": {"before": steps[-1], "name": "lr", "value": 0.025},
        },
    )
    lines = lines_of(run_dir)
    (run_dir / runs.EVENTS_FILE).write_text("".join([*lines[:-1], warning.line(), lines[-1]]))
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.end is not None)
        await until(pilot, lambda: "warning" in dashboard.state.events, "the warning")
        app.clear_notifications()
        await press(pilot, "A")
        said = [n.message for n in app._notifications]
        command = f"nnlib train --fork {run_dir}@{steps[-2]} --lr 0.025"
        assert said == [f"this run was trained in another process: fork it with {command}"]
        assert app.screen is dashboard


@pilot_test
async def test_a_recorded_run_shows_its_peak_memory_in_the_status_line(finished):
    """Issue 20 item 6: its last 'system' event, read from the log (`nntui --open`)."""
    run_dir, _ = finished
    (measured,) = [e for e in runs.read(run_dir) if e.type == "system"][-1:]
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.end is not None)
        await until(pilot, lambda: "peak rss" in status(dashboard))
        assert f"peak rss {human_bytes(measured.peak_rss_bytes)}" in status(dashboard)


@pilot_test
async def test_a_run_whose_writer_died_shows_crashed_without_an_eta(finished, tmp_path):
    run_dir, _ = finished
    lines = lines_of(run_dir)
    crashed = copy(run_dir, tmp_path / "crashed", [line for line in lines if '"end"' not in line])
    (crashed / runs.LOCK_FILE).touch()  # the lock file a killed writer leaves, unlocked
    recorded = open_run(crashed)
    assert recorded.ended and isinstance(recorded.updates[-1], events.End)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.end is not None)
        text = status(dashboard)
        assert "CRASHED" in text and "ETA" not in text and runs.WRITER_GONE in text


@pilot_test
async def test_an_empty_log_says_it_waits_and_that_nothing_writes_it(tmp_path):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / runs.EVENTS_FILE).touch()
    recorded = open_run(run_dir)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.status == "waiting")
        dashboard.redraw(at_once=True)
        await pilot.pause()
        text = status(dashboard)
        assert "WAITING" in text and "LOADING" not in text
        assert "events.jsonl is empty" in text and "no process is writing it" in text


@pilot_test
async def test_a_folder_without_a_log_yet_is_waited_for_and_followed(finished, tmp_path):
    run_dir, _ = finished
    later = tmp_path / "later"
    later.mkdir()
    recorded = open_run(later)  # used to exit 2
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        await until(pilot, lambda: dashboard.state.status == "waiting")
        assert "no events.jsonl yet" in dashboard.state.note
        (later / runs.EVENTS_FILE).write_text("".join(lines_of(run_dir)))
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.status == "finished"


def test_a_path_that_does_not_exist_still_exits_2(tmp_path, capsys):
    assert main(["--open", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no such run directory" in err and err.count("\n") == 1


@pytest.mark.parametrize("bad", ['{"v":1,"type":5}', '{"v":"1","type":"pause"}'])
def test_a_bad_line_when_opened_exits_2_naming_it(finished, tmp_path, capsys, bad):
    run_dir, _ = finished
    lines = lines_of(run_dir)
    target = copy(run_dir, tmp_path / "bad", [*lines[:4], bad + "\n", *lines[4:]])
    assert main(["--open", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{target / runs.EVENTS_FILE}:5" in err and err.count("\n") == 1
    assert "Traceback" not in err


@pilot_test
async def test_a_bad_line_while_following_is_named_and_following_goes_on(finished, tmp_path):
    run_dir, _ = finished
    lines = lines_of(run_dir)
    target = copy(run_dir, tmp_path / "growing", lines[:4])
    recorded = open_run(target)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await dashboard_of(pilot, app)
        with (target / runs.EVENTS_FILE).open("a") as handle:
            handle.write('{"v":1,"type":5}\n' + "".join(lines[4:]))
        await until(pilot, lambda: dashboard.state.end is not None)
        assert dashboard.state.status == "finished"
        log = await log_text(pilot, dashboard)
        assert (
            f"skipped a bad line: {target / runs.EVENTS_FILE}:5: type must be"
            in log.replace("\n", "")
            or "skipped a bad line" in log
        )


def test_the_log_shows_each_epoch_before_its_checkpoint_as_live(tmp_path):
    run_dir, live = tmp_path / "saving", []
    config = ExperimentConfig(
        dataset="spirals", arch="2-8-3", epochs=2, batch_size=64, seed=0, run_dir=str(run_dir)
    )
    setup(config, checkpoints=True, callbacks=[Bridge(live.append, interval=0.0)]).fit()
    replayed = updates_from_records(runs.read(run_dir))

    def order(updates):
        lines = LogLines(0.0)
        texts = [text for update in updates for _, text, _ in lines.take(update)]
        return [text for text in texts if text.startswith(("epoch ", "checkpoint"))]

    assert order(replayed) == order(live)
    assert order(replayed)[1] == "checkpoint (best): best.npz"
    assert order(replayed)[0].startswith("epoch 1: loss")
    # the model written as the run ended, before its end as the run log has it
    assert order(replayed)[-1] == "checkpoint (end): model.npz"


def test_batches_without_lr_and_confusion_without_precision_are_taken():
    config = {"trainer": {"epochs": 1, "batch_size": 4, "optimizer": {"name": "sgd", "lr": 0.1}}}
    lines = [
        ("run_start", 0, {"run": "r", "config": config}),
        ("batch", 1, {"epoch": 0, "batch": 0, "loss": 1.0}),
        ("confusion", 1, {"epoch": 0, "matrix": [[3, 1], [0, 4]]}),
        ("end", 1, {"reason": "finished"}),
    ]
    events = [runs.decode(runs.encode(*line)) for line in lines]
    state = RunState()
    for update in updates_from_records(events):
        state.apply(update)
    assert state.batches.columns[3] == [0.1]  # the rate in force, from the config
    confusion = state.confusion
    assert confusion.precision == [1.0, 0.8] and confusion.recall == [0.75, 1.0]
    assert confusion.class_names is None  # the matrix panel names them 0, 1, ...
    assert json.loads(json.dumps(confusion.matrix)) == [[3, 1], [0, 4]]
