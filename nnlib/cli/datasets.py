"""`nnlib datasets`: the datasets nnlib knows, and whether each is on disk."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import EXIT_OK

if TYPE_CHECKING:
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib datasets`, which takes no arguments."""
    commands.add_parser("datasets", help="list the datasets and whether they are on disk")


def run(args: argparse.Namespace) -> int:
    """Print one row per dataset, the columns aligned and the description last."""
    from .. import datasets

    rows = [
        ("name", "task", "shape", "classes", "train", "test", "on disk", "noise", "description")
    ]
    for info in datasets.available():
        rows.append(
            (
                info.name,
                info.task,
                "x".join(map(str, info.input_shape)),
                str(info.num_classes or "-"),
                str(info.train_size),
                str(info.test_size),
                "yes" if info.on_disk else "no",
                "-" if info.noise is None else f"{info.noise:g}",
                info.description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        *columns, description = row
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(columns, widths, strict=True))
            + "  "
            + description
        )
    return EXIT_OK
