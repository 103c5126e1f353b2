"""Issue 17 item 17: one run reads the same everywhere. A resumed run's log is read with one
rule (`nnlib.runs.continued`) by the runs table, the CSV export, `nnlib plot` and the app; a
window following a stopped run follows its resume; a full disk ends a run as an error, not a
crash; epochs count from 1 in everything a person reads."""

from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path

import pytest
from helpers import RESUMED_EPOCHS, At, killed, log_text, pilot_test, stopped, until
from helpers import resumable_config as config

from nnlib import runindex, runs
from nnlib.callbacks import Callback
from nnlib.cli import main
from nnlib.experiment import resume, setup
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.runstate import RunState
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Rewound
from nntui.widgets.eventlog import EPOCH_LINE_SECONDS, EventLog, LogLines
from nntui.widgets.status import StatusPanel

EPOCHS, STEPS_PER_EPOCH = RESUMED_EPOCHS, 22  # spirals: 1,400 samples in batches of 64


def records(events: list[runs.Event]) -> list[tuple]:
    """What a run's curves are made of: its batch and epoch records, with their numbers."""
    return [
        (e.type, e.step, e["epoch"], e.get("loss"), e.get("val_loss"))
        for e in events
        if e.type in ("batch", "epoch")
    ]


def shown(run_dir: Path, seconds: float = 0.0) -> tuple[RunState, list[str]]:
    """What the app shows of a run opened now: its state and its Log's lines (a line per
    epoch; the Log folds epochs shorter than `seconds` together)."""
    state, lines = RunState(), LogLines(seconds)
    text = []
    for snapshot in open_run(run_dir).updates:
        state.apply(snapshot)
        text += [line for _, line, _ in lines.take(snapshot)]
    return state, text + [line for _, line, _ in lines.flush()]


def epoch_lines(lines: list[str]) -> list[str]:
    return [line.split(":")[0] for line in lines if line.startswith("epoch ")]


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    text = runindex.curves_csv(runindex.read_curves(run_dir))
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    setup(config(run_dir)).fit(threads=1)
    return run_dir


# -- one rule for a log with a resume in it ------------------------------------------------------
def test_a_run_stopped_mid_epoch_then_resumed_reads_as_if_never_stopped(whole, tmp_path):
    run = stopped(tmp_path / "run", 20)  # in epoch 1 (steps 1-22): its 20 batches reported
    logged = runs.read(run)
    assert [e["epoch"] for e in logged if e.type == "epoch"] == [0]  # the partial epoch
    resume(run).fit(threads=1)
    logged = runs.read(run)
    assert [e.step for e in logged if e.type == "epoch"] == [20, 22, 44, 66, 88]
    assert [e["reason"] for e in logged if e.type == "end"] == ["stopped", "finished"]

    kept = runs.continued(logged)
    assert records(kept) == records(runs.read(whole))  # bit for bit, one BLAS thread
    assert [e["reason"] for e in kept if e.type == "end"] == ["finished"]
    assert [e.type for e in kept].count("run_resume") == 1  # it says it was resumed

    # the CSV export (and nnlib plot, which reads the same curves): one row per epoch
    epochs = [r for r in csv_rows(run) if r["kind"] == "epoch"]
    assert [(r["step"], r["epoch_1based"]) for r in epochs] == [
        ("22", "1"),
        ("44", "2"),
        ("66", "3"),
        ("88", "4"),
    ]
    xs, _ = runindex.read_curves(run).series("epoch", "val_loss", "epoch")
    assert xs.tolist() == [1, 2, 3, 4]
    # the runs table
    summary = runindex.summarize(run)
    assert (summary.state, summary.epochs_done) == ("finished", EPOCHS)
    # the app: its curves, its matrix's epoch, its Log
    state, lines = shown(run)
    expected_state, expected_lines = shown(whole)
    assert [(e.epoch, e.step) for e in state.epochs] == [(0, 22), (1, 44), (2, 66), (3, 88)]
    assert state.batches.columns == expected_state.batches.columns
    assert state.confusion.step == 88 and state.end.reason == "finished"
    assert epoch_lines(lines) == epoch_lines(expected_lines) == [f"epoch {n}" for n in (1, 2, 3, 4)]
    assert "resumed from step 20 (step-20.npz)" in lines
    assert not any(line.startswith("run ended: stopped") for line in lines)


def test_a_resumed_run_that_fails_reads_the_same_in_the_table_and_the_app(tmp_path):
    """Killed at step 50 (after epoch 2's line at 44) with its checkpoint at 30, resumed, then
    failed at step 40: epoch 2 was lost with the kill and never done again."""
    run = killed(tmp_path / "runs" / "run", 50)
    assert [e["epoch"] for e in runs.read(run) if e.type == "epoch"] == [0, 1]
    index = runindex.RunIndex(tmp_path / "runs")
    (before,) = index.refresh()
    assert (before.state, before.epochs_done) == ("crashed", 2)
    experiment = resume(run, callbacks=[At(40, fail=True)])
    with pytest.raises(RuntimeError, match="failed at step 40"):
        experiment.fit(threads=1)

    summary = runindex.summarize(run)
    assert (summary.state, summary.epochs_done) == ("error", 1)
    assert summary.error == "RuntimeError: failed at step 40"
    (after,) = index.refresh()  # read on from where it was: the resume reads the log again
    assert after == summary
    state, lines = shown(run)
    assert [e.epoch for e in state.epochs] == [0]
    assert epoch_lines(lines) == ["epoch 1"]
    # the killed attempt's batches 41-49 are gone; step 40 failed before it was logged
    assert state.end.reason == "error" and max(state.batches.columns[0]) == 39
    assert [r["epoch_1based"] for r in csv_rows(run) if r["kind"] == "epoch"] == ["1"]


