"""Issue 20 item 6: every run records its process's CPU %, resident memory and samples/s in a
'system' event every few seconds (fake clocks here: no timing assertions), at a pause and at
the end; the runs table shows the peak memory and the mean samples/s, the status line the
latest CPU and memory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import nnlib as nl
from nnlib import _memory, events, runindex, runs, runtable
from nnlib.callbacks import SystemMetrics
from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.runstate import RunState
from nntui.stream import RunStarted, pairs
from nntui.widgets.status import StatusPanel

MiB = 2**20


class Clocks:
    """A wall clock and a CPU clock that move only when told to."""

    def __init__(self, cpu_per_second: float) -> None:
        self.now, self.cpu, self.rate = 0.0, 0.0, cpu_per_second

    def advance(self, seconds: float, busy: bool = True) -> None:
        self.now += seconds
        self.cpu += seconds * self.rate if busy else 0.0


def fake(clocks: Clocks, memory=lambda: (100 * MiB, 120 * MiB)):
    """A SystemMetrics on the fake clocks, and a trainer stand-in that keeps what it emits
    as checked records."""
    emitted: list[events.Event] = []
    trainer = SimpleNamespace(
        emit=lambda kind, **data: emitted.append(events.make(kind, 0, data)), global_step=0
    )
    callback = SystemMetrics(
        interval=5.0, clock=lambda: clocks.now, cpu_clock=lambda: clocks.cpu, memory=memory
    )
    return callback, trainer, emitted


def batches(callback, trainer, clocks: Clocks, count: int, size: int = 32) -> None:
    for batch in range(count):
        clocks.advance(1.0)
        callback.on_batch_end(trainer, batch, {"size": size})


def test_an_event_every_interval_and_one_at_the_end_with_what_the_interval_measured():
    clocks = Clocks(cpu_per_second=1.5)  # two threads, busy three quarters of the time
    callback, trainer, emitted = fake(clocks)
    callback.on_train_begin(trainer)
    batches(callback, trainer, clocks, 4)
    assert emitted == []  # 4 s: not yet
    batches(callback, trainer, clocks, 8)  # 12 s: at 5 and at 10
    clocks.advance(0.5)
    callback.on_train_end(trainer, {"reason": "finished"})
    assert [type(e) for e in emitted] == [events.System] * 3
    assert [(e.seconds, e.samples) for e in emitted] == [(5.0, 160), (5.0, 160), (2.5, 64)]
    assert [e.samples_per_sec for e in emitted] == [32.0, 32.0, 25.6]
    assert [round(e.cpu_percent, 6) for e in emitted] == [150.0, 150.0, 150.0]
    assert {(e.rss_bytes, e.peak_rss_bytes) for e in emitted} == {(100 * MiB, 120 * MiB)}


def test_a_pause_ends_an_interval_and_the_paused_time_is_left_out():
    clocks = Clocks(cpu_per_second=1.0)
    callback, trainer, emitted = fake(clocks)
    callback.on_train_begin(trainer)
    batches(callback, trainer, clocks, 3)
    callback.on_event(trainer, "pause", {})
    clocks.advance(600.0, busy=False)  # paused for ten minutes
    callback.on_event(trainer, "resume", {})
    batches(callback, trainer, clocks, 5)
    callback.on_event(trainer, "pause", {})
    clocks.advance(60.0, busy=False)
    callback.on_train_end(trainer, {"reason": "stopped"})  # stopped while paused: said already
    assert [(e.seconds, e.samples, e.cpu_percent) for e in emitted] == [
        (3.0, 96, 100.0),
        (5.0, 160, 100.0),
    ]


def test_memory_the_system_does_not_report_is_left_out():
    clocks = Clocks(cpu_per_second=1.0)
    callback, trainer, emitted = fake(clocks, memory=lambda: (None, None))
    callback.on_train_begin(trainer)
    callback.on_train_end(trainer, {"reason": "stopped"})  # at once: no time, no rate
    (event,) = emitted
    assert (event.rss_bytes, event.peak_rss_bytes) == (None, None)
    assert (event.seconds, event.samples, event.cpu_percent, event.samples_per_sec) == (
        0.0,
        0,
        None,
        None,
    )
    assert "rss_bytes" not in json.loads(event.line())
    assert event.describe() == "system: cpu -  rss - (peak -)  - samples/s over 0.0s"


def test_the_process_memory_is_read_and_without_proc_the_peak_still_is(monkeypatch):
    current, peak = _memory.process_memory()
    assert current is not None and 1 * MiB < current <= peak
    monkeypatch.setattr(_memory, "STATM", "/nonexistent/statm")
    current, peak = _memory.process_memory()
    assert current is None and peak > 1 * MiB  # getrusage's ru_maxrss


def test_a_real_run_records_every_sample_it_trained_and_plausible_numbers(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    trainer = nl.Trainer(
        nl.build("2-8-2", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[SystemMetrics(interval=0.001), runs.RunLogger(run_dir=tmp_path / "r")],
    )
    trainer.fit(x, y, epochs=3, batch_size=16)
    measured = [e for e in runs.read(tmp_path / "r") if isinstance(e, events.System)]
    assert measured and sum(e.samples for e in measured) == 3 * 100
    assert measured[-1].step == trainer.global_step
    for event in measured:
        assert 0 < event.rss_bytes <= event.peak_rss_bytes and event.cpu_percent >= 0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A run made the way the CLI and the app make one (`setup`)."""
    root = tmp_path_factory.mktemp("system") / "runs"
    config = ExperimentConfig(dataset="spirals", arch="2-8-3", epochs=2, seed=0)
    setup(config.replace(run_dir=str(root / "run"))).fit()
    return root


