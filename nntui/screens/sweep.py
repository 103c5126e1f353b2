"""The sweep screen (`w` on a sweep in the runs screen): the trials ranked by the sweep's
metric, a parallel-coordinates chart (an axis per parameter, then the metric; a line per
trial, the best ones highlighted and numbered) and the metric against each parameter. It
follows a running sweep: the folder is read again every second (only what changed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich import box
from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from nnlib.sweepindex import SweepScan, SweepSummary
from nnlib.sweeps.report import ranking_table

from ..plot import parallel_chart, parallel_layout, scatter_chart
from .runs import REFRESH_SECONDS

#: How many of the best trials the charts highlight.
HIGHLIGHTED = 3
#: The smallest width of one chart of the metric against a parameter.
SCATTER_WIDTH = 36
SCATTER_HEIGHT = 8


class SweepScreen(Screen[None]):
    HELP_TITLE = "sweep"
    DEFAULT_CSS = """
    SweepScreen { layout: vertical; }
    SweepScreen #title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    SweepScreen VerticalScroll { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    SweepScreen VerticalScroll > Static { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.scan = SweepScan(Path(path))
        self.sweep = SweepSummary(Path(path))

    def compose(self) -> ComposeResult:
        yield Static("", id="title", markup=False)
        with VerticalScroll():
            yield Static("", id="ranking", markup=False)
            yield Static("", id="parallel", markup=False)
            yield Static("", id="scatter", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_sweep()
        self.call_after_refresh(self._draw)  # again, at the width the layout gave
        self.query_one(VerticalScroll).focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_sweep)

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw)

    def refresh_sweep(self) -> None:
        """Read what changed in the sweep folder and draw it again."""
        self.sweep = self.scan.update()
        self._draw()

    def _draw(self) -> None:
        sweep = self.sweep
        title = self.query_one("#title", Static)
        if not sweep.index:
            title.update(f"sweep {sweep.name}: {sweep.problem}")
            return
        best = "-" if sweep.best_value is None else f"{sweep.best_value:.4g}"
        title.update(
            f"sweep {sweep.name} · {sweep.state} · {sweep.done}/{sweep.total} trials done · "
            f"{sweep.metric} ({sweep.direction}) best {best}"
        )
        width = max(self.query_one(VerticalScroll).scrollable_content_region.width, 30)
        ranking = ranking_table(dict(sweep.index))
        ranking.title = None  # the screen's title says what it ranks
        # Room for every column at 80: no vertical lines, one space between two columns (rich
        # still lets a table's last line be one wider than it was asked for).
        ranking.box, ranking.show_edge, ranking.width = box.SIMPLE_HEAD, False, width - 1
        ranking.pad_edge, ranking.collapse_padding = False, True
        runs = ranking.columns[1]  # the run's name whole: the parameters are cut first
        runs.min_width = max((len(str(cell)) for cell in runs.cells), default=0)
        self.query_one("#ranking", Static).update(ranking)
        names = [*sweep.params, sweep.metric]
        records = sweep.index["trials"]
        rows = [[*(t["params"].get(p) for p in sweep.params), t["metric"]] for t in records]
        axes, positions = parallel_layout(names, rows)
        top = [
            t.index
            for t in sweep.ranked()
            if t.run.state in ("finished", "pruned") and t.run.best_value is not None
        ][:HIGHLIGHTED]
        height = max(10, self.size.height // 2)
        chart = parallel_chart(axes, positions, top, width, height)
        legend = Text(f"a line per trial; 1-{len(top)}: the best, highlighted", "dim")
        self.query_one("#parallel", Static).update(Group(*chart, legend) if top else Group(*chart))
        self.query_one("#scatter", Static).update(
            Group(*self._scatters(axes, positions, top, width))
        )

    def _scatters(self, axes, positions: np.ndarray, top: list[int], width: int) -> list[Text]:
        """The metric against each parameter, as many side by side as the width takes."""
        across = max(1, (width + 2) // (SCATTER_WIDTH + 2))
        each = (width - 2 * (across - 1)) // across
        charts = [
            scatter_chart(axes[j], axes[-1], positions[:, [j, -1]], top, each, SCATTER_HEIGHT)
            for j in range(len(axes) - 1)
        ]
        lines: list[Text] = []
        for start in range(0, len(charts), across):
            group = charts[start : start + across]
            for parts in zip(*group, strict=True):
                line = Text()
                for k, part in enumerate(parts):
                    line.append_text(part)
                    if k < len(parts) - 1:
                        line.append(" " * (each - len(part) + 2))
                lines.append(line)
            lines.append(Text(""))
        return lines

    def action_back(self) -> None:
        self.dismiss()
