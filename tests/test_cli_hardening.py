"""`nnlib` and `nntui` against what a new user, a bad file or a lost terminal does (issue 8):
stop signals (one, or several back to back), paths the OS refuses, deeply nested TOML, a subset
larger than the data, a closed stdout pipe, and the shipped example config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnlib as nl
from nnlib import runs
from nnlib.cli import STOP_SIGNALS, Interrupted, StopSignals

TIMEOUT = 120  # seconds for one command; they take well under one
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "experiment.toml"
LONG = "a" * 300  # one path component longer than any file system allows (255)


@pytest.fixture
def env(tmp_path_factory):
    environment = dict(os.environ)
    environment["NNLIB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    environment.pop("NNLIB_RUNS_DIR", None)
    return environment


def run(cwd, env, program, *args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", program, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **kwargs,
    )


def one_line_error(done, code, *words):
    """Exit `code` with exactly one line on stderr, naming `words`, and no traceback."""
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# -- signals -----------------------------------------------------------------------------------


def _train_until_a_batch(tmp_path, env):
    """A training process (endless in practice) that has logged at least one batch."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlib.cli", "train", "--dataset", "spirals", "--epochs", "100000"]
        + ["--batch-size", "1", "--run-dir", "run", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events_file = tmp_path / "run" / "events.jsonl"
    for _ in range(6000):  # at most ~2 minutes; normally a second
        if events_file.exists() and '"type":"batch"' in events_file.read_text():
            return process
        try:
            process.wait(timeout=0.02)  # a bounded wait that also notices an early exit
            pytest.fail(f"nnlib exited early: {process.communicate()}")
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    pytest.fail("no batch was logged")


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGTERM],
        [signal.SIGHUP],
        [signal.SIGINT, signal.SIGINT],  # a second Ctrl+C right after the first
        [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGINT, signal.SIGTERM],
    ],
    ids=["term", "hup", "int-int", "burst"],
)
def test_stop_signals_end_the_run_like_ctrl_c(tmp_path, env, signals):
    process = _train_until_a_batch(tmp_path, env)
    try:
        for signum in signals:  # back to back, no wait in between
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # Signals pending together are delivered lowest number first: any of them may be "first".
    assert process.returncode in {128 + signum for signum in signals}, stderr
    assert "Traceback" not in stderr
    name = signal.Signals(process.returncode - 128).name
    assert (
        stderr.strip().splitlines()[-1] == f"interrupted ({name}); run log and final model in run"
    )
    last = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "end" and last["reason"] == "interrupted"
    assert runs.read(tmp_path / "run")[-1].step == last["step"] >= 1  # every line complete
    model = nl.load(tmp_path / "run" / "model.npz")  # the message is true: it is there
    assert all(np.isfinite(p.value).all() for p in model.parameters())
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []


def test_a_signal_outside_training_ends_the_command_with_one_line(tmp_path, env):
    # `runs --follow` waits for the rest of a run that never ends: a signal must end it.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.jsonl").write_text(runs.encode("pause", 0, {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlib.cli", "runs", "run", "--follow"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "pause" in process.stdout.readline()  # past its imports, in the follow loop
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)  # while the first is being handled
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode in (128 + signal.SIGTERM, 128 + signal.SIGINT)
    assert stderr == "interrupted\n"


