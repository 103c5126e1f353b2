"""What a user adds to a run and does with it in the runs folder: tags and a note, kept in
`<run>/meta.json` (`nnlib runs tag`, `nnlib runs note`, the runs screen's `t` and `n`),
moving a run to the folder's trash, and renaming it (`nnlib runs delete`, `rename`).

meta.json is the user's, not the run's: a run's writer never touches it, so it can be
written while the run is written. It is written atomically and read strictly (a regular
file, not a link, at most MAX_META_BYTES): `{"tags": ["baseline"], "note": "one line"}`.

A run is never deleted: it goes to `<runs folder>/.trash/<name>` (a folder the runs table
does not list), from where it can be moved back by hand. A run being written is neither
moved nor renamed. A fork names its parent's directory in its config.json (`"parent":
{"run": ...}`); moving the parent leaves that link naming the old place, which the caller
is told (`children`): the runs themselves are not rewritten.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runs
from ._atomic import atomic_write_text
from ._files import read_regular

META_FILE = "meta.json"
#: A meta.json larger than this is not one this module wrote.
MAX_META_BYTES = 64 * 1024
#: The trash folder inside a runs folder.
TRASH = ".trash"
MAX_TAG = 32
MAX_NOTE = 500
#: A tag: letters, digits and _ . + - (no spaces, commas or filter operators), so that it
#: reads back from `tag:NAME` and a space-separated list.
TAG = re.compile(r"[\w.+-]+")
#: A run's new name: a plain folder name, not hidden (a name starting with a dot).
RUN_NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]*")


class RunMetaError(ValueError):
    """A bad tag, note, name or meta.json, or a run that cannot be moved now: one line."""


@dataclass(frozen=True)
class RunMeta:
    """A run's tags (in the order they were added, each once) and its note."""

    tags: tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> str:
        return json.dumps({"tags": list(self.tags), "note": self.note}, indent=1) + "\n"


def check_tag(name: str) -> str:
    """`name` as a tag, or RunMetaError saying what a tag may hold."""
    if not (isinstance(name, str) and 0 < len(name) <= MAX_TAG and TAG.fullmatch(name)):
        raise RunMetaError(
            f"bad tag {name!r}: expected 1 to {MAX_TAG} letters, digits or _ . + - "
            "(no spaces or commas)"
        )
    return name


def check_note(text: str) -> str:
    """`text` as a note (one line of at most MAX_NOTE characters, outer blanks dropped)."""
    text = text.strip() if isinstance(text, str) else text
    if not isinstance(text, str) or len(text) > MAX_NOTE or not text.isprintable():
        raise RunMetaError(
            f"bad note: expected one line of at most {MAX_NOTE} printable characters"
        )
    return text


def read_meta(run_dir: str | os.PathLike) -> RunMeta:
    """The run's tags and note (none when it has no meta.json); RunMetaError naming the file
    when it is not a regular file or not what `write_meta` writes."""
    path = Path(run_dir) / META_FILE
    try:
        data = read_regular(path, "run meta file", RunMetaError, MAX_META_BYTES)
    except RunMetaError:
        if not os.path.lexists(path):
            return RunMeta()
        raise
    try:
        record = json.loads(data.decode("utf-8"))
        tags, note = record["tags"], record["note"]
        if not isinstance(tags, list):
            raise TypeError("tags is not a list")
        return RunMeta(tuple(dict.fromkeys(check_tag(t) for t in tags)), check_note(note))
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        raise RunMetaError(
            f"{path}: not a run meta file (expected {{'tags': [...], 'note': '...'}}: {error})"
        ) from None


def write_meta(run_dir: str | os.PathLike, meta: RunMeta) -> None:
    """Replace the run's meta.json (atomically) after checking every tag and the note."""
    run_dir = _run_dir(run_dir)
    meta = RunMeta(tuple(dict.fromkeys(map(check_tag, meta.tags))), check_note(meta.note))
    atomic_write_text(run_dir / META_FILE, meta.to_json())


def tag(run_dir: str | os.PathLike, add: Iterable[str] = (), remove: Iterable[str] = ()) -> RunMeta:
    """Add and remove tags (every one checked before anything is written); the new meta."""
    add, remove = [check_tag(t) for t in add], {check_tag(t) for t in remove}
    meta = read_meta(_run_dir(run_dir))
    tags = tuple(t for t in dict.fromkeys([*meta.tags, *add]) if t not in remove)
    new = RunMeta(tags, meta.note)
    write_meta(run_dir, new)
    return new


def set_note(run_dir: str | os.PathLike, text: str) -> RunMeta:
    """Set the run's note ("" removes it); the new meta."""
    meta = RunMeta(read_meta(_run_dir(run_dir)).tags, check_note(text))
    write_meta(run_dir, meta)
    return meta


