"""Steer a run from another process through its run directory: files only, no server, so it
works the same on a local disk and on a shared filesystem.

- `<run>/commands.jsonl`, append-only, created 0600 by the run's writer, so that only the
  run's owner can steer it. One command a line: {"id", "time", "action", "args", "from"},
  where action and args are what `RunControl.command` takes ("set", ["lr", 0.01]).
- `<run>/replies.jsonl`, appended by the writer: {"id", "time", "ok", "message"} for each
  command it read; a refused one says why.

The writer's side is `CommandDoor`, a callback placed beside the RunLogger: the training
thread polls it at every batch boundary (one `os.stat`: an unchanged size means nothing to
do) and, while paused or held back by its pace, every `nnlib.control.POLL_SECONDS`. A command
goes through `RunControl.command`, the door a key press uses, so values are validated exactly
as by `Trainer.set`, and each applied change is an event whose `source` is "remote".

The sender's side is `send` (`nnlib control`, and the app's dashboard on a recorded run that
is still being written): it appends a command and waits, bounded, for its reply.

Both files are opened without following a symbolic link, and only when they are regular files
(`open_private`): a link planted in a run directory must not make the writer chmod, read or
append to another file, nor a sender append to one.

On NFS, a client sees another's append once its attribute cache expires (3 s by default on
Linux, `actimeo` to shorten it): there a command can take that long to be heard.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import runs
from ._files import open_descriptor, open_regular
from .callbacks.base import Callback, Logs

try:
    import fcntl
except ImportError:  # Windows: one os.write of an O_APPEND file is the only guard
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .trainer import Trainer

COMMANDS_FILE = "commands.jsonl"
REPLIES_FILE = "replies.jsonl"
#: The source recorded in the events of commands that came through the door.
SOURCE = "remote"
#: The longest command line read; a longer one is skipped (and answered with id null).
MAX_LINE = 4096
#: The answer to a command line longer than MAX_LINE, which is not read.
TOO_LONG = f"a command line longer than {MAX_LINE} bytes: skipped"
#: The most bytes of commands read at one boundary (the rest at the next ones).
READ_CHUNK = 64 * 1024
#: How long `send` waits for the reply by default, and how often it looks.
REPLY_TIMEOUT = 5.0
REPLY_POLL = 0.02
#: How many arguments a command may carry (set takes two).
MAX_ARGUMENTS = 4

#: How the door answers a command: (action, arguments) -> (ok, message).
Answer = Callable[[str, list[Any]], tuple[bool, str]]


class SteerError(ValueError):
    """A command that could not be delivered or got no answer: the run has ended, has not
    started, cannot be steered by this user, its command or reply file is not a regular file
    (a symbolic link, say), or it did not reply in time."""


def open_private(path: Path, flags: int) -> int:
    """A descriptor of the command or reply file `path` opened with `flags` (os.O_CREAT
    creates it 0600), without following a symbolic link and only when it is a regular file
    (`nnlib._files.open_descriptor`); SteerError naming it otherwise. Other OSErrors
    (FileNotFoundError, PermissionError) pass through."""
    return open_descriptor(path, flags, "a run's command or reply file", SteerError, 0o600)


@dataclass(frozen=True)
class Reply:
    """The run's answer to one command: ok (made) or refused, and a line saying which."""

    ok: bool
    message: str


