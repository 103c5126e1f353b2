"""Replicas (issue 21): `ThreadPlan(replicas=2)` trains each batch in two parts at once, part 0
on the model and part 1 on a replica sharing its parameter arrays, and steps once with the
whole batch's gradient: the weights and logs of a run equal those of one thread to float32
rounding, layers that need the whole batch are refused by name, and the run's other paths
(a batch of 1, an error in the replica's thread, pause and step, divergence, an exact resume,
the Tracer's watched step, the CLI) behave as with one thread.

Tolerance: float32 (eps 1.2e-7). A replica run sums the parts' weight gradients in another
order than one GEMM over the batch and scales each part's loss gradient in two steps (by
1/n_k, then n_k/n), so each step's gradient differs from one thread's by a few eps relative;
over the few steps here the weights (of order 0.1-1) were measured to differ by at most
~2e-7, and atol 1e-5 leaves room for BLAS kernels that round differently elsewhere."""

from __future__ import annotations

import json
import math
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT, Gate, StopAt, fit_in_thread, join_fit
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import checkpointing, runs
from nnlib.callbacks.tracer import Tracer
from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.experiment import fork_config, setup
from nnlib.layers import Layer
from nnlib.replicas import NotSplittable, Replicas, split
from nnlib.threads import ThreadPlan

ONE, TWO = ThreadPlan(), ThreadPlan(replicas=2)
WEIGHTS_ATOL = 1e-5  # see the module's docstring
MLP = "dense(16) relu dense(3)"
CONV = "conv(4,3) relu maxpool(2) conv(8,3,pad=same) sigmoid avgpool(2) dense(3)"


def _replica_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nnlib-replica")]


def _data(shape: tuple[int, ...], n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return x, (x.reshape(n, -1)[:, :3].argmax(axis=1)).astype(np.int64)


def _train(spec, shape, optimizer, plan, callbacks=(), n=100, batch_size=32, epochs=2):
    model = nl.build(spec, shape, seed=3)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), optimizer, callbacks=list(callbacks))
    trainer.fit(*_data(shape, n), epochs=epochs, batch_size=batch_size, seed=1, threads=plan)
    return trainer


