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

from nnlib import checkpointing, runs
from nnlib.callbacks import Callback, StepDecay
from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.experiment import resume, setup
from nnlib.losses import SoftmaxCrossEntropy
from nnlib.optimizers import make_optimizer
from nnlib.spec import build
from nnlib.trainer import Trainer

SPEC = "dense(16) relu dropout(0.25) dense(3)"
EPOCHS, BATCH = 3, 16  # 200 samples: 13 batches an epoch, the last of 8
STEPS = EPOCHS * 13


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


class StopAt(Callback):
    """Ask the run to stop once it has trained `step` batches (as a Ctrl+C or the app does)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer: Trainer, batch: int, logs: dict) -> None:
        if trainer.global_step == self.step:
            trainer.stop()


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
