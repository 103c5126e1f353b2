"""Resume: a run interrupted at any batch and resumed from its last checkpoint gives the same
losses and weights, bit for bit (one BLAS thread), as the run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import StopAt

from nnlib import checkpointing, runs
from nnlib.callbacks import Callback, StepDecay
from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.experiment import resume, setup
from nnlib.losses import SoftmaxCrossEntropy
from nnlib.optimizers import make_optimizer
from nnlib.runindex import read_curves
from nnlib.spec import build
from nnlib.trainer import Trainer
from nntui.replay import open_run
from nntui.runstate import RunState

SPEC = "dense(16) relu dropout(0.25) dense(3)"
EPOCHS, BATCH = 3, 16  # 200 samples: 13 batches an epoch, the last of 8
STEPS = EPOCHS * 13


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def trainer(folder: Path, optimizer: str, *extra: Callback) -> Trainer:
    model = build(SPEC, (8,), seed=0)
    hyper = {"momentum": 0.9, "nesterov": True} if optimizer == "sgd" else {}
    return Trainer(
        model,
        SoftmaxCrossEntropy(),
        make_optimizer(optimizer, lr=0.05, weight_decay=1e-3, **hyper),
        callbacks=[
            StepDecay(step_size=7, gamma=0.7, per="batch"),
            checkpointing.Checkpointer(folder, every=4, keep=50, monitor="loss"),
            *extra,
        ],
    )


def fit(t: Trainer) -> list[float]:
    x, y = data()
    t.fit(x, y, epochs=EPOCHS, batch_size=BATCH, seed=3, threads=1)
    return [row["loss"] for row in t.history.batches]


def resumed(tmp_path: Path, optimizer: str, stop: int) -> tuple[list[float], Trainer]:
    """Losses of a run stopped after `stop` batches then resumed, and the resumed trainer."""
    cut = trainer(tmp_path / "cut" / checkpointing.FOLDER, optimizer, StopAt(stop))
    before = fit(cut)
    assert len(before) == stop
    again = trainer(tmp_path / "again" / checkpointing.FOLDER, optimizer)
    checkpoint = checkpointing.load(checkpointing.find(tmp_path / "cut"))
    assert checkpoint.step == stop  # written when the run stopped
    checkpointing.restore(again, checkpoint)
    return before + fit(again), again


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for name, value in a.model.get_weights().items():
        np.testing.assert_array_equal(value, b.model.get_weights()[name], err_msg=name)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert (sa["iterations"], sa["hyperparameters"]) == (sb["iterations"], sb["hyperparameters"])
    for name, slots in sa["slots"].items():
        for key, value in slots.items():
            np.testing.assert_array_equal(value, sb["slots"][name][key], err_msg=f"{name} {key}")


# Mid-epoch (1, 5, 30), at an epoch's last batch (13, 26), just after one (14).
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("stop", [1, 5, 13, 14, 26, 30])
def test_stopped_and_resumed_run_is_bit_identical(
    tmp_path: Path, optimizer: str, stop: int
) -> None:
    whole = trainer(tmp_path / "whole", optimizer)
    expected = fit(whole)
    losses, again = resumed(tmp_path, optimizer, stop)
    assert losses == expected
    assert again.global_step == whole.global_step == STEPS
    assert_same_state(whole, again)
    # the epoch logs too: the running sums of a cut epoch come back with the checkpoint
    assert [e["loss"] for e in again.history.epochs] == [
        e["loss"] for e in whole.history.epochs[-len(again.history.epochs) :]
    ]


# -- steered runs: every value set while training survives a resume (issue 17, item 5) ----------
class SteerAt(Callback):
    """Set `name` to `value` once `step` batches have run, as `nnlib control` or a key does
    (the set is applied before the next batch; a batch size from the next epoch): after that
    batch, or with `at_epoch_begin` as the next epoch begins (after its start has applied the
    requests before it)."""

    def __init__(self, step: int, name: str, value: float, at_epoch_begin: bool = False) -> None:
        self.step, self.name, self.value = step, name, value
        self.at_epoch_begin = at_epoch_begin

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict) -> None:
        if trainer.global_step == self.step and not self.at_epoch_begin:
            trainer.control.set(self.name, self.value, source="remote")

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        if trainer.global_step == self.step and self.at_epoch_begin:
            trainer.control.set(self.name, self.value, source="remote")


class Changes(Callback):
    """The hparam events of a run, as (name, new value)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def on_event(self, trainer: Trainer, event: str, data: dict) -> None:
        if event == "hparam":
            self.seen.append((data["name"], data["new"]))


