"""A run's summary file (`runs.SUMMARY_FILE`): what the runs table shows of a run's log, kept
beside it, so that listing a folder of runs reads one small file per run instead of decoding
every line of every log (issue 20: 21 runs with 90 MB of logs took 1.4-2.7 s to list).

A summary is the `LogDigest` of the log's first `bytes` bytes (whole lines, `lines` of them,
read with `runs.continued`'s rule for a resumed run) and a hash of the last TAIL_BYTES of
them (`tail_of`). A log is only ever appended to, so a summary stays true of those bytes: a
reader that finds the hash matching takes the digest and reads only the lines after them
(none, for a run that ended); a log rewritten since does not match, and is read whole. A log
with the size and mtime the summary recorded is taken as untouched without reading it: on
1,000 runs with the page cache dropped, each small read cost about 0.15 ms. The RunLogger
writes the summary (from its writer thread) at the start, at epoch ends and at the end; the
runs index writes it back after it had to read a log (an older run, a crashed writer), where
it may write.

The file is small, strict JSON, every field checked: anything wrong is one SummaryError
naming the file, and the reader reads the log instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text
from ._files import read_regular
from .events import MAX_INT, Event

#: The summary file format's name and version (a reader refuses any other).
FORMAT = "nnlib run summary"
VERSION = 1
#: The longest text a digest keeps (an end's reason or error, a problem): longer is cut with
#: an ellipsis, by the fold itself, so a row reads the same from the log and from a summary.
MAX_TEXT = 2000
#: Bytes a summary file may have: its texts escaped at worst (12 bytes a character) fit.
MAX_BYTES = 1 << 17
#: The log bytes before a summary's end whose hash tells a log appended to from a rewritten one.
TAIL_BYTES = 64
#: The largest log size or line count taken as plausible.
MAX_COUNT = 2**63 - 1
#: The test metrics a run's row shows.
TEST_METRICS = ("test_accuracy", "test_loss")


class SummaryError(ValueError):
    """A summary file that cannot be used (unreadable, truncated, not what it should be)."""


@dataclass
class LogDigest:
    """A run's records folded into what its row in the runs table shows: when it began and
    last wrote, how many epochs it finished, its best validation score, its test result, how
    it ended (None: it has not said), and the first bad line (`problem`)."""

    first: float | None = None
    last: float | None = None
    epochs: int = 0
    val_accuracy: float | None = None
    val_loss: float | None = None
    test_metric: str = ""
    test_value: float | None = None
    end_reason: str | None = None
    error: str = ""
    problem: str = ""
    peak_rss: int | None = None  # the largest resident memory its 'system' events reported
    system_samples: int = 0  # the samples and seconds those events cover
    system_seconds: float = 0.0

    @property
    def samples_per_sec(self) -> float | None:
        """Samples trained over the seconds the 'system' events cover (None: none said)."""
        return self.system_samples / self.system_seconds if self.system_seconds > 0 else None

    def add(self, event: Event) -> None:
        """Fold one record in (records read with the resume rule, in order)."""
        self._moment(event.time, event.type == "end")
        if event.type != "batch":  # a batch's own metrics are not the run's totals
            _FOLDS.get(event.type, LogDigest._add_test_fields)(self, event)

    def _add_epoch(self, event: Event) -> None:
        """Epochs done, the best validation accuracy and loss so far, and a test score."""
        self.epochs = max(self.epochs, int(event.get("epoch", 0)) + 1)
        accuracy, loss = _float(event.get("val_accuracy")), _float(event.get("val_loss"))
        if accuracy is not None:
            self.val_accuracy = max(accuracy, self.val_accuracy or -math.inf)
        if loss is not None:
            self.val_loss = min(loss, self.val_loss if self.val_loss is not None else math.inf)
        self._add_test_fields(event)

    def _add_end(self, event: Event) -> None:
        """How the run ended (until a resumed attempt writes again), and a test score."""
        self.end_reason = cut(str(event.get("reason")))
        self.error = cut(str(event.get("error") or ""))
        self._add_test_fields(event)

    def _add_system(self, event: Event) -> None:
        """The peak resident memory, and the samples and seconds for the training speed."""
        peak = max(event.get("peak_rss_bytes") or 0, event.get("rss_bytes") or 0)
        self.peak_rss = max(self.peak_rss or 0, int(peak)) or None
        self.system_samples += int(event.get("samples") or 0)
        self.system_seconds += float(event.get("seconds") or 0.0)

    def _add_test(self, event: Event) -> None:
        """nnlib's test evaluation (TestEvaluator): its accuracy (its loss for regression)."""
        metric = "accuracy" if event.get("accuracy") is not None else "loss"
        value = _float(event.get(metric))
        if value is not None:
            self.test_metric, self.test_value = f"test_{metric}", value

    def _add_test_fields(self, event: Event) -> None:
        """A test score written as a field of another record (TEST_METRICS, first found)."""
        for metric in TEST_METRICS:
            value = _float(event.get(metric))
            if value is not None:
                self.test_metric, self.test_value = metric, value
                break

    def add_batch(self, when: float) -> None:
        """Fold in a batch line written at `when` (`add` of that line, without decoding it)."""
        self._moment(when, False)

    def report(self, problem: str) -> None:
        """A bad line: the first stays named."""
        self.problem = self.problem or cut(problem)

    @property
    def any_event(self) -> bool:
        return self.first is not None

    def _moment(self, when: float, is_end: bool) -> None:
        if not is_end:  # anything after an end is a resumed attempt's
            self.end_reason, self.error = None, ""
        when = float(when)
        self.first = when if self.first is None else self.first
        self.last = when


