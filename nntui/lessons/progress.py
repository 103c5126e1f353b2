"""Where each learner is in each lesson: the step they were on and the tasks they did, kept in
the user's state folder so that leaving a lesson and coming back resumes at the same step.

The file is written atomically (a crash leaves the old file or the new one, never half). One
that cannot be read or is not a progress file (damaged, a link, edited by hand) is set aside
with a message: the lessons start over, and the next save writes a good file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnlib._atomic import atomic_write_text
from nnlib._files import read_regular

FILE = "lessons.json"
VERSION = 1
#: A progress file is a line per lesson; anything past this is not one.
MAX_BYTES = 64 * 1024


def state_dir() -> Path:
    """nntui's folder in the user's state folder: $XDG_STATE_HOME/nntui, else
    ~/.local/state/nntui (the XDG base directory default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nntui"


@dataclass
class Place:
    """One lesson's progress: the step shown last and the steps whose task is done."""

    step: int = 0
    done: set[int] = field(default_factory=set)


class ProgressStore:
    """The learner's places in every lesson, read once and saved after each change."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / FILE
        #: Why the file could not be read (the lessons then start over), or None.
        self.problem: str | None = None
        self.places: dict[str, Place] = {}
        self._read()

    def _read(self) -> None:
        if not os.path.lexists(self.path):  # no lesson begun yet
            return
        try:
            data = read_regular(self.path, "lesson progress file", ValueError, limit=MAX_BYTES)
        except ValueError as error:
            self.problem = f"{error}; starting the lessons over"
            return
        try:
            self.places = _places(json.loads(data.decode("utf-8")))
        except (ValueError, TypeError, RecursionError) as error:
            self.problem = (
                f"{self.path}: not a lesson progress file ({error}); starting the lessons over"
            )

    def place(self, lesson: str, steps: int) -> Place:
        """Where the learner is in `lesson` (of `steps` steps): a step beyond its end (the
        lesson got shorter) is its last one."""
        place = self.places.setdefault(lesson, Place())
        place.step = min(max(place.step, 0), steps - 1)
        place.done = {step for step in place.done if step < steps}
        return place

    def save(self) -> str | None:
        """Write the file; the reason it could not be written, or None."""
        data = {
            "version": VERSION,
            "lessons": {
                lesson: {"step": place.step, "done": sorted(place.done)}
                for lesson, place in sorted(self.places.items())
            },
        }
        try:
            atomic_write_text(self.path, json.dumps(data, indent=1) + "\n")
        except OSError as error:
            return f"{self.path}: cannot save the lesson progress ({error.strerror or error})"
        return None


def _places(data: Any) -> dict[str, Place]:
    """The places in a progress file's JSON; ValueError saying what is wrong."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"expected an object with version {VERSION}")
    lessons = data.get("lessons")
    if not isinstance(lessons, dict):
        raise ValueError("expected 'lessons' to be an object")
    places = {}
    for name, entry in lessons.items():
        step = entry.get("step") if isinstance(entry, dict) else None
        done = entry.get("done") if isinstance(entry, dict) else None
        numbers = [step, *(done if isinstance(done, list) else [None])]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ValueError(f"lesson {name!r}: expected a step and a list of steps done")
        places[name] = Place(step, set(done))  # type: ignore[arg-type]
    return places