class Events(nl.Callback):
    """The data of every event of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind, self.seen = kind, []

    def on_event(self, trainer, event, data):
        if event == self.kind:
            self.seen.append(data)


def _assert_close_weights(a: nl.Sequential, b: nl.Sequential) -> None:
    for name, value in a.get_weights().items():
        np.testing.assert_allclose(b.get_weights()[name], value, atol=WEIGHTS_ATOL, err_msg=name)


@pytest.mark.parametrize(
    "spec, shape, optimizer",
    [
        (MLP, (6,), lambda: nl.SGD(lr=0.1)),
        (CONV, (10, 10, 2), lambda: nl.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3)),
        (MLP, (6,), lambda: nl.Adam(lr=1e-3, weight_decay=1e-2, l1=1e-4)),
        (CONV, (10, 10, 2), lambda: nl.RMSProp(lr=1e-3, weight_decay=1e-3)),
    ],
)
def test_two_replicas_train_as_one_thread(spec, shape, optimizer):
    """7 steps an epoch (the last a batch of 4), 2 epochs; weight decay and L1 apply once."""
    one = _train(spec, shape, optimizer(), ONE)
    two = _train(spec, shape, optimizer(), TWO)
    _assert_close_weights(one.model, two.model)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(
            two.history.series(key, per="batch"), one.history.series(key, per="batch"), atol=1e-5
        )
    assert one.optimizer.iterations == two.optimizer.iterations == 8
    assert not _replica_threads()


def test_a_replica_shares_the_parameter_values_and_has_its_own_gradients_and_buffers():
    model = nl.build(CONV, (10, 10, 2), seed=0)
    twin = model.replica()
    for param, copy in zip(model.parameters(), twin.parameters(), strict=True):
        assert copy.value is param.value and copy.grad is not param.grad
    conv, conv_twin = model.layers[0], twin.layers[0]
    model.forward(_data((10, 10, 2), 4)[0])
    assert conv._slots and conv_twin._slots == [] and conv_twin._slots is not conv._slots


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 300), st.integers(1, 4))
def test_split_covers_the_batch_in_contiguous_parts(samples, count):
    parts = split(samples, count)
    assert parts[0].start == 0 and parts[-1].stop == samples
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
    sizes = [p.stop - p.start for p in parts]
    if samples < count:
        assert sizes == [samples]  # one thread
    else:
        assert len(parts) == count and max(sizes) - min(sizes) <= 1


def test_a_last_batch_of_one_trains_on_the_model_alone():
    """65 samples in batches of 32: the third batch, of 1, is not split (a part of 0 samples
    would give a NaN mean loss)."""
    sizes: list[int] = []

    class Sizes(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            sizes.append(len(trainer.model.layers[1].active_mask))  # the model's part

    one = _train(MLP, (6,), nl.SGD(lr=0.1), ONE, n=65, epochs=1)
    two = _train(MLP, (6,), nl.SGD(lr=0.1), TWO, [Sizes()], n=65, epochs=1)
    assert sizes == [16, 16, 1]
    assert all(math.isfinite(v) for v in two.history.series("loss", per="batch"))
    _assert_close_weights(one.model, two.model)


@pytest.mark.parametrize(
    "spec, layer, why",
    [
        ("dense(8) batchnorm relu dense(3)", r"batchnorm_1 \(BatchNorm\)", "whole batch's mean"),
        ("dense(8) relu dropout(0.5) dense(3)", r"dropout_1 \(Dropout\)", "random stream"),
    ],
)
def test_layers_that_need_the_whole_batch_are_refused_by_name_before_training(spec, layer, why):
    began: list[int] = []

    class Began(nl.Callback):
        def on_train_begin(self, trainer):
            began.append(1)

    with pytest.raises(NotSplittable, match=f"2 replicas: {layer} .*{why}"):
        _train(spec, (6,), nl.SGD(lr=0.1), TWO, [Began()])
    assert not began and not _replica_threads()
    _train(spec, (6,), nl.SGD(lr=0.1), ONE)  # one replica trains them


class Scale(Layer):
    """A custom layer: x * 2, that raises on the thread named `fail_on` once asked to."""

    not_splittable = ""
    fail_on: str | None = None

    def forward(self, x):
        if self.fail_on and threading.current_thread().name.startswith(self.fail_on):
            raise RuntimeError(f"failed on {self.fail_on}")
        return x * 2

    def backward(self, grad, need_input_grad=True):
        return grad * 2


def test_a_custom_layer_trains_on_replicas_once_its_class_says_it_can():
    class Unknown(Scale):
        not_splittable = Layer.not_splittable  # what a layer from outside nnlib inherits

    model = nl.Sequential([nl.Dense(4), Unknown(), nl.Dense(3)], input_shape=(6,))
    with pytest.raises(NotSplittable, match=r"layer_1 \(Unknown\) .*set not_splittable = ''"):
        Replicas(model, nl.SoftmaxCrossEntropy(), 2)
    model = nl.Sequential([nl.Dense(4), Scale(), nl.Dense(3)], input_shape=(6,))
    Replicas(model, nl.SoftmaxCrossEntropy(), 2)


@pytest.mark.parametrize("thread", ["nnlib-replica", "MainThread"])
def test_an_error_in_either_part_reaches_the_caller_and_leaves_no_thread(thread):
    """The replica's error is raised on the training thread; the model's (on the calling
    thread) waits for the replica's part first, so no thread is left running."""
    model = nl.Sequential([nl.Dense(4), Scale(), nl.Dense(3)], input_shape=(6,), seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=[StopAt(9)])
    trainer.fit(*_data((6,)), epochs=1, batch_size=32, threads=TWO)  # trains
    Scale.fail_on = thread
    try:
        with pytest.raises(RuntimeError, match=f"failed on {thread}"):
            trainer.fit(*_data((6,)), epochs=1, batch_size=32, threads=TWO)
    finally:
        Scale.fail_on = None
    assert trainer.state == "error" and not _replica_threads()


def test_a_frozen_parameter_stays_and_the_others_train_as_on_one_thread():
    trainers = []
    for plan in (ONE, TWO):
        model = nl.build(MLP, (6,), seed=3)
        model["dense_1"].params["W"].trainable = False
        frozen = model["dense_1"].params["W"].value.copy()
        trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1, weight_decay=0.1))
        trainer.fit(*_data((6,)), epochs=2, batch_size=32, threads=plan)
        np.testing.assert_array_equal(model["dense_1"].params["W"].value, frozen)
        trainers.append(trainer)
    _assert_close_weights(trainers[0].model, trainers[1].model)


