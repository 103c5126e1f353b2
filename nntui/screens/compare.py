"""Compare runs: their loss and accuracy curves overlaid (training EMA and validation), one
colour and marker per run, the first marked run pinned as the baseline; below, the final
and best metrics with their difference from the baseline, and only the settings that
differed as the runs ran (a starting value or a change mid-run: `runindex.settings_diff`).

A chart is never drawn shorter than MIN_CHART_ROWS: where two do not fit (80x24), one is
shown at a time and `a` switches between them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from nnlib.runindex import (
    DEFAULT_SMOOTHING,
    RUN_MARKERS,
    RunCurves,
    Setting,
    config_of,
    effective_settings,
    ema,
    read_curves,
    settings_diff,
)

from ..plot import Series, format_number, line_chart, stacked_heights

#: One colour per run, in marking order (the marker tells them apart without colour).
RUN_STYLES = ("bold #4ea8ff", "bold #f97316", "bold #22c55e", "bold #e879f9", "#facc15", "#f43f5e")
#: The EMA curves carry their run's marker at this many points, so they read without colour.
MARKERS_PER_CURVE = 5
#: A chart's rows below its title, at the least: shorter, curves of 6 runs cannot be told
#: apart (at 80x24 two charts got 4 rows each).
MIN_CHART_ROWS = 8
#: The widest a number (and a difference) in the metrics table is written.
NUMBER_WIDTH = 6


class CompareCharts(Widget):
    """The overlaid charts, one per metric, drawn to the widget's size."""

    x_axis: reactive[str] = reactive("step")
    log_scale: reactive[bool] = reactive(False)
    #: Which chart is shown when only one fits (an index into `metrics()`).
    page: reactive[int] = reactive(0)

    def __init__(
        self,
        runs: Sequence[RunCurves],
        smoothing: float = DEFAULT_SMOOTHING,
        forked: Sequence[bool] = (),
    ) -> None:
        """`forked[i]`: run i is a fork (its config names a parent run); a dotted line marks
        where it branched."""
        super().__init__()
        self.runs = list(runs)
        self.smoothing = smoothing
        self.forked = list(forked) or [False] * len(self.runs)

    def branches(self) -> list[float]:
        """Where each fork branched on the x axis: its first logged batch, which follows the
        parent's checkpoint step."""
        marks = []
        for run, forked in zip(self.runs, self.forked, strict=True):
            xs, _ = run.series("batch", "loss", self.x_axis)
            if forked and len(xs):
                marks.append(float(xs[0]))
        return marks

    def metrics(self) -> list[str]:
        """Loss, and accuracy when any run logged it."""
        logged = any("accuracy" in run.metrics("batch") for run in self.runs)
        return ["loss", "accuracy"] if logged else ["loss"]

    def shown(self, height: int) -> list[str]:
        """The charts drawn in `height` rows: every one when each gets MIN_CHART_ROWS below
        its title, else the one `page` picks."""
        metrics = self.metrics()
        if height >= len(metrics) * (MIN_CHART_ROWS + 1):
            return metrics
        return [metrics[self.page % len(metrics)]]

    def render(self) -> Text:
        width, height = self.content_size
        metrics = self.shown(height)
        others = self.metrics() if len(metrics) < len(self.metrics()) else []
        branches = self.branches()
        blocks = []
        for metric, chart_h in zip(metrics, stacked_heights(height, len(metrics)), strict=True):
            title = self._title(metric, [m for m in others if m != metric], bool(branches))
            chart_h = max(chart_h, MIN_CHART_ROWS + 1)
            blocks += [title, self._chart(metric, width, chart_h - 1, branches)]
        return Text("\n").join(blocks)

    def _title(self, metric: str, others: list[str], forks: bool) -> Text:
        """A chart's title and legend, and the key to the charts not shown (`others`)."""
        log = " (log)" if self.log_scale and metric == "loss" else ""
        title = f"{metric}{log} by {self.x_axis}"
        legend = f"  ━ EMA {self.smoothing:g}  marks: val{'  ┊ fork' if forks else ''}"
        other = "  a: " + " ".join(others) if others else ""
        return Text(title, "bold") + Text(legend) + Text(other, "dim")

    def _chart(self, metric: str, width: int, height: int, branches: list[float]) -> Text:
        """Every run's curves of `metric` overlaid, a dotted line where each fork branched
        (`branches`)."""
        series = []
        for index, run in enumerate(self.runs):
            series += self._series(run, metric, index)
        return line_chart(
            width,
            height,
            series,
            log_y=self.log_scale and metric == "loss",
            y_limits=(0.0, 1.0) if metric == "accuracy" else (0.0, None),
            marks=branches,
            percent=metric == "accuracy",
        )

    def _series(self, run: RunCurves, metric: str, index: int) -> list[Series]:
        style, marker = RUN_STYLES[index], RUN_MARKERS[index]
        xs, raw = run.series("batch", metric, self.x_axis)
        smooth = ema(raw, self.smoothing)
        out = [Series(xs, smooth, style)]
        if len(xs):
            picks = np.unique(np.linspace(0, len(xs) - 1, MARKERS_PER_CURVE).astype(int))
            out.append(Series(xs[picks], smooth[picks], style, "points", marker))
        vx, val = run.series("epoch", f"val_{metric}", self.x_axis)
        out.append(Series(vx, val, style, "line", marker))
        return out