STEERED = {  # every hyperparameter Trainer.set takes, per optimizer, and a value to set it to
    "sgd": {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.01, "decay": 0.01, "batch_size": 24},
    "adam": {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-4, "weight_decay": 0.01,
             "decay": 0.01, "batch_size": 24},
    "rmsprop": {"lr": 0.02, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.01, "decay": 0.01,
                "batch_size": 24},
}  # fmt: skip


# Steered mid-epoch and stopped there (the change applies after the stop: a pending request,
# a batch size pending until the next epoch) or two epochs later (long applied); steered and
# stopped at an epoch's last batch (the next epoch's start applies it before the stop is heard);
# or steered as the next epoch begins and stopped at its first boundary (pending again: a batch
# size waits for the epoch after, also in the resumed run).
@pytest.mark.parametrize(
    "steer, stop, at_epoch_begin", [(5, 5, 0), (5, 20, 0), (13, 13, 0), (13, 13, 1)]
)
@pytest.mark.parametrize(
    "optimizer, name", [(o, n) for o, values in STEERED.items() for n in values]
)
def test_a_run_steered_then_resumed_is_bit_identical_to_one_steered_alike(
    tmp_path: Path, optimizer: str, name: str, steer: int, stop: int, at_epoch_begin: int
) -> None:
    value = STEERED[optimizer][name]
    whole = trainer(tmp_path / "whole", optimizer, SteerAt(steer, name, value, at_epoch_begin))
    expected = fit(whole)
    folder = tmp_path / "cut" / checkpointing.FOLDER
    cut = trainer(folder, optimizer, SteerAt(steer, name, value, at_epoch_begin), StopAt(stop))
    before = fit(cut)
    changes = Changes()
    again = trainer(tmp_path / "again", optimizer, changes)
    checkpointing.restore(again, checkpointing.load(checkpointing.find(tmp_path / "cut")))
    assert before + fit(again) == expected  # fit is given the batch size of 16 it started with
    assert_same_state(whole, again)
    assert again.batch_size == whole.batch_size
    sizes = [row["batch_size"] for row in again.history.batches]
    assert sizes == [row["batch_size"] for row in whole.history.batches[stop:]]
    pending = stop == 5 or at_epoch_begin  # at the stop: applied in the resumed run, once
    if name == "batch_size":  # from the epoch after the change on
        assert set(sizes) == ({16, 24} if pending else {24})
    assert changes.seen == ([(name, value)] if pending else [])


def test_a_batch_size_steered_through_nnlib_control_survives_train_resume(
    tmp_path: Path,
) -> None:
    """The issue's case: set batch_size 32 on a run of 64, stop, nnlib train --resume: the
    resumed batches carry 32 (they carried 64 again, with no hparam event)."""
    run = tmp_path / "run"
    steer, stop = SteerAt(2, "batch_size", 32), StopAt(14)  # 10 batches of 64 an epoch
    setup(run_config(run_dir=str(run), batch_size=64, epochs=3), callbacks=[steer, stop]).fit(
        threads=1
    )
    assert main(["train", "--resume", str(run), "--quiet", "--threads", "1"]) == 0
    events = runs.read(run)
    resumed_at = next(i for i, e in enumerate(events) if e.type == "run_resume")
    after = [e["batch_size"] for e in events[resumed_at:] if e.type == "batch"]
    assert after and set(after) == {32}
    assert [e["new"] for e in events if e.type == "hparam"] == [32]