def test_the_replicas_caches_are_their_parts_and_go_with_the_plan():
    """Each runner keeps its own part's caches between steps, as one model does (its next
    forward lets them go); the replicas, and with them their caches, go when the plan ends."""
    model = nl.build(CONV, (10, 10, 2), seed=0)
    loss = nl.SoftmaxCrossEntropy()
    x, y = _data((10, 10, 2), 20)
    with Replicas(model, loss, 2) as replicas:
        replicas.step(x, y)
        replica = replicas._runners[1][0]  # noqa: SLF001 (what a monitor never sees)
        assert len(model["relu_1"].active_mask) == 10  # the model's part, for the Monitor
        assert len(model["sigmoid_1"]._y) == 10
        assert len(replica["relu_1"].active_mask) == 10  # the other part, apart
        assert replica["relu_1"].active_mask is not model["relu_1"].active_mask
        replicas.step(x[:12], y[:12])  # the next step's forward replaced them
        assert len(replica["relu_1"].active_mask) == 6
    assert len(replicas._runners) == 1  # noqa: SLF001 (the replicas let go)


def test_the_monitor_sees_the_whole_batch_gradient():
    norms = []
    for plan in (ONE, TWO):
        events = Events("histograms")
        _train(MLP, (6,), nl.SGD(lr=0.1), plan, [nl.Monitor(every=3), events], epochs=1)
        step = next(data["layers"] for data in events.seen if data["batch"] == 2)
        norms.append({n: layer["grad_norm"] for n, layer in step.items() if "grads" in layer})
    assert norms[0].keys() == norms[1].keys() == {"dense_1", "dense_2"}
    for name, norm in norms[0].items():
        assert norms[1][name] == pytest.approx(norm, rel=1e-5)


def test_a_divergence_on_replicas_skips_the_update_without_a_warning_from_either_thread():
    """numpy's error state is per thread: the replica's thread is quieted as the model's."""
    x, y = _data((6,), 64)
    model = nl.build("dense(32) relu dense(32) relu dense(3)", (6,), seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=1e12))
    before: list[dict[str, np.ndarray]] = []

    class Weights(nl.Callback):
        def on_batch_begin(self, trainer, batch):
            before.append(trainer.model.get_weights())

    trainer.callbacks.append(Weights())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(x, y, epochs=20, batch_size=64, threads=TWO)
    assert history.reason == "diverged"
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    for name, value in model.get_weights().items():  # the last batch's update was skipped
        np.testing.assert_array_equal(value, before[-1][name])


def test_pause_and_step_with_replicas():
    gate = Gate(step=2)
    trainer = nl.Trainer(nl.build(MLP, (6,), seed=0), nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))
    trainer.callbacks.append(gate)
    thread, result = fit_in_thread(trainer, *_data((6,)), epochs=2, batch_size=16, threads=TWO)
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    gate.release.set()
    assert trainer.wait_until_parked(timeout=TIMEOUT)
    assert trainer.global_step == 2 and len(_replica_threads()) == 1
    for expected in (3, 4):
        trainer.step()
        assert trainer.wait_until_parked(timeout=TIMEOUT)
        assert trainer.global_step == expected
    trainer.resume()
    assert join_fit(thread, trainer, result).reason == "finished"
    assert trainer.global_step == 14 and not _replica_threads()


def _checkpointed(folder: Path, *extra: nl.Callback) -> nl.Trainer:
    model = nl.build(CONV, (10, 10, 2), seed=0)
    optimizer = nl.Adam(lr=1e-2, weight_decay=1e-3)
    callbacks = [checkpointing.Checkpointer(folder, every=4, keep=50, monitor="loss"), *extra]
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), optimizer, callbacks=callbacks)


def _fit(trainer: nl.Trainer, threads: nl.threads.Threads = TWO) -> list[float]:
    trainer.fit(*_data((10, 10, 2), 90), epochs=3, batch_size=16, seed=2, threads=threads)
    return [row["loss"] for row in trainer.history.batches]


