"""The CLI's stdout and stderr when their reader may go away (`nnlib train ... | head -1`).

Every line `nnlib` prints — its own, argparse's, the progress bar's (plain or rich) — goes
through `sys.stdout` or `sys.stderr`, which `closed_pipes()` wraps for the command's length:
the one place where a closed pipe is handled. Python ignores SIGPIPE, so a write to a pipe
nobody reads raises BrokenPipeError; the first one points the stream's file descriptor at
devnull, as Python's docs advise (signal module, "Note on SIGPIPE"), so that nothing
written later, nor the flush at exit, fails again. Then:

- stderr drops its output: diagnostics never end a command;
- stdout drops its output when `keep_going` is set (a training run does not end because
  nobody watches it), else raises OutputClosed once, which ends a command whose output is
  its purpose (`nnlib runs --follow | head -1` must not follow for ever).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO


class OutputClosed(BrokenPipeError):
    """The reader of stdout has gone; what is printed from now on goes to devnull."""


class GuardedStream:
    """A text stream whose writes and flushes never fail on a closed pipe (see the module
    doc); every other attribute is the wrapped stream's."""

    def __init__(self, stream: TextIO, keep_going: bool) -> None:
        self.stream = stream
        self.keep_going = keep_going
        self.closed_pipe = False
        self._lock = threading.Lock()  # the progress bar may write from its refresh thread

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        with self._lock:
            first, self.closed_pipe = not self.closed_pipe, True
            if first:
                with contextlib.suppress(OSError, ValueError):  # no descriptor: a test's stream
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, self.stream.fileno())
                    os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()  # what the buffer still holds goes to devnull
        if first and not self.keep_going:
            raise OutputClosed("the reader of this output has gone")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def closed_pipes() -> Iterator[tuple[GuardedStream, GuardedStream]]:
    """sys.stdout and sys.stderr guarded (stdout, stderr) until the block ends; set
    `keep_going` on stdout's for a command that must go on unread."""
    out, err = GuardedStream(sys.stdout, False), GuardedStream(sys.stderr, True)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved
        out.keep_going = True  # already reported, or nothing to report any more
        out.flush()
        err.flush()
