"""A lost terminal: `nntui` on a pseudo-terminal whose master side is closed (what sshd and
tmux do when the connection or the pane goes) must exit on every screen, with the run log
closed by its `end` event and the final model written.

Textual's writer thread dies on the first failed write and leaves the UI thread blocked on
its full queue for ever; on a hung-up terminal its input thread also spins on EOF. Both
were seen here: the process stayed alive with the run still training, and ignored SIGHUP
and SIGTERM.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import default_signals, logged_a_batch

from nnlib import runs

#: Generous: a hang is forever, an exit takes well under a second here.
EXIT_TIMEOUT = 20.0
START_TIMEOUT = 60.0


class Terminal:
    """`nntui` on a fresh pty of 80x24; `controlling` makes the pty the process's
    controlling terminal, so closing it also sends SIGHUP (as for an SSH session)."""

    def __init__(self, cwd: Path, args: list[str], controlling: bool) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.screen = b""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nntui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
            preexec_fn=lambda: self._prepare(controlling),
        )
        os.close(slave)
        self.open = True

    @staticmethod
    def _prepare(controlling: bool) -> None:
        """In the child: the signals' default dispositions, and the pty as its terminal."""
        default_signals()
        if controlling:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def drain(self) -> None:
        """Read what the app wrote, so that it never blocks on a full terminal."""
        if select.select([self.master], [], [], 0.05)[0]:
            self.screen = (self.screen + os.read(self.master, 65536))[-200_000:]

    def wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            assert self.process.poll() is None, f"nntui exited before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.drain()

    def hang_up(self) -> None:
        os.close(self.master)
        self.open = False

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.open:
            os.close(self.master)


@pytest.fixture
def terminal(tmp_path):
    started: list[Terminal] = []

    def start(args: list[str], controlling: bool = False) -> Terminal:
        started.append(Terminal(tmp_path, args, controlling))
        return started[-1]

    yield start
    for t in started:
        t.close()


def events(run_dir: Path) -> str:
    path = run_dir / runs.EVENTS_FILE
    return path.read_text() if path.exists() else ""


def training_args(run_dir: Path) -> list[str]:
    return [
        *("--dataset", "spirals", "--arch", "2-16-3", "--epochs", "100000"),
        *("--batch-size", "8", "--run-dir", str(run_dir), "--start"),
    ]


def assert_exits(t: Terminal) -> None:
    try:
        t.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nntui was still running {EXIT_TIMEOUT:g}s after its terminal hung up")


@pytest.mark.parametrize("controlling", [False, True], ids=["eio", "sighup"])
def test_hangup_while_training_closes_the_log_and_exits(terminal, tmp_path, controlling):
    run_dir = tmp_path / "run"
    t = terminal(training_args(run_dir), controlling)
    t.wait_for(lambda: logged_a_batch(run_dir / runs.EVENTS_FILE), "training to start")
    t.hang_up()
    assert_exits(t)
    last = runs.read(run_dir)[-1]
    assert last.type == "end" and last["reason"] == "stopped"
    assert (run_dir / "model.npz").exists()


def test_hangup_after_a_stop_exits(terminal, tmp_path):
    run_dir = tmp_path / "run"
    t = terminal(training_args(run_dir))
    t.wait_for(lambda: logged_a_batch(run_dir / runs.EVENTS_FILE), "training to start")
    os.write(t.master, b"s")
    t.wait_for(lambda: '"type":"end"' in events(run_dir), "the stop")
    t.hang_up()
    assert_exits(t)
    assert runs.read(run_dir)[-1].type == "end"


def test_hangup_on_the_setup_screen_exits(terminal, tmp_path):
    t = terminal(["--dataset", "spirals"])
    t.wait_for(lambda: b"Train" in t.screen, "the setup screen")
    t.hang_up()
    assert_exits(t)
    assert not (tmp_path / "runs").exists()