#: How `LogDigest.add` folds a record of each type that says something about the run as a
#: whole; any other type's record may still carry a test score (`_add_test_fields`).
_FOLDS: dict[str, Callable[[LogDigest, Event], None]] = {
    "epoch": LogDigest._add_epoch,
    "end": LogDigest._add_end,
    "system": LogDigest._add_system,
    "test": LogDigest._add_test,
}


def _float(value: Any) -> float | None:
    """A metric's value as the row takes it: a number, else none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def cut(text: str) -> str:
    """`text` in at most MAX_TEXT characters, an ellipsis marking a cut."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class Summary:
    """A summary file's content: the digest of the log's first `bytes` bytes (`lines`
    lines), `tail` the hash of the last TAIL_BYTES of them (`tail_of`), `mtime_ns` the log's
    mtime when it had just those bytes (0: not known)."""

    digest: LogDigest
    bytes: int
    lines: int
    tail: str
    mtime_ns: int = 0

    def matches(self, log: Path) -> bool:
        """The log still begins with the bytes this summary was made of: untouched since (its
        size and mtime), or appended to (the hash of their tail)."""
        try:
            status = os.stat(log)
        except OSError:
            return False
        if self.untouched((status.st_size, status.st_mtime_ns)):
            return True
        return status.st_size >= self.bytes and tail_of(log, self.bytes) == self.tail

    def untouched(self, signature: tuple[int, int] | None) -> bool:
        """A log of this (size, mtime_ns) is the one the summary was written for."""
        return signature == (self.bytes, self.mtime_ns) and self.mtime_ns != 0


def tail_of(log: Path, end: int) -> str | None:
    """The hash of the log's last TAIL_BYTES before byte `end`; None when the log is shorter,
    cannot be read, or `end` does not end a line (a summary covers whole lines only)."""
    try:
        with open(log, "rb") as handle:
            start = max(end - TAIL_BYTES, 0)
            handle.seek(start)
            data = handle.read(end - start)
    except OSError:
        return None
    if len(data) != end - start or (end and not data.endswith(b"\n")):
        return None
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def count_lines(log: Path, start: int, end: int) -> int:
    """The lines that end in the log's bytes [start, end); OSError when it cannot be read."""
    count = 0
    with open(log, "rb") as handle:
        handle.seek(start)
        while start < end and (chunk := handle.read(min(end - start, 1 << 20))):
            count += chunk.count(b"\n")
            start += len(chunk)
    return count


def write(path: Path, summary: Summary) -> None:
    """Write a summary file atomically (without fsync: it is rebuilt from the log if lost).
    OSError passes through (a full disk, a folder the reader may not write)."""
    record = {
        "format": FORMAT,
        "version": VERSION,
        "log": {
            "bytes": summary.bytes,
            "lines": summary.lines,
            "tail": summary.tail,
            "mtime_ns": summary.mtime_ns,
        },
        "digest": asdict(summary.digest),
    }
    atomic_write_text(path, json.dumps(record, allow_nan=False, indent=1), sync=False)


