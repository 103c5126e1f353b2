"""Replicas in processes (issue 21): `ThreadPlan(replicas=N, processes=True)` trains the parts
beyond the model's own in child processes (nnlib.replica_process). They sum the same
gradients in the same order as thread replicas, so runs match thread replicas bit for bit;
what can go wrong in a child (an error, a kill, a model it cannot receive) is raised by name
and leaves the model with its own arrays and no child behind; a terminal's signals end the
run in the parent, which ends the child."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT, StopAt, child_process, signal_and_wait, train_until_a_batch

import nnlib as nl
from nnlib import checkpointing, runs
from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nnlib.layers import Layer
from nnlib.replica_process import ReplicaProcessError
from nnlib.replicas import Replicas
from nnlib.threads import ThreadPlan

THREADS, PROCESSES = ThreadPlan(replicas=2), ThreadPlan(replicas=2, processes=True)
MLP = "dense(16) relu dense(3)"
CONV = "conv(4,3) relu maxpool(2) conv(8,3,pad=same) sigmoid avgpool(2) dense(3)"


def _data(shape: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return x, (x.reshape(n, -1)[:, :3].argmax(axis=1)).astype(np.int64)


def _children(parent: int) -> list[int]:
    """The pids of `parent`'s replica processes (from /proc: Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"nnlib.replica_process" in command and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    """Whether `pid` has ended (within TIMEOUT; a zombie counts as ended)."""
    for _ in range(int(TIMEOUT / 0.05)):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _own_arrays(model: nl.Sequential) -> bool:
    return all(p.value.flags.owndata and p.value.flags.writeable for p in model.parameters())


@pytest.mark.parametrize(
    ("spec", "shape", "optimizer"),
    [(MLP, (6,), lambda: nl.SGD(lr=0.1, momentum=0.9)), (CONV, (10, 10, 2), lambda: nl.Adam())],
)
def test_processes_train_bit_for_bit_as_thread_replicas(spec, shape, optimizer):
    """97 samples in batches of 32: three split steps and a last batch of 1 (the model's
    alone); 2 epochs. The weights, batch losses and accuracies are equal, not close."""
    results = []
    for plan in (THREADS, PROCESSES):
        model = nl.build(spec, shape, seed=3)
        trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), optimizer())
        trainer.fit(*_data(shape, 97), epochs=2, batch_size=32, seed=1, threads=plan)
        losses = trainer.history.series("loss", per="batch")
        results.append((model.get_weights(), losses, trainer.history.series("accuracy")))
        assert _own_arrays(model) and not _children(os.getpid())
    (weights, losses, accuracy), (weights2, losses2, accuracy2) = results
    for name, value in weights.items():
        np.testing.assert_array_equal(weights2[name], value, err_msg=name)
    assert losses2 == losses and accuracy2 == accuracy


def test_parts_that_outgrow_their_slot_are_passed_in_a_grown_map_and_shrink_again():
    """Batches of 8, 64, 40 and 8 again (a batch size steered up and down): each step's loss
    and gradients equal thread replicas'; the inputs' map grows for 64, keeps its size for
    40 (a part less than 4x smaller) and gives the memory back for 8."""
    x, y = _data((10, 10, 2), 64)
    sizes = (8, 64, 40, 8)
    steps, maps = [], []
    for processes in (False, True):
        model = nl.build(CONV, (10, 10, 2), seed=0)
        with Replicas(model, nl.SoftmaxCrossEntropy(), 2, processes=processes) as replicas:
            for size in sizes:
                loss, outputs = replicas.step(x[:size], y[:size])
                steps.append((loss, outputs, [p.grad.copy() for p in model.parameters()]))
                if processes:
                    maps.append(len(replicas._children._inputs_map))
    assert maps[1] > maps[0] and maps[2] == maps[1] and maps[3] == maps[0]
    for (loss, outputs, grads), (loss2, outputs2, grads2) in zip(
        steps[: len(sizes)], steps[len(sizes) :], strict=True
    ):
        assert loss2 == loss
        np.testing.assert_array_equal(outputs2, outputs)
        for grad, grad2 in zip(grads, grads2, strict=True):
            np.testing.assert_array_equal(grad2, grad)


