"""The run log's cheap batch lines (issue "speed": the callbacks' cost): batch lines are held
for at most nnlib.runs.logger.FLUSH_SECONDS and written together, yet a follower sees every
one, any other event and the end write them first, a SIGKILL loses only what was held, and
a bad value is still an EventError naming it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT

import nnlib as nl
from nnlib import events, runs
from nnlib.callbacks.monitor import dead_fraction, histogram
from nnlib.runs import logger as run_logger

#: Holds every batch line until something else writes it (the writer thread waits an hour).
FOREVER = 3600.0


def trainer() -> nl.Trainer:
    """A trainer whose logger's hooks a test calls by hand (no fit: every step is chosen)."""
    model = nl.build("2-4-2", (2,), seed=0)
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))


def batch_logs(step: int, **extra: object) -> dict:
    return {"epoch": 0, "batch": step - 1, "step": step, "loss": 0.5 / step, **extra}


def lines(run_dir: Path) -> list[tuple[str, int]]:
    return [(event.type, event.step) for event in runs.read(run_dir)]


def started(run_dir: Path) -> tuple[runs.RunLogger, nl.Trainer]:
    logger, owner = runs.RunLogger(run_dir=run_dir), trainer()
    logger.on_train_begin(owner)
    return logger, owner


def test_batch_lines_are_held_and_any_other_event_writes_them_first(tmp_path, monkeypatch):
    monkeypatch.setattr(run_logger, "FLUSH_SECONDS", FOREVER)
    logger, owner = started(tmp_path)
    for step in (1, 2, 3):
        logger.on_batch_end(owner, step - 1, batch_logs(step))
    assert lines(tmp_path) == [("run_start", 0)]  # held: nothing written per batch
    owner.global_step = 3
    logger.on_record(owner, events.make("pause", owner.global_step, {"source": "script"}))
    assert lines(tmp_path) == [("run_start", 0), ("batch", 1), ("batch", 2), ("batch", 3)] + [
        ("pause", 3)
    ]
    logger.on_batch_end(owner, 3, batch_logs(4))
    logger.on_train_end(owner, {"reason": "finished", "epoch": 0})
    assert lines(tmp_path)[-2:] == [("batch", 4), ("end", 3)]
    assert logger._writer is None  # the writer thread has ended with the run


def test_a_held_line_is_what_an_immediate_write_would_have_been(tmp_path, monkeypatch):
    monkeypatch.setattr(run_logger, "FLUSH_SECONDS", FOREVER)
    logger, owner = started(tmp_path)
    logs = batch_logs(1, accuracy=0.25, nesterov=False, note="x")
    before = time.time()
    logger.on_batch_end(owner, 0, logs)
    logs["loss"] = 99.0  # a later callback changing the dict changes nothing held
    logger.on_train_end(owner, {"reason": "finished", "epoch": 0})
    (batch,) = [event for event in runs.read(tmp_path) if event.type == "batch"]
    assert batch == runs.make("batch", 1, batch_logs(1, accuracy=0.25, nesterov=False, note="x"))
    assert before - 0.001 <= batch.time <= time.time() + 0.001  # stamped as the batch ended


def test_a_follower_sees_every_held_line_while_training_stands_still(tmp_path, monkeypatch):
    monkeypatch.setattr(run_logger, "FLUSH_SECONDS", 0.05)
    logger, owner = started(tmp_path)
    tail = runs.EventTail(tmp_path)
    seen = [(event.type, event.step) for event in tail.read()]
    for step in (1, 2, 3):
        logger.on_batch_end(owner, step - 1, batch_logs(step))
    # No hook runs any more (a long batch, a pause, a stalled thread): the writer thread
    # writes the held lines on its own.
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < 4 and time.monotonic() < deadline:
        seen += [(event.type, event.step) for event in tail.read()]
        time.sleep(0.01)
    assert seen == [("run_start", 0), ("batch", 1), ("batch", 2), ("batch", 3)]
    logger.on_train_end(owner, {"reason": "finished", "epoch": 0})
    assert lines(tmp_path)[-1] == ("end", 0)


def test_a_real_run_writes_every_line_in_order(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 2)).astype(np.float32), rng.integers(0, 3, 120)
    model = nl.build("2-8-3", (2,), seed=0)
    logger = runs.RunLogger(run_dir=tmp_path)
    nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=[logger]).fit(
        x, y, epochs=2, batch_size=8
    )
    types = [e.type for e in runs.read(tmp_path)]
    steps = [e.step for e in runs.read(tmp_path) if e.type == "batch"]
    assert steps == list(range(1, 31))
    assert types == ["run_start"] + (["batch"] * 15 + ["epoch"]) * 2 + ["end"]


def test_a_bad_held_value_is_an_event_error_and_the_log_stays_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(run_logger, "FLUSH_SECONDS", FOREVER)
    logger, owner = started(tmp_path)
    logger.on_batch_end(owner, 0, batch_logs(1))
    logger.on_batch_end(owner, 1, batch_logs(2, loss="high"))
    with pytest.raises(runs.EventError, match="batch event loss must be a number"):
        # writes the held lines first
        logger.on_record(owner, events.make("pause", owner.global_step, {"source": "script"}))
    logger.on_train_end(owner, {"reason": "error", "epoch": 0})
    assert lines(tmp_path) == [("run_start", 0), ("batch", 1), ("pause", 0), ("end", 0)]


