"""Issue 11 items 1 and 4 without a terminal: the runs table of a folder holding runs in every
state (a finished real run, a writer killed with SIGKILL, a forked run...), sorting and
filtering, refreshing while a run is written, the config diff, and the exports (`nnlib runs
list`, `nnlib runs export`) reading back the logged numbers exactly."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CLI_TIMEOUT, config_for, deny_reading, write_run, writer_env

from nnlib import runindex, runs
from nnlib.cli import main


def by_name(summaries: list[runindex.RunSummary]) -> dict[str, runindex.RunSummary]:
    return {s.name: s for s in summaries}


def test_the_runs_table_tells_every_state(workspace):
    root, _ = workspace
    table = by_name(runindex.RunIndex(root).refresh())
    assert {name: s.state for name, s in table.items()} == {
        "real": "finished",
        "stopped": "stopped",
        "diverged": "diverged",
        "forked": "finished",
        "errored": "error",
        "running": "running",
        "empty": "empty",
        "killed": "crashed",
    }
    real = table["real"]
    assert (real.dataset, real.arch, real.epochs_done, real.epochs_total) == (
        "spirals",
        "2-8-3",
        2,
        2,
    )
    assert real.best_metric == "val_accuracy" and 0 < real.best_value <= 1
    assert real.started is not None and real.duration is not None and not real.problem
    assert table["forked"].parent == "real@40" and table["real"].parent == ""
    assert table["killed"].reason == "" and table["errored"].reason == "error"
    cells = dict(zip(runindex.COLUMNS, table["forked"].cells(), strict=True))
    assert cells["epochs"] == "3/3" and cells["parent"] == "real@40"
    assert cells["best val"] == "95.0% acc"


def test_sorting_is_by_value_with_blanks_last_and_filtering_is_by_text(workspace):
    root, _ = workspace
    summaries = runindex.RunIndex(root).refresh()
    by_epochs = sorted(summaries, key=lambda s: s.sort_value("epochs"))
    assert [s.epochs_done for s in by_epochs] == sorted(s.epochs_done for s in summaries)
    by_best = sorted(summaries, key=lambda s: s.sort_value("best val"))
    assert by_best[-1].best_value is None and by_best[0].best_value is not None
    by_parent = sorted(summaries, key=lambda s: s.sort_value("parent"))
    assert by_parent[0].name == "forked"
    assert runindex.RunSummary(Path("a")).sort_value("duration") == (1, 0)


def test_the_index_follows_a_run_being_written_and_rereads_only_what_changed(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path, "live", epochs=1, end=None)
    lock = runs.WriterLock(run_dir)
    lock.acquire()
    index = runindex.RunIndex(tmp_path)
    try:
        assert by_name(index.refresh())["live"].epochs_done == 1
        with (run_dir / runs.EVENTS_FILE).open("a") as log:
            log.write(runs.encode("epoch", 20, {"epoch": 1, "loss": 0.5, "val_accuracy": 0.99}))
        live = by_name(index.refresh())["live"]
        assert (live.state, live.epochs_done, live.best_value) == ("running", 2, 0.99)
        with (run_dir / runs.EVENTS_FILE).open("a") as log:
            log.write(runs.encode("end", 20, {"reason": "finished"}))
    finally:
        lock.release()
    assert by_name(index.refresh())["live"].state == "finished"
    reads = []
    original = runs.EventTail.read
    monkeypatch.setattr(runs.EventTail, "read", lambda self: reads.append(1) or original(self))
    index.refresh()
    assert reads == []  # an ended run whose files did not change is not read again


def test_an_ended_run_that_grows_under_a_live_writer_reads_as_running(tmp_path):
    """A stopped run being resumed: its writer is asked about again once its log grows (it
    read as crashed for a refresh, the writer asked only while the log had no end)."""
    run_dir = write_run(tmp_path, "resumed", epochs=1, end="stopped")
    index = runindex.RunIndex(tmp_path)
    assert by_name(index.refresh())["resumed"].state == "stopped"
    lock = runs.WriterLock(run_dir)
    lock.acquire()
    try:
        with (run_dir / runs.EVENTS_FILE).open("a") as log:
            log.write(runs.encode("run_resume", 10, {"from_step": 10, "epoch": 1}))
        assert by_name(index.refresh())["resumed"].state == "running"
    finally:
        lock.release()


def test_a_bad_config_or_log_line_is_named_and_the_rest_is_shown(tmp_path):
    run_dir = write_run(tmp_path, "bad")
    (run_dir / runs.CONFIG_FILE).write_text("{not json")
    summary = runindex.summarize(run_dir)
    assert summary.state == "finished" and "config.json" in summary.problem
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    lines.insert(3, '{"type": "batch", "step": "x"}\n')
    (run_dir / runs.CONFIG_FILE).write_text("{}")
    (run_dir / runs.EVENTS_FILE).write_text("".join(lines))
    summary = runindex.summarize(run_dir)
    assert summary.state == "finished" and f"{runs.EVENTS_FILE}:4" in summary.problem


def test_the_config_diff_lists_exactly_the_keys_that_differ():
    a = config_for("a")
    b = config_for("b", lr=0.05, parent={"run": "a", "step": 3})
    c = config_for("c", trainer={**a["trainer"], "batch_size": 64})
    diff = runindex.config_diff([a, b, c])
    assert list(diff) == ["lr", "trainer.batch_size", "parent.run", "parent.step"]
    assert diff["lr"] == [0.1, 0.05, 0.1]
    assert diff["parent.step"] == [None, 3, None]
    assert runindex.config_diff([a, config_for("other-name")]) == {}  # run_dir is identity


def test_the_csv_export_reads_back_the_logged_numbers_exactly(tmp_path, capsys):
    run_dir = write_run(tmp_path, "r", epochs=2)
    target = tmp_path / "out" / "r.csv"
    assert main(["runs", "export", str(run_dir), "--csv", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    events = [e for e in runs.read(run_dir) if e.type in ("batch", "epoch")]
    assert len(rows) == len(events)
    batches = [e for e in events if e.type == "batch"]
    ordered = batches + [e for e in events if e.type == "epoch"]
    for row, event in zip(rows, ordered, strict=True):
        assert row["kind"] == event.type and int(row["step"]) == event.step
        assert float(row["time"]) == event.time
        for key, value in event.data.items():
            if key in runindex.COUNTED_FROM_1:  # the CSV counts epochs and batches from 1
                key, value = runindex.COUNTED_FROM_1[key], value + 1
            assert float(row[key]) == value, (key, row[key], value)
    smooth = runindex.ema([e["loss"] for e in batches], runindex.DEFAULT_SMOOTHING)
    assert [float(r["loss_ema"]) for r in rows[: len(batches)]] == smooth.tolist()
    assert all(r["loss_ema"] == "" for r in rows[len(batches) :])


def test_the_json_export_holds_every_event(tmp_path, capsys):
    run_dir = write_run(tmp_path, "r", epochs=1)
    assert main(["runs", "export", str(run_dir), "--json", "-", "--smoothing", "0.9"]) == 0
    records = json.loads(capsys.readouterr().out)
    events = runs.read(run_dir)
    assert [(r["type"], r["step"]) for r in records] == [(e.type, e.step) for e in events]
    assert records[-1] == {"type": "end", "time": events[-1].time, "step": 10, "reason": "finished"}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["runs", "export", "{run}"], "give --csv FILE, --json FILE or both"),
        (["runs", "export", "{missing}", "--csv", "-"], "no such run directory"),
        (["runs", "export", "{run}", "--csv", "-", "--smoothing", "1"], "in [0, 1)"),
        (["runs", "list", "{missing}"], "no such runs folder"),
    ],
)
def test_bad_export_and_list_arguments_exit_2_with_one_line(tmp_path, capsys, argv, words):
    run_dir = write_run(tmp_path, "r", epochs=1)
    paths = {"run": str(run_dir), "missing": str(tmp_path / "missing")}
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_runs_list_prints_the_table(workspace, capsys):
    root, _ = workspace
    assert main(["runs", "list", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "name",
        "dataset",
        "arch",
        "state",
        "epochs",
        "best",
        "val",
        "test",
        "started",
        "duration",
        "parent",
    ]
    states = {line.split()[0]: line.split()[3] for line in lines[1:]}
    assert states["killed"] == "crashed" and states["running"] == "running"
    assert len(lines) == 1 + 8


def test_runs_list_fits_the_terminal_and_piped_keeps_every_column(workspace, capsys, monkeypatch):
    """On an 80-column terminal the table was as wide as its longest architecture."""
    root, _ = workspace
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a: os.terminal_size((80, 24)))
    assert main(["runs", "list", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 8 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("name ") and lines[0].split()[-3:] == ["best", "val", "test"]
    states = {line.split()[0]: line for line in lines[1:]}
    assert "crashed" in states["killed"] and "running" in states["running"]


def test_a_narrow_table_cuts_the_architecture_before_leaving_columns_out():
    long = "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu dense(10)"
    row = ("b", "glyphs", long, "finished", "1/1", "16.7% acc", "14.6% acc", "2026-12-06", "0s", "")
    whole = runindex.format_table([row])
    assert long in whole and whole.splitlines()[0].split()[-1] == "parent"
    for width in (150, 120, 100, 80, 60):
        lines = runindex.format_table([row], width=width).splitlines()
        assert all(len(line) <= width for line in lines)
        assert lines[1].startswith("b ") and "finished" in lines[1] and "16.7% acc" in lines[1]
    assert "conv(6,5,pad=2) relu max" in runindex.format_table([row], width=120)
    header = runindex.format_table([row], width=60).splitlines()[0].split()
    assert "started" not in header and "arch" not in header and "dataset" in header


def test_a_run_directory_called_list_is_still_printed_by_runs(tmp_path, capsys, monkeypatch):
    write_run(tmp_path, "list", epochs=1)
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "./list"]) == 0
    assert "finished" in capsys.readouterr().out


#: The capabilities that let root read any file; without them root is refused like any user.
READ_ANYTHING = "-dac_override,-dac_read_search"


def unprivileged(folder: Path) -> list[str]:
    """A command prefix under which `folder` cannot be read, as another user's 0700 folder
    cannot: as root (which reads anything) the folder goes to nobody and the command runs
    without the capabilities to override permissions (setpriv); as a user it is made 0o000."""
    if os.geteuid() != 0:
        folder.chmod(0o000)
        return []
    setpriv = shutil.which("setpriv")
    check = [setpriv or "setpriv", f"--bounding-set={READ_ANYTHING}", "true"]
    if setpriv is None or subprocess.run(check, capture_output=True).returncode != 0:
        pytest.skip("running as root without setpriv to drop the capability to read anything")
    os.chown(folder, 65534, 65534)  # nobody
    folder.chmod(0o700)
    return check[:2]


def test_runs_list_skips_an_unreadable_folder_with_one_warning(tmp_path):
    """Issue 17 item 13: a 0700 folder of another user used to empty the whole table."""
    for name in ("a", "b", "secret"):
        write_run(tmp_path, name, epochs=1)
    prefix = unprivileged(tmp_path / "secret")
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "nnlib.cli", "runs", "list", str(tmp_path)],
            env=writer_env(),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
    finally:
        (tmp_path / "secret").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["name", "a", "b"]
    assert done.stderr.splitlines() == [
        f"warning: {tmp_path / 'secret'}: cannot be read (Permission denied); left out of the "
        "runs table"
    ]


def test_the_index_skips_an_unreadable_folder_until_it_can_be_read(tmp_path, monkeypatch):
    for name in ("a", "secret"):
        write_run(tmp_path, name, epochs=1)
    index = runindex.RunIndex(tmp_path)
    with monkeypatch.context() as patch:
        deny_reading(patch, tmp_path / "secret")
        assert [s.name for s in index.refresh()] == ["a"]
        assert list(index.skipped) == [tmp_path / "secret"]
    assert [s.name for s in index.refresh()] == ["a", "secret"] and index.skipped == {}


def test_an_unreadable_runs_folder_is_one_line(tmp_path, capsys, monkeypatch):
    deny_reading(monkeypatch, tmp_path)
    assert main(["runs", "list", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}: cannot read the runs folder (Permission denied)\n"
    )


def test_import_nnlib_imports_no_ui_library():
    code = (
        "import sys, nnlib, nnlib.runindex, nnlib.cli; "
        "print(sorted(m for m in ('textual', 'rich', 'plotext') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=writer_env(), capture_output=True, text=True
    )
    assert out.stdout.strip() == "[]", out.stderr
