"""`nnlib control`: steer a run that nnlib train or nntui is writing, from any terminal."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, fail

if TYPE_CHECKING:
    from .common import Subcommands


def add_parser(commands: Subcommands) -> None:
    """`nnlib control RUN ACTION [ARG...] [--timeout S]`."""
    control = commands.add_parser(
        "control",
        help="pause, resume, step, stop, set a hyperparameter of or pace a run being written",
        description="Steer a run that nnlib train or nntui is writing, from any terminal of "
        "its owner: the run applies the command at its next batch boundary and answers.",
    )
    control.add_argument("run", help="the run's directory")
    control.add_argument("action", choices=("pause", "resume", "step", "stop", "set", "pace"))
    control.add_argument(
        "arguments",
        nargs="*",
        metavar="ARG",
        help="for set: NAME VALUE; for pace: EPOCHS_PER_SECOND, or full",
    )
    control.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the run's answer (default 5)",
    )


def run(args: argparse.Namespace) -> int:
    """Send one command to a live run and print its answer: exit 0 when made, 2 when the run
    refused it (a bad value: nothing changed), 1 when it could not be delivered (the run has
    ended, has not started, is not yours) or got no answer in time."""
    from ..remote import SteerError, cli_value, send

    if not args.timeout > 0 or args.timeout > 600:
        raise UsageError(
            f"nnlib control: --timeout must be in (0, 600] seconds, got {args.timeout}"
        )
    arguments = [args.arguments[0], *map(cli_value, args.arguments[1:])] if args.arguments else []
    try:
        reply = send(args.run, args.action, *arguments, timeout=args.timeout)
    except SteerError as error:
        return fail(str(error), EXIT_FAILED)
    if not reply.ok:
        return fail(f"refused by the run: {reply.message}", EXIT_USAGE)
    print(reply.message)
    return EXIT_OK
