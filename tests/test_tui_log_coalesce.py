"""The Log folds epochs that end faster than a person reads into one line per
EPOCH_LINE_SECONDS of training (with the checkpoints written meanwhile), writes every other
line at once in order (a checkpoint or early stop after the line of the epoch it is about,
though its record comes first), and shows a recorded run with the very lines its live run
showed."""

from __future__ import annotations

import math
import re

import pytest
from helpers import DATASETS, classification_run, config, log_text, pilot_test, until

from nnlib import events
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.app import NNTui
from nntui.bridge import Bridge
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Update
from nntui.widgets.eventlog import EPOCH_LINE_SECONDS, LogLines

RANGE = re.compile(r"^epoch (\d+): .*\(epochs (\d+)-(\d+) in ([\d.]+)s, from loss")


def epoch(index: int, seconds: float, loss: float = 1.0) -> events.Epoch:
    """Epoch `index` (from 0) of 10 steps, with validation."""
    return events.Epoch(
        epoch=index,
        step=(index + 1) * 10,
        loss=loss,
        accuracy=0.5,
        val_loss=loss + 0.1,
        val_accuracy=0.75,
        seconds=seconds,
        samples_per_sec=1e5,
    )


def checkpoint(index: int, why: str = "best", name: str = "best.npz") -> events.Event:
    """The checkpoint ModelCheckpoint writes as epoch `index` ends (before its record)."""
    data = {"path": f"run/{name}", "epoch": index, "reason": why}
    return events.make("checkpoint", (index + 1) * 10, data)


def feed(lines: LogLines, updates: list[Update]) -> list[tuple[int | None, str, str]]:
    return [entry for update in updates for entry in lines.take(update)]


def test_fast_epochs_fold_into_one_line_per_epoch_line_seconds_of_training():
    lines = LogLines()
    fed = feed(lines, [epoch(i, 0.003, loss=1 / (i + 1)) for i in range(1000)])  # 3 s
    written = fed + lines.flush()
    assert written[0] == (10, "epoch 1: loss 1.00, val 1.10 / 75.0% (3ms)", "info")
    # The rest: each line the latest epoch of a range, ranges back to back up to the last.
    covered = 1
    for step, text, severity in written[1:]:
        last, first, to, _ = (float(group) for group in RANGE.match(text).groups())
        assert first == covered + 1 and to == last and step == last * 10 and severity == "info"
        covered = int(last)
    assert covered == 1000
    # Lines came no more often than every EPOCH_LINE_SECONDS of training (the last at the end).
    spans = [float(RANGE.match(text).group(4)) for _, text, _ in fed[1:]]
    assert spans and all(span >= EPOCH_LINE_SECONDS for span in spans)
    assert len(written) <= 3 / EPOCH_LINE_SECONDS + 2
    assert "epoch 1000: loss 0.001" in written[-1][1] and "from loss 0.500)" in written[1][1]


def test_slow_epochs_and_epochs_of_unknown_time_each_have_their_own_line():
    lines = LogLines()
    written = feed(lines, [epoch(0, 2.0), epoch(1, 0.6), epoch(2, 0.0), epoch(3, math.nan)])
    assert [text for _, text, _ in written] == [
        "epoch 1: loss 1.00, val 1.10 / 75.0% (2.0s)",
        "epoch 2: loss 1.00, val 1.10 / 75.0% (0.6s)",
        "epoch 3: loss 1.00, val 1.10 / 75.0%",  # no time measured: none shown
        "epoch 4: loss 1.00, val 1.10 / 75.0%",
    ]
    assert lines.flush() == []


