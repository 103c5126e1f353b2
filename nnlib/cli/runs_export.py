"""`nnlib runs export`: a run's metrics as CSV, or all its events as JSON, for other tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .argtypes import smoothing
from .common import EXIT_OK, UsageError

if TYPE_CHECKING:
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib runs export RUN [--csv FILE] [--json FILE] [--smoothing W]`."""
    export = commands.add_parser(
        "runs export", help="write a run's metrics as CSV, or all its events as JSON"
    )
    export.add_argument("run", help="a run directory or its events.jsonl")
    export.add_argument(
        "--csv",
        metavar="FILE",
        help="batch and epoch metrics, raw and smoothed, one row each ('-': stdout)",
    )
    export.add_argument(
        "--json", metavar="FILE", help="every event as a JSON array of records ('-': stdout)"
    )
    export.add_argument(
        "--smoothing",
        type=smoothing,
        default=None,
        help="EMA weight of the smoothed columns, in [0, 1) (default: the app's, 0.6)",
    )


def run(args: argparse.Namespace) -> int:
    """Read everything first, then write each output (atomically, or to stdout for '-')."""
    from .._atomic import atomic_write_text
    from ..runindex import DEFAULT_SMOOTHING, curves_csv, events_json, read_curves

    if args.csv is None and args.json is None:
        raise UsageError("nnlib runs export: give --csv FILE, --json FILE or both")
    weight = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    try:  # everything is read before anything is written
        outputs = []
        if args.csv is not None:
            outputs.append((args.csv, curves_csv(read_curves(args.run), weight)))
        if args.json is not None:
            outputs.append((args.json, events_json(args.run)))
    except ValueError as error:
        raise UsageError(str(error)) from None
    for target, text in outputs:
        if target == "-":
            sys.stdout.write(text)
        else:
            atomic_write_text(Path(target), text)
            print(f"wrote {target}", file=sys.stderr)
    return EXIT_OK
