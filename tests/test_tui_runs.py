"""Issue 11 items 1 and 2 in the app: the runs screen (every state, sorting, filtering, live
refresh, Enter opens the dashboard, ctrl+r from the setup screen and the dashboard) and the
compare screen (marks, baseline, config diff; SVG snapshots of 3 runs at 80x24 and 120x40).
Issue 20 items 1 and 5: a table that fits 80 and 120 columns, Left/Right by column, a refresh
that keeps scroll, selection and marks, the filter's focus, filters by value, tags, notes,
rename and trash."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    DATASETS,
    SIZE,
    burst,
    deny_reading,
    pilot_test,
    press,
    screen_text,
    until,
    write_run,
    writer_env,
)

import nnlib.datasets
from nnlib import runs
from nnlib.config import ExperimentConfig
from nnlib.runmeta import TRASH, read_meta
from nntui.app import NNTui
from nntui.cli import main
from nntui.screens.compare import CompareCharts, CompareScreen
from nntui.screens.dashboard import DashboardScreen
from nntui.screens.runs import RunsScreen
from nntui.screens.setup import SetupScreen


def app_on(root: Path) -> NNTui:
    return NNTui(ExperimentConfig(dataset="spirals"), datasets=DATASETS, runs=root)


def names(screen: RunsScreen) -> list[str]:
    return [s.name for s in screen.visible_rows()]


@pilot_test
async def test_the_runs_screen_lists_sorts_and_filters_the_runs(workspace):
    root, _ = workspace
    app = app_on(root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        assert screen.visible is True  # Textual's property, not shadowed by the row list
        assert sorted(names(screen)) == sorted(
            ["real", "stopped", "diverged", "forked", "errored", "running", "empty", "killed"]
        )
        table = screen.query_one("DataTable")
        assert table.row_count == 8
        states = {s.name: s.state for s in screen.summaries}
        assert states["killed"] == "crashed" and states["running"] == "running"
        assert states["errored"] == "error"  # it said so in its end event
        await press(pilot, *["S"] * 9)  # started -> parent -> tags -> ... -> name
        assert screen.sort_column == "name" and screen.descending
        assert names(screen) == sorted(names(screen), reverse=True)
        await press(pilot, "r")
        assert names(screen) == sorted(names(screen))
        await press(pilot, "slash", *"cra")
        await until(pilot, lambda: screen.filter_text == "cra")
        assert names(screen) == ["killed"] and table.row_count == 1
        await press(pilot, "escape")  # leaves the filter (kept) for the table
        assert screen.query_one("DataTable").has_focus and table.row_count == 1
        await press(pilot, "escape")
        assert isinstance(app.screen, SetupScreen)


@pilot_test
async def test_nntui_runs_builds_the_setup_screen_when_the_user_goes_there(tmp_path, monkeypatch):
    """Issue 20: the first screen of `nntui --runs` waits neither for the setup screen nor
    for its listing of the datasets on disk; Escape still leads to it, built then, once."""
    write_run(tmp_path, "one")
    listings = []

    def available(data_dir=None):
        listings.append(data_dir)
        return DATASETS

    monkeypatch.setattr(nnlib.datasets, "available", available)
    app = NNTui(ExperimentConfig(dataset="spirals"), runs=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.summaries)
        assert not any(isinstance(s, SetupScreen) for s in app.screen_stack)
        assert listings == []
        await press(pilot, "escape")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        setup = app.screen
        assert listings == [None]
        await press(pilot, "ctrl+r")
        assert isinstance(app.screen, RunsScreen) and names(app.screen) == ["one"]
        await press(pilot, "escape")
        assert app.screen is setup and len(app.screen_stack) == 2 and listings == [None]


def test_importing_the_app_imports_no_screen_it_does_not_open_first():
    """The dashboard and the setup screen (and the datasets they list) are imported when
    first shown, not by `import nntui.app`."""
    code = "import sys, nntui.app; print(sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=writer_env(), capture_output=True, text=True, timeout=60
    )
    loaded = set(ast.literal_eval(done.stdout))
    assert "nntui.screens.runs" in loaded
    later = {"nntui.screens.dashboard", "nntui.screens.setup", "nnlib.datasets"}
    assert later & loaded == set()


@pilot_test
async def test_an_unreadable_folder_is_left_out_with_one_notice(tmp_path, monkeypatch):
    """Issue 17 item 13: the rest of the runs are listed; the notice comes once, not at
    every refresh, and the title says how many folders are left out."""
    for name in ("a", "b", "secret"):
        write_run(tmp_path, name, epochs=1)
    deny_reading(monkeypatch, tmp_path / "secret")
    app = app_on(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        assert sorted(names(screen)) == ["a", "b"]
        screen.refresh_runs()
        notices = [n.message for n in app._notifications if "secret" in n.message]
        assert notices == [
            f"{tmp_path / 'secret'}: cannot be read (Permission denied); left out of the runs table"
        ]
        title = str(screen.query_one("#title").render())
        assert "nntui · 2 runs · " in title and "1 unreadable, left out" in title
        monkeypatch.undo()  # readable again: listed at the next refresh
        screen.refresh_runs()
        assert sorted(names(screen)) == ["a", "b", "secret"]
        assert "left out" not in str(screen.query_one("#title").render())


@pilot_test
async def test_the_runs_screen_follows_a_run_being_written(tmp_path):
    run_dir = write_run(tmp_path, "live", epochs=1, end=None)
    lock = runs.WriterLock(run_dir)
    lock.acquire()
    app = app_on(tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            screen = app.screen
            assert screen.summaries[0].state == "running"
            title = str(screen.query_one("#title").render())
            assert title.startswith("nntui · 1 run · ")  # not "1 runs"
            assert title.endswith(f" · {tmp_path}")
            with (run_dir / runs.EVENTS_FILE).open("a") as log:
                log.write(runs.encode("epoch", 20, {"epoch": 1, "loss": 0.5}))
                log.write(runs.encode("end", 20, {"reason": "stopped"}))
            lock.release()
            for _ in range(100):  # the screen's own refresh timer, not a call from here
                await pilot.pause(0.05)
                if screen.summaries[0].state == "stopped":
                    break
            row = screen.query_one("DataTable").get_row_at(0)
            assert [str(cell) for cell in row[2:4]] == ["stopped", "2/3"]
    finally:
        lock.release()


@pilot_test
async def test_enter_opens_a_run_on_the_dashboard_and_ctrl_r_comes_back(workspace):
    root, _ = workspace
    app = app_on(root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await press(pilot, "slash", *"forked", "enter", "enter")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert app.screen.recorded.run_dir == root / "forked"
        await press(pilot, "ctrl+r")
        assert isinstance(app.screen, RunsScreen) and app.screen is not screen


@pilot_test
async def test_ctrl_r_on_the_setup_screen_opens_the_runs_screen(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path))
    write_run(tmp_path, "one")
    app = NNTui(ExperimentConfig(dataset="spirals"), datasets=DATASETS)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        await press(pilot, "ctrl+r")
        assert isinstance(app.screen, RunsScreen) and names(app.screen) == ["one"]
        await press(pilot, "escape")
        assert isinstance(app.screen, SetupScreen)


@pilot_test
async def test_marked_runs_are_compared_with_the_first_as_baseline(workspace):
    root, _ = workspace
    app = app_on(root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await press(pilot, "c")
        assert isinstance(app.screen, RunsScreen)  # nothing marked: a notice, no screen
        order = []
        for _ in range(3):
            order.append(screen.current().path)
            await press(pilot, "space", "down")
        await press(pilot, "up", "space")
        assert screen.marked == order[:2]  # the third was marked, then unmarked
        await press(pilot, "c")
        assert isinstance(app.screen, CompareScreen)
        compare = app.screen
        order = [path.name for path in order]
        assert [r.name for r in compare.runs] == order[:2]
        assert "(baseline)" in str(compare.legend()) and order[0] in str(compare.legend())
        await press(pilot, "x")
        assert compare.query_one("CompareCharts").x_axis == "epoch"
        await press(pilot, "escape")
        assert app.screen is screen


def test_nntui_runs_on_a_missing_folder_exits_2_with_one_line(tmp_path, capsys):
    assert main(["--runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--runs" in err and "no such runs folder" in err


# -- compare snapshots ----------------------------------------------------------------------------
def compare_runs(root: Path) -> list[Path]:
    return [
        write_run(root, "baseline", epochs=4),
        write_run(root, "lr-0.05", epochs=4, scale=1.4, lr=0.05),
        write_run(root, "wide", epochs=3, scale=0.8, arch="2-64-3", batch_size=64),
    ]


def snapshot_of_compare(snap_compare, root: Path, size: tuple[int, int]) -> bool:
    paths = compare_runs(root)

    async def open_compare(pilot) -> None:
        await pilot.app.push_screen(CompareScreen(paths))
        await pilot.pause()

    app = NNTui(ExperimentConfig(dataset="spirals"), datasets=DATASETS)
    return snap_compare(app, terminal_size=size, run_before=open_compare)


def test_compare_3_runs_80x24(snap_compare, tmp_path):
    assert snapshot_of_compare(snap_compare, tmp_path, (80, 24))


def test_compare_3_runs_120x40(snap_compare, tmp_path):
    assert snapshot_of_compare(snap_compare, tmp_path, (120, 40))


def test_the_compare_tables_show_deltas_and_only_differing_keys(tmp_path):
    from rich.console import Console

    screen = CompareScreen(compare_runs(tmp_path))
    console = Console(width=100, record=True, color_system=None)
    console.print(screen.diff_table())
    rows = [line.split() for line in console.export_text().splitlines() if line.strip()]
    assert rows[0][:3] == ["setting", "differs", "runs"]
    assert rows[1:] == [  # a line per value, after the markers of the runs that had it
        ["arch", "●▲", "2-16-3"],
        ["■", "2-64-3"],
        ["batch_size", "●▲", "32"],
        ["■", "64"],
        ["lr", "●■", "0.1"],
        ["▲", "0.05"],
    ]
    console.print(screen.metrics_table())
    assert "+3.0pt" in console.export_text()  # wide's accuracy over the baseline's, in points


def test_the_compare_overlay_marks_where_a_fork_branched(tmp_path):
    """Issue 12: a fork's parent is recorded in its config; comparing them marks the step
    where the fork's own curve begins, by step and by epoch."""
    parent = write_run(tmp_path, "parent")
    child = write_run(tmp_path, "child", parent={"run": "runs/parent", "step": 0})
    screen = CompareScreen([parent, child])
    plain = CompareScreen([parent, parent])
    forked = [isinstance(config.get("parent"), dict) for config in screen.configs]
    assert forked == [False, True]
    charts = CompareCharts(screen.runs, forked=forked)
    first = [row["step"] for row in screen.runs[1].batches][0]
    assert charts.branches() == [float(first)]
    charts.x_axis = "epoch"
    assert charts.branches() == [1 / 10]  # batch 0 of 10 in epoch 0, at its end
    assert CompareCharts(plain.runs).branches() == []


