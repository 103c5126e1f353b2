"""The runs folder's index file (`INDEX_FILE`), as git keeps its index: per run directory, the
row the runs table showed of it and the status of the directory and of the files that row
depends on. A reader that finds a run's status unchanged takes its row from here without
opening the run's files: on 1,000 ended runs with the page cache dropped, opening two small
files a run and parsing them cost about 0.3 s; this file is one read.

A row is kept only for a run that nothing writes (it ended, or its writer died, or it never
started) and that read without a problem. Its status is that of the run directory (a summary
replaced at an epoch end, a writer's lock file made when a run starts or resumes: both change
it) and of its config.json, events.jsonl and lock file (written in place), each as (mode,
inode, size, mtime_ns, ctime_ns). A change made within `SETTLE_NS` of the status being taken
may share its timestamp (file systems stamp times with a coarse clock), so such a run is
not kept until it has settled, as git treats a "racily clean" entry.

The file begins with a hash of the rest: a file that is torn, truncated, too big, of another
format or version, or that fails any check is ignored and written again. It is only ever an
acceleration: deleting it is safe, and a folder that cannot be written simply goes without.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .. import runsummary
from .._atomic import atomic_write
from .._files import read_regular
from .layout import CONFIG_FILE, EVENTS_FILE, LOCK_FILE

#: The index file, in the runs folder: a dot file, which no listing of runs takes for a run.
INDEX_FILE = ".nnlib-index.json"
#: Its first line: this, a space, then the hash of the rest of the file.
HEADER = b"nnlib folder index 1"
#: The largest index file read or written (a row takes about 2 kB: some 30,000 runs).
MAX_BYTES = 64 << 20
#: A status changed within this long before a refresh began is not trusted yet (see above).
SETTLE_NS = 2_000_000_000
#: The states of a run whose row may be kept: any but "running".
KEPT_STATES = frozenset(
    {"finished", "stopped", "diverged", "error", "crashed", "empty"},
)


class FileStatus(NamedTuple):
    """What tells a file (or folder) changed: a new inode, size, mtime or ctime."""

    mode: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class RunStatus(NamedTuple):
    """A run directory's status and its files' (None: missing)."""

    folder: FileStatus | None
    config: FileStatus | None
    events: FileStatus | None
    lock: FileStatus | None

    def holds_run(self) -> bool:
        """A directory with a config or a log (regular files): `runindex.is_run_dir`."""
        return self.folder is not None and any(
            s is not None and stat.S_ISREG(s.mode) for s in (self.config, self.events)
        )

    def key(self) -> str:
        """The status as text: what the index file keeps, compared with the key of one taken
        now (text is checked and compared faster than nested lists of numbers)."""
        return ";".join("-" if s is None else ",".join(map(str, s)) for s in self)

    def settled(self, since: int) -> bool:
        """Nothing in it changed at or after `since` (ns since the epoch)."""
        return all(s is None or max(s.mtime_ns, s.ctime_ns) < since for s in self)


def _status(path: str) -> FileStatus | None:
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileStatus(
        found.st_mode, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns
    )


def run_status(run_dir: str) -> RunStatus:
    """The status of a run directory and of the files its row depends on: four stat calls.
    OSError but a missing file passes through (a directory that cannot be looked into)."""
    folder = _status(run_dir)
    return RunStatus(
        folder,
        *(_status(os.path.join(run_dir, name)) for name in (CONFIG_FILE, EVENTS_FILE, LOCK_FILE)),
    )


@dataclass(frozen=True)
class Entry:
    """One run's row as kept: its state, config and log digest, with the status they held at
    (`RunStatus.key`)."""

    status: str
    state: str
    config: dict[str, Any]
    digest: runsummary.LogDigest

    def record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "state": self.state,
            "config": self.config,
            "digest": asdict(self.digest),
        }


def load(root: Path) -> dict[str, Entry]:
    """The entries of the folder's index file, by run directory name; {} when it has none or
    it cannot be used (an entry that fails a check is left out alone)."""
    try:
        data = read_regular(root / INDEX_FILE, "folder index", limit=MAX_BYTES)
    except (OSError, ValueError):
        return {}
    header, _, body = data.partition(b"\n")
    if header != HEADER + b" " + _hash(body):
        return {}
    try:
        record = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    runs = record.get("runs") if isinstance(record, dict) else None
    if not isinstance(runs, dict):
        return {}
    entries = {}
    for name, value in runs.items():
        entry = _entry(value)
        if entry is not None:
            entries[name] = entry
    return entries


def _entry(value: Any) -> Entry | None:
    """The Entry a record holds, or None when any of it is not what `Entry.record` writes."""
    if not isinstance(value, dict) or set(value) != {"status", "state", "config", "digest"}:
        return None
    status, state, config = value["status"], value["state"], value["config"]
    if not (isinstance(status, str) and isinstance(state, str) and isinstance(config, dict)):
        return None
    if state not in KEPT_STATES:
        return None
    try:
        digest = runsummary.checked_digest(value["digest"], INDEX_FILE)
    except runsummary.SummaryError:
        return None
    return Entry(status, state, config, digest)


def save(root: Path, entries: Mapping[str, Entry]) -> None:
    """Write the folder's index file atomically; a folder that cannot be written (read-only,
    full) or an index past MAX_BYTES goes without one, silently: it is an acceleration."""
    runs = {name: entry.record() for name, entry in entries.items()}
    body = json.dumps({"runs": runs}, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_BYTES - len(HEADER) - 64:
        return
    data = HEADER + b" " + _hash(body) + b"\n" + body
    with contextlib.suppress(OSError):  # parents=False: a folder deleted since it was listed
        atomic_write(  # is not made again holding only this file
            root / INDEX_FILE, lambda handle: handle.write(data), sync=False, parents=False
        )


def _hash(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).hexdigest().encode("ascii")