def test_other_lines_come_at_once_after_the_epochs_held_and_checkpoints_fold_in():
    lines = LogLines()
    # The checkpoint of a written epoch has its own line, after the epoch's.
    assert feed(lines, [checkpoint(0), epoch(0, 0.01)]) == [
        (10, "epoch 1: loss 1.00, val 1.10 / 75.0% (10ms)", "info"),
        (10, "checkpoint (best): best.npz", "good"),
    ]
    held = [checkpoint(1), epoch(1, 0.01), checkpoint(2), epoch(2, 0.01), epoch(3, 0.01)]
    assert feed(lines, held) == []
    change = events.make("hparam", 41, {"name": "lr", "old": 0.1, "new": 0.2})
    assert feed(lines, [change]) == [
        (
            40,
            "epoch 4: loss 1.00, val 1.10 / 75.0% (epochs 2-4 in 30ms, from loss 1.00); "
            "2 checkpoints, the last checkpoint (best): best.npz",
            "info",
        ),
        (41, "lr 0.1 → 0.2 (applies next batch)", "warning"),
    ]
    # The end of the run writes the epochs held before it, with the one checkpoint then
    # (written as the run ended, about the last epoch).
    end = [epoch(4, 0.01), checkpoint(4, "end", "model.npz")]
    finished = events.make("end", 50, {"reason": "finished", "epoch": 4})
    assert feed(lines, [*end, finished]) == [
        (50, "epoch 5: loss 1.00, val 1.10 / 75.0% (10ms); checkpoint (end): model.npz", "info"),
        (50, "run ended: finished at step 50", "good"),
    ]
    # An early stop about an epoch comes after its line too, and so does a checkpoint about
    # an epoch whose record never came (a run stopped before its first batch).
    stop = events.make("early_stop", 60, {"monitor": "val_loss", "best_epoch": 3, "epoch": 5})
    ended = events.make("end", 60, {"reason": "early_stop", "epoch": 6})
    assert [text for _, text, _ in feed(LogLines(), [stop, epoch(5, 2.0)])] == [
        "epoch 6: loss 1.00, val 1.10 / 75.0% (2.0s)",
        "early stop: val_loss has not improved since epoch 4",
    ]
    assert [text for _, text, _ in feed(LogLines(), [checkpoint(6, "end"), ended])] == [
        "checkpoint (end): best.npz",
        "run ended: early_stop at step 60",
    ]
    # A line the app adds itself (a saved model) also comes after the epochs held.
    feed(lines, [epoch(5, 0.01)])
    assert [text for _, text, _ in lines.line(None, "model saved to m.npz")] == [
        "epoch 6: loss 1.00, val 1.10 / 75.0% (10ms)",
        "model saved to m.npz",
    ]


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory) -> tuple[list[Update], list[Update]]:
    """A real spirals run with checkpoints: what the Bridge sent live, and its replay."""
    run_dir = tmp_path_factory.mktemp("coalesce") / "spirals"
    live: list[Update] = []
    run = ExperimentConfig(
        dataset="spirals", arch="2-16-3", epochs=30, batch_size=64, lr=0.1, seed=0,
        run_dir=str(run_dir),
    )  # fmt: skip
    setup(run, checkpoints=True, callbacks=[Bridge(live.append, interval=0.0)]).fit()
    return live, open_run(run_dir).updates


def test_a_recorded_run_logs_the_lines_its_live_run_logged(fast_run):
    live, replayed = fast_run
    # Whatever the speed of this machine, the fold depends on the epochs' own times; an
    # hour's window holds every epoch until a line that is not an epoch's.
    for seconds in (EPOCH_LINE_SECONDS, 3600.0):
        assert feed(LogLines(seconds), live) == feed(LogLines(seconds), replayed)
    folded = [text for _, text, _ in feed(LogLines(3600.0), replayed)]
    assert folded[0].startswith("run started") and folded[-1].startswith("run ended")
    epochs = [text for text in folded if text.startswith("epoch ")]
    assert "(epochs 2-" in epochs[1] and "checkpoints, the last checkpoint (" in epochs[1]
    # the model written as the run ended, with the epochs held then (as the run log has it)
    assert epochs[-1].endswith("the last checkpoint (end): model.npz")
    assert epochs[-1].startswith("epoch 30: loss") and len(folded) < 30


@pilot_test
async def test_the_dashboard_log_of_a_fast_run_keeps_an_lr_change_in_sight():
    started = classification_run()[0]
    ended = events.make("end", 6000, {"reason": "finished", "epoch": 599})
    # 600 epochs in 0.6 EPOCH_LINE_SECONDS of training: no line of their own but the first.
    fast = [epoch(i, EPOCH_LINE_SECONDS / 1000, loss=1 / (i + 1)) for i in range(600)]
    change = events.make("hparam", 3001, {"name": "lr", "old": 0.05, "new": 0.1})
    snapshots = [started, *fast[:300], change, *fast[300:], ended]
    app = NNTui(config(), datasets=DATASETS)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = DashboardScreen(config(), replay=snapshots)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.state.end is not None)
        rows = (await log_text(pilot, screen)).splitlines()
        texts = [row.split("] ", 1)[1] for row in rows if "] " in row]
        assert texts[0].startswith("run started") and texts[-1].startswith("run ended")
        epochs = [text for text in texts if text.startswith("epoch ")]
        assert [text.split(":")[0] for text in epochs] == ["epoch 1", "epoch 300", "epoch 600"]
        assert texts.index("lr 0.05 → 0.1 (applies next batch)") == texts.index(epochs[1]) + 1
        assert len(texts) == 6


def test_a_paced_runs_epochs_each_get_their_line_as_they_end():
    def pace(step: int, new: float | None) -> events.Event:
        return events.make("pace", step, {"old": None, "new": new, "source": "app"})

    lines = LogLines()
    # 3 ms of training each, but at 2 epochs a second each lasts 0.5 s: a line each.
    written = feed(lines, [pace(0, 2.0), *(epoch(i, 0.003) for i in range(4))])
    assert [text for _, text, _ in written] == [
        "pace: full speed -> 2 ep/s [app]",
        *(f"epoch {i}: loss 1.00, val 1.10 / 75.0% (3ms)" for i in range(1, 5)),
    ]
    # Back at full speed they fold again.
    assert not feed(lines, [pace(40, None), *(epoch(i, 0.003) for i in range(4, 8))])[1:]