def test_an_error_in_a_child_is_raised_by_name_and_the_next_step_still_works():
    """A label out of range in the child's half only: the child's error, named."""
    x, y = _data((6,), 8)
    model = nl.build(MLP, (6,), seed=0)
    with Replicas(model, nl.SoftmaxCrossEntropy(), 2, processes=True) as replicas:
        bad = y.copy()
        bad[-1] = 99
        named = r"replica process 1: ValueError: .*label 99 is out of range"
        with pytest.raises(ReplicaProcessError, match=named):
            replicas.step(x, bad)
        loss, _ = replicas.step(x, y)
        assert np.isfinite(loss)
    assert _own_arrays(model) and not _children(os.getpid())


class _Killer(nl.Callback):
    """Kills the replica process before the batch of step `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_begin(self, trainer, batch):
        if trainer.global_step == self.at:
            for pid in _children(os.getpid()):
                os.kill(pid, signal.SIGKILL)
                assert _gone(pid)


def test_a_killed_child_ends_the_run_with_its_error_and_leaves_the_model_usable(tmp_path):
    model = nl.build(MLP, (6,), seed=0)
    logger = nl.RunLogger(run_dir=tmp_path / "run")
    callbacks = [_Killer(3), logger]
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(0.1), callbacks=callbacks)
    with pytest.raises(ReplicaProcessError, match=r"replica process 1 ended \(exit code -9\)"):
        trainer.fit(*_data((6,), 64), epochs=2, batch_size=16, threads=PROCESSES)
    end = runs.read(tmp_path / "run")[-1]
    assert end.type == "end" and end.reason == "error" and "replica process 1 ended" in end.error
    assert _own_arrays(model) and not _children(os.getpid())
    assert np.isfinite(model.predict(_data((6,), 4)[0])).all()


class _Doubled(Layer):
    not_splittable = ""

    def forward(self, x):
        return x * 2

    def backward(self, grad, need_input_grad=True):
        return grad * 2


def _refused_before_training(layer: Layer, message: str) -> None:
    """A fit in processes of a model with `layer` raises `message` before a step, and leaves
    the model its own arrays and no child."""
    model = nl.Sequential([nl.Dense(4), layer, nl.Dense(3)], input_shape=(6,))
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(0.1))
    with pytest.raises(ReplicaProcessError, match=message):
        trainer.fit(*_data((6,), 16), epochs=1, batch_size=8, threads=PROCESSES)
    assert trainer.global_step == 0 and _own_arrays(model) and not _children(os.getpid())


def test_a_model_the_child_cannot_receive_is_refused_before_training():
    class Local(_Doubled):  # made inside a function: pickle cannot name it
        pass

    _refused_before_training(Local(), "cannot be sent to a child process")


def test_a_layer_from_the_script_being_run_is_refused_before_training(monkeypatch):
    """The child's __main__ is another program: a class the user's script defines cannot be
    found there (it crashed the child before, and the run said only that it ended)."""
    monkeypatch.setattr(_Doubled, "__module__", "__main__")
    _refused_before_training(_Doubled(), "_Doubled is defined in the script being run")


def test_a_model_the_child_cannot_import_is_named_by_the_child(monkeypatch):
    """A class from a module only the parent has (made at run time): the child says what it
    could not read instead of dying with a traceback."""
    module = types.ModuleType("nnlib_test_parent_only")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(_Doubled, "__module__", module.__name__)
    module._Doubled = _Doubled  # type: ignore[attr-defined]
    named = r"replica process 1: cannot unpickle .* ModuleNotFoundError: .*parent_only"
    _refused_before_training(_Doubled(), named)


_SLOW_LAYER = """
import os, pathlib, time
from nnlib.layers import Layer

class SlowInChild(Layer):
    not_splittable = ""

    def __init__(self, marker, name=None):
        super().__init__(name)
        self.parent, self.marker = os.getpid(), marker

    def forward(self, x):
        if os.getpid() != self.parent:  # the replica process: say so, then a long step
            pathlib.Path(self.marker).touch()
            time.sleep(60)
        return x

    def backward(self, grad, need_input_grad=True):
        return grad
