"""`nnlib sweep`: many runs of one base experiment, ranked; continued with --resume."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .argtypes import positive_int
from .common import EXIT_FAILED, EXIT_OK, UsageError, fail

if TYPE_CHECKING:
    from .common import Subcommands
    from .signals import StopSignals


def add_parser(commands: Subcommands) -> None:
    """`nnlib sweep (SWEEP.toml | --resume DIR)` with where and how the trials run."""
    sweep = commands.add_parser(
        "sweep", help="run a hyperparameter/architecture sweep: many runs, ranked"
    )
    sweep.add_argument(
        "sweep_file",
        nargs="?",
        metavar="SWEEP.toml",
        help="a base experiment (the --config keys) with a [sweep] table",
    )
    sweep.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a stopped sweep: rerun its unfinished trials",
    )
    sweep.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="the sweep folder, new or empty (default: a new one under ./runs or $NNLIB_RUNS_DIR)",
    )
    sweep.add_argument(
        "--workers",
        type=positive_int,
        help="trials at once (default: one per core locally, the cluster's threads on Dask)",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the trials on this Dask cluster (e.g. tcp://host:8786); "
        "needs pip install 'nntui[cluster]'",
    )
    sweep.add_argument(
        "--connect-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for the Dask scheduler to answer (default 20)",
    )


def run(args: argparse.Namespace, signals: StopSignals) -> int:
    """Create (or reopen with --resume) a sweep folder, run its trials, print the ranking.
    Ctrl+C stops the running trials at a batch boundary (their logs end) and exits 130."""
    from ..config import ConfigError
    from ..sweeps import WorkersLost, create_sweep, load_sweep, run_sweep

    sweep_dir = _check_folders(args)
    try:
        if sweep_dir is None:
            spec = load_sweep(args.sweep_file)
            sweep_dir = create_sweep(spec, args.sweep_dir, name=Path(args.sweep_file).stem)
        index = run_sweep(
            sweep_dir,
            workers=args.workers,
            scheduler=args.scheduler,
            report=lambda line: print(line, file=sys.stderr, flush=True),
            connect_timeout=args.connect_timeout,
        )
    except ConfigError as error:  # a sweep file, folder or scheduler that cannot be used
        raise UsageError(str(error)) from None
    except WorkersLost as error:  # the scheduler is gone: the trials run so far are kept
        return fail(str(error), EXIT_FAILED)
    except KeyboardInterrupt:
        if signals.received is None:  # not ours (a worker's): let main report it
            raise
        name = signal.Signals(signals.received).name
        print(
            f"interrupted ({name}); continue with: nnlib sweep --resume {sweep_dir}",
            file=sys.stderr,
        )
        return signals.exit_code
    return _print_ranking(index, sweep_dir)


def _check_folders(args: argparse.Namespace) -> Path | None:
    """The folder --resume names (None for a new sweep), once the file and folder flags are
    known to fit together."""
    if (args.sweep_file is None) == (args.resume is None):
        raise UsageError("nnlib sweep: give a SWEEP.toml file, or --resume SWEEP_DIR (not both)")
    if args.resume is not None and args.sweep_dir is not None:
        raise UsageError("nnlib sweep: --sweep-dir is for a new sweep; --resume names the folder")
    for flag, value in (("--resume", args.resume), ("--sweep-dir", args.sweep_dir)):
        if value == "":
            raise UsageError(f"{flag}: give the sweep folder, got ''")
    return None if args.resume is None else Path(args.resume)


def _print_ranking(index: dict[str, Any], sweep_dir: Path) -> int:
    """The ranking table on stdout, failures and what is left on stderr; exit 0 when every
    trial finished and one is best."""
    from rich.console import Console

    from ..sweeps.report import best_line, failures, ranking_table, unfinished

    Console().print(ranking_table(index))
    for line in failures(index):
        print(line, file=sys.stderr)
    print(best_line(index, str(sweep_dir)), file=sys.stderr)
    left = unfinished(index, str(sweep_dir))
    if left:
        print(left, file=sys.stderr)
    return EXIT_OK if index["best"] is not None and not left else EXIT_FAILED
