"""Shared test setup: the helper modules next to the tests (helpers.py, reference.py,
dtype_guard.py) import by name under any pytest import mode, including --import-mode=importlib;
and the fixtures several test files share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from helpers import TIMEOUT, WRITER, config_for, write_run, writer_env  # noqa: E402

from nnlib import runs  # noqa: E402
from nnlib.config import ExperimentConfig  # noqa: E402
from nnlib.experiment import setup  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A runs folder with a run in every state; yields (folder, the running run's lock)."""
    root = tmp_path_factory.mktemp("workspace") / "runs"
    root.mkdir()
    real = ExperimentConfig(
        dataset="spirals", arch="2-8-3", epochs=2, batch_size=64, seed=0, run_dir=str(root / "real")
    )
    setup(real, checkpoints=False).fit()
    write_run(root, "stopped", epochs=1, end="stopped")
    write_run(root, "diverged", epochs=2, end="diverged", scale=3.0)
    write_run(root, "forked", parent={"run": "runs/real", "step": 40}, lr=0.05)
    write_run(root, "errored", epochs=1, end="error")
    running = write_run(root, "running", epochs=1, end=None)
    lock = runs.WriterLock(running)
    lock.acquire()
    (root / "empty").mkdir()
    (root / "empty" / runs.CONFIG_FILE).write_text(json.dumps(config_for("empty")))
    (root / "not-a-run").mkdir()  # no config, no log: not listed
    killed = root / "killed"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(killed)],
        env=writer_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        assert runs.writer_alive(killed)
    finally:
        writer.kill()  # SIGKILL: no end event, the lock file left behind
        writer.wait(TIMEOUT)
        writer.stdout.close()
    yield root, lock
    lock.release()
