"""The runs screen: the runs folder as a table (`nntui --runs`, or ctrl+r from the setup
screen and the dashboard). Sort by any column, filter by text, mark runs to compare; the
table follows runs while they are written. Enter opens a run on the dashboard."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from nnlib.runindex import COLUMNS, MAX_OVERLAID, RUN_MARKERS, RunIndex, RunSummary

from ..replay import open_run

#: How often the folder is looked at again (only changed files are read).
REFRESH_SECONDS = 1.0
#: The state column's colours (the word itself says it without colour).
STATE_STYLES = {
    "running": "bold green",
    "finished": "",
    "stopped": "yellow",
    "diverged": "bold red",
    "error": "bold red",
    "crashed": "bold red",
    "empty": "dim",
}
MARK = "mark"


class RunsScreen(Screen[None]):
    HELP_TITLE = "runs"
    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    RunsScreen #filter { height: 1; border: none; padding: 0 1; }
    RunsScreen DataTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, root: str | Path | None = None) -> None:
        """`root` is the runs folder ($NNLIB_RUNS_DIR, else ./runs, when None)."""
        super().__init__()
        self.index = RunIndex(root)
        self.summaries: list[RunSummary] = []
        self.marked: list[Path] = []
        self.sort_column = "started"
        self.descending = True
        self.filter_text = ""
        self._shown: list[tuple[str, tuple[Text, ...]]] = []
        self._skipped: set[Path] = set()  # the unreadable folders already notified

    def compose(self) -> ComposeResult:
        yield Static("", id="title", markup=False)
        yield Input(placeholder="/ filter: text in any column", id="filter")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(" ", key=MARK, width=2)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.refresh_runs()
        table.focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)

    # -- the table ------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """Re-read what changed in the folder and redraw the rows that differ."""
        self.summaries = self.index.refresh()
        present = {s.path for s in self.summaries}
        self.marked = [p for p in self.marked if p in present]
        for path, line in self.index.skipped.items():  # said once, while it stays unreadable
            if path not in self._skipped:
                self.notify(line, severity="warning", markup=False)
        self._skipped = set(self.index.skipped)
        self._show()

    def visible(self) -> list[RunSummary]:
        """The runs that pass the filter, in the chosen order."""
        needle = self.filter_text.lower()
        rows = [s for s in self.summaries if not needle or needle in " ".join(s.cells()).lower()]
        key = self.sort_column
        known = [s for s in rows if s.sort_value(key)[0] == 0]
        blank = [s for s in rows if s.sort_value(key)[0] != 0]
        known.sort(key=lambda s: s.sort_value(key), reverse=self.descending)
        return known + blank

    def _row(self, summary: RunSummary) -> tuple[Text, ...]:
        index = self.marked.index(summary.path) if summary.path in self.marked else -1
        mark = Text(RUN_MARKERS[index] if index >= 0 else "", "bold")
        cells = [Text(cell) for cell in summary.cells()]
        cells[COLUMNS.index("state")].stylize(STATE_STYLES.get(summary.state, ""))
        if summary.problem:
            cells[0].append(" !", "bold red")
        return (mark, *cells)

    def _show(self) -> None:
        table = self.query_one(DataTable)
        shown = [(str(s.path), self._row(s)) for s in self.visible()]
        if [k for k, _ in shown] == [k for k, _ in self._shown]:
            for (key, row), (_, old) in zip(shown, self._shown, strict=True):
                for column, cell, before in zip((MARK, *COLUMNS), row, old, strict=True):
                    if cell != before:
                        table.update_cell(key, column, cell)
        else:
            current = self.current()
            table.clear()
            for key, row in shown:
                table.add_row(*row, key=key)
            keys = [k for k, _ in shown]
            if current is not None and str(current.path) in keys:
                table.move_cursor(row=keys.index(str(current.path)))
        self._shown = shown
        for column in table.columns.values():
            name = str(column.key.value)
            arrow = (" ▼" if self.descending else " ▲") if name == self.sort_column else ""
            column.label = Text(" " if name == MARK else name + arrow)
        table.refresh()
        self._title(len(shown))

    def _title(self, count: int) -> None:
        total = len(self.summaries)
        where = f"run{'' if total == 1 else 's'} in {self.index.root}"
        counts = f"{count} of {total}" if count != total else f"{total}"
        marked = f" · {len(self.marked)} marked (c: compare)" if self.marked else ""
        skipped = f" · {len(self._skipped)} unreadable, left out" if self._skipped else ""
        self.query_one("#title", Static).update(f"nntui · {counts} {where}{marked}{skipped}")

    def current(self) -> RunSummary | None:
        """The run under the cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.summaries if str(s.path) == key), None)

    # -- keys -----------------------------------------------------------------------------------
    def action_sort(self, step: int) -> None:
        """Sort by the next (or previous) column."""
        self.sort_column = COLUMNS[(COLUMNS.index(self.sort_column) + step) % len(COLUMNS)]
        self._show()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self._show()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it; a second click reverses."""
        name = str(event.column_key.value)
        if name == MARK:
            return
        if name == self.sort_column:
            self.descending = not self.descending
        self.sort_column = name
        self._show()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_mark(self) -> None:
        """Mark the run under the cursor for compare (the first marked is the baseline)."""
        run = self.current()
        if run is None:
            return
        if run.path in self.marked:
            self.marked.remove(run.path)
        elif len(self.marked) >= MAX_OVERLAID:
            self.notify(f"at most {MAX_OVERLAID} runs can be compared", severity="warning")
            return
        else:
            self.marked.append(run.path)
        self._show()

    def action_compare(self) -> None:
        from .compare import CompareScreen

        if not self.marked:
            self.notify("mark runs with space first (up to 6)", severity="warning")
            return
        try:
            screen = CompareScreen(self.marked)
        except (OSError, ValueError) as error:
            self.notify(str(error), severity="error", markup=False)
            return
        self.app.push_screen(screen)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the run on the dashboard, followed if it is still being written."""
        from .dashboard import DashboardScreen

        path = Path(str(event.row_key.value))
        try:
            recorded = open_run(path)
        except ValueError as error:
            self.notify(str(error), severity="error", markup=False)
            return
        self.app.push_screen(DashboardScreen(recorded.experiment(), recorded=recorded))

    def action_back(self) -> None:
        """Escape: leave the filter first, else go back to the screen below."""
        field = self.query_one("#filter", Input)
        if field.has_focus:
            self.query_one(DataTable).focus()
        else:
            self.dismiss()