def test_every_run_records_it_and_the_runs_table_shows_peak_rss_and_mean_speed(recorded, capsys):
    measured = [e for e in runs.read(recorded / "run") if isinstance(e, events.System)]
    assert measured, "setup attaches SystemMetrics to every run"
    (summary,) = runindex.RunIndex(recorded).refresh()
    assert summary.peak_rss == max(e.peak_rss_bytes for e in measured) > 0
    seconds = sum(e.seconds for e in measured)
    assert summary.samples_per_sec == pytest.approx(sum(e.samples for e in measured) / seconds)
    row = runtable.RunRow(summary)
    cells = {c.name: c.text(row) for c in runtable.FIXED}
    assert cells["peak rss"] == _memory.human_bytes(summary.peak_rss)
    assert cells["samples/s"] == f"{summary.samples_per_sec:,.0f}"
    blank = runtable.RunRow(runindex.RunSummary(Path("old")))  # a run from before them
    assert f"peak rss {cells['peak rss']}, {cells['samples/s']} samples/s" in runtable.detail(row)
    assert runtable.select([row, blank], "samples_per_sec>1") == [row]
    assert runtable.select([blank], f"peak_rss<{summary.peak_rss}") == []
    assert main(["runs", "list", str(recorded), "--wide"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[-3:] == ["peak", "rss", "samples/s"]
    assert line.endswith(f"{cells['peak rss']}  {cells['samples/s']}")
    assert main(["runs", "list", str(recorded), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["peak_rss"], record["samples_per_sec"]) == (
        summary.peak_rss,
        summary.samples_per_sec,
    )


def test_a_run_without_system_events_leaves_the_columns_blank():
    row = runtable.RunRow(runindex.RunSummary(Path("old")))
    assert [c.text(row) for c in runtable.FIXED if c.name in ("peak rss", "samples/s")] == ["", ""]
    assert "peak rss" not in runtable.detail(row)


def status_line(state: RunState, width: int) -> str:
    return StatusPanel(state)._hyperparameters(width).plain


def test_the_status_line_shows_cpu_and_rss_and_drops_them_first_when_narrow():
    state = RunState()
    state.apply(
        events.make(
            "system",
            5,
            {"seconds": 5.0, "cpu_percent": 98.4, "samples": 10, "samples_per_sec": 2.0,
             "rss_bytes": 210 * MiB, "peak_rss_bytes": 230 * MiB},
        )
    )  # fmt: skip
    hyperparameters = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0, "l1": 0, "batch_size": 32}
    state.apply(RunStarted("", "classification", "", 0, 1, (), (), pairs(hyperparameters)))
    assert status_line(state, 120).endswith("full speed   cpu 98%   rss 210.0 MiB")
    closer = status_line(state, 80)  # closer spacing first, then without them
    assert closer.endswith("full speed  cpu 98%  rss 210.0 MiB") and len(closer) <= 80
    narrow = status_line(state, 60)
    assert "cpu" not in narrow and narrow.startswith("lr 0.05   momentum 0.9")
    state.end = SimpleNamespace(error=None)  # an ended run: its peak
    assert status_line(state, 80).endswith("peak rss 230.0 MiB")
    assert StatusPanel(RunState())._system("  ").plain == ""  # no event yet: nothing


def test_an_ended_run_shows_its_mean_speed_not_its_last_batchs():
    """A stop (a lost terminal) cuts the last epoch short: its batch line's rate is that of
    a few batches, the status line of the ended run the rate its 'system' records give."""
    state = RunState()
    state.apply(RunStarted("", "classification", "", 6400, 2, (), (), pairs({"batch_size": 64})))
    for step, (seconds, samples) in enumerate([(5.0, 50_000), (3.0, 30_000)]):
        state.apply(
            events.make(
                "system",
                step,
                {"seconds": seconds, "cpu_percent": 99.0, "samples": samples,
                 "samples_per_sec": samples / seconds},
            )
        )  # fmt: skip
    batch = {"epoch": 1, "batch": 0, "loss": 0.5, "samples_per_sec": 924.0}
    state.apply(events.make("batch", 101, batch))
    assert state.samples_per_sec() == 924.0  # running: the epoch's rate so far
    assert StatusPanel(state)._progress(100).plain.endswith(" 924 samples/s")
    state.apply(events.make("end", 101, {"reason": "stopped", "epoch": 1}))
    assert state.samples_per_sec() == 10_000.0
    assert StatusPanel(state)._progress(100).plain.endswith(" 10,000 samples/s")
    assert RunState().samples_per_sec() == 0.0
