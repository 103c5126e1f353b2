"""What every `nnlib` subcommand shares: its exit codes, the one-line usage error and the
parser class that raises it, and the one line an OSError becomes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from typing import TypeAlias

    #: What `add_subparsers` returns: each command module adds its parser to it.
    Subcommands: TypeAlias = argparse._SubParsersAction[Any]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments or config: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def fail(message: str, code: int) -> int:
    """Print `error: message` on stderr and return `code`, the command's exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: the path(s) it names, quoted, and the OS's reason."""
    paths = [repr(os.fspath(p)) for p in (error.filename, error.filename2) if p is not None]
    return ": ".join([*paths, error.strerror or str(error)])
