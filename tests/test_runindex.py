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
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import runfilter, runindex, runs, runtable
from nnlib.cli import main
from nnlib.runfilter import FilterError
from nnlib.runmeta import META_FILE, RunMeta, RunMetaError, read_meta, rename, tag, trash
from nnlib.runtable import select


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
    cells = {c.name: c.text(runtable.RunRow(table["forked"])) for c in runtable.FIXED}
    assert cells["epochs"] == "3/3" and cells["parent"] == "real@40"
    assert cells["best val"] == "95.0%"


def test_sorting_is_by_value_with_blanks_last_and_filtering_is_by_text(workspace):
    root, _ = workspace
    rows = [runtable.RunRow(s) for s in runindex.RunIndex(root).refresh()]

    def by(name: str, descending: bool = False) -> list[runindex.RunSummary]:
        column = runtable.column_named(name, runtable.FIXED)
        return [r.summary for r in runtable.sort_rows(rows, column, descending)]

    assert [s.epochs_done for s in by("epochs")] == sorted(r.summary.epochs_done for r in rows)
    for descending in (False, True):  # blanks last either way
        assert by("best val", descending)[-1].best_value is None
        assert by("best val", descending)[0].best_value is not None
    best = [s.best_value for s in by("best val", True) if s.best_value is not None]
    assert best == sorted(best, reverse=True)
    assert by("parent")[0].name == "forked"
    duration = runtable.column_named("duration", runtable.FIXED)
    assert duration.sort_key(runtable.RunRow(runindex.RunSummary(Path("a")))) == (1, 0)


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


def test_each_setting_is_one_key_and_the_diff_lists_exactly_those_that_differ():
    """Issue 20 item 4: config.json records lr at the top level and as trainer.optimizer.lr,
    a fork's parent as parent_run and parent.run; each is one setting."""
    a = config_for("a")
    a["trainer"]["optimizer"] = {"name": "sgd", "lr": 0.1, "momentum": 0.9}
    b = config_for("b", lr=0.05, parent_run="a", parent_step=None, parent={"run": "a", "step": 3})
    b["trainer"] = {**a["trainer"], "optimizer": {**a["trainer"]["optimizer"], "lr": 0.05}}
    c = config_for("c", batch_size=64, trainer={**a["trainer"], "batch_size": 64})
    settings = runindex.settings_of(b)
    assert settings["lr"] == 0.05 and settings["momentum"] == 0.9 and settings["arch"] == "2-16-3"
    assert settings["parent_run"] == "a" and settings["parent_step"] == 3  # null gives way
    assert not [k for k in settings if k.startswith(("trainer.", "parent."))]
    diff = runindex.settings_diff([runindex.effective_settings(x) for x in (a, b, c)])
    assert list(diff) == ["batch_size", "lr", "parent_run", "parent_step"]
    assert [s and s.start for s in diff["lr"]] == [0.1, 0.05, 0.1]
    assert diff["parent_step"][0] is None and diff["parent_step"][1].start == 3
    same = runindex.effective_settings(config_for("other-name"))
    assert runindex.settings_diff([runindex.effective_settings(config_for("a")), same]) == {}


