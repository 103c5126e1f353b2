"""Opening a run directory: the Textual-free reader of a real run log as the run's stream, the
`nntui --open` errors, and the dashboard showing a finished run or following one being
written. No sleeps: Pilot waits are bounded loops of pilot.pause()."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import EPOCHS, SIZE, log_text, of, pilot_test, press, train, until

from nnlib import events as ev
from nnlib import runs
from nnlib.arrays import ARRAYS_FILE
from nnlib.callbacks import Callback
from nntui.app import NNTui
from nntui.cli import main
from nntui.plot import format_number
from nntui.replay import RunReplay, open_run, updates_from_records
from nntui.runstate import RunState
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Batches, RunStarted, Update
from nntui.widgets.status import StatusPanel


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[Update]]:
    run_dir = tmp_path_factory.mktemp("runs") / "spirals"
    return run_dir, train(run_dir)


# -- the converter -----------------------------------------------------------------------------
def test_replay_gives_what_the_bridge_sent_live(finished):
    run_dir, live = finished
    config = json.loads((run_dir / runs.CONFIG_FILE).read_text())
    replayed = updates_from_records(runs.read(run_dir), config, str(run_dir))
    assert isinstance(replayed[0], RunStarted)
    start, live_start = replayed[0], of(RunStarted, live)[0]
    assert (
        start.run_dir,
        start.task,
        start.arch,
        start.params,
        start.epochs,
        start.class_names,
    ) == (
        live_start.run_dir,
        live_start.task,
        live_start.arch,
        live_start.params,
        live_start.epochs,
        live_start.class_names,
    )
    assert dict(start.hyperparameters) == dict(live_start.hyperparameters)
    assert start.train_size == live_start.train_size > 0
    for kind in (ev.Epoch, ev.Confusion, ev.Histograms, ev.End):
        assert of(kind, replayed) == of(kind, live), kind.__name__
    # Every batch record, in order, and a final position as the trainer left it.
    batches = [r for s in of(Batches, replayed) for r in s.records]
    assert batches == [r for s in of(Batches, live) for r in s.records]
    state, shown = RunState(), RunState()
    for update in replayed:
        state.apply(update)
    for update in live:
        shown.apply(update)
    last = state.progress
    assert (last.epoch, last.epochs, last.batch) == (EPOCHS - 1, EPOCHS, last.steps_per_epoch)
    assert last == shown.progress
    assert replayed[-1] == ev.make("end", last.step, {"reason": "finished", "epoch": EPOCHS - 1})
    # Dead ReLUs are shown on the layer before them, as live.
    assert any(history.latest.dead_fraction is not None for history in state.layers.values())


def test_feeding_piece_by_piece_gives_the_same_points_and_events(finished):
    run_dir, _ = finished
    events = runs.read(run_dir)
    whole = updates_from_records(events)
    replay = RunReplay()
    pieces = [s for i in range(0, len(events), 7) for s in replay.feed(events[i : i + 7])]
    assert replay.ended
    assert [s for s in pieces if not isinstance(s, Batches)] == [
        s for s in whole if not isinstance(s, Batches)
    ]
    assert [r for s in of(Batches, pieces) for r in s.records] == [
        r for s in of(Batches, whole) for r in s.records
    ]


def test_pause_hparam_and_notices_replay(tmp_path):
    config = {
        "trainer": {
            "epochs": 2,
            "batch_size": 4,
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0},
        }
    }
    lines = [
        ("run_start", 0, {"run": "r", "config": config}),
        ("batch", 1, {"epoch": 0, "batch": 0, "loss": 1.0, "lr": 0.1, "batch_size": 4}),
        ("pause", 1, {}),
        ("hparam", 1, {"name": "lr", "old": 0.1, "new": 0.2, "applies": "next batch"}),
        ("resume", 1, {}),
        ("batch", 2, {"epoch": 0, "batch": 1, "loss": 0.5, "lr": 0.2, "batch_size": 4}),
        ("early_stop", 2, {"monitor": "val_loss", "best": 0.4, "best_epoch": 0, "epoch": 1}),
        ("end", 2, {"reason": "early_stop", "epoch": 1}),
    ]
    path = tmp_path / runs.EVENTS_FILE
    path.write_text("".join(runs.encode(*line) for line in lines))
    updates = updates_from_records(runs.read(path))
    state, statuses = RunState(), []
    for update in updates:
        state.apply(update)
        statuses.append(state.status)
    assert "paused" in statuses and statuses[-2] == "running"
    assert of(ev.Hparam, updates)[0].new == 0.2 and state.hyperparameters["lr"] == 0.2
    assert "early stop: val_loss" in of(ev.EarlyStop, updates)[-1].describe()
    assert state.end is not None and state.end.reason == "early_stop"


def test_the_tail_waits_for_a_line_to_be_complete(tmp_path):
    path = tmp_path / runs.EVENTS_FILE
    line = runs.encode("batch", 1, {"epoch": 0, "batch": 0, "loss": 1.0, "lr": 0.1})
    path.write_text(line + line[:20])
    tail = runs.EventTail(path)
    assert [e.type for e in tail.read()] == ["batch"]
    assert tail.read() == []
    with path.open("a") as handle:
        handle.write(line[20:])
    assert [e.step for e in tail.read()] == [1]


def test_a_malformed_event_is_named(tmp_path):
    path = tmp_path / runs.EVENTS_FILE
    path.write_text('{"v":1,"type":"histograms","time":1.0,"step":3,"layers":[1,2]}\n')
    with pytest.raises(ValueError, match=r"events\.jsonl:1: histograms event layers must be"):
        updates_from_records(runs.read(path))


def test_the_converter_imports_no_textual():
    code = "import sys, nntui.replay; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_open_run_reads_the_experiment_back_for_a_new_run(finished):
    run_dir, _ = finished
    recorded = open_run(run_dir / runs.EVENTS_FILE)
    assert recorded.ended and recorded.dataset == "spirals"
    experiment = recorded.experiment()
    assert (experiment.dataset, experiment.arch, experiment.epochs, experiment.run_dir) == (
        "spirals",
        "2-16-16-3",
        EPOCHS,
        None,
    )
    assert recorded.poll() == []


@pytest.mark.parametrize(
    "odd",
    [
        {"trainer": [1]},
        {"dataset_info": "spirals"},
        {"trainer": {"model": "2-16-3", "optimizer": ["sgd"]}},
        {"dataset_info": {"num_classes": "three", "train": "many"}, "epochs": "3"},
    ],
)
def test_a_config_field_of_the_wrong_type_reads_as_unknown(tmp_path, odd):
    """A hand-written config.json may hold anything: the run opens, as the runs table lists
    it, with what it could read (it raised AttributeError or int()'s ValueError)."""
    (tmp_path / runs.CONFIG_FILE).write_text(json.dumps({"arch": "2-8-2", **odd}))
    log = runs.encode("run_start", 0, {"run": str(tmp_path), "config": {}})
    (tmp_path / runs.EVENTS_FILE).write_text(log + runs.encode("end", 0, {"reason": "finished"}))
    start = open_run(tmp_path).updates[0]
    assert isinstance(start, RunStarted)
    assert (start.arch, start.params, start.epochs, start.train_size) == ("2-8-2", 0, 0, 0)
    assert start.class_names == ()


# -- nntui --open errors -------------------------------------------------------------------------
def copy_run(run_dir: Path, tmp_path: Path, edit) -> Path:
    target = tmp_path / "copy"
    target.mkdir()
    (target / runs.CONFIG_FILE).write_text((run_dir / runs.CONFIG_FILE).read_text())
    side = run_dir / ARRAYS_FILE  # the histograms' and samples' blocks
    if side.exists():
        (target / ARRAYS_FILE).write_bytes(side.read_bytes())
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    (target / runs.EVENTS_FILE).write_text("".join(edit(lines)))
    return target


def newer(lines: list[str]) -> list[str]:
    record = json.loads(lines[3])
    record["v"] = runs.SCHEMA_VERSION + 1
    return [*lines[:3], json.dumps(record) + "\n", *lines[4:]]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda run_dir, tmp: tmp / "nowhere", "no such run directory"),
        (
            lambda run_dir, tmp: copy_run(
                run_dir, tmp, lambda lines: [*lines[:5], "{not json\n", *lines[5:]]
            ),
            "events.jsonl:6: not valid JSON",
        ),
        (
            lambda run_dir, tmp: copy_run(run_dir, tmp, newer),
            f"schema version {runs.SCHEMA_VERSION + 1} is newer",
        ),
    ],
)
def test_open_bad_input_exits_2_with_one_line(finished, tmp_path, capsys, make, words):
    code = main(["--open", str(make(finished[0], tmp_path))])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_torn_last_line_is_ignored(finished, tmp_path):
    """A run killed mid-write: no end event, half a line last. It opens (to be followed)."""
    torn = open_run(copy_run(finished[0], tmp_path, lambda lines: [*lines[:-1], lines[1][:30]]))
    assert not torn.ended
    whole = open_run(finished[0]).updates
    assert torn.updates[1:] == whole[1:-1]  # all but the end (and another run_dir)


