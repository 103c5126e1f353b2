"""A run directory's layout: the files a run writes there, where a run's log is, and how a
new run gets its folder (a fresh one under the runs folder, or one given that holds nothing
yet), made so that a start that fails leaves nothing behind (`NewRunDir.discard`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .._atomic import remove_stale_temporaries
from ..arrays import ARRAYS_FILE

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
#: What the runs table shows of the log, for its first N bytes (see nnlib.runsummary).
SUMMARY_FILE = "summary.json"
#: Held (flock, exclusive) by the process writing a run from its start until its end event.
LOCK_FILE = ".writer.lock"
#: Files a run writes into its directory: a directory holding any of them is never reused.
RUN_FILES = (
    EVENTS_FILE,
    CONFIG_FILE,
    SUMMARY_FILE,
    ARRAYS_FILE,
    "experiment.toml",
    "best.npz",
    "model.npz",
)


class RunDirError(ValueError):
    """A run directory that cannot be used: it holds a run already, or cannot be written."""


class RunDirTaken(RunDirError):
    """A run directory that holds a run already, or anything else: a new run goes elsewhere."""


def log_file(path: str | os.PathLike) -> Path:
    """The events file of a run directory (which may not exist yet), or `path` itself."""
    path = Path(path)
    if path.is_dir() or (not path.exists() and path.suffix != ".jsonl"):
        return path / EVENTS_FILE
    return path


def default_runs_dir() -> Path:
    """$NNLIB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("NNLIB_RUNS_DIR", "runs"))


def _runs_root(root: str | os.PathLike | None) -> Path:
    """The folder new runs go under: `root`, else the default runs folder."""
    return Path(root) if root is not None else default_runs_dir()


def new_run_dir(root: str | os.PathLike | None = None, name: str = "run") -> Path:
    """A fresh directory root/<date-time>-<name>[-n] that no other run uses."""
    root = _runs_root(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # Letters, digits and "-_." kept (\w is str.isalnum's characters and "_"), the rest "-".
    safe = re.sub(r"[^\w.-]", "-", name)[:40] or "run"
    for attempt in range(1000):
        candidate = root / (f"{stamp}-{safe}" + (f"-{attempt}" if attempt else ""))
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise RunDirError(_unusable(root, error)) from None
    raise RunDirError(f"{root}: could not create a new run directory")


def claim_run_dir(path: str | os.PathLike) -> Path:
    """A directory a new run may write: made if missing, or taken when empty (stale
    temporaries of killed writes are removed first). Refused (RunDirError, one line) when it
    already holds a run — a run directory is never reused, so no earlier run is lost — or
    anything else (a user's folder is not written into), or cannot be written."""
    path = Path(path)
    held = _held(path)
    logged = [name for name in RUN_FILES if name in held]
    if logged:
        raise RunDirTaken(
            f"{path}: already holds a run ({', '.join(logged)}); a run directory is never "
            "reused: give a new one, or none for a fresh one under the runs folder"
        )
    if held:
        raise RunDirTaken(
            f"{path}: is not empty ({held[0]}{', ...' if len(held) > 1 else ''}); a run writes "
            "only into a new or empty folder: give another, or none for a fresh one under the "
            "runs folder"
        )
    return path


def _held(path: Path) -> list[str]:
    """What directory `path` holds, by name, sorted: it is made if missing and its stale
    temporaries removed first; an empty one is proved writable (RunDirError if it is not)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        held = sorted(entry.name for entry in os.scandir(path))
        if not held:
            # Prove it is writable now, not after the dataset has loaded.
            with tempfile.TemporaryFile(dir=path):
                pass
    except OSError as error:
        raise RunDirError(_unusable(path, error)) from None
    return held


@dataclass(frozen=True)
class NewRunDir:
    """The directory of a new run before the run has started: `discard` takes back what was
    made for it, so that a start that fails (an error, a signal, a closed terminal) never
    leaves a half-made run folder behind."""

    path: Path
    #: The directories made for the run: its own, then the parents made for it (innermost
    #: first); empty when it was claimed as it stood.
    made: tuple[Path, ...] = ()
    #: What a claimed directory held already, which `discard` leaves alone.
    kept: frozenset[str] = frozenset()

    def started(self) -> bool:
        """The run has opened its log: from then on the folder is a run, however it ends."""
        return (self.path / EVENTS_FILE).exists()

    def discard(self) -> None:
        """Remove what was made for a run that never started: its directory (with what was
        written into it), or in a claimed directory what was added since, then the parent
        folders made for it while they are empty (another run may have been put there)."""
        if self.started():
            return
        if self.made:
            self._remove_made()
        else:
            self._remove_added()

    def _remove_made(self) -> None:
        """The run's own directory, whatever it holds, then its parents made for it, from
        the innermost out, while they are empty."""
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in self.made[1:]:
            try:
                folder.rmdir()
            except OSError:
                break

    def _remove_added(self) -> None:
        """In a claimed directory, what was added since it was claimed."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path):
                if entry.name not in self.kept:
                    _remove(Path(entry.path), entry.is_dir(follow_symlinks=False))


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def reserve_run_dir(
    path: str | os.PathLike | None, root: str | os.PathLike | None = None, name: str = "run"
) -> NewRunDir:
    """`claim_run_dir(path)`, or with no path `new_run_dir(root, name)`, remembering what
    was made, for `NewRunDir.discard`."""
    if path is None:
        parents = _missing(_runs_root(root))
        made = new_run_dir(root, name)
        return NewRunDir(made, (made, *parents))
    missing = _missing(Path(path))
    # A missing directory cannot be listed: nothing is kept (claim_run_dir names any problem).
    kept: frozenset[str] = frozenset()
    with contextlib.suppress(OSError):
        kept = frozenset(os.listdir(path))
    return NewRunDir(claim_run_dir(path), missing, kept)


def _missing(path: Path) -> tuple[Path, ...]:
    """`path` and its parents that do not exist yet, innermost first."""
    return tuple(p for p in (path, *path.parents) if not os.path.lexists(p))


def _unusable(path: Path, error: OSError) -> str:
    return f"{path}: cannot be used as a run directory ({error.strerror or error})"
