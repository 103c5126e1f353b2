"""`nnlib trace`: one sample through the network, as numbers (nnlib.trace)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .argtypes import non_negative_int
from .common import EXIT_FAILED, EXIT_OK, UsageError, fail
from .experiment_args import add_label_column
from .modeldata import check_model_fits, load_data_or_fail, preparation_of

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..datasets import Prepared
    from ..model import Sequential
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib trace`: one sample through the network, as numbers (nnlib.trace)."""
    trace = commands.add_parser(
        "trace",
        help="one sample through the network: every layer's input, output and gradients",
        description="Run one sample, as a batch of one, through a float64 copy of the model "
        "in evaluation mode (BatchNorm uses its moving statistics, dropout is off) and back "
        "from the loss (softmax cross-entropy, or MSE for regression). Prints per layer the "
        "shape, min, max and mean of its input, output, gradients and parameters; with --json "
        "every value.",
    )
    trace.add_argument(
        "--dataset",
        required=True,
        help="built-in name (see `nnlib datasets`) or a .npz/.csv file or IDX folder",
    )
    trace.add_argument(
        "--sample",
        required=True,
        type=non_negative_int,
        metavar="I",
        help="the sample's index in the split, from 0",
    )
    trace.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="train",
        help="where the sample is taken from, after the data is prepared as nnlib train "
        "prepares it: train (the default; the training split once the validation split is "
        "taken out of it), val or test",
    )
    model = trace.add_mutually_exclusive_group()
    model.add_argument(
        "--arch",
        metavar="SPEC",
        help="build this architecture with the weights nnlib train starts from (default: the "
        "architecture nnlib train picks for the dataset)",
    )
    model.add_argument(
        "--model",
        metavar="FILE.npz",
        help="load a model file, e.g. RUN/model.npz; the data is prepared as the config.json "
        "beside it says (seed, validation split, subset), as nnlib evaluate does",
    )
    trace.add_argument(
        "--seed",
        type=non_negative_int,
        metavar="S",
        help="the seed of the initial weights and of the data (generated datasets, the "
        "validation split), as for nnlib train (default 0; with --model, its run's)",
    )
    trace.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"loss": ..., "layers": [{"name", "kind", "params", '
        '"input", "output", "grad_output", "grad_input", "grads"}]}, every array as nested '
        "lists of float64 values with the batch axis first (null where not finite); it holds "
        "every weight twice, about 40 bytes per parameter (LeNet-5 on glyphs: 3 MB)",
    )
    trace.add_argument("--data-dir")
    add_label_column(trace)


def run(args: argparse.Namespace) -> int:
    """One sample through the network (nnlib.trace): a readable summary, or every value as
    JSON. The model is built as nnlib train builds it, or loaded (--model)."""
    from ..losses import loss_for
    from ..trace import fit as fit_line
    from ..trace import trace

    config, loaded = _config_and_model(args)
    try:
        data = load_data_or_fail(config)
    except ValueError as error:
        return fail(str(error), EXIT_FAILED)
    model = _model_for(args, config, data, loaded)
    x, y = {
        "train": (data.x_train, data.y_train),
        "val": (data.x_val, data.y_val),
        "test": (data.x_test, data.y_test),
    }[args.split]
    if args.sample >= len(x):
        raise UsageError(
            f"--sample: {args.sample} is out of range: the {args.split} split of "
            f"{data.dataset.name} has {len(x)} samples"
            + (f" (0 to {len(x) - 1})" if len(x) else "")
        )
    i = args.sample
    result = trace(model, x[i : i + 1], y[i : i + 1], loss_for(data.task))
    if args.json:
        json.dump(result.to_dict(), sys.stdout, allow_nan=False)
        print()
        return EXIT_OK
    if data.task == "regression":
        target = f"target {y[i].tolist()}"
    else:
        name = data.class_names[y[i]] if data.class_names else str(y[i])
        target = f"label {y[i]}" + ("" if name == str(y[i]) else f" ({name})")
    print(fit_line(f"sample {i} of the {args.split} split of {data.dataset.name}, {target}"))
    print(fit_line(f"model {model.spec}"))
    print("float64, evaluation mode (BatchNorm: moving statistics; dropout off)")
    print(result.summary())
    return EXIT_OK


def _config_and_model(args: argparse.Namespace) -> tuple[ExperimentConfig, Sequential | None]:
    """The config the data is prepared by, and the --model file loaded (None without one):
    a loaded model's data is prepared as its run's config.json says."""
    from ..config import ConfigError, ExperimentConfig
    from ..model import load

    model: Sequential | None = None
    prepared: dict[str, Any] = {}
    if args.model is not None:
        try:
            model = load(args.model)
        except ValueError as error:
            raise UsageError(str(error)) from None
        prepared = preparation_of(Path(args.model), args.dataset)
    for key in ("seed", "label_column"):
        if getattr(args, key) is not None:
            prepared[key] = getattr(args, key)
    try:
        config = ExperimentConfig(
            dataset=args.dataset, arch=args.arch, data_dir=args.data_dir, **prepared
        )
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return config, model


def _model_for(
    args: argparse.Namespace, config: ExperimentConfig, data: Prepared, loaded: Sequential | None
) -> Sequential:
    """The loaded model checked against the data, or the one nnlib train would build."""
    from ..experiment import build_model
    from ..spec import SpecError

    if loaded is not None:
        check_model_fits(loaded, data, args.model, args.dataset)
        return loaded
    try:
        return build_model(config, data)
    except SpecError as error:
        raise UsageError(f"--arch: {error}") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