# -- issue 20 items 1 and 5: a table that fits, filters, tags, notes, trash, rename ----------------
LONG_ARCH = "dense(64) relu dropout(0.1) dense(64) relu batchnorm dense(32) tanh dense(3)"


def with_test_score(run_dir: Path, accuracy: float) -> Path:
    """The run's log with a test score before its end, as TestEvaluator writes it."""
    log = run_dir / runs.EVENTS_FILE
    *lines, end = log.read_text().splitlines(keepends=True)
    test = runs.encode("test", 6, {"loss": 0.5, "accuracy": accuracy, "samples": 100})
    log.write_text("".join([*lines, test, end]))
    return run_dir


def many_runs(root: Path, count: int = 12) -> list[Path]:
    """A dozen runs as a sweep leaves them: long architectures, differing lr and batch size."""
    return [
        with_test_score(
            write_run(
                root,
                f"sweep-spirals-{i:02d}",
                epochs=3,
                batches=2,
                scale=1 + i / 10,
                lr=[0.01, 0.05, 0.1][i % 3],
                batch_size=[16, 64][i % 2],
                arch=LONG_ARCH if i % 2 else "2-64-64-3",
                trainer={"model": {"spec": LONG_ARCH if i % 2 else "2-64-64-3"}, "epochs": 3},
            ),
            0.5 + i / 100,
        )
        for i in range(count)
    ]