class CompareScreen(Screen[None]):
    HELP_TITLE = "compare"
    DEFAULT_CSS = """
    CompareScreen { layout: vertical; }
    CompareScreen #legend { height: auto; max-height: 3; padding: 0 1; background: $panel; }
    CompareScreen CompareCharts { height: 1fr; min-height: 9; padding: 0 1; }
    CompareScreen #tables { height: 9; border-top: solid $primary-darken-2; padding: 0 1; }
    CompareScreen #tables:focus { border-top: solid $accent; }
    CompareScreen #tables Static { width: 1fr; }
    """
    BINDINGS = [
        Binding("x", "x_axis", "x: step/epoch"),
        Binding("l", "log_scale", "Log loss"),
        Binding("a", "next_chart", "Loss/accuracy"),
        Binding("escape", "back", "Runs"),
    ]

    def __init__(self, paths: Sequence[Path], smoothing: float = DEFAULT_SMOOTHING) -> None:
        """Reads the runs now; raises ValueError naming a run that cannot be read."""
        super().__init__()
        self.runs = [read_curves(path) for path in paths]
        self.configs = [config_of(path) for path in paths]
        self.settings = [
            effective_settings(config, run.hparams)
            for config, run in zip(self.configs, self.runs, strict=True)
        ]
        self.smoothing = smoothing

    def compose(self) -> ComposeResult:
        yield Static(self.legend(), id="legend")
        forked = [isinstance(config.get("parent"), dict) for config in self.configs]
        yield CompareCharts(self.runs, self.smoothing, forked)
        with VerticalScroll(id="tables"):
            yield Static(self.metrics_table(), id="metrics")
            yield Static(self.diff_table(), id="diff")
        yield Footer()

    def legend(self) -> Text:
        parts = [Text("compare ", "bold")]
        for index, run in enumerate(self.runs):
            label = f"{RUN_MARKERS[index]} {run.name}" + (" (baseline)" if index == 0 else "")
            parts.append(Text(label + "  ", RUN_STYLES[index]))
        return Text.assemble(*parts)

    def metrics_table(self) -> Table:
        """Final and best validation metrics (training ones when a run has no validation),
        each with its difference from the baseline."""
        columns = self.metric_columns()
        table = Table(box=None, pad_edge=False, expand=False, header_style="bold")
        cells = self.metric_cells()
        # The numbers never give way: each column is as wide as its widest cell (NUMBER_WIDTH
        # keeps them short); a long run name gives way instead, cut to the width left (its
        # marker stays, and the legend gives it whole).
        table.add_column("", no_wrap=True)
        table.add_column("run", overflow="ellipsis", max_width=28)
        for column, (_, which, short) in enumerate(columns):
            widest = max(len(row[column]) for row in cells)
            header = Text(f"{which} {short}")
            table.add_column(header, justify="right", no_wrap=True, min_width=widest)
        for index, row in enumerate(cells):
            name = Text(self.runs[index].name, RUN_STYLES[index])
            table.add_row(Text(RUN_MARKERS[index], RUN_STYLES[index]), name, *row)
        return table

    def metric_columns(self) -> list[tuple[str, str, str]]:
        """The metrics table's columns: (metric, "final" or "best", short name)."""
        columns = [
            ("val_loss", "final", "loss"),
            ("val_loss", "best", "loss"),
            ("val_accuracy", "final", "acc"),
            ("val_accuracy", "best", "acc"),
        ]
        if not any("accuracy" in r.metrics("epoch") for r in self.runs):
            return columns[:2]
        return columns

    def metric_cells(self) -> list[list[Text]]:
        """Per run, per column: its value and its difference from the baseline's."""
        columns = self.metric_columns()
        values = [
            [_metric(run, metric, which) for metric, which, _ in columns] for run in self.runs
        ]
        return [
            [_with_delta(v, values[0][c], index == 0, columns[c][2]) for c, v in enumerate(row)]
            for index, row in enumerate(values)
        ]

    def diff_table(self) -> Group | Text:
        """Only the settings that differed between the runs as they ran: per setting a line
        per way it went (its starting value, then every change with its step and source),
        after the markers of the runs that went that way. A long value wraps."""
        diff = settings_diff(self.settings)
        if not diff:
            return Text("settings: the same in every run, start to end", "dim")
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("setting differs", overflow="fold", max_width=30)
        table.add_column("runs", no_wrap=True)
        table.add_column("start → value@step(source)", overflow="fold")
        for key, found in diff.items():
            for line, (text, indices) in enumerate(_ways(found).items()):
                markers = Text.assemble(*((RUN_MARKERS[i], RUN_STYLES[i]) for i in indices))
                table.add_row(Text(key if line == 0 else ""), markers, Text(text))
        return Group(Text(""), table)

    def action_x_axis(self) -> None:
        charts = self.query_one(CompareCharts)
        charts.x_axis = "epoch" if charts.x_axis == "step" else "step"

    def action_next_chart(self) -> None:
        charts = self.query_one(CompareCharts)
        charts.page = (charts.page + 1) % len(charts.metrics())

    def action_log_scale(self) -> None:
        charts = self.query_one(CompareCharts)
        charts.log_scale = not charts.log_scale

    def action_back(self) -> None:
        self.dismiss()


