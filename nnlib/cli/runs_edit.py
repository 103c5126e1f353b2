"""`nnlib runs tag | note | delete | rename`: what a person keeps about a run (tags, a note)
and where its folder is (the trash, a new name)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from .common import Subcommands


def add_parsers(commands: Subcommands) -> None:
    """`runs tag RUN NAME...`, `runs note RUN TEXT`, `runs delete RUN`, `runs rename RUN NAME`."""
    tagging = commands.add_parser("runs tag", help="add tags to a run (or remove them)")
    tagging.add_argument("run", help="a run directory")
    tagging.add_argument("tags", nargs="+", metavar="NAME", help="letters, digits, _ . + -")
    tagging.add_argument("--remove", action="store_true", help="remove these tags instead")
    note = commands.add_parser("runs note", help="set a run's note (one line; '' removes it)")
    note.add_argument("run", help="a run directory")
    note.add_argument("text", help="the note")
    delete = commands.add_parser(
        "runs delete", help="move a run to the trash folder (<runs folder>/.trash)"
    )
    delete.add_argument("run", help="a run directory")
    delete.add_argument("--yes", action="store_true", help="do not ask first")
    rename = commands.add_parser("runs rename", help="rename a run's folder")
    rename.add_argument("run", help="a run directory")
    rename.add_argument("name", help="its new folder name, in the same runs folder")


def tag_run(args: argparse.Namespace) -> int:
    """Add (or --remove) tags; print the run's tags as they are now."""
    from ..runmeta import tag

    try:
        meta = tag(args.run, remove=args.tags) if args.remove else tag(args.run, add=args.tags)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{args.run}: tags {' '.join(meta.tags) or '(none)'}")
    return EXIT_OK


def note_run(args: argparse.Namespace) -> int:
    """Set (or with '' remove) the run's note."""
    from ..runmeta import set_note

    try:
        meta = set_note(args.run, args.text)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{args.run}: note {meta.note!r}" if meta.note else f"{args.run}: note removed")
    return EXIT_OK


def delete_run(args: argparse.Namespace) -> int:
    """Never silent: without --yes it asks on a terminal, and refuses without one."""
    from ..runmeta import TRASH, movable, trash

    run = Path(args.run)
    try:
        movable(run)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"nnlib runs delete: give --yes to move {run} to the trash")
        answer = input(f"move {run} to {run.parent / TRASH}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("left as it is", file=sys.stderr)
            return EXIT_FAILED
    return _move_run(run, lambda: trash(run), "moved")


def rename_run(args: argparse.Namespace) -> int:
    """Rename the run's folder within its runs folder."""
    from ..runmeta import movable, rename

    run = Path(args.run)
    return _move_run(run, lambda: rename(movable(run), args.name), "renamed")


def _move_run(run: Path, move: Callable[[], Path], verb: str) -> int:
    """Move a run (to the trash, or renamed), then warn about the forks that still name its
    old folder as their parent."""
    from ..runmeta import children, children_warning

    try:
        forks = children(run)
        target = move()
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{verb} {run} to {target}")
    if forks:
        print(f"warning: {children_warning(run, forks)}", file=sys.stderr)
    return EXIT_OK
