"""`nnlib` and `nntui` against what a new user, a bad file or a lost terminal does (issue 8):
stop signals (one, or several back to back), paths the OS refuses, deeply nested TOML, a subset
larger than the data, a closed stdout pipe, and the shipped example config."""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import StopAt, nnlib_process, signal_and_wait, train_until_a_batch

import nnlib as nl
from nnlib import checkpointing, runs
from nnlib.cli import STOP_SIGNALS, Interrupted, StopSignals
from nnlib.config import ExperimentConfig
from nnlib.experiment import fork_config, setup

TIMEOUT = 120  # seconds for one command; they take well under one
cli_main = importlib.import_module("nnlib.cli.main")  # the module (nnlib.cli.main is main())
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
    process = train_until_a_batch(tmp_path, env, "--batch-size", "1")
    stderr = signal_and_wait(process, *signals)
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
    process = nnlib_process(tmp_path, env, "runs", "run", "--follow")
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


def _not_ignored(signum, frame):
    """A handler the tests set in place of what the test run inherited (a Python handler,
    neither SIG_IGN, which nnlib keeps for SIGTERM and SIGHUP, nor SIG_DFL, which would end
    the test process if such a signal came from outside)."""


@pytest.fixture
def saved_handlers():
    """The stop signals handled by _not_ignored during the test, whatever the test run
    inherited (under `nohup` SIGHUP is ignored), then this process's handlers put back:
    after a signal, StopSignals leaves its own in place."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _not_ignored)
    yield dict.fromkeys(STOP_SIGNALS, _not_ignored)
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


def test_a_signal_that_lands_in_wrapping_code_ends_the_command_as_interrupted(
    saved_handlers, monkeypatch, capsys
):
    """A Ctrl+C inside an import, in a class body's __set_name__, reached the CLI as
    "RuntimeError: Error calling __set_name__" (its cause the interruption): exit 1 and a
    traceback (test_launcher's start-up moments hit it at 0.1 s). It is the interruption."""

    def import_under_a_signal(args):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt as error:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from error

    monkeypatch.setattr(cli_main, "handlers", lambda signals: {"train": import_under_a_signal})
    assert cli_main.main(["train", "--dataset", "spirals"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    monkeypatch.setattr(cli_main, "handlers", lambda signals: {"train": _fails_by_itself})
    with pytest.raises(RuntimeError, match="not after a signal"):  # no signal: as it was
        cli_main.main(["train", "--dataset", "spirals"])


def _fails_by_itself(args):
    raise RuntimeError("not after a signal")


def test_stop_signals_keep_an_ignored_sighup_and_sigterm(saved_handlers):
    """Started under `nohup` (SIGHUP ignored) or with SIGTERM ignored, nnlib keeps them so;
    SIGINT it takes even when ignored (a shell starts background jobs so)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    with StopSignals():
        signal.raise_signal(signal.SIGHUP)  # nothing happens
        signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGHUP) == signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        with pytest.raises(Interrupted):
            signal.raise_signal(signal.SIGINT)


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


# -- a run nobody watches (issue 17 item 3) ------------------------------------------------------

#: Epochs of the piped runs: one plain progress line each (about 90 bytes), so that their
#: output (several kB) outgrows the smallest pipe (PIPE_BYTES).
PIPED_EPOCHS = 80
PIPE_BYTES = 4096


def _train_words(tmp_path: Path, how: str) -> list[str]:
    """`nnlib train` as a new run, a resume or a fork of a run stopped at step 3 (one batch
    an epoch: so in its epoch 3)."""
    if how == "train":
        return ["--dataset", "spirals", "--arch", "2-8-3", "--subset", "64"]
    config = ExperimentConfig(
        dataset="spirals",
        arch="2-8-3",
        subset=64,
        batch_size=64,
        epochs=PIPED_EPOCHS,
        seed=0,
        run_dir=str(tmp_path / "run"),
    )
    setup(config, callbacks=[StopAt(3)], checkpoints=True).fit(threads=1)
    assert runs.read(tmp_path / "run")[-1]["reason"] == "stopped"
    return ["--resume", "run"] if how == "resume" else ["--fork", "run", "--run-dir", "fork"]


def _run_dir(tmp_path: Path, how: str) -> Path:
    return tmp_path / ("fork" if how == "fork" else "run")


def _assert_ran_to_the_end(done_code, stderr, run_dir):
    assert done_code == 0 and "error" not in stderr, stderr
    events = runs.read(run_dir)
    end = events[-1]
    assert end.type == "end" and end["reason"] == "finished", end
    assert end["epoch"] == PIPED_EPOCHS - 1
    assert [e["epoch"] for e in events if e.type == "epoch"][-1] == PIPED_EPOCHS - 1
    assert (run_dir / "model.npz").exists()


def _piped(tmp_path, env, how, **streams):
    words = _train_words(tmp_path, how)
    if how == "train":
        words += ["--epochs", str(PIPED_EPOCHS), "--batch-size", "64", "--run-dir", "run"]
    return subprocess.Popen(
        [sys.executable, "-m", "nnlib.cli", "train", *words, "--threads", "1"],
        cwd=tmp_path,
        env=env,
        **streams,
    )


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="pipe sizes are Linux's")
@pytest.mark.parametrize("how", ["train", "resume", "fork"])
def test_a_reader_that_goes_after_one_line_never_ends_the_run(tmp_path, env, how):
    """`nnlib train ... | head -1`: the reader closes its end after the first line; the run
    goes on unread and ends finished, with every epoch."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # the run writes past it
    with open(read_end, "rb", buffering=0) as reader:  # unbuffered: reads one line, no more
        process = _piped(tmp_path, env, how, stdout=write_end, stderr=subprocess.PIPE)
        os.close(write_end)
        try:
            first = reader.readline()
        except BaseException:
            process.kill()
            raise
    try:
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert first.startswith(b"epoch "), first
    # At most PIPE_BYTES more fit in the pipe: the lines of the later epochs found it closed.
    assert (PIPED_EPOCHS - 4) * len(first) > PIPE_BYTES
    _assert_ran_to_the_end(process.returncode, stderr.decode(), _run_dir(tmp_path, how))


@pytest.mark.parametrize("how", ["train", "resume", "fork"])
def test_a_run_whose_stdout_and_stderr_are_closed_from_the_start_runs_to_the_end(
    tmp_path, env, how
):
    """`nnlib train ... 2>&1 | head -0`: nothing can be printed, not even the first line on
    stderr (a fork used to stop there, leaving a folder with only experiment.toml)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = _piped(tmp_path, env, how, stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    try:
        process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _assert_ran_to_the_end(process.returncode, "", _run_dir(tmp_path, how))


# -- a start that fails leaves nothing behind ----------------------------------------------------


def test_a_fork_that_fails_before_its_first_batch_leaves_no_folder(tmp_path, env):
    """The fork's checkpoint is 16 samples into its epoch, its data only 8: fit refuses it
    after the run's folder was made (it used to stay, holding only experiment.toml)."""
    config = ExperimentConfig(
        dataset="spirals", arch="2-8-3", subset=64, batch_size=16, epochs=5, seed=0
    )
    setup(config.replace(run_dir=str(tmp_path / "run")), callbacks=[StopAt(1)]).fit(threads=1)
    done = run(tmp_path, env, "nnlib.cli", "train", "--fork", "run", "--subset", "8")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training failed: ValueError: fit: the checkpoint"), last
    assert "(log:" not in last  # there is none
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no runs/ folder either


class FailsAtStart(nl.Callback):
    def on_train_begin(self, trainer):
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["new", "claimed"])
def test_a_run_that_fails_to_start_takes_back_its_folder(tmp_path, where):
    """A new folder under a runs folder made for it goes with it; an empty folder given
    with --run-dir (the only kind it takes) stays, empty again."""
    if where == "claimed":
        (tmp_path / "mine").mkdir()
    config = ExperimentConfig(
        dataset="spirals",
        arch="2-8-3",
        epochs=2,
        run_dir=str(tmp_path / "mine") if where == "claimed" else None,
    )
    experiment = setup(
        config, callbacks=[FailsAtStart()], run_root=tmp_path / "runs", checkpoints=True
    )
    assert experiment.run_dir.is_dir()
    with pytest.raises(OSError, match="No space left"):
        experiment.fit(threads=1)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == (["mine"] if where == "claimed" else [])


def test_a_signal_while_a_run_is_set_up_takes_back_its_folder(tmp_path, monkeypatch):
    """Ctrl+C while setup restores a fork's checkpoint (the run's folder made, its start
    not reached): the folder goes, and the runs folder made for it."""
    config = ExperimentConfig(dataset="spirals", arch="2-8-3", epochs=3, seed=0)
    setup(config.replace(run_dir=str(tmp_path / "run")), callbacks=[StopAt(1)]).fit(threads=1)

    def interrupted(*args, **kwargs):
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(checkpointing, "restore", interrupted)
    with pytest.raises(Interrupted):
        setup(fork_config(str(tmp_path / "run")), run_root=tmp_path / "runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- the shipped example -------------------------------------------------------------------------


def test_the_example_config_trains_offline(tmp_path, env):
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
