"""The experiment flags that `nnlib train` and `nntui` share, and the config they make."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .argtypes import column, positive_int
from .common import UsageError

if TYPE_CHECKING:
    from ..config import ExperimentConfig


def add_label_column(parser: argparse.ArgumentParser) -> None:
    """--label-column: which column of a CSV dataset holds the labels."""
    parser.add_argument(
        "--label-column",
        type=column,
        metavar="NAME|INDEX",
        help="the label column of a CSV dataset, by header name or 0-based index "
        "(default: a column called label/target/class/y, else the first)",
    )


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `nnlib train` and `nntui`; they override --config values."""
    parser.add_argument("--config", metavar="FILE.toml", help="load an experiment config file")
    parser.add_argument(
        "--dataset", help="built-in name (see `nnlib datasets`) or a .npz/.csv file or IDX folder"
    )
    add_label_column(parser)
    parser.add_argument(
        "--arch",
        metavar="SPEC",
        help="architecture spec, e.g. 784-128-10, or a preset: mlp, lenet, cnn, vgg, small",
    )
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--momentum", type=float, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, help="L2 weight decay")
    parser.add_argument("--l1", type=float, help="L1 regularization of the weights")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--validation-split",
        type=float,
        metavar="FRACTION",
        help="share of the training data held out for validation, in [0, 1) (default 0.1)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        help="noise of a generated dataset, in its own unit (default: the dataset's; see "
        "`nnlib datasets`)",
    )
    parser.add_argument("--subset", type=positive_int, help="train on the first N samples")
    parser.add_argument(
        "--data-dir",
        help="data folder (default: $NNLIB_DATA_DIR, the "
        "checkout's datasets/, or a per-user cache)",
    )
    parser.add_argument(
        "--run-dir",
        help="write the run log here (default: a new directory under ./runs or $NNLIB_RUNS_DIR)",
    )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """ExperimentConfig from --config and the flags; raises UsageError on a bad value."""
    from ..config import ConfigError, ExperimentConfig

    try:
        base = ExperimentConfig.load(args.config) if args.config else ExperimentConfig()
        return base.replace(**experiment_flags(args))
    except ConfigError as error:
        raise UsageError(str(error)) from None


def experiment_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the experiment flags set (None where a flag is not given)."""
    return {
        "dataset": args.dataset,
        "arch": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "l1": args.l1,
        "seed": args.seed,
        "validation_split": args.validation_split,
        "noise": args.noise,
        "subset": args.subset,
        "data_dir": args.data_dir,
        "run_dir": args.run_dir,
        "label_column": args.label_column,
    }
