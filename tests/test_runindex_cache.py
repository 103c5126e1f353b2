"""Issue 20 item 3: the runs folder's index file (`runs.folderindex`). A cold refresh that
takes rows from it lists exactly what one that reads every run does, over runs in every
state; a run changed in any way after the file was written reads as it is now; a file that
is corrupt, truncated, huge or another folder's is ignored; a folder that cannot be written
still lists its runs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlib import runindex, runs, runsummary
from nnlib.runmeta import rename, trash
from nnlib.runs import folderindex
from nnlib.sweepindex import SweepIndex

HOUR_NS = 3600 * 10**9


@pytest.fixture(autouse=True, scope="module")
def settled():
    """Every run counts as settled (the tests' runs were all made just now), but where a test
    puts SETTLE_NS back."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folderindex, "SETTLE_NS", -HOUR_NS)
        yield


def uncached(root: Path) -> list[runindex.RunSummary]:
    """The rows as the index reads them without its file (and writing none)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folderindex, "load", lambda root: {})
        patch.setattr(folderindex, "save", lambda root, entries: None)
        return runindex.RunIndex(root).refresh()


def same_rows(got: list[runindex.RunSummary], expected: list[runindex.RunSummary]) -> None:
    """Equal rows, their configs too (RunSummary leaves config out of ==); a running run's
    duration aside (it grows as it is read)."""
    assert list(map(timeless, got)) == list(map(timeless, expected))
    assert [s.config for s in got] == [s.config for s in expected]


def timeless(row: runindex.RunSummary) -> runindex.RunSummary:
    return dataclasses.replace(row, duration=None) if row.state == "running" else row


def scanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the runs whose files the index opens from now on."""
    names: list[str] = []

    class Counted(runindex._RunScan):
        def __init__(self, path: Path) -> None:
            names.append(path.name)
            super().__init__(path)

    monkeypatch.setattr(runindex, "_RunScan", Counted)
    return names


def settle(root: Path) -> list[runindex.RunSummary]:
    """Refresh until the index file holds what the folder's runs are: a run read from its log
    gets its summary written back, which changes it once more."""
    runindex.RunIndex(root).refresh()
    return runindex.RunIndex(root).refresh()


def test_a_cold_refresh_from_the_index_file_lists_what_reading_every_run_does(
    workspace, monkeypatch
):
    root, _ = workspace
    (root / folderindex.INDEX_FILE).unlink(missing_ok=True)
    settle(root)
    expected = uncached(root)
    names = scanned(monkeypatch)
    index = runindex.RunIndex(root)
    got = index.refresh()
    same_rows(got, expected)
    assert {s.state for s in got} == {*folderindex.KEPT_STATES, "running"}
    assert names == ["running"]  # only the run being written had its files opened
    again = index.refresh()  # and so on, in the same process
    assert names == ["running"]
    same_rows(again, uncached(root))
    kept = folderindex.load(root)
    assert set(kept) == {s.name for s in got} - {"running"}


def test_listings_of_the_folder_pass_over_the_index_file(workspace):
    root, _ = workspace
    settle(root)
    assert (root / folderindex.INDEX_FILE).is_file()
    names = {s.name for s in runindex.RunIndex(root).refresh()}
    assert folderindex.INDEX_FILE not in names and "real" in names
    assert SweepIndex(root).refresh() == []


def test_a_run_changed_after_the_index_file_was_written_reads_as_it_is_now(tmp_path):
    root = tmp_path / "runs"
    for name in ("grows", "renamed", "deleted", "trashed", "resummarized", "reconfigured"):
        write_run(root, name, epochs=2)
    write_run(root, "resumed", epochs=1, end=None)  # crashed: its writer may come back
    (root / "resumed" / runs.LOCK_FILE).write_bytes(b" " * runs.END_RESERVE)
    before = {s.name: s for s in settle(root)}
    assert before["resumed"].state == "crashed"
    assert set(folderindex.load(root)) == set(before)

    with (root / "grows" / runs.EVENTS_FILE).open("a") as log:
        log.write(runs.encode("epoch", 30, {"epoch": 2, "loss": 0.1, "val_accuracy": 0.99}))
        log.write(runs.encode("end", 30, {"reason": "finished"}))
    lock = runs.WriterLock(root / "resumed")
    lock.acquire()
    rename(root / "renamed", "renamed-2")
    shutil.rmtree(root / "deleted")
    trash(root / "trashed")
    summary_path = root / "resummarized" / runs.SUMMARY_FILE
    summary = runsummary.read(summary_path)
    runsummary.write(
        summary_path,
        dataclasses.replace(summary, digest=dataclasses.replace(summary.digest, epochs=7)),
    )
    config_path = root / "reconfigured" / runs.CONFIG_FILE
    config = json.loads(config_path.read_text())
    old = config_path.stat()
    dataset = config["dataset_info"]["name"]
    config["dataset_info"]["name"] = "x" * len(dataset)  # same size, written in place...
    config_path.write_text(json.dumps(config))
    os.utime(config_path, ns=(old.st_atime_ns, old.st_mtime_ns))  # ...and the same mtime
    assert config_path.stat().st_size == old.st_size
    try:
        got = runindex.RunIndex(root).refresh()
        same_rows(got, uncached(root))
    finally:
        lock.release()
    rows = {s.name: s for s in got}
    assert sorted(rows) == ["grows", "reconfigured", "renamed-2", "resumed", "resummarized"]
    assert (rows["grows"].epochs_done, rows["grows"].best_value) == (3, 0.99)
    assert rows["resumed"].state == "running"
    assert rows["resummarized"].epochs_done == 7
    assert rows["reconfigured"].dataset == "x" * len(dataset)
    assert set(folderindex.load(root)) == set(rows) - {"resumed"}


def test_a_run_changed_just_now_is_not_kept_until_it_has_settled(tmp_path, monkeypatch):
    write_run(tmp_path, "a")
    monkeypatch.setattr(folderindex, "SETTLE_NS", HOUR_NS)
    index = runindex.RunIndex(tmp_path)
    (row,) = index.refresh()
    assert row.state == "finished" and folderindex.load(tmp_path) == {}
    monkeypatch.setattr(folderindex, "SETTLE_NS", -HOUR_NS)  # an hour on
    assert index.refresh() == [row] and set(folderindex.load(tmp_path)) == {"a"}


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> tuple[Path, list[runindex.RunSummary], bytes]:
    """A folder of a finished, a crashed and an empty run, its rows and its index file."""
    root = tmp_path_factory.mktemp("small")
    write_run(root, "finished", epochs=2)
    write_run(root, "crashed", epochs=1, end=None)
    (root / "empty").mkdir()
    (root / "empty" / runs.CONFIG_FILE).write_text("{}")
    settle(root)
    rows = uncached(root)
    return root, rows, (root / folderindex.INDEX_FILE).read_bytes()


def test_the_index_file_holds_a_row_per_run_nothing_writes(small_folder):
    root, rows, _ = small_folder
    assert {s.state for s in rows} == {"finished", "crashed", "empty"}
    kept = folderindex.load(root)
    assert {name: entry.state for name, entry in kept.items()} == {s.name: s.state for s in rows}


def with_index_file(root: Path, data: bytes) -> list[runindex.RunSummary]:
    (root / folderindex.INDEX_FILE).write_bytes(data)
    return runindex.RunIndex(root).refresh()


def hashed(body: bytes) -> bytes:
    """`body` under a header whose hash is right: what passes the hash to the checks."""
    return folderindex.HEADER + b" " + folderindex._hash(body) + b"\n" + body


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_any_bytes_for_an_index_file_list_the_same_rows(small_folder, data):
    root, rows, _ = small_folder
    same_rows(with_index_file(root, data), rows)
    same_rows(with_index_file(root, hashed(data)), rows)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=JSON,
    where=st.sampled_from(["top", "runs", "entry", "status", "state", "config", "digest"]),
)
def test_any_json_for_an_index_file_lists_the_same_rows(small_folder, value, where):
    """A file that passes the hash check but holds anything at any level. Its values are
    trusted when of the right kind (the hash says the index wrote them: only a forged file
    differs), so a run's own state, config or digest may show as given; the rest holds."""
    root, rows, good = small_folder
    record = json.loads(good.partition(b"\n")[2])
    entry = record["runs"]["finished"]
    if where == "top":
        record = value
    elif where == "runs":
        record["runs"] = value
    elif where == "entry":
        record["runs"]["finished"] = value
    else:
        entry[where] = value
    got = with_index_file(root, hashed(json.dumps(record).encode()))
    if where in ("state", "config", "digest"):
        assert [s.name for s in got] == [s.name for s in rows]
        got, rows = got[:-1], rows[:-1]  # "finished" is the last by name
    same_rows(got, rows)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_torn_or_altered_index_file_lists_the_same_rows(small_folder, data):
    root, rows, good = small_folder
    cut = data.draw(st.integers(0, len(good) - 1))
    same_rows(with_index_file(root, good[:cut]), rows)
    at = data.draw(st.integers(0, len(good) - 1))
    flipped = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    same_rows(with_index_file(root, flipped), rows)


