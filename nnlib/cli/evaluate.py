"""`nnlib evaluate`: a saved model's loss and accuracy on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, UsageError, fail
from .experiment_args import add_label_column
from .modeldata import check_model_fits, load_data_or_fail, preparation_of

if TYPE_CHECKING:
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib evaluate MODEL --dataset NAME`."""
    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a dataset")
    evaluate.add_argument("checkpoint", help="a model .npz written by nnlib")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--data-dir")
    add_label_column(evaluate)
    evaluate.add_argument("--split", choices=("test", "train"), default="test")


def run(args: argparse.Namespace) -> int:
    """Print the split's size and the model's scores on it, the data prepared as in training."""
    from ..config import ExperimentConfig
    from ..losses import loss_for
    from ..model import load

    try:
        model = load(args.checkpoint)
    except ValueError as error:
        raise UsageError(str(error)) from None
    prepared = preparation_of(Path(args.checkpoint), args.dataset)
    if args.label_column is not None:
        prepared["label_column"] = args.label_column
    try:
        data = load_data_or_fail(
            ExperimentConfig(dataset=args.dataset, data_dir=args.data_dir, **prepared)
        )
    except ValueError as error:
        return fail(str(error), EXIT_FAILED)
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_train, data.y_train)
    check_model_fits(model, data, args.checkpoint, args.dataset)
    result = model.evaluate(x, y, loss_for(data.task))
    print(
        f"{args.split} ({len(x)} samples)  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items())
    )
    return EXIT_OK
