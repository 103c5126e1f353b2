"""File modes (issue 17, item 12): every file nnlib writes gets the mode any new file gets,
0666 less the umask (atomic writes forced 0644 whatever the umask, while the logs followed
it), except a run's command and reply files, which stay its owner's alone (0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nnlib import remote
from nnlib._atomic import atomic_write_text
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup

PRIVATE = {remote.COMMANDS_FILE, remote.REPLIES_FILE}


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """Set the process umask for the test (restored after it)."""
    before = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o027, 0o077])
def test_an_atomic_write_gets_the_umasks_mode(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    target = atomic_write_text(tmp_path / "config.json", "{}")
    assert _mode(target) == 0o666 & ~mask
    target.chmod(0o644)  # a file written before under another umask: replaced, mode and all
    atomic_write_text(target, "{}")
    assert _mode(target) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left


@pytest.mark.parametrize("mask", [0o000, 0o077])
def test_every_file_of_a_run_follows_the_umask_but_its_command_files(
    tmp_path: Path, umask, mask: int
) -> None:
    umask(mask)
    run = tmp_path / "run"
    config = ExperimentConfig(
        dataset="glyphs",
        arch="flatten dense(10)",
        subset=200,
        epochs=1,
        batch_size=50,
        checkpoint_every=2,
        run_dir=str(run),
    )
    setup(config, checkpoints=True).fit(threads=1)
    files = {p.relative_to(run).as_posix(): _mode(p) for p in run.rglob("*") if p.is_file()}
    expected = {  # config.json, experiment.toml, model.npz, best.npz, samples.npz, checkpoints
        "config.json",
        "experiment.toml",
        "events.jsonl",
        "model.npz",
        "best.npz",
        "samples.npz",
        "checkpoints/best.npz",
        "checkpoints/step-4.npz",
    }
    assert expected | PRIVATE <= set(files)
    for name, mode in files.items():
        assert mode == (0o600 if name in PRIVATE else 0o666 & ~mask), name
