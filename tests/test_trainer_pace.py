"""A run's pace (issue 19 item 1): the training thread waits at batch boundaries so that an
epoch takes at least 1/pace seconds, spread over its batches; a pause, a stop, a step or a
new pace cuts a wait short; the weights are the very ones of an unpaced run; a headless
`nnlib train` is never paced. The schedule is checked on a clock that moves only when told
(no wall-clock assertions); the interruptions on real threads, with waits far longer than
any test's bound."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TIMEOUT, fit_in_thread, join_fit

import nnlib as nl
from nnlib import control as control_module
from nnlib import events
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nntui.sources import WATCH_PACE, default_pace

#: A pace whose waits (50 s between two batches here) outlast every bound of these tests:
#: a run that gets past one did so because something cut the wait short.
CRAWL = 0.01


def _data(n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, size=n)


class Record(nl.Callback):
    """The events a run emits, and (optionally) time spent inside chosen batches."""

    def __init__(self, clock=None, slow: dict[int, float] | None = None):
        self.events: list[tuple[str, dict]] = []
        self.starts: list[float] = []
        self.clock, self.slow = clock, slow or {}

    def on_batch_begin(self, trainer, batch):
        if self.clock is not None:
            self.starts.append(self.clock.now)

    def on_batch_end(self, trainer, batch, logs):
        if self.clock is not None:
            self.clock.now += self.slow.get(trainer.global_step, 0.0)

    def on_event(self, trainer, event, data):
        self.events.append((event, dict(data)))


def _trainer(*callbacks):
    model = nl.build("4-8-3", (4,), seed=0)
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=callbacks)


class Clock:
    """time.monotonic for the control under test: moves only inside a wait, by its timeout,
    or when a callback says a batch took time."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