def table_lines(app: NNTui) -> list[str]:
    return screen_text(app).splitlines()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_every_priority_column_shows_for_every_run_at_80_and_120_columns(tmp_path, size):
    """The architecture column had no width limit: at 80 and 120 columns state, epochs,
    best val and test were off-screen, and "finished" showed as "finishe"."""
    many_runs(tmp_path)
    app = app_on(tmp_path)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await pilot.pause()
        lines = table_lines(app)
        header = next(line for line in lines if " name " in line)
        for word in ("name", "state", "epochs", "best val", "test", "started ▼"):
            assert word in header
        for row in screen.visible_rows():
            line = next(line for line in lines if f" {row.name} " in line)
            summary = row.summary
            assert f" {summary.state} " in line and " 3/3 " in line
            assert f" {summary.best_value:.1%} " in line and f" {summary.test_value:.1%}" in line
        assert all(len(line) <= size[0] for line in lines)
        if size[0] >= 120:  # room for the cut architecture and the differing lr
            assert "dataset" in header and "arch" in header and "…" in screen_text(app)
        await press(pilot, "S")  # sort by parent: blank in every run, shown all the same
        assert "parent ▼" in table_lines(app)[2]
        for _ in range(5):  # started, duration, peak rss, samples/s, then the differing lr:
            await press(pilot, "s")  # always shown when sorted
        assert screen.sort_column == "lr" and " lr ▼" in table_lines(app)[2]


