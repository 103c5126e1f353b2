"""Issue 20 item 2: sweeps inside the runs view. A sweep made by a real `nnlib sweep` is one
row of `nnlib runs list` and of the runs screen, its trials under it (their parameters as
columns), followed while it runs; the sweep screen ranks the trials and draws a
parallel-coordinates chart and the metric against each parameter, at 80x24 and 120x40."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import DATASETS, pilot_test, press, screen_text, until

from nnlib.cli import main
from nnlib.config import ExperimentConfig
from nnlib.sweeps import create_sweep, load_sweep, read_index
from nnlib.sweeps.driver import write_index
from nntui.app import NNTui
from nntui.plot import parallel_chart, parallel_layout, scatter_chart
from nntui.screens.runs import RunsScreen
from nntui.screens.sweep import SweepScreen

SWEEP = """
dataset = "spirals"
arch = "2-8-3"
epochs = 2
batch_size = 64
histogram_every = 1000

[sweep]
method = "grid"
metric = "val_accuracy"
[sweep.params]
lr = [0.003, 0.3]
arch = ["2-8-3", "2-16-16-3"]
"""


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory) -> Path:
    """A runs folder holding one finished 4-trial sweep, made by `nnlib sweep sweep.toml`
    with the default folder (and one ordinary run beside it, the sweep's trial-000 copied
    out would not be one: a run of its own is written by the sweep file's base)."""
    root = tmp_path_factory.mktemp("sweeps") / "runs"
    spec_file = root.parent / "sweep.toml"
    spec_file.write_text(SWEEP)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNLIB_RUNS_DIR", str(root))
        assert main(["sweep", str(spec_file), "--workers", "1"]) == 0
    return root


def sweep_dir(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if (p / "sweep.json").is_file()]
    return folder


def test_nnlib_sweep_names_its_folder_once_as_a_sweep(sweep_root):
    name = sweep_dir(sweep_root).name
    assert name.endswith("-sweep") and "sweep-sweep" not in name


def test_runs_list_lists_a_sweep_with_its_trials_under_it(sweep_root, capsys):
    folder = sweep_dir(sweep_root)
    index = read_index(folder)
    assert main(["runs", "list", str(sweep_root), "--wide"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"▾ {folder.name}  finished")
    assert [line.split()[0] for line in lines[2:]] == [f"trial-00{i}" for i in range(4)]
    assert all(line.startswith("  trial-") for line in lines[2:])
    lr = lines[0].index("  lr  ") + 2  # the trials' parameters, in the column
    assert [line[lr:].split()[0] for line in lines[2:]] == [
        str(t["params"]["lr"]) for t in index["trials"]
    ]
    assert main(["runs", "list", str(sweep_root), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in records] == ["sweep", *["trial"] * 4]
    assert records[0]["epochs_done"] == records[0]["epochs_total"] == 4
    best = index["trials"][index["best"]]
    assert records[0]["best_value"] == best["metric"]
    assert [r["params"] for r in records[1:]] == [t["params"] for t in index["trials"]]
    assert {r["sweep"] for r in records[1:]} == {folder.name}
    # a filter on a parameter keeps the sweep with the trials that pass
    assert main(["runs", "list", str(sweep_root), "--json", "--filter", "lr<0.01"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in records] == ["sweep", "trial", "trial"]
    assert all(r["params"]["lr"] == 0.003 for r in records[1:])


def test_parallel_layout_places_numbers_logs_and_categories():
    names = ["lr", "batch_size", "arch", "flag", "metric"]
    rows = [
        [0.001, 16, "2-8-3", True, 0.5],
        [0.1, 16, "2-16-16-3", False, None],
        [0.01, 16, "2-8-3", True, 0.9],
        [None, 16, "2-32-3", None, 0.7],
    ]
    axes, at = parallel_layout(names, rows)
    assert [a.name for a in axes] == names
    lr, batch, arch, flag, metric = axes
    assert lr.log and not lr.categorical  # 0.001..0.1 spans two decades
    assert np.allclose(at[:3, 0], [0.0, 1.0, 0.5]) and math.isnan(at[3, 0])
    assert np.allclose(at[:, 1], 0.5) and batch.ticks == ((0.5, "16"),)  # one value: middle
    assert arch.categorical and [t[1] for t in arch.ticks] == ["2-8-3", "2-16-16-3", "2-32-3"]
    assert np.allclose(at[:, 2], [0.0, 0.5, 0.0, 1.0])  # categories spaced evenly
    assert flag.categorical  # booleans are categories, not 0 and 1
    assert not metric.log and metric.ticks == ((0.0, "0.5"), (1.0, "0.9"))
    assert np.allclose(at[[0, 2, 3], 4], [0.0, 1.0, 0.5]) and math.isnan(at[1, 4])


@pytest.mark.parametrize(("width", "height"), [(76, 12), (116, 20)])
def test_the_parallel_chart_fits_and_numbers_the_best(width, height):
    names = ["lr", "arch", "val_accuracy"]
    rows = [[0.003, "2-8-3", 0.4], [0.3, "2-16-16-3", 0.9], [0.03, "2-8-3", 0.7]]
    axes, at = parallel_layout(names, rows)
    lines = [line.plain for line in parallel_chart(axes, at, [1, 2], width, height)]
    assert len(lines) == height and max(map(len, lines)) <= width
    assert lines[0].split() == ["lr", "(log)", "arch", "val_accuracy"]
    assert lines[1].split() == ["0.3", "0.9"] and lines[-1].split() == ["0.003", "0.4"]
    chart = lines[2:-1]
    assert chart[0].rstrip().endswith("1")  # the best trial ends at the top of the metric
    assert "2" in chart[-1 - round(0.6 * (len(chart) - 1))][-3:]  # 0.7 of 0.4..0.9
    assert "2-16-16-3" in chart[0] and "2-8-3" in chart[-1]  # categories where they sit
    assert all(set(line) - set(" ") for line in chart)  # every row has an axis
    scatter = [t.plain for t in scatter_chart(axes[0], axes[2], at[:, [0, 2]], [1], 30, 8)]
    assert scatter[0] == "val_accuracy vs lr" and len(scatter) == 8
    assert scatter[1].startswith("0.9┤") and "●" in scatter[1]
    assert scatter[-1].split() == ["└0.003", "0.3"]


def test_a_trial_with_no_value_before_the_last_axis_still_shows_its_last_value():
    """Its metric has no line to join (the axis before has no value): it is a dot, in the
    trial's style, where the axis alone would be dim."""
    rows = [[0.003, None, 0.4], [0.3, "a", 0.9]]
    axes, at = parallel_layout(["lr", "arch", "val_accuracy"], rows)
    chart = parallel_chart(axes, at, [1], 40, 10)[2:-1]
    bottom, column = chart[-1], 40 - 2 - 1  # the last axis: the chart's last column
    styles = [span.style for span in bottom.spans if span.start <= column < span.end]
    assert styles == ["cyan"]  # 0.4, the lowest metric, on the bottom row


def app_on(root: Path) -> NNTui:
    return NNTui(ExperimentConfig(dataset="spirals"), datasets=DATASETS, runs=root)


def table_rows(screen: RunsScreen) -> list[list[str]]:
    table = screen.query_one("DataTable")
    return [[str(c).rstrip() for c in table.get_row_at(i)] for i in range(table.row_count)]


def headers(screen: RunsScreen) -> list[str]:
    return [str(c.label).strip() for c in screen.query_one("DataTable").columns.values()]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@pilot_test
async def test_a_sweep_is_one_row_that_opens_into_its_trials_and_its_view(sweep_root, size):
    folder = sweep_dir(sweep_root)
    index = read_index(folder)
    app = app_on(sweep_root)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        (row,) = table_rows(screen)
        assert row[1].startswith("▸ ") and row[2:4] == ["finished", "4/4"]
        assert "1 sweep (w)" in str(screen.query_one("#title").render())
        await press(pilot, "enter")  # the sweep's trials, under it
        rows = table_rows(screen)
        assert rows[0][1].startswith("▾ ") and len(rows) == 5
        assert all(r[1].startswith("  ") and r[2] == "finished" for r in rows[1:])
        names = [r.name for r in screen.visible_rows()[1:]]
        assert sorted(names) == [f"trial-00{i}" for i in range(4)]
        shown = headers(screen)
        assert "lr" in shown and "arch" in shown  # the parameters, even at 80 columns
        params = {t["run"]: t["params"] for t in index["trials"]}
        for name, cells in zip(names, rows[1:], strict=True):
            assert cells[shown.index("lr")] == str(params[name]["lr"])
        await press(pilot, "down", "down", "w")  # from a trial: its sweep's view
        await until(pilot, lambda: isinstance(app.screen, SweepScreen), "the sweep screen")
        await pilot.pause()
        text = screen_text(app)
        assert f"sweep {folder.name} · finished · 4/4 trials done" in text
        ranked_runs = [line.split()[1] for line in text.splitlines() if "trial-" in line]
        by_metric = sorted(index["trials"], key=lambda t: (-t["metric"], t["index"]))
        assert ranked_runs == [t["run"] for t in by_metric]
        lines = [line.strip() for line in text.splitlines()]
        at = lines.index(next(line for line in lines if line.startswith("lr (log)")))
        assert lines[at].split() == ["lr", "(log)", "arch", "val_accuracy"]  # one line each:
        assert lines[at + 1].split()[0] == "0.3"  # nothing wrapped
        chart = "\n".join(lines[at + 2 :])
        assert "1" in chart and "2-16-16-3" in chart and "⡇" in chart
        await press(pilot, "end")  # the scatter charts, scrolled to
        await pilot.pause()
        assert "val_accuracy vs arch" in screen_text(app)
        await press(pilot, "escape")
        assert app.screen is screen
        await press(pilot, "up", "up", "enter")  # folded again
        assert len(table_rows(screen)) == 1


@pilot_test
async def test_the_runs_screen_follows_a_sweep_while_it_runs(sweep_root, tmp_path):
    """The screen's own refresh: a pending sweep's row and trials change as sweep.json
    does (the driver writes it at every trial's start and end)."""
    spec_file = tmp_path / "sweep.toml"
    spec_file.write_text(SWEEP)
    root = tmp_path / "runs"
    live = create_sweep(load_sweep(spec_file), root=root, name="sweep")
    app = app_on(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        screen = app.screen
        await press(pilot, "enter")
        rows = table_rows(screen)
        assert rows[0][2:4] == ["pending", "0/4"] and [r[2] for r in rows[1:]] == ["pending"] * 4
        index = read_index(live)
        index["state"] = "running"
        index["trials"][0].update(state="running", run="trial-000", attempts=1)
        write_index(live, index)
        await until(pilot, lambda: table_rows(screen)[0][2] == "running", "the refresh")
        assert sorted(r[2] for r in table_rows(screen)[1:]) == ["pending"] * 3 + ["running"]
        finished = read_index(sweep_dir(sweep_root))  # the same plan, run to its end
        write_index(live, finished)
        await until(pilot, lambda: table_rows(screen)[0][2:4] == ["finished", "4/4"], "the end")