# -- the writer's side --------------------------------------------------------------------------
class CommandDoor(Callback):
    """Read `run_dir`'s commands.jsonl at batch boundaries and apply each command through the
    trainer's RunControl, answering it in replies.jsonl. After the run, commands still in
    the file are answered as refused: the run has ended."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.commands = self.run_dir / COMMANDS_FILE
        self._trainer: Trainer | None = None
        self._replies: Any = None
        self._offset = 0
        self._skipping = False  # inside a line longer than MAX_LINE: read on to its end

    def on_train_begin(self, trainer: Trainer) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = open_private(self.commands, os.O_RDONLY | os.O_CREAT)
        try:
            os.fchmod(fd, 0o600)  # also when an earlier fit() in this directory made it
            self._offset = os.fstat(fd).st_size  # an earlier fit's commands are answered
        finally:
            os.close(fd)
        replies = open_private(self.run_dir / REPLIES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.fchmod(replies, 0o600)
        except BaseException:
            os.close(replies)
            raise
        self._replies = os.fdopen(replies, "a", encoding="utf-8")
        self._trainer = trainer
        trainer.control.add_poller(self.poll)

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        trainer.control.remove_poller(self.poll)
        try:
            reason = logs.get("reason", "ended")
            self._read(lambda action, arguments: (False, f"the run has ended ({reason})"))
        finally:
            self._trainer = None
            if self._replies is not None:
                self._replies.close()
                self._replies = None

    def poll(self) -> None:
        """At a batch boundary (training thread): apply the commands appended since the last
        poll. Costs one os.lstat when there are none."""
        try:
            status = os.lstat(self.commands)
        except OSError:  # removed by hand: nobody can steer through it any more
            return
        if stat.S_ISREG(status.st_mode) and status.st_size != self._offset:
            self._read(self._apply)

    def _apply(self, action: str, arguments: list[Any]) -> tuple[bool, str]:
        assert self._trainer is not None
        try:
            return True, self._trainer.control.command(action, *arguments, source=SOURCE)
        except ValueError as error:
            return False, str(error)

    def _read(self, answer: Answer) -> None:
        """Read whole lines from the offset (at most READ_CHUNK bytes) and answer each. A line
        is consumed before it is answered, so it is never answered twice (by the run's end,
        say, after an answer that failed)."""
        *lines, rest = self._appended().split(b"\n")  # rest: a line not whole yet
        for line in lines:
            self._offset += len(line) + 1
            skipping, self._skipping = self._skipping, False
            if not skipping:
                self._answer(line, answer)
        if len(rest) > MAX_LINE or (self._skipping and rest):
            self._skip(len(rest))

    def _skip(self, size: int) -> None:
        """Read past `size` bytes of a line longer than MAX_LINE that is still being written
        (it is answered once, as it is first seen, and skipped to its end)."""
        self._offset += size
        if not self._skipping:
            self._skipping = True
            self._reply(None, False, TOO_LONG)

    def _appended(self) -> bytes:
        """The bytes after the offset, at most READ_CHUNK; none when the file was removed or
        replaced by hand, or truncated (then read on from its new end)."""
        try:
            with os.fdopen(open_private(self.commands, os.O_RDONLY), "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self._offset:  # truncated by hand: start again from its end
                    self._offset = size
                    return b""
                handle.seek(self._offset)
                return handle.read(min(size - self._offset, READ_CHUNK))
        except (OSError, SteerError):  # removed or replaced by hand: nothing to read
            return b""

    def _answer(self, line: bytes, answer: Answer) -> None:
        if not line.strip():
            return
        if len(line) > MAX_LINE:
            self._reply(None, False, TOO_LONG)
            return
        try:
            ident, action, arguments = parse_command(line)
        except ValueError as error:
            self._reply(_id_of(line), False, str(error))
            return
        try:
            ok, message = answer(action, arguments)
        except BaseException as error:  # a fault, not a refusal: answered, then raised
            self._reply(ident, False, f"not applied: {type(error).__name__}")
            raise
        self._reply(ident, ok, message)

    def _reply(self, ident: str | None, ok: bool, message: str) -> None:
        if self._replies is None:
            return
        record = {"id": ident, "time": round(time.time(), 3), "ok": ok, "message": message}
        self._replies.write(json.dumps(record) + "\n")
        self._replies.flush()


def parse_command(line: bytes) -> tuple[str, str, list[Any]]:
    """(id, action, arguments) of one commands.jsonl line; ValueError naming what is wrong.
    The action and its arguments are checked by RunControl.command, not here."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"{COMMANDS_FILE}: a command line that is not valid JSON") from None
    if not isinstance(record, dict):
        raise ValueError(f"{COMMANDS_FILE}: a command must be a JSON object, got {_kind(record)}")
    ident, action, arguments = record.get("id"), record.get("action"), record.get("args", [])
    if not isinstance(ident, str) or not 0 < len(ident) <= 64:
        raise ValueError(f"{COMMANDS_FILE}: id must be a string of 1 to 64 characters")
    if not isinstance(action, str):
        raise ValueError(f"{COMMANDS_FILE}: action must be a string, got {_kind(action)}")
    return ident, action, _arguments(arguments)


def _arguments(arguments: Any) -> list[Any]:
    """A command's args as given, when they are a short list of JSON scalars: their values
    are RunControl.command's to check, their shape is the file's."""
    scalar = (str, int, float, bool, type(None))
    if (
        not isinstance(arguments, list)
        or len(arguments) > MAX_ARGUMENTS
        or not all(isinstance(a, scalar) for a in arguments)
    ):
        raise ValueError(
            f"{COMMANDS_FILE}: args must be a list of at most {MAX_ARGUMENTS} numbers or "
            f"strings, got {json.dumps(arguments)[:60]}"
        )
    return arguments


