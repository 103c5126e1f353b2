"""`nntui` command line: the same experiment flags as `nnlib train` (and --config), plus
--start (or --start-paused), and --open to show a recorded run. Bad flags or values, a run
that cannot be read or a path the OS refuses print one line on stderr and exit with code 2
before the terminal is taken over."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnlib.config import ExperimentConfig
    from nnlib.datasets import DatasetInfo

    from .replay import RecordedRun

EXIT_USAGE = 2
#: --graphics values (nntui.widgets.picture.MODES; not imported here, so that --help is quick).
GRAPHICS = ("auto", "kitty", "sixel", "cells")
#: Epochs when neither a flag nor a config file says: long enough to watch and steer.
DEFAULT_EPOCHS = 20


def parser() -> argparse.ArgumentParser:
    from nnlib.cli import OneLineParser, add_experiment_arguments

    p = OneLineParser(
        prog="nntui",
        description="Train nnlib models in the terminal and watch them "
        "learn: live loss and accuracy curves, weight and gradient histograms, a "
        "confusion matrix, and keys to pause, step, stop and change hyperparameters.",
        epilog="Without --start, the setup screen opens with these values filled in. "
        "Every run writes its log under ./runs (or $NNLIB_RUNS_DIR).",
    )
    add_experiment_arguments(p)
    p.add_argument(
        "--start", action="store_true", help="skip the setup screen and start training at once"
    )
    p.add_argument(
        "--start-paused",
        action="store_true",
        help="start training at once, paused before the first batch: n runs one batch, "
        "space runs on",
    )
    p.add_argument(
        "--open",
        metavar="RUN_DIR",
        help="show a recorded run (a directory written by nnlib train or nntui) "
        "without training; a run still being written is followed as it grows",
    )
    p.add_argument(
        "--graphics",
        choices=GRAPHICS,
        default="auto",
        help="how images, feature maps, the boundary and the neurons are drawn: auto (ask "
        "the terminal), kitty (the Kitty graphics protocol), sixel, or cells (half blocks, "
        "two pixels a character; also what auto takes when the output is not a terminal)",
    )
    p.add_argument(
        "--runs",
        nargs="?",
        const="",
        metavar="DIR",
        help="open the runs screen on a runs folder (default: $NNLIB_RUNS_DIR, else ./runs): "
        "sort, filter, compare and open runs",
    )
    p.add_argument(
        "--lessons",
        action="store_true",
        help="open the lessons: tutorials followed step by step on live runs",
    )
    p.add_argument(
        "--lang",
        choices=("en", "zh"),
        help="the lessons' language (default: zh when LC_ALL, LC_MESSAGES or LANG starts with "
        "zh, else en)",
    )
    return p


def file_info(
    path: str, data_dir: str | None, label_column: int | str | None = None
) -> DatasetInfo:
    """A listing entry for a user's dataset file, read once to learn its shape and task."""
    from nnlib import datasets

    data = datasets.load(path, data_dir=data_dir, label_column=label_column)
    return datasets.DatasetInfo(
        path,
        data.description or "your dataset file",
        data.task,
        tuple(data.input_shape),
        data.num_classes,
        data.train_size,
        data.test_size,
        True,
        "file",
    )


def experiment_from_args(args: argparse.Namespace) -> tuple[ExperimentConfig, DatasetInfo | None]:
    """(ExperimentConfig, listing entry for a user file or None) from the flags; raises
    nnlib.cli.UsageError when they cannot be used."""
    from nnlib.cli import UsageError, config_from_args

    from .architectures import check_spec, quick_arch

    config, info, extra = _resolve_dataset(config_from_args(args))
    if config.arch:
        result = check_spec(config.arch, info)
        if result.error:
            raise UsageError(f"--arch: {result.error}")
    else:
        config = config.replace(arch=quick_arch(info))
    if args.config is None and args.epochs is None:
        config = config.replace(epochs=DEFAULT_EPOCHS)
    return config, extra


def _resolve_dataset(
    config: ExperimentConfig,
) -> tuple[ExperimentConfig, DatasetInfo, DatasetInfo | None]:
    """The config with its dataset found the way `nnlib train` finds it (built-in names, then
    paths here or in the data folder), that dataset's listing entry, and the entry again when
    it is a user's file (the app lists it beside the built-ins); UsageError if there is none."""
    from nnlib import datasets
    from nnlib.cli import UsageError

    try:
        found = datasets.resolve(config.dataset, config.data_dir)
        if not isinstance(found, str):
            info = file_info(config.dataset, config.data_dir, config.label_column)
            return config, info, info
    except ValueError as error:
        raise UsageError(f"--dataset: {error}") from None
    if config.label_column is not None:
        raise UsageError(
            f"--label-column: applies to .csv dataset files, not to the built-in {found}"
        )
    infos = {info.name: info for info in datasets.available(config.data_dir)}
    return config.replace(dataset=found), infos[found], None


def _runs_dir(value: str | None) -> Path | None:
    """The folder of --runs (its default when given bare); UsageError if it is not one."""
    from nnlib.cli import UsageError
    from nnlib.runindex import RunIndex

    if value is None:
        return None
    index = RunIndex(value or None)
    try:
        index.check()
    except ValueError as error:
        raise UsageError(f"--runs: {error}") from None
    return index.root


def _experiment(
    args: argparse.Namespace,
) -> tuple[ExperimentConfig, DatasetInfo | None, RecordedRun | None]:
    """What the app starts with: the experiment (and a user file's listing entry) of the run
    --open names, with that recorded run, or else of the flags; UsageError if it cannot."""
    from nnlib.cli import UsageError

    if args.open is None:
        return (*experiment_from_args(args), None)
    from .replay import open_run

    try:
        recorded = open_run(args.open)
    except ValueError as error:
        raise UsageError(f"--open: {error}") from None
    return recorded.experiment(), None, recorded


def main(argv: Sequence[str] | None = None) -> int:
    """The `nntui` command: a usage error is one line and exit 2 before the terminal is
    taken over; else the app runs and its return code is the exit code."""
    from nnlib.cli import UsageError, describe_os_error

    try:
        args = parser().parse_args(argv)
        runs_dir = _runs_dir(args.runs)
        config, extra, recorded = _experiment(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a path the OS refuses (too long, not permitted): one line
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    from nnlib.datasets import available

    from .app import NNTui
    from .widgets import picture

    # Before Textual starts: textual_image asks the terminal when it is imported.
    picture.choose(args.graphics, tty=bool(sys.__stdout__ and sys.__stdout__.isatty()))

    listing = available(config.data_dir) + ([extra] if extra else [])
    app = NNTui(
        config,
        start=args.start or args.start_paused,
        datasets=listing,
        recorded=recorded,
        runs=runs_dir,
        start_paused=args.start_paused,
        lessons=args.lessons,
        lang=args.lang,
    )
    app.run()
    return app.return_code or 0
