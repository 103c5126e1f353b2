"""Trainer: hook order and log keys, stopping, live control from another thread (pause, step,
resume, stop, set), exact updates after a hyperparameter change, determinism, input checks."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time

import numpy as np
import pytest
from helpers import TIMEOUT, Gate, fit_in_thread, join_fit

import nnlib as nl
from nnlib import datasets
from nnlib.runs import RunLogger, read


def _data(n=10, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    return x, y


def _trainer(arch="4-8-3", lr=0.1, momentum=0.0, callbacks=(), loss=None, shape=(4,), **kw):
    model = nl.build(arch, shape, seed=0)
    loss = loss or nl.SoftmaxCrossEntropy()
    return nl.Trainer(model, loss, nl.SGD(lr=lr, momentum=momentum), callbacks=callbacks, **kw)


class Recorder(nl.Callback):
    """Records every hook as (hook, argument) and every event as (type, data)."""

    def __init__(self):
        self.calls = []
        self.batch_logs = []
        self.epoch_logs = []
        self.events = []
        self.end_logs = []

    def on_train_begin(self, trainer):
        self.calls.append(("on_train_begin", None))

    def on_epoch_begin(self, trainer, epoch):
        self.calls.append(("on_epoch_begin", epoch))

    def on_batch_begin(self, trainer, batch):
        self.calls.append(("on_batch_begin", batch))

    def on_batch_end(self, trainer, batch, logs):
        self.calls.append(("on_batch_end", batch))
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, trainer, epoch, logs):
        self.calls.append(("on_epoch_end", epoch))
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, trainer, logs):
        self.calls.append(("on_train_end", None))
        self.end_logs.append(dict(logs))

    def on_event(self, trainer, event, data):
        self.events.append((event, dict(data)))

    def of(self, kind):
        return [data for event, data in self.events if event == kind]


class At(nl.Callback):
    """Call `action(trainer, logs)` at on_batch_end of the given global step (1-based)."""

    def __init__(self, step, action):
        self.step, self.action = step, action

    def on_batch_end(self, trainer, batch, logs):
        if logs["step"] == self.step:
            self.action(trainer, logs)


def _finite(model):
    return all(np.isfinite(p.value).all() for p in model.parameters())


SGD_HYPER = {"lr", "base_lr", "momentum", "weight_decay", "l1", "decay", "nesterov", "batch_size"}


# -- hook order and logs -----------------------------------------------------------------------


def test_hook_order_and_log_keys():
    x, y = _data(10)
    xv, yv = _data(6, seed=1)
    recorder = Recorder()
    trainer = _trainer(callbacks=[recorder])
    trainer.fit(x, y, epochs=2, batch_size=4, validation_data=(xv, yv))

    expected = [("on_train_begin", None)]
    for epoch in range(2):
        expected.append(("on_epoch_begin", epoch))
        for batch in range(3):
            expected += [("on_batch_begin", batch), ("on_batch_end", batch)]
        expected.append(("on_epoch_end", epoch))
    expected.append(("on_train_end", None))
    assert recorder.calls == expected

    assert set(trainer.hyperparameters()) == SGD_HYPER
    batch_keys = {"loss", "accuracy", "step", "epoch", "batch", "size", "samples_per_sec"}
    for log in recorder.batch_logs:
        assert set(log) == batch_keys | SGD_HYPER
        assert math.isfinite(log["loss"]) and 0 <= log["accuracy"] <= 1
        assert log["samples_per_sec"] >= 0
    assert [(b["epoch"], b["batch"], b["step"], b["size"]) for b in recorder.batch_logs] == [
        (0, 0, 1, 4),
        (0, 1, 2, 4),
        (0, 2, 3, 2),
        (1, 0, 4, 4),
        (1, 1, 5, 4),
        (1, 2, 6, 2),
    ]
    assert all(b["lr"] == 0.1 and b["batch_size"] == 4 for b in recorder.batch_logs)

    epoch_keys = {
        "epoch",
        "step",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "samples_per_sec",
    }
    for log in recorder.epoch_logs:
        assert set(log) == epoch_keys | SGD_HYPER
    assert [(e["epoch"], e["step"]) for e in recorder.epoch_logs] == [(0, 3), (1, 6)]
    # the epoch loss is the size-weighted mean of its batch losses
    first = recorder.batch_logs[:3]
    assert recorder.epoch_logs[0]["loss"] == pytest.approx(
        sum(b["loss"] * b["size"] for b in first) / 10, rel=1e-12
    )
    # val_loss is the loss of the model as it is at the end of the epoch
    assert recorder.epoch_logs[1]["val_loss"] == pytest.approx(
        trainer.evaluate(xv, yv)["loss"], rel=1e-6
    )
    assert recorder.end_logs == [{"reason": "finished", "epoch": 1, "step": 6}]
    assert trainer.history.batches == recorder.batch_logs
    assert trainer.history.epochs == recorder.epoch_logs
    assert trainer.history.reason == "finished" and trainer.state == "finished"


def test_regression_logs_have_no_accuracy():
    prepared = datasets.prepare(datasets.load("sine", n_train=40, n_test=10), validation_split=0.25)
    recorder = Recorder()
    trainer = nl.Trainer(
        nl.build("1-8-1:tanh", (1,)), nl.MSE(), nl.SGD(lr=0.05), callbacks=[recorder]
    )
    trainer.fit(
        prepared.x_train,
        prepared.y_train,
        epochs=2,
        batch_size=8,
        validation_data=(prepared.x_val, prepared.y_val),
    )
    assert recorder.batch_logs and recorder.epoch_logs
    for log in recorder.batch_logs + recorder.epoch_logs:
        assert not any("acc" in key for key in log)
    assert all("val_loss" in log for log in recorder.epoch_logs)
    assert set(trainer.evaluate(prepared.x_test, prepared.y_test)) == {"loss"}


def test_validation_split_holds_out_the_last_samples():
    x, y = _data(20)
    trainer = _trainer()
    trainer.fit(x, y, epochs=1, batch_size=4, validation_split=0.25)
    assert trainer.steps_per_epoch == 4  # 15 training samples
    np.testing.assert_array_equal(trainer.validation_data[0], x[15:])
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit(x[:2], y[:2], validation_split=0.1)


# -- stopping from a callback ------------------------------------------------------------------


def test_stop_training_from_a_callback_ends_cleanly():
    x, y = _data(12)
    recorder = Recorder()

    def stop(trainer, logs):
        trainer.stop_training = True

    trainer = _trainer(callbacks=[At(5, stop), recorder])
    history = trainer.fit(x, y, epochs=4, batch_size=4)
    assert [c for c in recorder.calls if c[0] == "on_train_end"] == [("on_train_end", None)]
    assert recorder.end_logs[0]["reason"] == "stopped" and history.reason == "stopped"
    assert trainer.state == "stopped" and trainer.global_step == 5
    assert [b["step"] for b in history.batches] == [1, 2, 3, 4, 5]
    # the interrupted epoch still reports what it trained (as Keras does)
    assert [e["epoch"] for e in history.epochs] == [0, 1]
    assert history.epochs[1]["step"] == 5
    assert _finite(trainer.model)
    predictions = trainer.predict(x)
    assert predictions.shape == (12, 3) and np.isfinite(predictions).all()


def test_stop_training_at_epoch_end_stops_after_that_epoch():
    class StopAfterFirstEpoch(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = True

    x, y = _data(12)
    trainer = _trainer(callbacks=[StopAfterFirstEpoch()])
    history = trainer.fit(x, y, epochs=5, batch_size=4)
    assert history.reason == "stopped" and len(history.epochs) == 1 and trainer.global_step == 3


def test_an_exception_in_a_callback_ends_with_reason_error():
    class Boom(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            raise RuntimeError("boom")

    recorder = Recorder()
    trainer = _trainer(callbacks=[Boom(), recorder])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(*_data(8), epochs=2, batch_size=4)
    assert recorder.end_logs == [
        {"reason": "error", "error": "RuntimeError: boom", "epoch": 0, "step": 1}
    ]
    assert trainer.state == "error"


def test_an_error_in_on_train_end_still_lets_the_log_end(tmp_path):
    class FailingSave(nl.Callback):
        def on_train_end(self, trainer, logs):
            raise OSError("disk full")

    recorder = Recorder()
    trainer = _trainer(callbacks=[FailingSave(), recorder, RunLogger(run_dir=tmp_path / "run")])
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(*_data(8), epochs=1, batch_size=4)
    assert recorder.end_logs == [{"reason": "finished", "epoch": 0, "step": 2}]
    events = read(tmp_path / "run")
    assert events[-1].type == "end" and events[-1]["reason"] == "finished"


def test_an_error_in_on_train_begin_still_ends_the_run_and_its_log(tmp_path):
    class FailingBegin(nl.Callback):
        def on_train_begin(self, trainer):
            raise OSError("no space left")

    recorder = Recorder()
    trainer = _trainer(
        callbacks=[
            RunLogger(run_dir=tmp_path / "run"),
            FailingBegin(),
            recorder,
            nl.EarlyStopping(monitor="loss"),
        ]
    )
    with pytest.raises(OSError, match="no space left"):
        trainer.fit(*_data(8), epochs=1, batch_size=4)
    assert trainer.state == "error"
    assert recorder.end_logs == [
        {"reason": "error", "error": "OSError: no space left", "epoch": 0, "step": 0}
    ]
    events = read(tmp_path / "run")
    assert [e.type for e in events] == ["run_start", "end"] and events[-1]["reason"] == "error"
    trainer.set("lr", 0.5)  # no run in progress: applied at once, not queued forever
    assert trainer.optimizer.lr == 0.5 and trainer.pending() == {}


# -- live control from another thread ----------------------------------------------------------


def _cpu_seconds():
    times = os.times()
    return times.user + times.system


def test_pause_step_resume_from_another_thread(tmp_path):
    x, y = _data(32)
    gate = Gate(step=3)
    recorder = Recorder()
    trainer = _trainer(callbacks=[gate, recorder, RunLogger(run_dir=tmp_path / "run")])
    thread, result = fit_in_thread(trainer, x, y, epochs=3, batch_size=4)  # 24 steps
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    assert trainer.paused
    gate.release.set()
    assert trainer.wait_until_parked(timeout=10)
    assert trainer.state == "paused"
    assert trainer.global_step == 3  # parked at the boundary after the gated batch
    assert [e for e, _ in recorder.events if e in ("pause", "resume")] == ["pause"]
    assert recorder.of("pause")[0]["step"] == 3

    # parked: no progress and no CPU
    for _ in range(2):
        threading.Event().wait(0.05)
        assert trainer.global_step == 3
    cpu, wall = _cpu_seconds(), time.monotonic()
    threading.Event().wait(0.3)
    cpu, wall = _cpu_seconds() - cpu, time.monotonic() - wall
    assert cpu < 0.05 + 0.05 * wall, f"{cpu:.3f} s of CPU in {wall:.3f} s while paused"

    # step() runs exactly one batch, then the trainer is parked again
    for expected in (4, 5, 6):
        trainer.step()
        assert trainer.wait_until_parked(timeout=10)
        assert trainer.global_step == expected
        assert trainer.state == "paused"
    threading.Event().wait(0.05)
    assert trainer.global_step == 6
    assert len(recorder.of("pause")) == 1  # single steps do not announce a new pause

    trainer.resume()
    join_fit(thread, trainer, result)
    assert result["history"].reason == "finished"
    assert trainer.global_step == 24 and trainer.state == "finished"
    assert [(e, d["step"]) for e, d in recorder.events if e in ("pause", "resume")] == [
        ("pause", 3),
        ("resume", 6),
    ]
    logged = [(e.type, e.step) for e in read(tmp_path / "run") if e.type in ("pause", "resume")]
    assert logged == [("pause", 3), ("resume", 6)]
    assert not trainer.paused


def test_stop_while_paused_ends_with_reason_stopped():
    x, y = _data(16)
    gate = Gate(step=4)  # the last batch of epoch 0: the next boundary is epoch 1's first
    trainer = _trainer(callbacks=[gate])
    thread, result = fit_in_thread(trainer, x, y, epochs=5, batch_size=4)
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    gate.release.set()
    assert trainer.wait_until_parked(timeout=10)
    trainer.stop()
    join_fit(thread, trainer, result)
    history = result["history"]
    assert history.reason == "stopped" and trainer.state == "stopped"
    assert trainer.global_step == 4
    # epoch 1 began but trained nothing: it reports no (made-up) metrics
    assert [e["epoch"] for e in history.epochs] == [0]
    assert all(math.isfinite(e["loss"]) and e["loss"] > 0 for e in history.epochs)
    # the pause does not outlive the run: the next fit runs to the end without parking
    assert not trainer.paused
    thread, result = fit_in_thread(trainer, x, y, epochs=1, batch_size=4)
    join_fit(thread, trainer, result)
    assert result["history"].reason == "finished" and trainer.global_step == 8


def test_pause_before_fit_parks_at_the_first_batch():
    trainer = _trainer()
    trainer.pause()
    thread, result = fit_in_thread(trainer, *_data(8), epochs=1, batch_size=4)
    assert trainer.wait_until_parked(timeout=10)
    assert trainer.global_step == 0
    trainer.resume()
    join_fit(thread, trainer, result)
    assert trainer.global_step == 2


def test_wait_until_parked_returns_false_when_the_run_ends_without_parking():
    gate = Gate(step=2)  # the last batch
    trainer = _trainer(callbacks=[gate])
    thread, result = fit_in_thread(trainer, *_data(8), epochs=1, batch_size=4)
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    # know when the waiter is waiting (it holds the trainer's lock until it waits, so the run
    # cannot end before that), so that it is the end of this run that wakes it
    waiting, wait_for = threading.Event(), trainer.control._condition.wait_for

    def instrumented(*args, **kwargs):
        waiting.set()
        return wait_for(*args, **kwargs)

    trainer.control._condition.wait_for = instrumented
    answers = []
    waiter = threading.Thread(
        target=lambda: answers.append(trainer.wait_until_parked()), daemon=True
    )  # no timeout: only the end of the run wakes it
    waiter.start()
    assert waiting.wait(TIMEOUT)
    gate.release.set()
    join_fit(thread, trainer, result)
    waiter.join(TIMEOUT)
    assert not waiter.is_alive() and answers == [False]
    assert result["history"].reason == "finished"
    assert trainer.wait_until_parked(timeout=0.01) is False


def test_a_pause_right_after_a_resume_is_still_seen_as_parked():
    gate = Gate(step=1)
    trainer = _trainer(callbacks=[gate])
    thread, result = fit_in_thread(trainer, *_data(8), epochs=100, batch_size=4)
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    gate.release.set()
    assert trainer.wait_until_parked(timeout=10)
    # Both calls land before the training thread wakes up (it needs this lock to wake), so
    # it never leaves the park: it must say so again rather than leave waiters hanging.
    with trainer.control._condition:
        trainer.resume()
        trainer.pause()
    assert trainer.wait_until_parked(timeout=10)
    assert trainer.global_step == 1 and trainer.state == "paused"
    trainer.stop()
    join_fit(thread, trainer, result)
    assert result["history"].reason == "stopped"


def test_step_is_ignored_unless_paused_and_stop_ends_a_running_run():
    x, y = _data(8)
    trainer = _trainer()
    trainer.step()  # not paused: nothing to do
    trainer.fit(x, y, epochs=1, batch_size=4)
    assert trainer.global_step == 2

    gate = Gate(step=1)
    trainer = _trainer(callbacks=[gate])
    thread, result = fit_in_thread(trainer, x, y, epochs=100, batch_size=4)
    assert gate.reached.wait(TIMEOUT)
    trainer.stop()
    gate.release.set()
    join_fit(thread, trainer, result)
    assert result["history"].reason == "stopped" and trainer.global_step == 1


# -- set(): exact updates, validation, events --------------------------------------------------


class Snapshots(nl.Callback):
    """Weights before and after, gradients, and SGD velocities, for every step."""

    def __init__(self):
        self.before, self.after, self.grads, self.velocity_before = {}, {}, {}, {}
        self.lr = {}

    def on_batch_begin(self, trainer, batch):
        step = trainer.global_step + 1
        self.before[step] = trainer.model.get_weights()
        self.velocity_before[step] = {
            name: state["velocity"].copy()
            for name, state in trainer.optimizer.state.items()
            if "velocity" in state
        }

    def on_batch_end(self, trainer, batch, logs):
        step = logs["step"]
        self.after[step] = trainer.model.get_weights()
        self.grads[step] = {
            name: p.grad.copy() for name, p in trainer.model.named_parameters().items()
        }
        self.lr[step] = logs["lr"]


def test_set_lr_changes_the_very_next_plain_sgd_update_exactly():
    x, y = _data(24)
    snaps, recorder = Snapshots(), Recorder()
    trainer = _trainer(
        lr=0.1, callbacks=[At(2, lambda t, logs: t.set("lr", 0.37)), snaps, recorder]
    )
    trainer.fit(x, y, epochs=1, batch_size=4)
    assert [snaps.lr[s] for s in (1, 2, 3, 4)] == [0.1, 0.1, 0.37, 0.37]
    for step, lr in ((2, 0.1), (3, 0.37), (4, 0.37)):
        for name, before in snaps.before[step].items():
            grad = snaps.grads[step][name]
            assert before.dtype == grad.dtype == np.float32
            np.testing.assert_array_equal(snaps.after[step][name], before - lr * grad)
    assert recorder.of("hparam") == [
        {
            "name": "lr",
            "old": 0.1,
            "new": 0.37,
            "applies": "next batch",
            "source": "script",
            "step": 2,
        }
    ]
    assert trainer.optimizer.lr == 0.37


def test_set_lr_and_momentum_with_momentum_sgd():
    x, y = _data(24)
    snaps = Snapshots()

    def change(trainer, logs):
        trainer.set("lr", 0.05)
        trainer.set("momentum", 0.5)

    trainer = _trainer(lr=0.1, momentum=0.9, callbacks=[At(3, change), snaps])
    trainer.fit(x, y, epochs=1, batch_size=4)
    for step, lr, momentum in ((2, 0.1, 0.9), (3, 0.1, 0.9), (4, 0.05, 0.5), (5, 0.05, 0.5)):
        for name, before in snaps.before[step].items():
            grad = snaps.grads[step][name]
            velocity = snaps.velocity_before[step][name].copy()
            velocity *= momentum  # v = m * v - lr * g;  w += v, in the optimizer's float32 ops
            velocity -= lr * grad
            np.testing.assert_array_equal(snaps.after[step][name], before + velocity)
            np.testing.assert_allclose(
                snaps.after[step][name],
                before + momentum * snaps.velocity_before[step][name] - lr * grad,
                rtol=1e-6,
                atol=1e-7,
            )


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("lr", -0.1, "lr"),
        ("lr", 0.0, "lr"),
        ("lr", float("nan"), "lr"),
        ("lr", "fast", "lr"),
        ("momentum", 1.5, "momentum"),
        ("momentum", -0.1, "momentum"),
        ("weight_decay", -1.0, "weight_decay"),
        ("nope", 1.0, "no hyperparameter 'nope'"),
        ("beta1", 0.9, "no hyperparameter 'beta1'"),
        ("batch_size", 0, "batch_size"),
        ("batch_size", 2.5, "batch_size"),
        ("batch_size", True, "batch_size"),
    ],
)
def test_set_rejects_bad_values_and_changes_nothing(name, value, words):
    recorder = Recorder()
    trainer = _trainer(lr=0.1, momentum=0.9, callbacks=[recorder])
    trainer.batch_size = 16
    before = (trainer.optimizer.config(), trainer.batch_size)
    with pytest.raises(ValueError, match=words):
        trainer.set(name, value)
    assert (trainer.optimizer.config(), trainer.batch_size) == before
    assert trainer.pending() == {} and recorder.events == []


def test_bad_set_mid_run_changes_nothing():
    errors = []

    def bad(trainer, logs):
        with pytest.raises(ValueError) as info:
            trainer.set("lr", -1)
        errors.append(str(info.value))

    recorder = Recorder()
    trainer = _trainer(lr=0.1, callbacks=[At(1, bad), recorder])
    trainer.fit(*_data(12), epochs=1, batch_size=4)
    assert "learning rate" in errors[0] and "-1" in errors[0]
    assert [b["lr"] for b in recorder.batch_logs] == [0.1, 0.1, 0.1]
    assert recorder.of("hparam") == []


def test_set_while_idle_applies_at_once():
    trainer = _trainer(lr=0.1)
    trainer.set("lr", 0.2)
    trainer.set("base_lr", 0.3)
    trainer.set("batch_size", 7)
    assert trainer.optimizer.lr == 0.3 and trainer.batch_size == 7
    assert trainer.pending() == {}


def test_set_while_the_run_is_ending_is_applied_once_it_has_ended(tmp_path):
    class SlowEnd(nl.Callback):
        def __init__(self):
            self.inside, self.release = threading.Event(), threading.Event()

        def on_train_end(self, trainer, logs):
            self.inside.set()
            assert self.release.wait(TIMEOUT)

    slow, recorder = SlowEnd(), Recorder()
    trainer = _trainer(callbacks=[slow, recorder, RunLogger(run_dir=tmp_path / "run")])
    thread, result = fit_in_thread(trainer, *_data(8), epochs=1, batch_size=4)
    assert slow.inside.wait(TIMEOUT)
    # The training thread is still calling on_train_end: applying the value here would call
    # the callbacks from this thread, alongside it.
    trainer.set("lr", 0.5)
    assert recorder.of("hparam") == [] and trainer.optimizer.lr == 0.1
    slow.release.set()
    join_fit(thread, trainer, result)
    # Applied by the training thread after its last on_train_end: not left pending.
    assert trainer.pending() == {} and trainer.optimizer.lr == 0.5
    assert recorder.of("hparam") == [
        {
            "name": "lr",
            "old": 0.1,
            "new": 0.5,
            "applies": "next batch",
            "source": "script",
            "step": 2,
        }
    ]
    assert [e.type for e in read(tmp_path / "run")][-1] == "end"


def test_batch_size_set_mid_epoch_applies_from_the_next_epoch():
    seen = {}
    recorder = Recorder()

    class StepsPerEpoch(nl.Callback):
        def __init__(self):
            self.steps = []

        def on_epoch_begin(self, trainer, epoch):
            self.steps.append(trainer.steps_per_epoch)

    def change(trainer, logs):
        trainer.set("batch_size", 8)
        seen["pending"] = trainer.pending()

    def later(trainer, logs):
        seen["still pending"] = trainer.pending()
        seen["batch_size"] = trainer.batch_size

    per_epoch = StepsPerEpoch()
    trainer = _trainer(callbacks=[At(2, change), At(4, later), per_epoch, recorder])
    trainer.fit(*_data(24), epochs=2, batch_size=4)
    assert seen == {
        "pending": {"batch_size": 8},
        "still pending": {"batch_size": 8},
        "batch_size": 4,
    }
    assert per_epoch.steps == [6, 3]
    assert [(b["epoch"], b["size"]) for b in recorder.batch_logs] == [(0, 4)] * 6 + [(1, 8)] * 3
    assert [b["batch_size"] for b in recorder.batch_logs] == [4] * 6 + [8] * 3
    assert recorder.of("hparam") == [
        {
            "name": "batch_size",
            "old": 4,
            "new": 8,
            "applies": "next epoch",
            "source": "script",
            "step": 6,
        }
    ]
    assert trainer.pending() == {}


def test_set_from_another_thread_while_paused_applies_on_the_next_step(tmp_path):
    gate = Gate(step=2)
    snaps = Snapshots()
    trainer = _trainer(lr=0.1, callbacks=[gate, snaps, RunLogger(run_dir=tmp_path / "run")])
    thread, result = fit_in_thread(trainer, *_data(40), epochs=1, batch_size=4)
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    gate.release.set()
    assert trainer.wait_until_parked(timeout=10)
    trainer.set("lr", 0.25)
    assert trainer.pending() == {"lr": 0.25} and trainer.optimizer.lr == 0.1
    trainer.step()
    assert trainer.wait_until_parked(timeout=10)
    assert trainer.global_step == 3 and snaps.lr[3] == 0.25
    for name, before in snaps.before[3].items():
        np.testing.assert_array_equal(snaps.after[3][name], before - 0.25 * snaps.grads[3][name])
    trainer.resume()
    join_fit(thread, trainer, result)
    hparams = [e for e in read(tmp_path / "run") if e.type == "hparam"]
    assert [(e.step, e["name"], e["old"], e["new"]) for e in hparams] == [(2, "lr", 0.1, 0.25)]


# -- determinism -------------------------------------------------------------------------------


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a declared dependency; the comparison still runs
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _fit_spirals(seed):
    prepared = datasets.prepare(
        datasets.load("spirals", n_train=300, n_test=10, seed=seed), validation_split=0.2, seed=seed
    )
    model = nl.build("dense(32) relu dropout(0.2) dense(32) relu dense(3)", (2,), seed=seed)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1, momentum=0.9))
    history = trainer.fit(
        prepared.x_train,
        prepared.y_train,
        epochs=3,
        batch_size=16,
        validation_data=(prepared.x_val, prepared.y_val),
        seed=seed,
    )
    return history, model


def test_same_seed_same_loss_curve_bit_for_bit():
    with _one_blas_thread():
        first, model_a = _fit_spirals(seed=3)
        second, model_b = _fit_spirals(seed=3)
        other, _ = _fit_spirals(seed=4)
    losses = first.series("loss", per="batch")
    assert len(losses) == 45
    assert losses == second.series("loss", per="batch")
    assert first.series("val_loss") == second.series("val_loss")
    for name, value in model_a.get_weights().items():
        np.testing.assert_array_equal(value, model_b.get_weights()[name])
    assert losses != other.series("loss", per="batch")


# -- input validation --------------------------------------------------------------------------


def _poisoned(kind, sample=3):
    x, y = _data(10)
    x = x.copy()
    x[sample, 1] = kind
    return x, y


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_named_with_the_sample(bad):
    trainer = _trainer()
    weights = trainer.model.get_weights()
    x, y = _poisoned(bad, sample=3)
    with pytest.raises(ValueError, match=r"training data x holds NaN or inf .*sample 3"):
        trainer.fit(x, y)
    with pytest.raises(ValueError, match=r"evaluation data x .*sample 3"):
        trainer.evaluate(x, y)
    with pytest.raises(ValueError, match=r"validation data x .*sample 3"):
        trainer.fit(*_data(10), validation_data=(x, y))
    with pytest.raises(ValueError, match=r"prediction input .*sample 3"):
        trainer.predict(x)
    assert trainer.global_step == 0 and trainer.history.batches == []
    for name, value in trainer.model.get_weights().items():
        np.testing.assert_array_equal(value, weights[name])


def test_non_finite_regression_targets_are_named():
    trainer = nl.Trainer(nl.build("4-8-1:tanh", (4,)), nl.MSE(), nl.SGD(lr=0.1))
    x = np.zeros((6, 4), np.float32)
    y = np.zeros((6, 1), np.float32)
    y[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"training data y .*sample 4"):
        trainer.fit(x, y)
    with pytest.raises(ValueError, match=r"evaluation data y .*sample 4"):
        trainer.evaluate(x, y)


def test_bad_shapes_and_labels():
    trainer = _trainer()
    x, y = _data(10)
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        trainer.fit(x, y[:9])
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        trainer.evaluate(x, y[:9])
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.2 .*got 0\.\.3"):
        trainer.fit(x, labels)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.2 .*got -1\.\.2"):
        trainer.evaluate(x, np.where(labels == 3, -1, labels))
    with pytest.raises(ValueError, match="integer class indices"):
        trainer.fit(x, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"expects samples of shape \(4,\), got \(5,\)"):
        trainer.fit(np.zeros((10, 5), np.float32), y)
    with pytest.raises(ValueError, match=r"expects samples of shape \(4,\), got \(2, 2\)"):
        trainer.evaluate(np.zeros((10, 2, 2), np.float32), y)
    with pytest.raises(ValueError, match="no samples"):
        trainer.fit(x[:0], y[:0])
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(x, y, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(x, y, batch_size=0)
    assert trainer.global_step == 0 and trainer.state == "idle"
