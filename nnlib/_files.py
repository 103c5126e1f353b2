"""Opening a file the project reads: the one way, behind datasets, model files, checkpoints,
samples files and TOML configs.

Only regular files are read. A name that is a symbolic link itself is refused (so
`data.npz -> /dev/zero` or `x.csv -> /dev/urandom` cannot feed a reader without end), while
links among the parent folders are followed: a runs or data folder that is a symlink to
another disk works as usual. The open is non-blocking, so a FIFO is refused at once instead
of waiting for a writer that never comes; devices, sockets and folders are refused from
fstat. The size is known before the first byte is read. Every refusal is one `error` (a
ValueError subclass of the caller's choosing) naming the file.

Readers of formats whose header declares a payload size read it with `read_payload`, in
bounded chunks, so memory follows the bytes a file really holds, never its header's word.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO, BinaryIO

from . import _memory

#: Read chunk of `read_payload`.
CHUNK = 1 << 20
#: deflate cannot expand data by more than about 1032:1, so a compressed stream of n bytes
#: holds at most this many times n bytes (plus a little slack for tiny streams).
MAX_DEFLATE_RATIO = 1032
_SLACK = 1024

#: Every open here: never through a symbolic link, never waiting on a FIFO (refused from
#: fstat instead), not inherited by a child process.
_SAFE = (
    getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_descriptor(
    path: str | os.PathLike,
    flags: int,
    what: str = "file",
    error: type[ValueError] = ValueError,
    mode: int = 0o666,
) -> int:
    """A descriptor of `path` opened with `flags` (os.O_CREAT makes it with `mode` less the
    umask) if it is a regular file and not a symbolic link; else `error` naming it and `what`
    it should be, in one line. Other OSErrors pass through, so that a caller can tell a
    missing file (FileNotFoundError) or a forbidden one from a refused one. For writers too:
    a link planted in place of a file must not make them write, or chmod, its target."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise error(
                f"{path}: is a symbolic link, not a regular file ({what} expected; give the "
                "file's own path: only a linked folder is followed)"
            ) from None
        raise
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise error(f"{path}: is {_kind(kind)}, not a regular file ({what} expected)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(
    path: str | os.PathLike, what: str = "file", error: type[ValueError] = ValueError
) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file and not a symbolic link;
    else `error` naming it and `what` it should be ("model file"), in one line."""
    try:
        fd = open_descriptor(path, os.O_RDONLY, what, error)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(handle: BinaryIO) -> int:
    """The size of an open file, as fstat says."""
    return os.fstat(handle.fileno()).st_size


def read_regular(
    path: str | os.PathLike,
    what: str = "file",
    error: type[ValueError] = ValueError,
    limit: int | None = None,
) -> bytes:
    """The whole of a regular file (`open_regular`), its size checked before it is read:
    at most `limit` bytes, or without a limit no more than the free memory."""
    with open_regular(path, what, error) as handle:
        size = file_size(handle)
        if limit is None:
            check_memory(size, f"{path}: the {what}", error)
        elif size > limit:
            raise error(f"{path}: {size:,} bytes, more than the {limit:,} a {what} may have")
        try:
            return handle.read(size)
        except OSError as exc:
            raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def deflate_bound(compressed_bytes: int) -> int:
    """The most bytes a deflate (gzip, zip) stream of this size can decompress to."""
    return compressed_bytes * MAX_DEFLATE_RATIO + _SLACK


def read_payload(
    f: IO[bytes], nbytes: int, where: str, what: str, error: type[ValueError] = ValueError
) -> bytearray:
    """Exactly `nbytes` from stream `f`, then its end.

    Read in chunks, so a header that promises more than the stream holds costs only the bytes
    that are really there. `what` describes the claim in messages ("the header declares ...").
    """
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = f.read(min(CHUNK, nbytes - len(buf)))
        if not chunk:
            raise error(
                f"{where}: truncated: {what} ({nbytes} bytes) but only {len(buf)} bytes follow"
            )
        buf += chunk
    if f.read(1):
        raise error(f"{where}: {what} ({nbytes} bytes) but extra bytes follow the payload")
    return buf


def check_memory(nbytes: int, subject: str, error: type[ValueError] = ValueError) -> None:
    """Refuse, before anything is allocated, `nbytes` that `subject` ("<file>: its arrays")
    would take when they exceed the memory this process can still allocate
    (`nnlib._memory.available_memory`)."""
    available, source = _memory.available_memory()
    if nbytes > available:
        raise error(
            f"{subject} would take {_memory.human_bytes(nbytes)}, more than the "
            f"{_memory.human_bytes(available)} of memory available ({source})"
        )