@pytest.mark.parametrize("threads", [TWO, "auto"])
@pytest.mark.parametrize("stop", [3, 6, 10])
def test_a_run_on_replicas_resumed_with_them_continues_bit_for_bit(tmp_path, stop, threads):
    """6 batches an epoch, the last of 10: stopped mid-epoch, at its end, in the next; the
    resumed fit given the plan, or "auto", which keeps the checkpoint's replicas."""
    whole = _checkpointed(tmp_path / "whole")
    expected = _fit(whole)
    cut = _checkpointed(tmp_path / "cut" / checkpointing.FOLDER, StopAt(stop))
    before = _fit(cut)
    again = _checkpointed(tmp_path / "again" / checkpointing.FOLDER)
    checkpointing.restore(again, checkpointing.load(checkpointing.find(tmp_path / "cut")))
    assert again.resume_from is not None and again.resume_from.replicas == 2
    assert before + _fit(again, threads) == expected
    assert again.replica_count == 2
    for name, value in whole.model.get_weights().items():
        np.testing.assert_array_equal(again.model.get_weights()[name], value, err_msg=name)


def test_the_tracers_watched_step_trains_whole_on_one_thread():
    """Its dW is the one pass's, bit for bit as on one thread; the batches around it split."""
    traces = []
    x, y = _data((6,), 64)
    for plan in (ONE, TWO):
        tracer = Tracer()
        tracer.request(0, update=True)
        events = Events("trace")
        model = nl.build(MLP, (6,), seed=3)
        trainer = nl.Trainer(
            model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=[tracer, events]
        )
        trainer.fit(x, y, epochs=1, batch_size=32, validation_data=(x[:4], y[:4]), threads=plan)
        assert not trainer.unsplit_batch
        step = next(data for data in events.seen if data["trigger"] == "step")
        traces.append([layer.get("update") for layer in step["layers"]])
    assert traces[0] == traces[1] and any(traces[0])


def test_thread_plans_refuse_replicas_with_other_threads():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="replicas must be a positive integer"):
            ThreadPlan(replicas=bad)
    with pytest.raises(ValueError, match="2 replicas need blas=1 and workers=1, got blas=2"):
        ThreadPlan(blas=2, replicas=2)
    with pytest.raises(ValueError, match="got blas=1, workers=2"):
        ThreadPlan(workers=2, replicas=2)
    with pytest.raises(ValueError, match="blas=None"):
        ThreadPlan(blas=None, replicas=2)


# -- the CLI ------------------------------------------------------------------------------------
def _spirals(run_dir: Path, **changes: object) -> ExperimentConfig:
    values = dict(dataset="spirals", arch="2-16-16-3", epochs=2, batch_size=32, seed=0)
    return ExperimentConfig(**{**values, **changes, "run_dir": str(run_dir)})  # type: ignore[arg-type]


def _batch_losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in runs.continued(runs.read(run_dir)) if e.type == "batch"]


def _resumes(run_dir: Path) -> list[int | None]:
    return [e.get("replicas") for e in runs.read(run_dir) if e.type == "run_resume"]