def set_tags(run_dir: str | os.PathLike, names: Iterable[str]) -> RunMeta:
    """Give the run exactly these tags (the app's tag field); the new meta."""
    meta = RunMeta(tuple(map(check_tag, names)), read_meta(_run_dir(run_dir)).note)
    write_meta(run_dir, meta)
    return meta


class MetaCache:
    """Every run's meta, read again only when its meta.json changed (the runs screen looks
    at the folder every second)."""

    def __init__(self) -> None:
        self._known: dict[Path, tuple[Any, RunMeta, str]] = {}

    def get(self, run_dir: Path) -> tuple[RunMeta, str]:
        """(meta, problem): the problem is "" or why meta.json could not be read."""
        try:
            info = os.stat(run_dir / META_FILE, follow_symlinks=False)
            signature: Any = (info.st_size, info.st_mtime_ns, info.st_ino)
        except OSError:
            signature = None
        known = self._known.get(run_dir)
        if known is not None and known[0] == signature:
            return known[1], known[2]
        try:
            meta, problem = read_meta(run_dir), ""
        except (RunMetaError, OSError) as error:
            meta, problem = RunMeta(), str(error)
        self._known[run_dir] = (signature, meta, problem)
        return meta, problem


# -- trash and rename -----------------------------------------------------------------------------
def _run_dir(path: str | os.PathLike) -> Path:
    """`path` if it is a run directory; RunMetaError otherwise."""
    from .runindex import is_run_dir

    path = Path(path)
    if not path.is_dir():
        raise RunMetaError(f"{path}: no such run directory")
    if not is_run_dir(path):
        raise RunMetaError(f"{path}: not a run directory (no {runs.CONFIG_FILE} or log)")
    return path


def movable(path: str | os.PathLike) -> Path:
    """`path` if it is a run directory that no process is writing; RunMetaError otherwise."""
    path = _run_dir(path)
    if runs.writer_alive(path):
        raise RunMetaError(f"{path}: the run is being written; stop it first")
    return path


def children(run_dir: str | os.PathLike) -> list[Path]:
    """The runs beside `run_dir` forked from it (their config.json names it as parent)."""
    run_dir = Path(run_dir)
    out = []
    for entry in sorted(run_dir.parent.iterdir()):
        if entry == run_dir or not entry.is_dir():
            continue
        parent = _config(entry).get("parent")
        named = parent.get("run") if isinstance(parent, Mapping) else None
        if isinstance(named, str) and Path(named).name == run_dir.name:
            out.append(entry)
    return out


def _config(run_dir: Path) -> dict[str, Any]:
    """A run's config.json, or {} when it has none that can be read."""
    try:
        data = read_regular(run_dir / runs.CONFIG_FILE, "run config", limit=MAX_META_BYTES * 16)
        config = json.loads(data.decode("utf-8"))
    except (ValueError, OSError, RecursionError):
        return {}
    return config if isinstance(config, dict) else {}


def trash(run_dir: str | os.PathLike) -> Path:
    """Move the run to `<runs folder>/.trash/` (under a free name: name, name-2, ...) and
    return where it went. Refused while the run is being written."""
    run_dir = movable(run_dir)
    folder = run_dir.parent / TRASH
    folder.mkdir(exist_ok=True)
    for n in range(1, 10_000):
        target = folder / (run_dir.name if n == 1 else f"{run_dir.name}-{n}")
        if not os.path.lexists(target):
            os.rename(run_dir, target)
            return target
    raise RunMetaError(f"{folder}: no free name for {run_dir.name}; empty the trash")


def check_name(name: str) -> str:
    """`name` as a run's new folder name, or RunMetaError."""
    if not (isinstance(name, str) and RUN_NAME.fullmatch(name) and len(name) <= 255):
        raise RunMetaError(
            f"bad run name {name!r}: expected a folder name (no '/', not starting with '.')"
        )
    return name


def rename(run_dir: str | os.PathLike, name: str) -> Path:
    """Rename the run's folder to `name` in the same runs folder; its new path. Refused when
    that name is taken or the run is being written."""
    run_dir = movable(run_dir)
    target = run_dir.parent / check_name(name)
    if os.path.lexists(target):
        raise RunMetaError(f"{target}: already exists; choose another name")
    os.rename(run_dir, target)
    return target


def children_warning(old: Path, forks: list[Path]) -> str:
    """What a move did to the runs forked from `old` (one line), "" when there are none."""
    if not forks:
        return ""
    names = ", ".join(p.name for p in forks[:5]) + (", ..." if len(forks) > 5 else "")
    return (
        f"{len(forks)} run{'s' if len(forks) > 1 else ''} forked from {old.name} ({names}) "
        f"still name {old} as their parent, which is no longer there"
    )