"""

_SLOW_FIT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import nnlib as nl
from nnlib.threads import ThreadPlan
from slow_layer import SlowInChild

x = np.ones((32, 6), np.float32)
layers = [nl.Dense(4), SlowInChild(sys.argv[1] + "/in_step"), nl.Dense(3)]
model = nl.Sequential(layers, input_shape=(6,))
trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(0.1))
plan = ThreadPlan(replicas=2, processes=True)
try:
    trainer.fit(x, np.zeros(32, np.int64), batch_size=8, threads=plan)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_ctrl_c_while_a_child_is_mid_step_ends_the_fit_at_once(tmp_path):
    """The parent waits for the child's step (60 s here) when Ctrl+C comes: the child is
    killed at once, not waited for, and prints nothing (it would write into a closed pipe)."""
    (tmp_path / "slow_layer.py").write_text(_SLOW_LAYER)
    process = child_process([sys.executable, "-c", _SLOW_FIT, str(tmp_path)])
    try:
        for _ in range(int(TIMEOUT / 0.05)):  # until the replica process is in its step
            if (tmp_path / "in_step").exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        children = _children(process.pid)
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert time.monotonic() - start < 5  # not the child's 60 s, nor close()'s 10 s wait
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (tmp_path / "in_step").exists(), stderr
    assert stdout == "interrupted\n" and len(children) == 1 and _gone(children[0])
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_thread_plans_refuse_processes_without_replicas():
    with pytest.raises(ValueError, match="give replicas >= 2"):
        ThreadPlan(processes=True)
    with pytest.raises(ValueError, match="processes must be True or False"):
        ThreadPlan(replicas=2, processes=1)  # type: ignore[arg-type]


def test_nnlib_train_with_processes_and_its_usage_error(tmp_path, capsys):
    flags = ["--dataset", "spirals", "--epochs", "1", "--quiet", "--run-dir"]
    assert main(["train", *flags, str(tmp_path / "run"), "--replicas", "2", "--processes"]) == 0
    assert [e["reason"] for e in runs.read(tmp_path / "run") if e.type == "end"] == ["finished"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["trainer"]["replicas"] == 2
    capsys.readouterr()
    assert main(["train", *flags, str(tmp_path / "refused"), "--processes"]) == 2
    assert "--processes runs the parts of --replicas N in processes" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_run_and_its_child(tmp_path, signum):
    """The child runs in its own session: the signal reaches the parent alone, which ends
    the run at a batch boundary (log closed, model saved) and then the child."""
    env = {**os.environ, "NNLIB_DATA_DIR": str(tmp_path / "data")}
    flags = ["--batch-size", "8", "--replicas", "2", "--processes"]
    process = train_until_a_batch(tmp_path, env, *flags)
    children = _children(process.pid)
    stderr = signal_and_wait(process, signum)
    assert len(children) == 1
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    end = runs.read(tmp_path / "run")[-1]
    assert end.type == "end" and end.reason == "interrupted"
    assert (tmp_path / "run" / "model.npz").is_file()
    assert _gone(children[0])


def test_a_run_in_processes_resumes_in_processes_bit_for_bit(tmp_path, capsys):
    """Its checkpoints say so; `nnlib train --resume` goes on the same way (and, summing as
    threads do, exactly as the run would have)."""
    values = dict(dataset="spirals", arch="2-16-16-3", epochs=2, batch_size=32, seed=0)
    for name, callbacks in (("whole", []), ("cut", [StopAt(7)])):
        config = ExperimentConfig(**values, run_dir=str(tmp_path / name))  # type: ignore[arg-type]
        setup(config, callbacks=callbacks).fit(threads=PROCESSES)
    last = checkpointing.load(checkpointing.find(tmp_path / "cut", "last"))
    assert last.state["replicas"] == 2 and last.state["replica_processes"] is True
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert "on 2 replicas in processes, as it trained" in capsys.readouterr().err

    def losses(run: Path) -> list[float]:
        return [e["loss"] for e in runs.continued(runs.read(run)) if e.type == "batch"]

    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")


def test_a_checkpoint_says_whether_its_replicas_ran_in_processes():
    trainer = nl.Trainer(nl.build(MLP, (6,), seed=0), nl.SoftmaxCrossEntropy(), nl.SGD(0.1))
    trainer.fit(*_data((6,), 16), epochs=1, batch_size=8, threads=PROCESSES)
    state = json.loads(str(checkpointing.capture(trainer)["training/state"].item()))
    assert state["replica_processes"] is True
    state["replica_processes"] = "yes"
    with pytest.raises(checkpointing.CheckpointError, match="replica_processes must be true"):
        checkpointing._check_state(state, "file.npz")


def test_a_system_without_posix_descriptors_is_told_to_use_threads(monkeypatch):
    import nnlib.replica_process as replica_process

    monkeypatch.setattr(replica_process.os, "name", "nt")
    model = nl.build(MLP, (6,), seed=0)
    with pytest.raises(ReplicaProcessError, match="need a POSIX system"):
        Replicas(model, nl.SoftmaxCrossEntropy(), 2, processes=True).__enter__()
    assert _own_arrays(model)
