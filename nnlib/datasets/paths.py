"""Where datasets live on disk. Writers here use `nnlib._atomic.atomic_write`.

Resolution order of the data folder (first match wins):
1. `$NNLIB_DATA_DIR`;
2. a source checkout: the `datasets/` folder next to the repository's `pyproject.toml`;
3. the per-user cache: `$XDG_CACHE_HOME/nnlib`, or `~/.cache/nnlib`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "NNLIB_DATA_DIR"


def default_data_dir() -> Path:
    """The folder where downloads and caches go when `data_dir` is not given."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "datasets").is_dir():
        return checkout / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nnlib"


def data_folder(data_dir: str | os.PathLike | None) -> Path:
    """The data folder a loader was given, else the default one: every loader resolves
    `data_dir` here, so they all look in the same place."""
    return Path(data_dir) if data_dir is not None else default_data_dir()


def cache_dir() -> Path:
    """Folder for the fast .npz caches: always under the default data folder.

    Caches never go next to a user's own files (a shared or read-only folder stays untouched);
    they are keyed by the source folder, so several sources can be cached side by side.
    """
    return default_data_dir() / "cache"