def test_the_runs_table_reads_a_hyperparameter_recorded_only_by_the_trainer():
    """A script's run (runs.RunLogger without an experiment) has lr only as
    trainer.optimizer.lr: the table's lr column has it, as compare does."""
    script = {"trainer": {"optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 16}}
    rows = [
        runtable.RunRow(runindex.RunSummary(Path(name), config=config))
        for name, config in (("script", script), ("experiment", config_for("e")))
    ]
    assert [(r.hparam("lr"), r.hparam("optimizer"), r.hparam("batch_size")) for r in rows] == [
        (0.003, "adam", 16),
        (0.1, "sgd", 32),
    ]
    shown = [c.name for c in runtable.columns_for(rows)]
    assert shown[-4:] == ["optimizer", "lr", "batch_size", "seed"]


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
    # the table's columns, then the hyperparameters that differ (the fork's lr)
    assert lines[0].split()[:12] == [
        *("name", "state", "epochs", "best", "val", "test", "dataset", "arch", "tags"),
        *("parent", "started", "duration"),
    ]
    assert "lr" in lines[0].split()[12:] and "optimizer" not in lines[0]
    states = {line.split()[0]: line.split()[1] for line in lines[1:]}
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
    assert lines[0].split()[:6] == ["name", "state", "epochs", "best", "val", "test"]
    states = {line.split()[0]: line for line in lines[1:]}
    assert "crashed" in states["killed"] and "running" in states["running"]
    assert main(["runs", "list", str(root), "--wide"]) == 0  # every column, whole
    wide = capsys.readouterr().out.splitlines()
    assert max(map(len, wide)) > 80 and wide[0].split()[-1] not in ("test", "arch")


def test_a_column_moved_to_is_shown_however_narrow_the_table():
    """At 80 columns the always-shown ones left no room: Right changed the offset and the
    title's count but showed no column. Moved to (reveal), the column at the offset shows,
    the others cut toward their floors for it."""
    summaries = [
        runindex.RunSummary(
            Path(f"2026-12-07-spirals-{i:02d}"), "spirals", "2-32-32-3", "finished",
            epochs_done=40, epochs_total=40, best_metric="val_accuracy", best_value=0.99,
            test_metric="test_accuracy", test_value=0.98, started=1e9 + i, duration=61.0,
            config={"lr": 0.01 * (i + 1), "seed": i},
        )
        for i in range(3)
    ]  # fmt: skip
    rows = [runtable.RunRow(s) for s in summaries]
    columns = runtable.columns_for(rows)
    headers = runtable.header_texts(columns, "started", True)
    cells = [[c.text(r) for c in columns] for r in rows]
    always = ["name", "state", "epochs", "best val", "test", "started"]
    for width in (66, 72, 90):
        fixed = runtable.fit(columns, headers, cells, width, 2, 0, ["started"])
        assert [c.name for c in fixed.columns][:5] == always[:5]
        optional = fixed.shown + fixed.hidden_right
        first_shown = []
        for offset in range(optional):
            layout = runtable.fit(columns, headers, cells, width, 2, offset, ["started"], True)
            names = [c.name for c in layout.columns]
            assert all(name in names for name in always) and layout.shown >= 1
            assert sum(layout.widths) + 2 * (len(names) - 1) <= width
            assert layout.hidden_left + layout.shown + layout.hidden_right == optional
            first_shown.append(next(n for n in names if n not in always))
        assert len(set(first_shown)) == optional  # each step right shows another column
    assert runtable.fit(columns, headers, cells, 66, 2, 0, ["started"]).shown == 0


def test_a_narrow_table_cuts_the_architecture_before_leaving_columns_out():
    long = "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu dense(10)"
    summary = runindex.RunSummary(
        Path("b"), "glyphs", long, "finished", epochs_done=1, epochs_total=1,
        best_metric="val_accuracy", best_value=0.167, test_metric="test_accuracy",
        test_value=0.146, started=1e9, duration=0.0,
    )  # fmt: skip
    rows = [runtable.RunRow(summary)]
    whole = runtable.format_table(rows)
    assert long in whole and whole.splitlines()[0].split()[-1] == "samples/s"
    for width in (150, 120, 100, 80, 60):
        lines = runtable.format_table(rows, width=width).splitlines()
        assert all(len(line) <= width for line in lines)
        assert lines[1].startswith("b ") and "finished" in lines[1] and "16.7%" in lines[1]
    wide = runtable.format_table(rows, width=120).splitlines()
    assert len(wide[0]) == 120 and "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu…" in wide[1]
    assert "conv(6,5,…" in runtable.format_table(rows, width=60)
    header = runtable.format_table(rows, width=60).splitlines()[0].split()
    assert "started" not in header and "dataset" in header


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


# -- issue 20 items 1 and 5 without a terminal: filters, tags and notes, trash, rename, list -------
def run_row(**config: object) -> runtable.RunRow:
    config = {"lr": 0.05, "batch_size": 64, "trainer": {"optimizer": {"beta1": 0.9}}, **config}
    summary = runindex.RunSummary(
        Path("r"), "glyphs", "2-8-3", "crashed", epochs_done=2, best_metric="val_accuracy",
        best_value=0.9, config=config,
    )  # fmt: skip
    return runtable.RunRow(summary, RunMeta(("baseline",), "first try"))


@pytest.mark.parametrize(
    ("text", "meets"),
    [
        ("lr<0.1", True),
        ("lr>=0.1", False),
        ("lr=0.05 batch_size=64", True),
        ("lr!=0.05", False),
        ("dataset=GLYPHS", True),
        ("dataset!=glyphs", False),
        ("tag:baseline", True),
        ("tag:other", False),
        ("state:crashed", True),
        ("state:finished", False),
        ("best>85%", True),
        ("best>0.95", False),
        ("trainer.optimizer.beta1=0.9", True),
        ("momentum<1", False),  # the run has no momentum: no comparison holds but !=
        ("momentum!=1", True),
        ("first", True),
        ('"first try"', True),
        ("glyphs 2-8-3", True),
        ("cifar", False),
        ("", True),
    ],
)
def test_a_filter_compares_fields_tags_states_and_text(text, meets):
    row = run_row(momentum=None)
    assert select([row], text) == ([row] if meets else [])


@pytest.mark.parametrize(
    ("text", "meets"),
    [
        ("tags=BASELINE", True),  # a list field: = means one of its items is, any case
        ("tags!=baseline", False),
        ("tags=other", False),
        ("tags!=other", True),
        ("tags>0", False),  # a list is no number: no ordering holds
        ("tags<=0", False),
    ],
)
def test_a_comparison_on_the_tags_asks_of_each_tag(text, meets):
    row = run_row()
    assert select([row], text) == ([row] if meets else [])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("lr<", "expected a value after '<'"),
        ("lr<abc", "expected a number after '<'"),
        ("<0.1", "expected KEY OP VALUE"),
        ("tag:", "expected a name after tag:"),
        ("state:crash", "unknown state 'crash' in 'state:crash' (did you mean 'crashed'?)"),
        ("tags:x", "unknown filter 'tags:' in 'tags:x' (did you mean 'tag'?)"),
        ('"open', "a quote is not closed"),
        ("lrr<0.1", "no run has a field 'lrr' (did you mean 'lr'?)"),
    ],
)
def test_a_bad_filter_is_one_line_naming_the_term(text, words):
    with pytest.raises(FilterError) as caught:
        select([run_row()], text)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "word, kind, value",
    [
        ("url=http://x", "compare", "http://x"),
        ("tag:a=b", "tag", "a=b"),
        ("state:crashed", "state", "crashed"),
        ("12:30", "text", "12:30"),
    ],
)
def test_a_word_with_a_colon_and_an_operator_is_read_by_what_comes_first(word, kind, value):
    (term,) = runfilter.parse(word).terms
    assert (term.kind, term.value) == (kind, value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("lr<>=!:.% \"'tagstem0159-_é\n")), max_size=30))