# -- the dashboard --------------------------------------------------------------------------------
def recorded_app(run_dir: Path) -> NNTui:
    recorded = open_run(run_dir)
    return NNTui(recorded.experiment(), recorded=recorded)


@pilot_test
async def test_open_a_finished_run_at_80x24(finished):
    run_dir, live = finished
    last = of(ev.Epoch, live)[-1]
    app = recorded_app(run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await until(pilot, lambda: dashboard.state.end is not None)
        status = str(dashboard.query_one(StatusPanel).render())
        assert "FINISHED" in status and f"epoch {EPOCHS}/{EPOCHS}" in status
        assert f"epoch {EPOCHS} loss {format_number(last.loss)}" in status
        assert f"{last.val_accuracy:.1%}" in status
        # Steering keys are not offered (tests/test_tui_recorded.py); view keys work.
        await press(pilot, "l", "m", "g", "right_square_bracket", "2", "3")
        assert dashboard._curves.log_scale and dashboard._layers.gradients
        log = await log_text(pilot, dashboard)
        assert f"epoch {EPOCHS}: loss" in log and "run ended: finished" in log
        assert app.screen is dashboard and not dashboard.running


@pilot_test
async def test_follow_a_run_being_written(tmp_path):
    run_dir = tmp_path / "live"
    go_on, first_epoch = threading.Event(), threading.Event()

    class Wait(Callback):
        """Holds the run after its first epoch until the dashboard has shown it."""

        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 0:
                first_epoch.set()
                go_on.wait(30)

    thread = threading.Thread(
        target=train, args=(run_dir,), kwargs={"callbacks": (Wait(),)}, daemon=True
    )
    thread.start()
    try:
        assert first_epoch.wait(30)
        app = recorded_app(run_dir)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            dashboard = app.screen
            assert dashboard.state.end is None and dashboard.running is False
            await until(pilot, lambda: dashboard.state.batches.seen > 0)
            assert dashboard.state.last_epoch is None
            go_on.set()
            # Let the writer finish without spinning the event loop against it for the GIL.
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
            await until(pilot, lambda: dashboard.state.end is not None)
            assert dashboard.state.last_epoch.epoch == EPOCHS - 1
            status = str(dashboard.query_one(StatusPanel).render())
            assert f"epoch {EPOCHS} loss" in status and "FINISHED" in status
            # still watching the log (a run that ended may be resumed) until the app leaves
            assert not dashboard._finished.is_set()
        assert dashboard._finished.is_set()
    finally:
        go_on.set()
        thread.join(30)


@pilot_test
async def test_quitting_stops_following_at_once(tmp_path):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / runs.EVENTS_FILE).write_text("")
    app = recorded_app(run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        dashboard = app.screen
        await press(pilot, "q")  # nothing to stop: no question asked
        await until(pilot, lambda: app._exit)
    assert dashboard._finished.is_set()
