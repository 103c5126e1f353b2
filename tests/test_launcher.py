"""A Ctrl+C at any moment of start-up of `nnlib` or `nntui` is one line, `interrupted`, and
exit code 130 (nnlib_launcher). The console scripts call nnlib_launcher.nnlib / .nntui; these
tests call them the same way from `python -c`, so they need no reinstall."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TIMEOUT, default_signals

ROOT = Path(__file__).resolve().parents[1]
#: Sends SIGINT to this process as soon as the module named by argv[1] starts to be imported:
#: a Ctrl+C that lands exactly inside that import, whatever the machine's speed.
AT_IMPORT = """
import os, signal, sys

class Interrupt:
    def __init__(self, target):
        self.target = target

    def find_spec(self, name, path=None, target=None):
        if name == self.target:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt(sys.argv.pop(1)))
command = sys.argv.pop(1)  # what remains is the command's own arguments
import nnlib_launcher
sys.exit(getattr(nnlib_launcher, command)())
"""
#: Says "go" once Python itself has started and the console script's own line has imported
#: the launcher (no project code can catch a signal before: Python imports site and the .pth
#: files, measured up to 100 ms here under load), then runs the command as that script does.
AFTER_GO = """
import sys
import nnlib_launcher
command = sys.argv.pop(1)  # what remains is the command's own arguments
print("go", flush=True)
sys.exit(getattr(nnlib_launcher, command)())
"""


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NNLIB_DATA_DIR": str(tmp_path / "data")}


def train_words(tmp_path: Path) -> list[str]:
    return ["train", "--dataset", "spirals", "--epochs", "1000", "--quiet", "--run-dir"]


def assert_interrupted(done: subprocess.CompletedProcess | subprocess.Popen, err: str) -> None:
    assert done.returncode == 130, err
    # Once training has begun, nnlib.cli ends the run and says where it is, in that line.
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted"), err


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("nnlib", "nnlib"),  # the package's __init__, before anything of it is imported
        ("nnlib", "numpy"),
        ("nnlib", "datetime"),  # imported by numpy's C extension, which hides the Ctrl+C
        ("nnlib", "nnlib.layers"),
        ("nnlib", "nnlib.experiment"),  # the train command's own import
        ("nntui", "nnlib"),
        ("nntui", "nntui.cli"),
        ("nntui", "textual.app"),
    ],
)
def test_a_ctrl_c_inside_any_start_up_import_is_one_line(tmp_path, command, module):
    words = train_words(tmp_path) + [str(tmp_path / "run")] if command == "nnlib" else []
    done = subprocess.run(
        [sys.executable, "-c", AT_IMPORT, module, command, *words],
        env=env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        preexec_fn=default_signals,
    )
    assert_interrupted(done, done.stderr)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.3])
def test_nnlib_train_interrupted_at_several_moments_of_start_up(tmp_path, delay):
    """SIGINT `delay` seconds after Python has started: while the launcher, numpy, the
    library or the data are imported and loaded, or the first batches run."""
    writer = subprocess.Popen(
        [sys.executable, "-c", AFTER_GO, "nnlib", *train_words(tmp_path), str(tmp_path / "r")],
        env=env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    try:
        assert writer.stdout.readline() == "go\n"
        time.sleep(delay)  # not an assertion on time: every moment must give the same answer
        writer.send_signal(signal.SIGINT)
        _, err = writer.communicate(timeout=TIMEOUT * 4)
    finally:
        writer.kill()
    assert_interrupted(writer, err)
