"""A Textual Linux driver that survives losing its terminal (a dropped SSH connection, a
killed tmux pane).

Textual's writer thread dies on the first failed write (EIO once the terminal has hung up)
and leaves its queue of 30 pending frames full; the next frame, or the `stop()` that closing
the driver calls, then blocks the UI thread in `queue.put` for ever, so the event loop never
runs again and even SIGHUP and SIGTERM (delivered through that loop) are ignored. Here a
failed write marks the terminal lost instead: from then on output is dropped without
blocking, and the app is told once (`on_lost`), on its event loop, so it can stop the run,
let the training thread close the run log, and leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import select
import threading
from collections.abc import Callable
from typing import IO, Any

from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver

#: How long a write waits for room in the queue before it checks again whether the
#: terminal is gone (a live but slow terminal still gets every frame).
PUT_POLL_SECONDS = 0.1
#: How long closing waits for the writer thread once the terminal is gone.
JOIN_LOST_SECONDS = 1.0
#: How often the hangup watcher checks whether the app has closed the driver.
WATCH_MILLISECONDS = 500


class TerminalWriter(WriterThread):
    """Textual's writer thread, which stops writing (rather than dying with a full queue)
    when the terminal is gone, so no caller ever blocks on it for ever."""

    def __init__(self, file: IO[str], on_lost: Callable[[], None]) -> None:
        super().__init__(file)
        #: A plain flag, not an Event: a signal handler sets it (see `mark_lost`).
        self.lost = False
        self._on_lost = on_lost

    def write(self, text: str | None) -> None:
        """Queue `text` (None ends the thread); dropped once the terminal is lost."""
        while not self.lost:
            try:
                self._queue.put(text, timeout=PUT_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            super().run()
        except OSError:  # EIO, EPIPE, ENXIO: the terminal has hung up
            self.mark_lost()

    def mark_lost(self) -> None:
        """The terminal is gone: drop all output from now on and tell the app once. Safe in
        a signal handler: it takes no lock (the interrupted code may hold the queue's)."""
        if not self.lost:
            self.lost = True
            self._on_lost()

    def stop(self) -> None:
        """End the thread. Once the terminal is lost, wake it without blocking and wait only
        briefly: it may be gone already, or in a write that the hung-up terminal will fail."""
        self.write(None)
        if self.lost:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
        self.join(JOIN_LOST_SECONDS if self.lost else None)


class HangupSafeDriver(LinuxDriver):
    """LinuxDriver with a TerminalWriter. When the terminal is lost, the app's `hang_up()`
    (if it has one) is called on its event loop."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._app_loop: asyncio.AbstractEventLoop | None = None  # set once the app runs
        self._closed = threading.Event()

    def start_application_mode(self) -> None:
        self._app_loop = asyncio.get_running_loop()
        super().start_application_mode()
        threading.Thread(target=self._watch, name="nntui-hangup", daemon=True).start()

    def _watch(self) -> None:
        """Wait for the terminal to hang up. Needed besides the failing write: a screen with
        nothing moving writes nothing, and a hung-up terminal reads as an endless EOF, on
        which Textual's input thread spins instead of reporting it."""
        poll = select.poll()
        output = set() if self._file is None else {self._file.fileno()}  # None: no stderr
        for fd in {self.fileno, *output}:
            poll.register(fd, 0)  # POLLHUP and POLLERR are always reported
        while not self._closed.is_set():
            if poll.poll(WATCH_MILLISECONDS):
                self.mark_lost()
                return

    def close(self) -> None:
        self._closed.set()
        super().close()

    def __setattr__(self, name: str, value: Any) -> None:
        # LinuxDriver.start_application_mode makes its own WriterThread and starts it at
        # once; it is swapped for ours here, before anything is written to it.
        if name == "_writer_thread" and type(value) is WriterThread:
            value = TerminalWriter(value._file, self._lost)
        super().__setattr__(name, value)

    def mark_lost(self) -> None:
        """Called when the terminal is known to be gone (SIGHUP): drop all output from now."""
        if isinstance(self._writer_thread, TerminalWriter):
            self._writer_thread.mark_lost()

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError:  # reading a hung-up terminal: the same loss, not a crash to report
            self.mark_lost()

    def _lost(self) -> None:
        """From the writer (or input) thread, or a signal handler: tell the app on its loop."""
        hook = getattr(self._app, "hang_up", None)
        if self._app_loop is not None and hook is not None:
            self._app_loop.call_soon_threadsafe(hook)
