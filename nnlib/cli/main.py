"""The `nnlib` command: the parser assembled from the command modules, and `main`, where
every way a command can end becomes an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# Imported with this module, before `main` installs the command's own signal handling: a
# Ctrl+C inside numpy's import is then the launcher's one line (numpy's C extension turns it
# into an ImportError that nothing later can tell from a real one). `import nnlib` is lazy,
# so nothing else imports numpy this early.
import numpy  # noqa: F401

from .._output import OutputClosed, closed_pipes
from . import (
    control,
    datasets,
    evaluate,
    plot,
    runs,
    runs_edit,
    runs_export,
    runs_list,
    summary,
    sweep,
    trace,
    train,
)
from .common import EXIT_FAILED, EXIT_USAGE, OneLineParser, UsageError, describe_os_error, fail
from .signals import StopSignals

#: The commands that keep working when their stdout is closed (see nnlib._output).
KEEP_GOING = ("train", "sweep")
#: `nnlib runs list`, `nnlib runs export`, ... are commands of their own (see command_words).
RUNS_COMMANDS = ("list", "export", "tag", "note", "delete", "rename")
#: Each command module's parser, in the order `nnlib --help` lists them.
PARSERS = (
    train.add_parser,
    evaluate.add_parser,
    summary.add_parser,
    trace.add_parser,
    datasets.add_parser,
    sweep.add_parser,
    runs.add_parser,
    runs_list.add_parser,
    runs_edit.add_parsers,
    runs_export.add_parser,
    plot.add_parser,
    control.add_parser,
)


def parser() -> OneLineParser:
    """The `nnlib` parser, one subparser per command."""
    top = OneLineParser(
        prog="nnlib", description="Train and inspect numpy neural networks without a UI."
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add in PARSERS:
        add(commands)
    return top


def handlers(signals: StopSignals) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Each command's function; train and sweep hand their runs the stop signals."""
    return {
        "train": lambda args: train.run(args, signals),
        "evaluate": evaluate.run,
        "summary": summary.run,
        "trace": trace.run,
        "datasets": datasets.run,
        "runs": runs.run,
        "runs list": runs_list.run,
        "runs export": runs_export.run,
        "runs tag": runs_edit.tag_run,
        "runs note": runs_edit.note_run,
        "runs delete": runs_edit.delete_run,
        "runs rename": runs_edit.rename_run,
        "plot": plot.run,
        "control": control.run,
        "sweep": lambda args: sweep.run(args, signals),
    }


def command_words(argv: Sequence[str]) -> list[str]:
    """`runs list ...`, `runs export ...` (RUNS_COMMANDS) as one-word commands such as "runs
    list", beside `runs RUN` (a run directory called list or export: `runs ./list`)."""
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "runs" and argv[1] in RUNS_COMMANDS:
        return [f"runs {argv[1]}", *argv[2:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every way it can end is turned into an exit code here."""
    with StopSignals() as signals, closed_pipes() as (stdout, _):
        try:
            args = parser().parse_args(command_words(sys.argv[1:] if argv is None else argv))
            # A run goes on when nobody reads its output any more (`| head -1`).
            stdout.keep_going = args.command in KEEP_GOING
            code = handlers(signals)[args.command](args)
            sys.stdout.flush()  # here, so that a closed pipe is reported below, not at exit
            return code
        except UsageError as error:
            return fail(str(error), EXIT_USAGE)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return signals.exit_code
        except OutputClosed:  # `nnlib datasets | head -1`: the rest is not wanted
            return EXIT_FAILED
        except OSError as error:  # a path the OS refuses: too long, not permitted, ...
            return fail(describe_os_error(error), EXIT_USAGE)
        except Exception:
            # A stop signal can land inside code that wraps what it raises: a class body's
            # __set_name__ during an import turned the Ctrl+C into a RuntimeError traceback.
            # After a signal, whatever ends the command is the interruption.
            if signals.received is None:
                raise
            print("interrupted", file=sys.stderr)
            return signals.exit_code
