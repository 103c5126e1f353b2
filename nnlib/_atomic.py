"""Atomic file writes: the one helper behind checkpoints, run configs, caches and downloads.

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed
over the target, so readers see the old file or the whole new one, never half a file. The
file gets the mode any new file gets (0666 less the umask): a user whose umask keeps their
files private (077) gets private models and configs, like their logs.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: The temporaries `atomic_write` makes: .<target name>.<8 random characters>.tmp.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
#: A fresh name, made here alone (O_EXCL; never through a link). Not through nnlib._files,
#: which reaches nnlib.model, which writes through this module.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_CREATE |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
#: A temporary older than this is a leftover of a killed writer (a write takes well under).
STALE_SECONDS = 60.0


def atomic_write(
    path: Path, write: Callable[[BinaryIO], object], sync: bool = True, parents: bool = True
) -> Path:
    """Write `path` through `write(handle)`; on any exception the temporary file is removed
    before the exception propagates and `path` is untouched. `sync=False` leaves out the
    fsync (a caller that syncs later, off a thread that must not wait on the disk): the
    rename still shows readers the whole file or none. `parents=False`: a missing folder is
    a FileNotFoundError, not made (a file that only belongs in a folder that exists)."""
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, named as _TEMPORARY matches, created 0666 less the
    umask (mkstemp's 0600 would have to be chmod-ed to a mode that ignores the umask)."""
    for _ in range(100):
        tag = "".join(secrets.choice(_NAME_CHARACTERS) for _ in range(8))
        tmp = str(path.parent / f".{path.name}.{tag}.tmp")
        try:
            return os.open(tmp, _CREATE, 0o666), tmp  # 0666 less the umask
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free name for a temporary file beside {path.name}")


def atomic_write_text(path: Path, text: str, sync: bool = True) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), sync)


def remove_stale_temporaries(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete what killed writers left in `folder`: files named like `atomic_write`'s
    temporaries and untouched for `older_than` seconds; never any other file. Returns them.
    A folder that cannot be listed or cleaned is left as it is."""
    removed: list[Path] = []
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
