"""`nnlib summary`: a spec's layers, shapes, parameters and memory, without training."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .argtypes import positive_int, shape
from .common import EXIT_OK, UsageError
from .modeldata import print_warnings

if TYPE_CHECKING:
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib summary --arch SPEC (--input-shape H,W,C | --dataset NAME)`."""
    summary = commands.add_parser("summary", help="print a model summary for a spec")
    summary.add_argument("--arch", required=True, metavar="SPEC")
    input_shape = summary.add_mutually_exclusive_group(required=True)
    input_shape.add_argument("--input-shape", type=shape, metavar="H,W,C")
    input_shape.add_argument("--dataset", help="take the input shape from this dataset")
    summary.add_argument("--batch-size", type=positive_int, default=64)


def run(args: argparse.Namespace) -> int:
    """Print the built model's spec, its summary and the spec's warnings."""
    from ..presets import named, resolve
    from ..spec import SpecError, build

    input_shape, loss, arch = args.input_shape, None, args.arch
    if input_shape is None:
        from .. import datasets

        try:
            dataset = datasets.load(args.dataset)
        except ValueError as error:
            raise UsageError(f"--dataset: {error}") from None
        input_shape = dataset.input_shape
        loss = "softmax_cross_entropy" if dataset.task == "classification" else "mse"
        try:
            arch = resolve(arch, tuple(input_shape), dataset.outputs, dataset.task, args.dataset)
        except SpecError as error:
            raise UsageError(f"--arch: {error}") from None
    elif named(arch):
        raise UsageError(
            f"--arch: the preset {arch!r} is written for a dataset's outputs: give --dataset"
        )
    try:
        model = build(arch, input_shape, batch_size=args.batch_size)
    except SpecError as error:
        raise UsageError(f"--arch: {error}") from None
    print(model.spec)
    print(model.summary().format(batch_size=args.batch_size))
    print_warnings(model, loss)
    return EXIT_OK