# -- whole runs: a SIGKILL between checkpoints, the CLI ------------------------------------------
ARCH = "flatten dense(16) relu dropout(0.2) dense(10)"
KILLED_AT, EVERY = 10, 4  # killed two steps after the checkpoint at step 8

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from nnlib.callbacks import Callback
    from nnlib.config import ExperimentConfig
    from nnlib.experiment import setup

    class Kill(Callback):
        def on_batch_end(self, trainer, batch, logs):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = ExperimentConfig(**{**eval(sys.argv[3]), "run_dir": sys.argv[1]})
    setup(config, callbacks=[Kill()]).fit(threads=1)
    """
)


def run_config(**changes: object) -> ExperimentConfig:
    values = dict(
        dataset="glyphs",
        arch=ARCH,
        subset=300,
        epochs=2,
        batch_size=32,
        checkpoint_every=EVERY,
        histogram_every=1000,
    )
    return ExperimentConfig(**{**values, **changes})  # type: ignore[arg-type]


def batch_losses(events: list[runs.Event]) -> list[float]:
    """The losses of a run as every reader takes them (runs.continued: the batches logged
    after a resume's from_step, redone after a crash, are dropped)."""
    return [e["loss"] for e in runs.continued(events) if e.type == "batch"]


def final_weights(run_dir: Path) -> dict[str, np.ndarray]:
    return checkpointing.load(checkpointing.find(run_dir)).model.get_weights()


def test_sigkill_between_checkpoints_then_resume_redoes_the_lost_steps(tmp_path: Path) -> None:
    whole = setup(run_config(run_dir=str(tmp_path / "whole")))
    whole.fit(threads=1)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    values = {k: v for k, v in run_config().to_dict().items() if v is not None}
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(killed), str(KILLED_AT), repr(values)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    logged = runs.read(killed)
    # killed in step 10's on_batch_end, before the logger (last) wrote it
    assert max(e.step for e in logged if e.type == "batch") == KILLED_AT - 1
    assert not any(e.type == "end" for e in logged)
    assert main(["train", "--resume", str(killed), "--quiet", "--threads", "1"]) == 0
    events = runs.read(killed)
    restart = [e for e in events if e.type == "run_resume"]
    assert len(restart) == 1 and restart[0]["from_step"] == 8
    assert restart[0]["checkpoint"].endswith("step-8.npz")
    assert [e.type for e in events].count("run_start") == 1  # appended, not restarted
    # step 9 is in the log twice: before the kill and redone after the resume
    assert [e.step for e in events if e.type == "batch"].count(9) == 2
    assert batch_losses(events) == batch_losses(runs.read(whole.run_dir))
    # ...and what the app shows of it (nntui --open) holds each step once, as uninterrupted
    assert _shown_steps(killed) == _shown_steps(whole.run_dir)
    exported = [row["step"] for row in read_curves(killed).batches]  # runs export, nnlib plot
    assert exported == [row["step"] for row in read_curves(whole.run_dir).batches]
    expected = final_weights(whole.run_dir)
    for name, value in final_weights(killed).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def _shown_steps(run_dir: Path) -> list[float]:
    """The batch steps the dashboard's state holds for a recorded run."""
    state = RunState()
    for snapshot in open_run(run_dir).updates:
        state.apply(snapshot)
    return state.batches.columns[0]


def test_resume_refuses_a_run_being_written(tmp_path: Path) -> None:
    experiment = setup(run_config(run_dir=str(tmp_path / "run"), epochs=1))
    experiment.fit(threads=1)
    lock = runs.WriterLock(experiment.run_dir)
    lock.acquire()
    try:
        with pytest.raises(runs.RunDirError, match="another process is writing this run"):
            resume(experiment.run_dir)
    finally:
        lock.release()


def test_resume_of_a_finished_run_says_to_fork_it(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    setup(run_config(run_dir=str(run), epochs=1)).fit(threads=1)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "has trained 1 of its 1 epochs" in error and "fork it" in error


def test_resume_takes_no_experiment_flags_and_needs_a_run(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", str(tmp_path), "--lr", "0.1"]) == 2
    assert "takes no --lr; to change a run, --fork it" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_stopped_cli_run_resumes_with_its_stop_checkpoint(tmp_path: Path) -> None:
    """Stopped at step 3 (no periodic checkpoint yet): the stop writes one, and resuming
    continues there; the log's run_resume says so."""
    run = tmp_path / "run"
    experiment = setup(run_config(run_dir=str(run)), callbacks=[StopAt(3)])
    experiment.fit(threads=1)
    assert sorted(checkpointing.step_checkpoints(run / checkpointing.FOLDER)) == [3]
    assert main(["train", "--resume", str(run), "--quiet", "--threads", "1"]) == 0
    events = runs.read(run)
    assert [e["from_step"] for e in events if e.type == "run_resume"] == [3]
    assert [e["reason"] for e in events if e.type == "end"] == ["stopped", "finished"]
    config = json.loads((run / runs.CONFIG_FILE).read_text())
    assert config["run_dir"] == str(run)


def test_a_diverged_run_still_writes_its_checkpoint(tmp_path: Path) -> None:
    """The epoch's running loss is NaN after a divergence: kept as null, NaN again on load."""
    run = tmp_path / "run"
    config = ExperimentConfig(dataset="spirals", lr=1e6, epochs=3, run_dir=str(run))
    setup(config).fit(threads=1)
    assert [e["reason"] for e in runs.read(run) if e.type == "end"] == ["diverged"]
    checkpoint = checkpointing.load(checkpointing.find(run))
    assert checkpoint.state["loss_sum"] is None