@pytest.fixture
def saved_handlers():
    """Put back this process's handlers: after a signal, StopSignals leaves its own in place."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield before
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_stop_signals_in_process_raise_once_then_ignore(saved_handlers):
    with StopSignals():
        pass
    assert {signum: signal.getsignal(signum) for signum in saved_handlers} == saved_handlers
    with StopSignals() as signals:
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(signal.SIGHUP)  # its Python handler runs before this returns
        assert caught.value.signum == signal.SIGHUP and signals.exit_code == 129
        signal.raise_signal(signal.SIGTERM)  # a second signal: ignored, nothing raised
    signal.raise_signal(signal.SIGTERM)  # still ignored after the block: the process is ending
    assert signals.received == signal.SIGHUP
    assert all(signal.getsignal(signum) == signal.SIG_IGN for signum in STOP_SIGNALS)


def test_stop_signals_with_a_trainer_stop_it_at_its_next_boundary(saved_handlers):
    model = nl.build("2-4-3", (2,), seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))
    with StopSignals() as signals:
        signals.trainer = trainer
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        x, y = np.zeros((4, 2), np.float32), np.zeros(4, int)
        history = trainer.fit(x, y, epochs=5, batch_size=1)
    assert history.reason == "interrupted" and trainer.global_step == 0
    assert signals.exit_code == 128 + signal.SIGTERM


# -- paths and files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program, args",
    [
        ("nnlib.cli", ["train", "--dataset", LONG]),
        ("nnlib.cli", ["train", "--dataset", "spirals", "--epochs", "1", "--run-dir", LONG]),
        ("nnlib.cli", ["evaluate", LONG, "--dataset", "spirals"]),
        ("nnlib.cli", ["runs", LONG]),
        ("nntui", ["--dataset", LONG]),
        ("nntui", ["--open", LONG]),
    ],
    ids=["train-dataset", "train-run-dir", "evaluate", "runs", "nntui-dataset", "nntui-open"],
)
def test_a_path_the_os_refuses_is_one_line_naming_it(tmp_path, env, program, args):
    done = run(tmp_path, env, program, *args, stdin=subprocess.DEVNULL)
    line = one_line_error(done, 2, LONG, os.strerror(36))  # ENAMETOOLONG
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "runs").exists(), line


@pytest.mark.parametrize("program", ["nnlib.cli", "nntui"])
def test_deeply_nested_toml_is_a_config_error(tmp_path, env, program):
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    args = (
        ["train", "--config", "deep.toml"] if program == "nnlib.cli" else ["--config", "deep.toml"]
    )
    done = run(tmp_path, env, program, *args, stdin=subprocess.DEVNULL)
    one_line_error(done, 2, "deep.toml", "nested too deeply")


def test_a_config_file_larger_than_any_config_is_refused_unread(tmp_path, env):
    with open(tmp_path / "huge.toml", "wb") as handle:
        handle.truncate(2 * 2**20)  # sparse: sized, not written
    done = run(tmp_path, env, "nnlib.cli", "train", "--config", "huge.toml")
    one_line_error(done, 2, "huge.toml", "2,097,152 bytes, more than the 1,048,576")
    done = run(tmp_path, env, "nnlib.cli", "train", "--config", "/dev/zero")
    one_line_error(done, 2, "/dev/zero", "is a character device, not a regular file")


def test_a_subset_larger_than_the_data_is_a_usage_error(tmp_path, env):
    done = run(tmp_path, env, "nnlib.cli", "train", "--dataset", "spirals", "--subset", "100000")
    one_line_error(done, 2, "subset", "100000", "1500")
    assert not (tmp_path / "runs").exists()


def test_a_closed_stdout_pipe_exits_quietly(tmp_path, env):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -1`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nnlib.cli", "datasets"],
            cwd=tmp_path,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1 and done.stderr == ""


# -- the shipped example -------------------------------------------------------------------------


def test_the_example_config_trains_offline(tmp_path, env):
    from nnlib.config import ExperimentConfig

    example = ExperimentConfig.load(EXAMPLE)
    assert example.dataset in {info.name for info in nl.datasets.available()}
    done = run(
        tmp_path,
        env,
        "nnlib.cli",
        "train",
        "--config",
        str(EXAMPLE),
        "--epochs",
        "1",
        "--subset",
        "256",
        "--run-dir",
        "run",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    saved = ExperimentConfig.load(tmp_path / "run" / "experiment.toml")
    assert saved.arch == example.arch and saved.subset == 256
    assert nl.load(tmp_path / "run" / "model.npz").spec == example.arch
