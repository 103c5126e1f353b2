"""Monitoring that costs almost nothing (issue 13 item 4): the run log's fast path for batch and
epoch lines writes exactly what the generic path writes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import events
from nnlib.events import MAX_INT, EventError, fast_line, make

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


def generic(kind: str, step: object, data: dict, when: object) -> str | None:
    try:
        return make(kind, step, data, when=when).line()  # type: ignore[arg-type]
    except (EventError, TypeError, ValueError):
        return None


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["batch", "epoch", "warning"]),
    step=st.one_of(st.integers(-2, 10**6), st.just(MAX_INT + 1), st.just(np.int64(4))),
    data=st.tuples(
        st.fixed_dictionaries({"epoch": st.integers(0, 9), "batch": st.integers(0, 9)}),
        st.fixed_dictionaries({"loss": st.floats(width=32).map(np.float32)}),
        st.dictionaries(KEYS, VALUES, max_size=10),
    ).map(lambda parts: {**parts[0], **parts[1], **parts[2]}),
    when=st.one_of(st.floats(0, 2e9), st.integers(0, 10), st.just(float("nan"))),
)
def test_fast_line_writes_the_generic_line_or_steps_aside(
    kind: str, step: int, data: dict, when: float
) -> None:
    fast = fast_line(kind, step, data, when=when)
    if fast is not None:
        assert fast == generic(kind, step, data, when)


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
def test_a_trainer_batch_takes_the_fast_path(
    epoch: int, batch: int, loss: float, accuracy: float, lr: float, speed: float, when: float
) -> None:
    """What Trainer._train_batch logs (numpy losses, NaN after a divergence) is never left to
    the slow path, and reads back as the same event."""
    logs = {"epoch": epoch, "batch": batch, "step": batch + 1, "size": 64, "loss": loss}
    logs |= {"lr": lr, "momentum": 0.9, "nesterov": False, "batch_size": 64}
    logs |= {"accuracy": accuracy, "samples_per_sec": speed}
    line = fast_line("batch", batch + 1, logs, when=when)
    assert line is not None
    assert line == make("batch", batch + 1, logs, when=when).line()
    assert events.decode(line) == make("batch", batch + 1, logs, when=when)


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