def _metric(run: RunCurves, metric: str, which: str) -> float | None:
    """A run's final or best `metric` over its epochs (the training one if it has no
    validation: `loss` for `val_loss`)."""
    for name in (metric, metric.removeprefix("val_")):
        _, ys = run.series("epoch", name)
        values = ys[np.isfinite(ys)]
        if values.size:
            if which == "final":
                return values[-1]
            return max(values) if "accuracy" in name else min(values)
    return None


def _number(value: float, short: str) -> str:
    return f"{value:.1%}" if short == "acc" else format_number(value, NUMBER_WIDTH)


def _with_delta(value: float | None, base: float | None, baseline: bool, short: str) -> Text:
    """A value and its difference from the baseline's, each at most NUMBER_WIDTH wide (and
    its sign, and `pt` for points of accuracy)."""
    if value is None:
        return Text("–", "dim")
    text = Text(_number(value, short))
    if baseline or base is None:
        return text
    delta = value - base
    better = delta > 0 if short == "acc" else delta < 0
    return text + Text(f" {_delta(delta, short)}", "green" if better else "red" if delta else "dim")


def _delta(delta: float, short: str) -> str:
    """A difference from the baseline, signed (± for none), at most NUMBER_WIDTH wide after
    its sign: in points for an accuracy (at most 100.0pt)."""
    sign = "+" if delta > 0 else "-" if delta < 0 else "±"
    if short == "acc":
        return f"{sign}{abs(delta) * 100:.1f}pt"
    return sign + format_number(abs(delta), NUMBER_WIDTH)


def _ways(found: Sequence[Setting | None]) -> dict[str, list[int]]:
    """The ways a setting went (its text: the start and every change), each with the runs
    that went that way, in first-seen order."""
    ways: dict[str, list[int]] = {}
    for index, setting in enumerate(found):
        ways.setdefault(_setting_text(setting), []).append(index)
    return ways


def _setting_text(setting: Setting | None) -> str:
    return "(not set)" if setting is None else setting.text()