def _id_of(line: bytes) -> str | None:
    """The id of a command that is otherwise bad, so its sender still hears why."""
    try:
        ident = json.loads(line.decode("utf-8")).get("id")
    except (UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        return None
    return ident if isinstance(ident, str) and len(ident) <= 64 else None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# -- the sender's side ----------------------------------------------------------------------------
def cli_value(text: str) -> int | float | str:
    """A value typed on a command line: an int, else a finite float, else the text itself
    (which the run then refuses, naming it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def run_ended(run_dir: Path) -> str | None:
    """Why `run_dir` cannot be steered now, or None while its writer is alive."""
    if runs.writer_alive(run_dir):
        return None
    if not runs.writer_started(run_dir) and not (run_dir / runs.EVENTS_FILE).exists():
        return f"{run_dir}: the run has not started yet; nothing can steer it"
    reason = _end_reason(run_dir / runs.EVENTS_FILE)
    if reason is None:
        return f"{run_dir}: {runs.WRITER_GONE}; it cannot be steered"
    return f"{run_dir}: the run has ended ({reason}); it cannot be steered"


def _end_reason(events: Path) -> str | None:
    """The reason of the end event on the log's last line, if it is one."""
    try:
        with open_regular(events, "run log") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - MAX_LINE))
            last = handle.read(MAX_LINE).strip().rsplit(b"\n", 1)[-1]
        event = runs.decode(last.decode("utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return str(event["reason"]) if event.type == "end" else None


def send(
    run_dir: str | os.PathLike,
    action: str,
    *arguments: Any,
    sender: str = "nnlib control",
    timeout: float = REPLY_TIMEOUT,
) -> Reply:
    """Send one command to the run writing `run_dir` and wait up to `timeout` s for its
    reply. Raises SteerError when it cannot be delivered (no such run, the run has ended or
    has not started, not this user's run) or no reply came in time (the command then stays
    queued: the run applies it at its next batch boundary)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SteerError(f"{run_dir}: no such run directory")
    ended = run_ended(run_dir)
    if ended:
        raise SteerError(ended)
    ident = uuid.uuid4().hex
    record = {"id": ident, "time": round(time.time(), 3), "action": action}
    line = json.dumps({**record, "args": list(arguments), "from": sender}, allow_nan=False)
    if len(line.encode()) >= MAX_LINE:
        raise SteerError(f"the command is longer than {MAX_LINE} bytes")
    replies = run_dir / REPLIES_FILE
    offset = _size(replies)
    _append(run_dir, line)
    return _await_reply(run_dir, replies, offset, ident, timeout)


def _append(run_dir: Path, line: str) -> None:
    """Append the command `line` to the run's command file in one write, under a lock that
    senders on other hosts of a shared filesystem honour; SteerError when the run takes no
    commands, or not from this user."""
    commands = run_dir / COMMANDS_FILE
    try:
        fd = open_private(commands, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        raise SteerError(
            f"{run_dir}: the run takes no commands (no {COMMANDS_FILE}: written by a "
            "trainer without a CommandDoor)"
        ) from None
    except PermissionError:
        raise SteerError(
            f"{commands}: permission denied; only the run's owner can steer it"
        ) from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)  # drops the lock


def _await_reply(run_dir: Path, replies: Path, offset: int, ident: str, timeout: float) -> Reply:
    deadline = time.monotonic() + timeout
    while True:
        alive = runs.writer_alive(run_dir)  # asked first: a writer gone now has answered all
        reply = _find_reply(replies, offset, ident)
        if reply is not None:
            return reply
        if not alive:
            raise SteerError(run_ended(run_dir) or f"{run_dir}: the run ended before answering")
        if time.monotonic() >= deadline:
            raise SteerError(
                f"{run_dir}: no answer within {timeout:g} s (a long batch?); the command stays "
                "queued and is applied at the run's next batch boundary"
            )
        time.sleep(REPLY_POLL)


def _size(replies: Path) -> int:
    """The size of the reply file (0 while there is none); SteerError for a link."""
    try:
        fd = open_private(replies, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _find_reply(replies: Path, offset: int, ident: str) -> Reply | None:
    try:
        with os.fdopen(open_private(replies, os.O_RDONLY), "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:  # not there yet; SteerError (a link, a FIFO) goes to the sender
        return None
    for line in text.split("\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the line being written, or not one of ours
        if isinstance(record, dict) and record.get("id") == ident:
            return Reply(record.get("ok") is True, str(record.get("message", "")))
    return None
