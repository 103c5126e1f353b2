"""Issue 20 item 3: the runs index reads a small summary per run (summary.json) instead of
decoding the log. The summary reads exactly as the log does (a finished, a resumed, a killed
run); the index decodes no line of a run that has one; an old run without one, or with one
that is stale, truncated or corrupt, still reads from its log (a bad file with one notice,
never a traceback) and gets its summary written back where the folder may be written."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from helpers import SETTINGS, TIMEOUT, At, killed, mutated, stopped, write_run
from helpers import resumable_config as config
from hypothesis import given
from hypothesis import strategies as st

from nnlib import runindex, runs, runsummary
from nnlib.callbacks import Callback
from nnlib.cli import main
from nnlib.experiment import resume, setup
from nnlib.runs import logger as run_logger
from nnlib.runs import reading as run_reading


def from_log(run_dir: Path) -> runsummary.LogDigest:
    """The digest of a run's whole log, read line by line (no summary)."""
    scan = runs.LogScan(run_dir, from_summary=False)
    scan.read()
    return scan.digest


def saved(run_dir: Path) -> runsummary.Summary:
    summary = runsummary.read(run_dir / runs.SUMMARY_FILE)
    assert summary is not None
    return summary


def decoded_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The log lines decoded from now on (by any reader of the runs module)."""
    lines: list[str] = []
    original = runs.Decoder.decode

    def decode(self: runs.Decoder, line: str, where: str = "") -> runs.Event:
        lines.append(where)
        return original(self, line, where)

    monkeypatch.setattr(runs.Decoder, "decode", decode)
    return lines


def row_without_summary(run_dir: Path) -> runindex.RunSummary:
    """The runs table's row of a run read from its log alone (the summary moved away and put
    back after)."""
    path = run_dir / runs.SUMMARY_FILE
    kept = path.read_bytes() if path.exists() else None
    path.unlink(missing_ok=True)
    try:
        return runindex.summarize(run_dir)
    finally:
        path.unlink(missing_ok=True)
        if kept is not None:
            path.write_bytes(kept)


# -- written by the RunLogger ------------------------------------------------------------------
def test_a_finished_run_summary_is_its_whole_log_and_the_index_reads_no_line(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "run"
    setup(config(run)).fit(threads=1)
    summary = saved(run)
    assert summary.bytes == (run / runs.EVENTS_FILE).stat().st_size
    assert summary.lines == len((run / runs.EVENTS_FILE).read_bytes().splitlines())
    assert summary.digest == from_log(run)
    assert summary.digest.epochs == 4 and summary.digest.end_reason == "finished"
    expected = row_without_summary(run)
    lines, tails = decoded_lines(monkeypatch), []
    monkeypatch.setattr(runsummary, "tail_of", lambda *args: tails.append(args))
    (row,) = runindex.RunIndex(tmp_path / "runs").refresh()
    assert lines == [] and row == expected and not row.problem
    assert tails == []  # its size and mtime as the summary recorded: not a byte of it read


def test_a_resumed_run_summary_reads_as_its_log_does(tmp_path):
    run = stopped(tmp_path / "run", 20)  # mid-epoch 1, then resumed: the resume rule applies
    assert saved(run).digest == from_log(run) and saved(run).digest.end_reason == "stopped"
    resume(run).fit(threads=1)
    summary = saved(run)
    assert summary.digest == from_log(run)
    assert (summary.digest.epochs, summary.digest.end_reason) == (4, "finished")
    assert summary.bytes == (run / runs.EVENTS_FILE).stat().st_size
    assert runindex.summarize(run) == row_without_summary(run)


def test_a_resumed_run_that_fails_has_the_summary_of_its_log(tmp_path):
    run = killed(tmp_path / "runs" / "run", 50)  # its last summary: of some line before
    summary = saved(run)
    assert summary.bytes < (run / runs.EVENTS_FILE).stat().st_size
    assert summary.digest.end_reason is None and summary.digest.epochs <= 2
    experiment = resume(run, callbacks=[At(40, fail=True)])
    with pytest.raises(RuntimeError):
        experiment.fit(threads=1)
    assert saved(run).digest == from_log(run)
    assert saved(run).digest.error == "RuntimeError: failed at step 40"


def test_summaries_are_written_at_most_every_summary_seconds_and_always_at_the_end(
    tmp_path, monkeypatch
):
    writes = []
    original = runsummary.write
    monkeypatch.setattr(runsummary, "write", lambda p, s: writes.append(s) or original(p, s))
    monkeypatch.setattr(run_logger, "SUMMARY_SECONDS", 1e6)
    run = tmp_path / "run"
    setup(config(run)).fit(threads=1)
    assert [w.digest.epochs for w in writes] == [0, 4]  # the start, the end: not the epochs
    assert writes[0].digest.first is not None and writes[-1] == saved(run)


class SummaryAtEpoch(Callback):
    """At the start of epoch 3, waits for the summary of epoch 2's end (the writer thread
    writes it) and keeps it."""

    def __init__(self, run_dir: Path, written: threading.Event) -> None:
        self.run_dir, self.written, self.seen = run_dir, written, None

    def on_epoch_begin(self, trainer, epoch) -> None:
        if epoch == 2:
            assert self.written.wait(TIMEOUT)
            self.seen = saved(self.run_dir)


def test_a_running_run_summary_is_written_at_each_epoch_end(tmp_path, monkeypatch):
    written = threading.Event()
    original = runsummary.write

    def write(path, summary):
        original(path, summary)
        if summary.digest.epochs == 2:
            written.set()

    monkeypatch.setattr(runsummary, "write", write)
    monkeypatch.setattr(run_logger, "SUMMARY_SECONDS", 0.0)
    watcher = SummaryAtEpoch(tmp_path / "run", written)
    setup(config(tmp_path / "run"), callbacks=[watcher]).fit(threads=1)
    seen = watcher.seen
    assert seen.digest.epochs == 2 and seen.digest.end_reason is None
    log = (tmp_path / "run" / runs.EVENTS_FILE).read_bytes()
    assert runsummary.tail_of(tmp_path / "run" / runs.EVENTS_FILE, seen.bytes) == seen.tail
    assert log[: seen.bytes].count(b"\n") == seen.lines


# -- read by the index -------------------------------------------------------------------------
def test_a_killed_run_reads_its_summary_then_the_lines_after_it_and_writes_it_back(
    tmp_path, monkeypatch
):
    run = killed(tmp_path / "runs" / "run", 50)
    before = saved(run)  # the lines after it were written unsummarised
    log = (run / runs.EVENTS_FILE).read_bytes()
    expected = row_without_summary(run)
    assert saved(run) == before
    lines = decoded_lines(monkeypatch)
    (row,) = runindex.RunIndex(tmp_path / "runs").refresh()
    assert row == expected and row.state == "crashed" and row.epochs_done == 2
    numbers = [int(where.rsplit(":", 1)[1]) for where in lines]
    assert numbers == list(range(before.lines + 1, log.count(b"\n") + 1)) and numbers
    assert saved(run).bytes == len(log)  # written back: nothing writes the run any more
    lines.clear()
    (again,) = runindex.RunIndex(tmp_path / "runs").refresh()
    assert again == expected and lines == []


def test_an_old_run_without_a_summary_reads_from_its_log_and_gets_one(tmp_path, monkeypatch):
    run = write_run(tmp_path, "old", epochs=2)
    assert not (run / runs.SUMMARY_FILE).exists()
    first = runindex.summarize(run)
    assert (first.state, first.epochs_done, first.problem) == ("finished", 2, "")
    assert saved(run).digest == from_log(run)
    lines = decoded_lines(monkeypatch)
    assert runindex.summarize(run) == first and lines == []


def test_a_folder_the_reader_may_not_write_still_lists_and_keeps_reading_the_log(
    tmp_path, monkeypatch
):
    run = write_run(tmp_path, "old", epochs=2)

    def refuse(path, text, sync=True):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runsummary, "atomic_write_text", refuse)
    index = runindex.RunIndex(tmp_path)
    (row,) = index.refresh()
    assert (row.state, row.epochs_done, row.problem) == ("finished", 2, "")
    assert not (run / runs.SUMMARY_FILE).exists() and index.skipped == {}
    assert main(["runs", "list", str(tmp_path)]) == 0


def test_a_running_run_has_no_summary_written_by_the_reader(tmp_path):
    run = write_run(tmp_path, "live", epochs=1, end=None)
    lock = runs.WriterLock(run)
    lock.acquire()
    try:
        (row,) = runindex.RunIndex(tmp_path).refresh()
        assert row.state == "running" and not (run / runs.SUMMARY_FILE).exists()
    finally:
        lock.release()


def test_a_log_rewritten_since_its_summary_is_read_whole(tmp_path):
    run = write_run(tmp_path, "r", epochs=1)
    runindex.summarize(run)  # writes the summary of the 1-epoch log
    old = saved(run)
    other = write_run(tmp_path, "other", epochs=3)
    (run / runs.EVENTS_FILE).write_bytes((other / runs.EVENTS_FILE).read_bytes())
    row = runindex.summarize(run)
    assert row.epochs_done == 3 and not row.problem
    assert saved(run).digest == from_log(run) != old.digest


def test_a_log_rewritten_to_the_same_size_is_told_by_its_mtime_and_tail(tmp_path):
    run = write_run(tmp_path, "r", epochs=2)
    runindex.summarize(run)
    log = run / runs.EVENTS_FILE
    data = log.read_bytes()
    end = data.rindex(b'"reason":"finished"')
    log.write_bytes(data[:end] + b'"reason":"diverged"' + data[end + 19 :])
    os.utime(log, ns=(saved(run).mtime_ns + 10**9,) * 2)
    assert runindex.summarize(run).state == "diverged"


def test_a_log_appended_to_since_its_summary_reads_the_new_lines(tmp_path):
    run = write_run(tmp_path, "r", epochs=1, end=None)
    runindex.summarize(run)
    with (run / runs.EVENTS_FILE).open("a") as log:
        log.write(runs.encode("epoch", 20, {"epoch": 1, "loss": 0.5, "val_accuracy": 0.99}))
        log.write(runs.encode("end", 20, {"reason": "finished"}))
    row = runindex.summarize(run)
    assert (row.state, row.epochs_done, row.best_value) == ("finished", 2, 0.99)
    assert row == row_without_summary(run)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda data: data[: len(data) // 2], "not valid JSON"),
        (lambda data: b"", "not valid JSON"),
        (lambda data: data.replace(b'"epochs": 2', b'"epochs": "2"'), "digest.epochs"),
        (lambda data: data.replace(b'"version": 1', b'"version": 7'), "version 7"),
        (lambda data: b"\xff\xfe" + data, "not UTF-8"),
    ],
)
def test_a_bad_summary_is_one_notice_and_the_row_comes_from_the_log(
    tmp_path, capsys, damage, words
):
    run = write_run(tmp_path, "r", epochs=2)
    expected = runindex.summarize(run)
    path = run / runs.SUMMARY_FILE
    path.write_bytes(damage(path.read_bytes()))
    row = runindex.summarize(run)
    assert row.problem.startswith(f"{path}: ") and words in row.problem
    assert row.problem.endswith("; the log was read instead") and "\n" not in row.problem
    assert row == runindex.RunSummary(**{**_fields(expected), "problem": row.problem})
    assert runindex.summarize(run) == expected  # written back whole: no notice any more
    path.write_bytes(damage(path.read_bytes()))
    assert main(["runs", "list", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: r: ") and words in err[0]


def _fields(summary: runindex.RunSummary) -> dict:
    return {name: getattr(summary, name) for name in summary.__dataclass_fields__}


def test_a_summary_that_is_a_link_or_a_folder_is_refused_and_the_log_read(tmp_path):
    run = write_run(tmp_path, "r", epochs=2)
    expected = runindex.summarize(run)
    path = run / runs.SUMMARY_FILE
    path.unlink()
    path.symlink_to("/dev/zero")
    row = runindex.summarize(run)
    assert "symbolic link" in row.problem and row.epochs_done == expected.epochs_done
    assert Path("/dev/zero").exists()  # the link was replaced, its target left alone
    assert not path.is_symlink() and saved(run).digest == from_log(run)


def test_a_log_is_read_in_bounded_chunks_with_the_same_result(tmp_path, monkeypatch):
    run = write_run(tmp_path, "r", epochs=3, batches=20)
    lines = (run / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    note = {"kind": "loss_spike", "message": "x" * 5000, "suggestion": "none"}
    lines.insert(30, runs.encode("warning", 25, note))  # a line longer than a chunk
    (run / runs.EVENTS_FILE).write_text("".join(lines))
    whole = from_log(run)
    monkeypatch.setattr(run_reading, "SCAN_CHUNK", 100)
    reads = []
    original = runs.EventTail.read
    monkeypatch.setattr(
        runs.EventTail,
        "read",
        lambda tail, limit=None: reads.append(limit) or original(tail, limit),
    )
    assert from_log(run) == whole and whole.epochs == 3 and not whole.problem
    assert len(reads) > len(lines) / 2 and set(reads) == {100}


# -- the reader, fuzzed --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    """Summary files as written: of a finished, a crashed and a failed run."""
    root = tmp_path_factory.mktemp("seeds")
    files = []
    for name, end in (("a", "finished"), ("b", None), ("c", "error")):
        run = write_run(root, name, epochs=2, end=end)
        runindex.summarize(run)
        files.append((run / runs.SUMMARY_FILE).read_bytes())
    return files


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.sampled_from([10**400, 2**63, -1, 1e308, "", "x" * 3000])
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def retyped(draw, seeds: list[bytes]) -> bytes:
    """A summary as written with one field (of any part, or a new one) given any JSON value."""
    record = json.loads(draw(st.sampled_from(seeds)))
    target = record[draw(st.sampled_from(["log", "digest"]))] if draw(st.booleans()) else record
    target[draw(st.sampled_from(sorted(target)) | st.text(max_size=4))] = draw(json_values)
    return json.dumps(record, allow_nan=True).encode()


#: JSON nested past any parser's depth, where the summary or one of its fields should be.
nested = st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth) | st.integers(
    1, 200_000
).map(lambda depth: b'{"format": ' + b"[" * depth + b"]" * depth + b"}")


def damaged(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return mutated(seeds) | retyped(seeds) | nested | st.binary(max_size=300)


def read_or_error(path: Path) -> runsummary.Summary | str:
    """A summary file read: a checked Summary, or the one line of its SummaryError."""
    try:
        summary = runsummary.read(path)
    except runsummary.SummaryError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400
        return message
    assert summary is not None and min(summary.bytes, summary.lines) >= 0
    digest = summary.digest
    numbers = (digest.first, digest.last, digest.val_accuracy, digest.val_loss, digest.test_value)
    assert all(value is None or type(value) is float for value in numbers)
    assert type(digest.epochs) is int and isinstance(digest.error, str)
    return summary


@SETTINGS
@given(data=st.data())
def test_a_damaged_summary_is_one_summary_error_or_a_checked_summary(tmp_path, seeds, data):
    path = tmp_path / runs.SUMMARY_FILE
    path.write_bytes(data.draw(damaged(seeds)))
    read_or_error(path)
    path.unlink()
    assert runsummary.read(path) is None  # none: no error (an older run)


@SETTINGS
@given(data=st.data())
def test_whatever_the_summary_holds_the_index_shows_the_run_without_a_traceback(
    tmp_path_factory, seeds, data
):
    run = write_run(tmp_path_factory.mktemp("fuzzed"), "r", epochs=2)
    expected = row_without_summary(run)
    path = run / runs.SUMMARY_FILE
    path.write_bytes(data.draw(damaged(seeds)))
    read = read_or_error(path)
    row = runindex.summarize(run)
    if isinstance(read, str):  # unusable: the log read instead, with one notice
        assert row.problem == f"{read}; the log was read instead"
        assert row == runindex.RunSummary(**{**_fields(expected), "problem": row.problem})
    elif not read.matches(run / runs.EVENTS_FILE):  # of another log: this one read whole
        assert row == expected
    else:  # a summary of this log, however wrong its numbers: shown as it says
        assert row.epochs_done == read.digest.epochs and row.state in runindex.STATES
    assert runindex.summarize(run).problem == ""  # written back