def test_what_the_writer_thread_cannot_write_is_raised_on_the_training_thread(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(run_logger, "FLUSH_SECONDS", 0.05)
    logger, owner = started(tmp_path)
    with pytest.raises(runs.EventError, match="batch event loss must be a number"):
        logger.on_batch_end(owner, 0, batch_logs(1, loss="high"))  # raises if written at once,
        deadline = time.monotonic() + TIMEOUT
        while logger._held and time.monotonic() < deadline:  # else the writer thread tries,
            time.sleep(0.01)
        logger.on_batch_end(owner, 1, batch_logs(2))  # and its error comes here
    logger.on_train_end(owner, {"reason": "error", "epoch": 0})
    written = lines(tmp_path)
    assert written[0] == ("run_start", 0) and written[-1] == ("end", 0)
    assert ("batch", 1) not in written


KILLED = """
import sys
import threading
import nnlib as nl
from nnlib import events, runs
from nnlib.callbacks.monitor import dead_fraction, histogram
from nnlib.runs import logger as run_logger

run_logger.FLUSH_SECONDS = 3600.0
model = nl.build("2-4-2", (2,), seed=0)
trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))
logger = runs.RunLogger(run_dir=sys.argv[1])
logger.on_train_begin(trainer)
for step in (1, 2, 3, 4, 5):
    logs = {"epoch": 0, "batch": step - 1, "step": step, "loss": 1.0}
    logger.on_batch_end(trainer, step - 1, logs)
    if step == 3:
        trainer.global_step = 3
        logger.on_record(trainer, events.make("pause", 3, {"source": "script"}))
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_sigkill_loses_only_the_lines_still_held(tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        writer.send_signal(signal.SIGKILL)
        writer.wait(TIMEOUT)
    finally:
        writer.kill()
        writer.wait(TIMEOUT)
        writer.stdin.close()
        writer.stdout.close()
    # Batches 4 and 5 were held (for an hour here, FLUSH_SECONDS at most in a real run).
    assert lines(tmp_path) == [
        ("run_start", 0),
        ("batch", 1),
        ("batch", 2),
        ("batch", 3),
        ("pause", 3),
    ]
    assert not runs.writer_alive(tmp_path)


# -- the Monitor's summaries, computed faster, are the same numbers ------------------------------
def reference_counts(values: np.ndarray, bins: int) -> np.ndarray:
    """The histogram's definition: floor((v - lo) * bins / (hi - lo)) in the values' dtype,
    hi in the last bin, every index counted."""
    lo, hi = values.min(), values.max()
    index = (values - lo) * values.dtype.type(bins / (float(hi) - float(lo)))
    return np.bincount(np.minimum(index, bins - 1).astype(np.intp), minlength=bins)


@pytest.mark.parametrize("size", [4095, 4096, 4097, 784 * 512 + 1])
@pytest.mark.parametrize("bins", [1, 2, 30, 256, 257])
def test_histogram_counts_of_large_layers_are_the_definition(size, bins):
    rng = np.random.default_rng(size + bins)
    values = (rng.standard_normal(size) * 0.05).astype(np.float32)
    values[:7] = values.max()  # several at hi: the last bin is closed
    counts = histogram(values, bins)["counts"]
    assert counts == reference_counts(values, bins).tolist()
    assert sum(counts) == size


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("bins", [1, 30, 256, 257])
def test_histogram_counts_where_the_range_overflows_float32(bins):
    # The span 6e38 does not fit float32 (2e38 - lo is inf there, which put 2e38 in the last
    # bin): the counts are numpy's in float64, without an overflow warning.
    values = np.array([-3e38, 3e38, 0.0, 1.0, 2e38] * 2000, dtype=np.float32)
    wide = values.astype(np.float64)
    expected, _ = np.histogram(wide, bins, range=(wide.min(), wide.max()))
    assert histogram(values, bins)["counts"] == expected.tolist()


def test_dead_fraction_counts_channels_dead_at_every_sample_and_position():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5, 7, 6)).astype(np.float32)
    x[..., 1] = -1.0  # never active
    x[..., 4] = -1.0
    x[3, 2, 6, 4] = 0.5  # active once: alive
    relu = nl.layers.ReLU()
    relu.forward(x)
    assert dead_fraction(relu) == pytest.approx(1 / 6)
    relu.fused = True  # the mask computed from the input, as for a ReLU fused into its pool
    relu.forward(x)
    assert dead_fraction(relu) == pytest.approx(1 / 6)
    relu.fused = False
    relu.forward(np.where(np.arange(10) < 3, -1.0, 1.0)[None].repeat(4, 0).astype(np.float32))
    assert dead_fraction(relu) == pytest.approx(0.3)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files by /proc")
def test_config_json_is_synced_by_the_writer_thread_not_the_training_thread(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append((threading.current_thread(), os.readlink(f"/proc/self/fd/{descriptor}")))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    logger, owner = started(tmp_path)
    logger.on_train_end(owner, {"reason": "finished", "epoch": 0})
    assert [Path(name).name for _, name in synced] == [runs.CONFIG_FILE]
    assert synced[0][0] is not threading.current_thread()
    assert json.loads((tmp_path / runs.CONFIG_FILE).read_text())["trainer"]["epochs"] == 0
