"""Monitoring that costs almost nothing (issue 13 item 4) in few bytes (issue 20): the run
log's fast path for batch lines gives exactly what the generic path gives, and a log of
compact batch lines reads back as the records that were emitted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import events
from nnlib.arrays import float32
from nnlib.events import MAX_INT, BatchLines, Decoder, EventError, batch_values, make

KEYS = st.sampled_from(
    ["epoch", "batch", "loss", "batch_size", "accuracy", "val_loss", "lr", "seconds"]
    + ["samples_per_sec", "size", "momentum", "step", "time", "v", "type", "note"]
)
VALUES = st.one_of(
    st.integers(-5, 10**6),
    st.integers(MAX_INT - 2, MAX_INT + 2),
    st.integers(-MAX_INT - 2, -MAX_INT + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32).map(np.float32),
    st.floats().map(np.float64),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.just([1, 2]),
    st.just(np.int64(3)),
)


def generic(step: object, data: dict, when: object) -> dict | None:
    try:
        return dict(make("batch", step, data, when=when).data)  # type: ignore[arg-type]
    except (EventError, TypeError, ValueError):
        return None


BATCH_LOGS = st.tuples(
    st.fixed_dictionaries({"epoch": st.integers(0, 9), "batch": st.integers(0, 9)}),
    st.fixed_dictionaries({"loss": st.floats(width=32).map(np.float32)}),
    st.dictionaries(KEYS, VALUES, max_size=10),
).map(lambda parts: {**parts[0], **parts[1], **parts[2]})


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    step=st.one_of(st.integers(-2, 10**6), st.just(MAX_INT + 1), st.just(np.int64(4))),
    data=BATCH_LOGS,
    when=st.one_of(st.floats(0, 2e9), st.integers(0, 10), st.just(float("nan"))),
)
def test_the_fast_path_gives_the_generic_values_or_steps_aside(
    step: int, data: dict, when: float
) -> None:
    fast = batch_values(step, data, when)
    if fast is not None:
        assert fast == generic(step, data, when)


class GenericLines(BatchLines):
    """BatchLines without its fast path."""

    def line(self, step: int, data: dict, when: float) -> str:
        events.batch_values, saved = (lambda *_: None), events.batch_values
        try:
            return super().line(step, data, when)
        finally:
            events.batch_values = saved


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.integers(1, 3), BATCH_LOGS, st.floats(0, 0.5), st.booleans()), max_size=6
    )
)
def test_a_log_of_compact_batch_lines_reads_back_as_the_records_made(batches: list) -> None:
    """Random batches one after another (steps on, values changing or not, keys coming and
    going, a reset now and then): the fast and the generic path write the same lines, and a
    Decoder reads each back as the record `make` gives for it."""
    fast, slow, decoder = BatchLines(), GenericLines(), Decoder()
    step, when = 0, 1.7e9
    for gap, data, pause, reset in batches:
        step, when = step + gap, when + pause
        try:
            expected = make("batch", step, data, when=round(when, 3))
        except EventError:
            with pytest.raises(EventError):
                fast.line(step, data, when)
            continue
        if reset:
            fast.reset()
            slow.reset()
        line = fast.line(step, data, when)
        assert line == slow.line(step, data, when)
        back = decoder.decode(line, "f:1")
        assert back == expected and back.time == round(when, 3)
        assert back.extra == expected.extra


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    epoch=st.integers(0, 1000),
    batch=st.integers(0, 10**5),
    loss=st.one_of(st.floats(width=32).map(np.float32), st.floats()),
    accuracy=st.floats(0, 1),
    lr=st.floats(1e-6, 10),
    speed=st.floats(0, 1e7),
    when=st.floats(1e9, 2e9),
)
def test_a_trainer_batch_takes_the_fast_path_and_keeps_its_precision(
    epoch: int, batch: int, loss: float, accuracy: float, lr: float, speed: float, when: float
) -> None:
    """What Trainer._train_batch logs (numpy losses, NaN after a divergence) is never left to
    the slow path, and reads back within its fields' precision: a float32 loss exactly (a
    float64 one to float32's), the accuracy and lr exactly, samples/s to 4 significant
    digits."""
    logs = {"epoch": epoch, "batch": batch, "step": batch + 1, "size": 64, "loss": loss}
    logs |= {"lr": lr, "momentum": 0.9, "nesterov": False, "batch_size": 64}
    logs |= {"accuracy": accuracy, "samples_per_sec": speed}
    assert batch_values(batch + 1, logs, when) is not None
    writer, reader = BatchLines(), Decoder()
    for step in (batch + 1, batch + 2):  # complete, then compact
        line = writer.line(step, {**logs, "batch": step - 1}, when)
        back = reader.decode(line)
        assert back == make("batch", step, {**logs, "batch": step - 1}, when=when)
    assert len(line) <= 80
    if np.isfinite(loss):
        assert back.loss == float32(loss)
    else:
        assert back.loss is None
    assert back.accuracy == accuracy and back.lr == lr and back.extra["nesterov"] is False
    assert back.samples_per_sec == pytest.approx(speed, rel=5e-4, abs=0)


def test_run_logger_writes_batch_lines_that_read_back(tmp_path) -> None:
    import nnlib as nl

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 2)).astype(np.float32), rng.integers(0, 2, 64)
    model = nl.build("2-4-2", (2,), seed=0)
    logger = nl.RunLogger(run_dir=tmp_path / "run")
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(0.1), callbacks=[logger])
    trainer.fit(x, y, epochs=2, batch_size=16, seed=0)
    read = nl.runs.read(tmp_path / "run")
    batches = [event for event in read if event.type == "batch"]
    assert [(b.epoch, b.batch) for b in batches] == [(e, b) for e in range(2) for b in range(4)]
    assert all(b.loss is not None and b.extra["size"] == 16 for b in batches)
