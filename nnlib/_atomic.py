"""Atomic file writes: the one helper behind checkpoints, run configs, caches and downloads.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed
over the target, so readers see the old file or the whole new one, never half a file.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: The temporaries `atomic_write` makes: .<target name>.<8 random characters>.tmp (mkstemp's).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
#: A temporary older than this is a leftover of a killed writer (a write takes well under).
STALE_SECONDS = 60.0


def atomic_write(path: Path, write: Callable[[BinaryIO], None], sync: bool = True) -> Path:
    """Write `path` through `write(handle)`; on any exception the temporary file is removed
    before the exception propagates and `path` is untouched. `sync=False` leaves out the
    fsync (a caller that syncs later, off a thread that must not wait on the disk): the
    rename still shows readers the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # (_TEMPORARY matches this name: change both together)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str, sync: bool = True) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), sync)


def remove_stale_temporaries(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete what killed writers left in `folder`: files named like `atomic_write`'s
    temporaries and untouched for `older_than` seconds; never any other file. Returns them.
    A folder that cannot be listed or cleaned is left as it is."""
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if (
                _TEMPORARY.fullmatch(entry.name)
                and entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed
