"""`nnlib runs RUN`: print a run log, or follow one being written (--follow)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, UsageError, fail

if TYPE_CHECKING:
    from .common import Subcommands

#: What `nnlib runs` leaves out: one line per batch, and summaries made for a picture.
RUNS_SKIPPED = ("batch", "histograms", "confusion", "regression")


def add_parser(commands: Subcommands) -> None:
    """`nnlib runs RUN [--follow]`."""
    runs = commands.add_parser("runs", help="print a run log, or follow one being written")
    runs.add_argument("run", help="a run directory or its events.jsonl")
    runs.add_argument("--follow", action="store_true", help="keep printing until the run ends")


def run(args: argparse.Namespace) -> int:
    """One line per event (RUNS_SKIPPED aside); a writer that died is a failed run."""
    from .. import runs

    try:
        events = runs.follow(args.run) if args.follow else iter(runs.read(args.run))
        for event in events:
            if event.type not in RUNS_SKIPPED:
                print(f"step {event.step:>7}  {event.type:<11} {event.describe()}", flush=True)
    except runs.WriterGone as error:  # the run failed: not a usage error
        return fail(str(error), EXIT_FAILED)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK
