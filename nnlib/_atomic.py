"""Atomic file writes: the one helper behind checkpoints, run configs, caches and downloads.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed
over the target, so readers see the old file or the whole new one, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write `path` through `write(handle)`; on any exception the temporary file is removed
    before the exception propagates and `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