@pytest.mark.parametrize("flags", [[], ["--replicas", "2"]])
def test_nnlib_train_resume_with_replicas_continues_bit_for_bit(tmp_path, capsys, flags):
    """Without --replicas the run goes on with the replicas it trained with, and says so."""
    setup(_spirals(tmp_path / "whole")).fit(threads=TWO)
    setup(_spirals(tmp_path / "cut"), callbacks=[StopAt(7)]).fit(threads=TWO)
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert config["trainer"]["replicas"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet", *flags]) == 0
    assert "on 2 replicas, as it trained" in capsys.readouterr().err
    assert _batch_losses(tmp_path / "cut") == _batch_losses(tmp_path / "whole")
    assert _resumes(tmp_path / "cut") == [2]


@pytest.mark.parametrize("flags", [["--replicas", "1"], ["--threads", "2"]])
def test_nnlib_train_resume_on_other_threads_says_it_will_not_go_on_bit_for_bit(
    tmp_path, capsys, flags
):
    setup(_spirals(tmp_path / "cut"), callbacks=[StopAt(7)]).fit(threads=TWO)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet", *flags]) == 0
    error = capsys.readouterr().err
    assert "note: the run trained on 2 replicas; on 1 each batch's gradient is summed" in error
    assert _resumes(tmp_path / "cut") == [1]
    last = checkpointing.load(checkpointing.find(tmp_path / "cut"))
    assert last.state["replicas"] == 1  # its next resume goes on as it trained since


def test_a_fork_of_a_run_on_replicas_starts_with_its_own_plan(tmp_path):
    setup(_spirals(tmp_path / "parent"), callbacks=[StopAt(7)]).fit(threads=TWO)
    fork = setup(fork_config(str(tmp_path / "parent")).replace(run_dir=str(tmp_path / "fork")))
    assert fork.trainer.resume_from is not None and fork.trainer.resume_from.replicas == 1
    fork.fit()
    assert fork.trainer.replica_count == 1


@pytest.mark.parametrize("flags", [[], ["--replicas", "2"]])
def test_nnlib_train_fork_of_a_run_on_replicas_says_nothing_of_the_parents(tmp_path, capsys, flags):
    """A fork's plan is its own: no note comparing it with the replicas of the run it forks
    (it said "the run trained on 1 replica" of a parent trained on 2)."""
    setup(_spirals(tmp_path / "parent"), callbacks=[StopAt(7)]).fit(threads=TWO)
    capsys.readouterr()
    command = ["train", "--fork", str(tmp_path / "parent"), "--run-dir", str(tmp_path / "fork")]
    assert main([*command, "--quiet", *flags]) == 0
    error = capsys.readouterr().err
    assert "continuing from" in error and "replica" not in error, error
    assert _resumes(tmp_path / "fork") == [2 if flags else 1]


def test_fit_refuses_more_replicas_than_a_batch_has_samples():
    """Each replica is a model copy built when the fit starts: 100,000 of them for batches
    of 64 took 7.6 s and 928 MB before training a step, none used beyond the 64th."""
    trainer = nl.Trainer(nl.build("2-4-3", (2,), seed=0), nl.SoftmaxCrossEntropy(), nl.SGD())
    x, y = np.zeros((100, 2), np.float32), np.zeros(100, np.int64)
    with pytest.raises(ValueError, match="fit: 65 replicas for batches of 64: each trains"):
        trainer.fit(x, y, batch_size=64, threads=ThreadPlan(replicas=65))
    assert trainer.global_step == 0
    trainer.fit(x, y, batch_size=64, threads=ThreadPlan(replicas=64))
    assert trainer.global_step == 2


def test_a_run_on_more_replicas_than_its_steered_batch_resumes_on_them(tmp_path):
    """A batch steered below the replicas since: the checkpoint's count is allowed, asked
    for or not (the refusal of more replicas than a batch holds is for new counts)."""
    x, y = np.zeros((40, 2), np.float32), np.zeros(40, np.int64)
    trainer = nl.Trainer(nl.build("2-4-3", (2,), seed=0), nl.SoftmaxCrossEntropy(), nl.SGD())
    trainer.fit(x, y, batch_size=8, threads=ThreadPlan(replicas=4))
    trainer.batch_size = 2  # as a steered batch size applied at an epoch's start
    checkpointing.save(trainer, tmp_path / "ckpt.npz")
    for plan in (ThreadPlan(replicas=4), "auto"):
        again = nl.Trainer(nl.build("2-4-3", (2,), seed=0), nl.SoftmaxCrossEntropy(), nl.SGD())
        checkpointing.restore(again, checkpointing.load(tmp_path / "ckpt.npz"))
        again.fit(x, y, batch_size=8, threads=plan)
        assert again.replica_count == 4 and again.batch_size == 2


def test_nnlib_train_on_replicas_and_its_usage_errors(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--dataset", "spirals", "--epochs", "1", "--quiet", "--run-dir"]
    assert main(["train", *flags, str(run), "--replicas", "2"]) == 0
    assert [e["reason"] for e in runs.read(run) if e.type == "end"] == ["finished"]
    capsys.readouterr()
    for words, expected in [
        (["--replicas", "2", "--threads", "2"], "--replicas 2 trains each replica on one BLAS"),
        (["--replicas", "0"], "--replicas: must be a positive integer"),
        (
            ["--replicas", "2", "--arch", "dense(8) batchnorm relu dense(3)"],
            "--replicas: 2 replicas: batchnorm_1",
        ),
    ]:
        assert main(["train", *flags, str(tmp_path / "refused"), *words]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert error == [error[0]] and error[0].startswith("error: ") and expected in error[0]
        assert not (tmp_path / "refused").exists()  # the refused run left no folder