class Waits(threading.Condition):
    """The control's condition, its timed waits spent on the Clock rather than waited."""

    def __init__(self, clock):
        super().__init__()
        self.clock, self.timeouts = clock, []

    def wait(self, timeout=None):
        assert timeout is not None, "nothing would wake this wait"
        self.timeouts.append(timeout)
        self.clock.now += timeout
        return False


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(control_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def _paced(clock, pace, slow=None):
    record = Record(clock, slow)
    trainer = _trainer(record)
    trainer.control._condition = Waits(clock)
    trainer.control.set_pace(pace)
    return trainer, record


def test_an_epoch_takes_one_over_the_pace_spread_over_its_batches(clock):
    trainer, record = _paced(clock, 2.0)
    trainer.fit(*_data(), epochs=3, batch_size=2)  # 4 batches an epoch
    # Batches start every 1/(2*4) s: the run's first at once, each epoch's at 0.5 s steps.
    assert record.starts == pytest.approx([i * 0.125 for i in range(12)])
    assert ("pace", {"old": None, "new": 2.0, "source": "script", "step": 0}) in record.events


def test_a_late_batch_is_not_delayed_further_and_a_slow_epoch_not_made_up_for(clock):
    # Pace 1: batches due every 0.25 s. Step 2 takes 0.6 s: steps 3 and 4 (due at 0.5 and
    # 0.75) start at once. Every batch of the second epoch takes 1.5 s: nothing waits, and
    # the third epoch counts from its own start, with no burst to make up for the second.
    trainer, record = _paced(clock, 1.0, slow={2: 0.6, 5: 1.5, 6: 1.5, 7: 1.5, 8: 1.5})
    trainer.fit(*_data(), epochs=3, batch_size=2)
    assert record.starts == pytest.approx(
        [0.0, 0.25, 0.85, 0.85] + [1.0, 2.5, 4.0, 5.5] + [7.0, 7.25, 7.5, 7.75]
    )


class Faster(nl.Callback):
    """Doubles the pace after the second epoch, as a key press would."""

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 1 and trainer.control.pace is not None:
            trainer.control.set_pace(trainer.control.pace * 2)


def test_a_paced_run_trains_the_very_weights_of_an_unpaced_one():
    def train(pace):
        record = Record()
        trainer = _trainer(record, Faster())
        trainer.control.set_pace(pace)
        history = trainer.fit(*_data(24), epochs=4, batch_size=5, validation_split=0.25)
        weights = [p.value.copy() for p in trainer.model.parameters()]
        paces = [data["new"] for event, data in record.events if event == "pace"]
        metrics = {k: history.series(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        return weights, metrics, paces

    plain, plain_history, plain_paces = train(None)
    paced, paced_history, paced_paces = train(400.0)
    assert (plain_paces, paced_paces) == ([], [400.0, 800.0])
    assert all(np.array_equal(a, b) for a, b in zip(plain, paced, strict=True))
    assert paced_history == plain_history


class Waiting:
    """A poller that tells when the training thread is inside a pace wait: the control calls
    pollers once at a batch boundary, then again only from inside a wait or a park (the calls
    made while paused are not counted)."""

    def __init__(self, trainer):
        self.trainer, self.calls, self.inside = trainer, {}, threading.Event()

    def __call__(self):
        if self.trainer.paused:
            return
        step = self.trainer.global_step
        self.calls[step] = self.calls.get(step, 0) + 1
        if self.calls[step] == 2:
            self.inside.set()

    def wait(self):
        assert self.inside.wait(TIMEOUT), "the run never waited for its pace"
        self.inside.clear()


def _crawling(*callbacks):
    """A run of 2 epochs of 2 batches at CRAWL, started in a thread, waiting before step 2."""
    record = Record()
    trainer = _trainer(record, *callbacks)
    trainer.control.set_pace(CRAWL)
    waiting = Waiting(trainer)
    trainer.control.add_poller(waiting)
    thread, result = fit_in_thread(trainer, *_data(4), epochs=2, batch_size=2)
    waiting.wait()
    assert trainer.global_step == 1
    return trainer, record, waiting, thread, result


def test_a_pause_cuts_a_pace_wait_short_a_step_runs_at_once_and_a_stop_ends_the_run():
    trainer, record, waiting, thread, result = _crawling()
    trainer.pause()
    assert trainer.wait_until_parked(TIMEOUT) and trainer.global_step == 1
    trainer.step()  # a single step does not wait for the pace
    assert trainer.wait_until_parked(TIMEOUT) and trainer.global_step == 2
    trainer.resume()  # the batch after a pause counts the pace afresh: it starts at once...
    waiting.wait()  # ...and the one after it waits again
    assert trainer.global_step == 3
    trainer.stop()
    assert join_fit(thread, trainer, result).reason == "stopped"
    assert trainer.global_step == 3


def test_a_stop_cuts_a_pace_wait_short():
    trainer, _, _, thread, result = _crawling()
    trainer.stop()
    assert join_fit(thread, trainer, result).reason == "stopped" and trainer.global_step == 1


def test_a_new_pace_cuts_the_wait_for_the_old_one_short_and_is_recorded():
    trainer, record, _, thread, result = _crawling()
    trainer.control.set_pace("full", source="app")
    assert join_fit(thread, trainer, result).reason == "finished" and trainer.global_step == 4
    paces = [(data["step"], data["old"], data["new"]) for e, data in record.events if e == "pace"]
    assert paces == [(0, None, CRAWL), (1, CRAWL, None)]
    sources = [data["source"] for e, data in record.events if e == "pace"]
    assert sources == ["script", "app"]


@pytest.mark.parametrize(
    "value, words",
    [
        (0, "pace must be in [0.01, 10000.0], got 0"),
        (-2, "got -2"),
        (1e6, "got 1000000.0"),
        (float("nan"), "pace must be finite"),
        (True, "pace must be a number, got True"),
        ("fast", "pace must be a number, got 'fast'"),
        ([1], "pace must be a number"),
    ],
)
def test_a_bad_pace_is_refused_at_the_door_naming_it_and_changes_nothing(value, words):
    trainer = _trainer()
    trainer.control.set_pace(5)
    for door in (trainer.control.set_pace, lambda v: trainer.control.command("pace", v)):
        with pytest.raises(ValueError) as error:
            door(value)
        message = str(error.value)
        assert words in message and "'full'" in message and "\n" not in message
    assert trainer.control.pace == 5


def test_the_pace_command_says_what_it_will_do():
    control = _trainer().control
    assert control.command("pace", 5) == "at most 5 epochs a second, from the next batch boundary"
    assert control.command("pace", "full") == "full speed, from the next batch boundary"
    assert control.pace is None
    assert control.command("pace", 2.5, source="remote").startswith("at most 2.5 epochs")
    with pytest.raises(ValueError, match="'pace' takes epochs per second or 'full'"):
        control.command("pace")
    described = events.make("pace", 3, {"old": 2.5, "new": None, "source": "remote"}).describe()
    assert described == "pace: 2.5 ep/s -> full speed [remote]"


def test_headless_runs_are_never_paced_and_the_app_paces_only_what_it_can_draw(tmp_path):
    config = ExperimentConfig(dataset="spirals", epochs=1, run_dir=str(tmp_path / "run"))
    experiment = setup(config)  # what `nnlib train` trains
    assert experiment.trainer.control.pace is None
    experiment.fit()
    assert not [e for e in nl.runs.read(tmp_path / "run") if e.type == "pace"]
    assert default_pace((2,)) == default_pace((1,)) == WATCH_PACE
    assert default_pace((3,)) is None and default_pace((28, 28, 1)) is None


def test_a_run_started_paused_reports_its_pace_before_it_parks():
    record = Record()
    trainer = _trainer(record)
    trainer.control.set_pace(CRAWL, source="app")
    trainer.control.pause(source="app")
    thread, result = fit_in_thread(trainer, *_data(4), epochs=2, batch_size=2)
    assert trainer.wait_until_parked(TIMEOUT) and trainer.global_step == 0
    assert [(event, data["step"]) for event, data in record.events] == [("pace", 0), ("pause", 0)]
    trainer.stop()
    assert join_fit(thread, trainer, result).reason == "stopped"
