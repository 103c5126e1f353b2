"""`nntui` command line: help, one-line errors with exit code 2, flags over a config file,
and a quick start that imports nothing heavy before the app runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import DATASETS, default_signals, logged_a_batch

from nnlib.config import ExperimentConfig
from nntui.cli import DEFAULT_EPOCHS, experiment_from_args, main, parser


def run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--arch",
        "--epochs",
        "--lr",
        "--batch-size",
        "--optimizer",
        "--momentum",
        "--seed",
        "--config",
        "--start",
        "--weight-decay",
        "--graphics",
    ):
        assert flag in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--lr", "-1"], "lr must be a positive number"),
        (["--epochs", "x"], "--epochs"),
        (["--optimizer", "lbfgs"], "--optimizer"),
        (["--arch", "conv(3"], "--arch: spec"),
        (["--dataset", "spirals", "--arch", "2-8-5"], "dense(3)"),
        (["--arch", "dense(3000000000) dense(10)"], "too big to train here"),
        (["--dataset", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["--dataset", "spirals", "--arch", "vgg"], "--arch: VGG needs images"),
        (["--config", "missing.toml"], "no such config file"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--graphics", "iterm"], "--graphics: invalid choice: 'iterm' (choose from 'auto',"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, words, capsys):
    code, err = run(argv, capsys)
    assert code == 2
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_flags_override_the_config_file(tmp_path):
    path = ExperimentConfig(dataset="moons", arch="2-8-2", epochs=3, lr=0.2).save(
        tmp_path / "exp.toml"
    )
    config, extra = experiment_from_args(
        parser().parse_args(["--config", str(path), "--lr", "0.01", "--batch-size", "16"])
    )
    assert (config.dataset, config.arch, config.epochs) == ("moons", "2-8-2", 3)
    assert (config.lr, config.batch_size, extra) == (0.01, 16, None)


def test_presets_are_taken_by_name():
    """The setup screen offers presets by name; `--arch` takes the same names."""
    from nntui.architectures import check_spec

    config, _ = experiment_from_args(parser().parse_args(["--arch", "lenet"]))
    assert config.arch == "lenet"  # shown as given, built as LeNet-5 for the dataset
    glyphs = next(info for info in DATASETS if info.name == "glyphs")
    checked = check_spec("LeNet-5", glyphs)
    assert checked.error is None and checked.summary.total_params == 61_706


def test_defaults_pick_a_quick_architecture():
    config, _ = experiment_from_args(parser().parse_args([]))
    assert config.dataset == "glyphs" and config.arch.startswith("conv(6,5,pad=2)")
    assert config.epochs == DEFAULT_EPOCHS
    config, _ = experiment_from_args(parser().parse_args(["--dataset", "spirals"]))
    assert config.arch == "2-32-32-3"


def test_a_users_file_is_listed_and_checked(tmp_path):
    x = np.random.default_rng(0).random((40, 3), dtype=np.float32)
    y = (np.arange(40) % 2).astype(np.int64)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    config, extra = experiment_from_args(parser().parse_args(["--dataset", str(path)]))
    assert config.arch == "3-32-32-2"
    assert extra.name == str(path) and extra.input_shape == (3,) and extra.source == "file"


def test_startup_imports_stay_light():
    code = (
        "import sys, nntui.cli; "
        "print(sorted(m for m in ('textual', 'plotext', 'nnlib.datasets', 'nntui.app') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("signal_name", ["SIGHUP", "SIGTERM"])
def test_a_hangup_closes_the_run_log(tmp_path, signal_name):
    """A dropped SSH connection (SIGHUP) or a kill (SIGTERM) while training: the app stops
    the run, so events.jsonl ends with its 'end' event and the final model is written."""
    import os
    import pty
    import select
    import signal
    import time

    from nnlib import runs

    master, slave = pty.openpty()
    run_dir = tmp_path / "run"
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nntui",
            "--dataset",
            "spirals",
            "--arch",
            "2-16-3",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
            "--run-dir",
            str(run_dir),
            "--start",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    os.close(slave)
    events_file = run_dir / runs.EVENTS_FILE

    def drain() -> bool:
        """Read what the app wrote (so it never blocks on a full terminal); False once the
        terminal is closed."""
        if select.select([master], [], [], 0.05)[0]:
            try:
                return bool(os.read(master, 65536))
            except OSError:
                return False
        return True

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and drain():  # until training is under way
            if logged_a_batch(events_file):
                break
        assert logged_a_batch(events_file), "training never started"
        process.send_signal(getattr(signal, signal_name))
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline and drain():
            pass
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    last = runs.read(run_dir)[-1]
    assert last.type == "end" and last["reason"] == "stopped"
    assert (run_dir / "model.npz").exists()