def test_a_huge_a_linked_or_a_foreign_index_file_is_passed_over(small_folder, tmp_path):
    root, rows, good = small_folder
    path = root / folderindex.INDEX_FILE
    with path.open("wb") as handle:
        handle.truncate(folderindex.MAX_BYTES + 1)  # sparse: no memory, no disk
    same_rows(runindex.RunIndex(root).refresh(), rows)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(good)
    path.unlink()
    path.symlink_to(elsewhere)
    same_rows(runindex.RunIndex(root).refresh(), rows)
    assert not path.is_symlink()  # replaced by the index's own file
    # Another folder's index file, of runs with the same names but other numbers.
    other = tmp_path / "other"
    write_run(other, "finished", epochs=5)
    write_run(other, "crashed", epochs=3, end=None)
    settle(other)
    other_rows = uncached(other)
    shutil.copyfile(path, other / folderindex.INDEX_FILE)
    same_rows(runindex.RunIndex(other).refresh(), other_rows)
    assert other_rows[1].epochs_done == 5


def test_a_folder_that_cannot_be_written_still_lists_its_runs(tmp_path, monkeypatch):
    write_run(tmp_path, "a", epochs=2)
    write_run(tmp_path, "b", epochs=1)
    expected = uncached(tmp_path)

    def refuse(path, write, sync=True, parents=True):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(folderindex, "atomic_write", refuse)
    same_rows(runindex.RunIndex(tmp_path).refresh(), expected)
    assert not (tmp_path / folderindex.INDEX_FILE).exists()
    monkeypatch.undo()
    settle(tmp_path)  # written where it can be, and read where it cannot
    monkeypatch.setattr(folderindex, "atomic_write", refuse)
    names = scanned(monkeypatch)
    same_rows(runindex.RunIndex(tmp_path).refresh(), expected)
    assert names == []


def test_a_runs_folder_deleted_before_the_index_is_written_is_not_made_again(tmp_path):
    """atomic_write makes missing parent folders: a runs folder removed between its listing
    and the index's write came back holding only the index file."""
    root = tmp_path / "runs"
    write_run(root, "a", epochs=1)
    entries = {}  # what a refresh would save; the folder is gone by then
    shutil.rmtree(root)
    folderindex.save(root, entries)
    assert not root.exists()