def read(path: Path) -> Summary | None:
    """The summary in `path`; None when there is none; SummaryError (one line naming the
    file and what is wrong) when it cannot be used."""
    if not os.path.lexists(path):
        return None
    data = read_regular(path, "run summary", SummaryError, limit=MAX_BYTES)
    try:
        record = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise SummaryError(f"{path}: not a run summary (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise SummaryError(f"{path}: not a run summary (not valid JSON: {error.msg})") from None
    except (ValueError, RecursionError) as error:  # a huge integer, a constant, deep nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise SummaryError(f"{path}: not a run summary ({reason})") from None
    return _checked(record, str(path))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _checked(record: Any, where: str) -> Summary:
    """The Summary `record` holds, every field checked; SummaryError naming the first wrong."""
    _keys(record, {"format", "version", "log", "digest"}, where, "the summary")
    if record["format"] != FORMAT or type(record["version"]) is not int:
        raise SummaryError(f"{where}: not a run summary (format {_shown(record['format'])})")
    if record["version"] != VERSION:
        raise SummaryError(
            f"{where}: run summary version {record['version']}; this nnlib reads {VERSION}"
        )
    size, lines, tail, mtime = _checked_log(record["log"], where)
    digest = checked_digest(record["digest"], where)
    if size and not lines:
        raise SummaryError(f"{where}: log.lines is 0 for {size} bytes of log")
    return Summary(digest, size, lines, tail, mtime)


def _checked_log(value: Any, where: str) -> tuple[int, int, str, int]:
    """The position a summary holds (bytes, lines, tail hash, mtime_ns), each field of its
    type; SummaryError naming the first wrong."""
    log = _keys(value, {"bytes", "lines", "tail", "mtime_ns"}, where, "log")
    size, lines, mtime = (
        _integer(log[k], f"log.{k}", where, MAX_COUNT) for k in ("bytes", "lines", "mtime_ns")
    )
    tail = log["tail"]
    if not (isinstance(tail, str) and len(tail) == 32 and set(tail) <= set("0123456789abcdef")):
        raise SummaryError(f"{where}: log.tail must be 32 hex digits, got {_shown(tail)}")
    return size, lines, tail, mtime


def checked_digest(value: Any, where: str) -> LogDigest:
    """The digest a summary (or the folder index, `runs.folderindex`) holds: each field of
    its type, and the fields that go together set together; SummaryError naming the first
    wrong."""
    given = _keys(value, _DIGEST_FIELDS, where, "digest")
    digest = LogDigest(
        first=_number(given["first"], "digest.first", where),
        last=_number(given["last"], "digest.last", where),
        epochs=_integer(given["epochs"], "digest.epochs", where, MAX_INT),
        val_accuracy=_number(given["val_accuracy"], "digest.val_accuracy", where),
        val_loss=_number(given["val_loss"], "digest.val_loss", where),
        test_metric=_text(given["test_metric"], "digest.test_metric", where),
        test_value=_number(given["test_value"], "digest.test_value", where),
        end_reason=_optional_text(given["end_reason"], "digest.end_reason", where),
        error=_text(given["error"], "digest.error", where),
        problem=_text(given["problem"], "digest.problem", where),
        peak_rss=_optional_integer(given["peak_rss"], "digest.peak_rss", where),
        system_samples=_integer(given["system_samples"], "digest.system_samples", where, MAX_INT),
        system_seconds=_number(given["system_seconds"], "digest.system_seconds", where) or 0.0,
    )
    if (digest.first is None) != (digest.last is None):
        raise SummaryError(f"{where}: digest.first and digest.last must both be set or null")
    if (digest.test_value is None) != (digest.test_metric == ""):
        raise SummaryError(f"{where}: digest.test_metric and test_value must go together")
    if digest.test_metric not in ("", *TEST_METRICS):
        raise SummaryError(f"{where}: digest.test_metric {_shown(digest.test_metric)} unknown")
    return digest


_DIGEST_FIELDS = {f.name for f in fields(LogDigest)}


def _keys(value: Any, names: set[str], where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SummaryError(f"{where}: {what} must be a JSON object, got {_shown(value)}")
    if set(value) != names:
        odd = sorted(set(value) ^ names)[0]
        state = "missing" if odd in names else "unknown"
        raise SummaryError(f"{where}: {what} has {state} field {_shown(odd)}")
    return value


def _integer(value: Any, name: str, where: str, most: int) -> int:
    if type(value) is not int or not 0 <= value <= most:
        raise SummaryError(
            f"{where}: {name} must be an integer in [0, {most}], got {_shown(value)}"
        )
    return value


def _optional_integer(value: Any, name: str, where: str) -> int | None:
    return None if value is None else _integer(value, name, where, MAX_INT)


def _number(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) if type(value) in (int, float) else math.nan
    except OverflowError:  # an integer past any float
        number = math.nan
    if not math.isfinite(number):
        raise SummaryError(f"{where}: {name} must be a finite number or null, got {_shown(value)}")
    return number


def _optional_text(value: Any, name: str, where: str) -> str | None:
    return None if value is None else _text(value, name, where)


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise SummaryError(
            f"{where}: {name} must be text of at most {MAX_TEXT} characters, got {_shown(value)}"
        )
    return value


def _shown(value: Any) -> str:
    """A value in a message: short, on one line."""
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"