def test_the_filter_parser_raises_nothing_but_its_own_error(text):
    try:
        wanted = runfilter.parse(text)
    except FilterError:
        return
    row = run_row()
    assert isinstance(wanted.matches(row.fields(), row.text()), bool)


def test_tags_and_notes_are_kept_in_meta_json_and_read_strictly(tmp_path, capsys):
    run = write_run(tmp_path, "r", epochs=1)
    assert main(["runs", "tag", str(run), "baseline", "lr-0.1", "baseline"]) == 0
    assert main(["runs", "note", str(run), "the first  try"]) == 0
    assert read_meta(run) == RunMeta(("baseline", "lr-0.1"), "the first  try")
    assert json.loads((run / META_FILE).read_text()) == {
        "tags": ["baseline", "lr-0.1"],
        "note": "the first  try",
    }
    assert main(["runs", "tag", str(run), "--remove", "lr-0.1"]) == 0
    assert read_meta(run).tags == ("baseline",)
    capsys.readouterr()
    assert main(["runs", "tag", str(run), "two words"]) == 2
    assert main(["runs", "note", str(run), "two\nlines"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert [e.split(":")[0] for e in errors] == ["error", "error"] and "bad tag" in errors[0]
    (run / META_FILE).unlink()
    (run / META_FILE).symlink_to("/dev/zero")
    with pytest.raises(RunMetaError, match="symbolic link"):
        read_meta(run)
    (run / META_FILE).unlink()
    (run / META_FILE).write_text('{"tags": "x"}')
    assert main(["runs", "list", str(tmp_path)]) == 0  # listed, with the problem named
    assert f"warning: r: {run / META_FILE}: not a run meta file" in capsys.readouterr().err
    assert main(["runs", "tag", str(tmp_path / "nope"), "x"]) == 2


def test_runs_list_json_csv_wide_and_filter(workspace, capsys):
    root, _ = workspace
    tag(root / "forked", ["fork"])
    assert main(["runs", "list", str(root), "--json", "--filter", "tag:fork"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["name"], record["lr"], record["tags"], record["parent"]) == (
        "forked",
        0.05,
        ["fork"],
        "real@40",
    )
    assert record["best_value"] == 0.95 and record["state"] == "finished"
    assert main(["runs", "list", str(root), "--csv", "--filter", "state:crashed"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["killed"] and list(rows[0]) == list(runtable.RECORD_FIELDS)
    assert main(["runs", "list", str(root), "--wide", "--filter", "lr<0.1 tag:fork"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["name", "forked"] and "fork" in lines[1]
    assert main(["runs", "list", str(root), "--filter", "lr<x"]) == 2
    assert capsys.readouterr().err == (
        "error: --filter: 'lr<x': expected a number after '<', e.g. lr<0.1\n"
    )


def test_delete_moves_a_run_to_the_trash_never_silently(tmp_path, capsys, monkeypatch):
    parent = write_run(tmp_path, "parent", epochs=1)
    write_run(tmp_path, "child", epochs=1, parent={"run": "runs/parent", "step": 10})
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["runs", "delete", str(parent)]) == 2  # no terminal to ask on, no --yes
    assert "give --yes" in capsys.readouterr().err and parent.is_dir()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert main(["runs", "delete", str(parent)]) == 1 and parent.is_dir()
    monkeypatch.setattr("builtins.input", lambda question: "y")
    assert main(["runs", "delete", str(parent)]) == 0
    out, err = capsys.readouterr()
    assert not parent.exists() and (tmp_path / ".trash" / "parent" / "config.json").is_file()
    assert "1 run forked from parent (child) still name" in err
    write_run(tmp_path, "parent", epochs=1)  # a second run of that name: a free name
    assert trash(tmp_path / "parent") == tmp_path / ".trash" / "parent-2"
    assert [s.name for s in runindex.RunIndex(tmp_path).refresh()] == ["child"]


def test_a_run_being_written_is_neither_trashed_nor_renamed(tmp_path, capsys):
    run = write_run(tmp_path, "live", epochs=1, end=None)
    lock = runs.WriterLock(run)
    lock.acquire()
    try:
        assert main(["runs", "delete", str(run), "--yes"]) == 2
        assert main(["runs", "rename", str(run), "other"]) == 2
    finally:
        lock.release()
    assert capsys.readouterr().err.count("the run is being written; stop it first") == 2
    assert run.is_dir()


def test_rename_refuses_a_taken_or_bad_name_and_warns_about_forks(tmp_path, capsys):
    run = write_run(tmp_path, "a", epochs=1)
    write_run(tmp_path, "b", epochs=1, parent={"run": str(run), "step": 5})
    for name in ("b", "../x", ".hidden", "x/y"):
        assert main(["runs", "rename", str(run), name]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "already exists" in err[0] and all("bad run name" in e for e in err[1:])
    assert main(["runs", "rename", str(run), "a2"]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "a2").is_dir() and not run.exists()
    assert out == f"renamed {run} to {tmp_path / 'a2'}\n" and "forked from a (b)" in err
    with pytest.raises(RunMetaError, match="not a run directory"):
        rename(tmp_path, "x")
