"""`nnlib runs list`: the runs table of a runs folder, for a person or (--json, --csv) a
script."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError

if TYPE_CHECKING:
    from ..runindex import RunIndex
    from ..runtable import RunRow
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib runs list [DIR] [--filter TERMS] [--wide | --json | --csv]`."""
    listing = commands.add_parser(
        "runs list", help="print the runs table of a runs folder (state, epochs, metrics)"
    )
    listing.add_argument(
        "dir", nargs="?", help="the runs folder (default: $NNLIB_RUNS_DIR, else ./runs)"
    )
    listing.add_argument(
        "--filter",
        metavar="TERMS",
        default="",
        help="only the runs that meet every term: lr<0.1, dataset=glyphs, tag:baseline, "
        "state:crashed, or text in the row",
    )
    shape = listing.add_mutually_exclusive_group()
    shape.add_argument(
        "--wide", action="store_true", help="every column whole, however wide the terminal"
    )
    shape.add_argument(
        "--json", action="store_true", help="one JSON array of records (raw values), for scripts"
    )
    shape.add_argument("--csv", action="store_true", help="the same records as CSV, for scripts")


def run(args: argparse.Namespace) -> int:
    """The table on stdout, then a warning line per run that could not be read whole."""
    from ..runindex import RunIndex
    from ..runtable import format_table, record

    index = RunIndex(args.dir)
    try:
        index.check()
    except ValueError as error:
        raise UsageError(str(error)) from None
    rows = _rows(index, args.filter)
    if args.json:
        print(json.dumps([record(r) for r in rows], indent=1, allow_nan=False))
    elif args.csv:
        _write_csv([record(r) for r in rows])
    else:  # on a terminal the table fits its width; piped or --wide, every column is whole
        fits = sys.stdout.isatty() and not args.wide
        print(format_table(rows, width=shutil.get_terminal_size().columns if fits else None))
    _warn(rows, index.skipped.values())
    return EXIT_OK


def _rows(index: RunIndex, text: str) -> list[RunRow]:
    """The folder's runs and sweeps by start time, those that pass the filter `text`, each
    sweep with its trials under it; UsageError naming --filter when it means nothing."""
    from ..runfilter import FilterError
    from ..runmeta import MetaCache
    from ..runtable import rows_of, select_with_trials, sweep_rows, with_trials
    from ..sweepindex import SweepIndex

    metas = MetaCache()
    sweeps, trials = sweep_rows(SweepIndex(index.root).refresh(), metas, lambda _: True)
    rows = sorted(
        [*rows_of(index.refresh(), metas), *sweeps],
        key=lambda r: (r.summary.started is None, r.summary.started or 0),
    )
    try:
        return with_trials(*select_with_trials(rows, trials, text))
    except FilterError as error:
        raise UsageError(f"--filter: {error}") from None


def _warn(rows: Sequence[RunRow], skipped: Iterable[str]) -> None:
    """On stderr, after the table: what could not be read of each run, the error a run
    ended with, and the folders left out."""
    for row in rows:
        problem = row.summary.problem or row.meta_problem
        if problem:
            print(f"warning: {row.name}: {problem}", file=sys.stderr)
        if row.summary.error:
            print(f"{row.name}: ended with an error: {row.summary.error}", file=sys.stderr)
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)


def _write_csv(records: list[dict[str, Any]]) -> None:
    """Records as CSV on stdout: lists joined by spaces, tables as JSON, None as an empty
    cell."""
    import csv

    from ..runtable import RECORD_FIELDS

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    for item in records:
        writer.writerow([_csv_cell(item[k]) for k in RECORD_FIELDS])


def _csv_cell(value: Any) -> Any:
    """One record value as a CSV cell: a list joined by spaces, a table as JSON, None empty."""
    if isinstance(value, list):
        return " ".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else value