@pilot_test
async def test_left_right_go_by_column_and_a_refresh_keeps_scroll_selection_and_marks(tmp_path):
    many_runs(tmp_path, 30)
    app = app_on(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        table = screen.query_one("RunsTable")
        await press(pilot, *["down"] * 25, "space")
        chosen, scroll = screen.current().path, table.scroll_y
        assert scroll > 0 and screen.marked == [chosen]
        before = [c.name for c in screen.table_layout.columns]
        await press(pilot, "right")
        after = [c.name for c in screen.table_layout.columns]
        assert before[:5] == after[:5] == ["name", "state", "epochs", "best val", "test"]
        assert before[5] == "dataset" and "dataset" not in after  # one column further
        assert screen.column_offset == 1 and table.scroll_x == 0
        write_run(tmp_path, "a-new-run", epochs=1)  # a sweep adds a run: new rows
        screen.refresh_runs()
        await pilot.pause()
        assert len(screen.visible_rows()) == 31 and screen.current().path == chosen
        assert table.scroll_y == scroll and screen.marked == [chosen]
        assert screen.column_offset == 1 and [c.name for c in screen.table_layout.columns] == after
        await press(pilot, "left")
        assert [c.name for c in screen.table_layout.columns] == before
        detail = str(screen.query_one("#detail").render())
        assert chosen.name in detail and "lr=" in detail  # the whole row of the selected run


@pilot_test
async def test_at_80_columns_right_shows_the_columns_that_did_not_fit(tmp_path):
    """At 80 columns the always-shown columns left no room: the title said "←→ 7 more
    columns" and Right changed nothing on the screen."""
    for i in range(6):  # names as long as the runs folder's dated ones
        write_run(tmp_path, f"2026-12-07-spirals-seed-{i:02d}", lr=[0.01, 0.1][i % 2], seed=i)
    app = app_on(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        always = ["name", "state", "epochs", "best val", "test", "started"]

        def shown() -> list[str]:
            header = table_lines(app)[2]
            assert all(f" {word}" in header for word in always)  # in view at every step
            assert all(len(line) <= 80 for line in table_lines(app))
            return [c.name for c in screen.table_layout.columns if c.name not in always]

        assert shown() == [] and "more columns" in table_lines(app)[0]
        seen = []
        for _ in range(screen.table_layout.hidden_right):
            await press(pilot, "right")
            seen.append(shown())
            assert seen[-1] and " ".join(seen[-1]) in table_lines(app)[2].replace("  ", " ")
        assert seen[0] == ["dataset"] and seen[1] == ["arch"]
        assert len({tuple(s) for s in seen}) == len(seen)  # every step shows another column
        await press(pilot, "right")  # the last: nothing further
        assert shown() == seen[-1]
        for _ in seen[1:]:
            await press(pilot, "left")
        assert shown() == ["dataset"]
        await press(pilot, "left")
        assert shown() == []


@pilot_test
async def test_enter_in_the_filter_gives_the_keys_typed_behind_it_to_the_table(tmp_path):
    """After `/spirals` and Enter typed in one burst, space and Down went into the filter."""
    many_runs(tmp_path, 3)
    app = app_on(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await burst(pilot, "slash", *"spirals", "enter", "space", "down", "space")
        await until(pilot, lambda: len(screen.marked) == 2, "two runs marked")
        assert screen.query_one("#filter").value == "spirals"
        assert screen.query_one("RunsTable").has_focus
        await burst(pilot, "slash", "down", "down", "space")  # Down leaves the filter too
        await until(pilot, lambda: len(screen.marked) == 3, "a third run marked")


@pilot_test
async def test_filters_by_value_and_a_bad_filter_is_said_in_place(tmp_path):
    many_runs(tmp_path, 6)
    app = app_on(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        field = screen.query_one("#filter")
        field.value = "lr<0.1 batch_size=64"
        await pilot.pause()
        assert sorted(names(screen)) == ["sweep-spirals-01", "sweep-spirals-03"]
        field.value = "lr<[b]x"  # an error, shown as written (not as markup)
        await pilot.pause()
        error = screen.query_one("#filter-error")
        assert error.display and "'lr<[b]x': expected a number after '<'" in str(error.render())
        assert sorted(names(screen)) == ["sweep-spirals-01", "sweep-spirals-03"]  # kept
        field.value = "state:finished lrr=1"
        await pilot.pause()
        assert "did you mean 'lr'" in str(error.render())
        field.value = "state:finished"
        await pilot.pause()
        assert not error.display and len(names(screen)) == 6


@pilot_test
async def test_tag_note_rename_and_trash_from_the_runs_screen(tmp_path):
    parent, *_ = many_runs(tmp_path, 2)
    write_run(tmp_path, "child", parent={"run": str(parent), "step": 3})
    app = app_on(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await press(pilot, "slash", *"name=sweep-spirals-00", "enter")
        assert screen.current().path == parent
        await press(pilot, "t", *"baseline", "space", *"best", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert read_meta(parent).tags == ("baseline", "best")
        await press(pilot, "t", "space", *"bad,tag", "enter")  # refused in place
        assert "bad tag 'bad,tag'" in str(app.screen.query_one("#path-error").render())
        await press(pilot, "escape")
        await press(pilot, "n", *"[red]first try", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert read_meta(parent).note == "[red]first try"
        screen.query_one("#filter").value = "tag:baseline"
        await pilot.pause()
        assert names(screen) == ["sweep-spirals-00"]
        detail = str(screen.query_one("#detail").render())
        assert "tags: baseline best" in detail and "note: [red]first try" in detail
        screen.query_one("#filter").value = ""
        await pilot.pause()
        screen.query_one("RunsTable").move_cursor(row=names(screen).index(parent.name))
        await press(pilot, "R", *["backspace"] * 20, *"renamed", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert (tmp_path / "renamed").is_dir() and not parent.exists()
        assert any("child" in n.message for n in app._notifications)  # its fork, warned
        await until(pilot, lambda: screen.current().name == "renamed", "the renamed run")
        await press(pilot, "d")
        await press(pilot, "n")  # declined: nothing moves
        assert (tmp_path / "renamed").is_dir()
        await press(pilot, "d", "y")
        await until(pilot, lambda: "renamed" not in names(screen), "the run gone to the trash")
        assert (tmp_path / TRASH / "renamed" / runs.CONFIG_FILE).is_file()