# -- a window following a run that is stopped, then resumed -------------------------------------
def test_a_follower_of_a_stopped_run_follows_its_resume(tmp_path):
    run = stopped(tmp_path / "run", 20)
    recorded = open_run(run)
    state = RunState()
    for snapshot in recorded.updates:
        state.apply(snapshot)
    assert recorded.ended and state.end.reason == "stopped"
    assert recorded.poll() == []  # nothing new
    resume(run).fit(threads=1)
    polled = recorded.poll()
    assert polled[0] == Rewound(20)
    for snapshot in polled:
        state.apply(snapshot)
    fresh, _ = shown(run)
    assert [(e.epoch, e.step) for e in state.epochs] == [(e.epoch, e.step) for e in fresh.epochs]
    assert state.batches.columns == fresh.batches.columns
    assert state.end == fresh.end and state.end.reason == "finished"


@pilot_test
async def test_an_open_window_follows_a_stopped_run_into_its_resume(tmp_path):
    run = stopped(tmp_path / "run", 20)
    recorded = open_run(run)
    app = NNTui(recorded.experiment(), recorded=recorded)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        dashboard = app.screen
        status = dashboard.query_one(StatusPanel)
        await until(pilot, lambda: dashboard.state.end is not None, "the stopped run")
        assert "RECORDED · STOPPED" in str(status.render())
        experiment = resume(run)
        experiment.fit(threads=1)
        await until(
            pilot,
            lambda: dashboard.state.end is not None and dashboard.state.end.reason == "finished",
            "the resumed run's end",
        )
        dashboard.redraw(at_once=True)
        await pilot.pause()
        assert "RECORDED · FINISHED" in str(status.render())
        log = await log_text(pilot, dashboard)
        assert "resumed from step 20" in log and "run ended: stopped" not in log
        assert log.count("epoch 1:") == 1  # the stopped attempt's partial epoch 1 is gone
        # line for line what a window opened now shows (after the note it followed with)
        _, lines = shown(run, EPOCH_LINE_SECONDS)
        entries = dashboard.query_one(EventLog).entries
        assert [str(entry).split("] ", 1)[1] for entry in entries] == lines


# -- a full disk ----------------------------------------------------------------------------------
class FullDisk(Callback):
    """From step `step` on, every write to the run log fails as on a full disk (ENOSPC), and
    so does flushing it (closing it too, then); with `end_only`, only the end event's line
    does."""

    def __init__(self, step: int, end_only: bool = False) -> None:
        self.step, self.end_only = step, end_only

    def on_batch_end(self, trainer, batch, logs) -> None:
        if trainer.global_step != self.step:
            return
        logger = next(c for c in trainer.callbacks if isinstance(c, runs.RunLogger))
        write = logger._handle.write

        def full(text: str) -> int:
            if self.end_only and '"type":"end"' not in text:
                return write(text)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush() -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        logger._handle.write = full
        if not self.end_only:
            logger._handle.flush = flush  # close() flushes: it fails too


def test_a_full_disk_ends_the_run_as_an_error_not_a_crash(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(OSError) as raised:
        setup(config(run), callbacks=[FullDisk(30)]).fit(threads=1)
    assert raised.value.errno == errno.ENOSPC
    assert not runs.writer_alive(run)  # let go, although this process lives on
    with open(run / runs.EVENTS_FILE) as log:  # the log itself could not take its end...
        assert '"type":"end"' not in log.read()
    end = runs.read(run)[-1]  # ...which the lock file's reserved bytes kept
    # (batch lines are held up to 0.2 s: the full disk shows at the next write)
    assert (end.type, end["reason"]) == ("end", "error") and end.step >= 30
    assert "No space left on device" in end["error"]
    summary = runindex.summarize(run)
    assert summary.state == "error" and "No space left on device" in summary.error
    recorded = open_run(run)
    assert recorded.ended
    assert recorded.updates[-1] == end
    # resumed once there is room again: the lock file is taken afresh, the run reads on
    resume(run).fit(threads=1)
    assert not (run / runs.LOCK_FILE).exists()
    assert [e["reason"] for e in runs.continued(runs.read(run)) if e.type == "end"] == ["finished"]
    assert runindex.summarize(run).state == "finished"


class SideFileCloseFails(Callback):
    """Closing the run's side file of arrays fails (EIO), as a lost network disk does."""

    def on_batch_end(self, trainer, batch, logs) -> None:
        logger = next(c for c in trainer.callbacks if isinstance(c, runs.RunLogger))

        def fail() -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        logger._arrays.close = fail


def test_a_side_file_that_cannot_be_closed_still_lets_the_run_lock_go(tmp_path):
    """The error propagated before the lock was released: the run read as running while
    this process lived on."""
    run = tmp_path / "run"
    setup(config(run, epochs=1), callbacks=[SideFileCloseFails()]).fit(threads=1)
    assert not runs.writer_alive(run)
    assert runindex.summarize(run).state == "finished"


def test_a_run_whose_end_line_alone_cannot_be_written_reads_as_it_ended(tmp_path):
    run = tmp_path / "run"
    setup(config(run, epochs=1), callbacks=[FullDisk(1, end_only=True)]).fit(threads=1)
    assert runs.read(run)[-1]["reason"] == "finished"
    assert runindex.summarize(run).state == "finished"  # not "crashed"


def test_runs_list_says_what_ended_a_run(tmp_path, capsys):
    run = tmp_path / "runs" / "full"
    with pytest.raises(OSError):
        setup(config(run), callbacks=[FullDisk(3)]).fit(threads=1)
    assert main(["runs", "list", str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert " error " in out.splitlines()[1]
    assert err == "full: ended with an error: OSError: [Errno 28] No space left on device\n"
