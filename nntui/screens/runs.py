"""The runs screen: the runs folder as a table (`nntui --runs`, or ctrl+r from the setup
screen and the dashboard). The table fits the window: the run's name, state, epochs and
scores always show, the other columns (nnlib.runtable) as they fit, and Left/Right move the
view by one column; the selected run's whole row shows below the table. Sort by any column,
filter (nnlib.runfilter: `lr<0.1`, `tag:baseline`, text), mark runs to compare, tag, note,
rename or move a run to the trash. The table follows runs while they are written; a
refresh keeps the scroll, the selection and the marks. Enter opens a run on the dashboard."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import RowKey

from nnlib.runfilter import FilterError
from nnlib.runindex import MAX_OVERLAID, RUN_MARKERS, RunIndex, RunSummary
from nnlib.runmeta import (
    TRASH,
    MetaCache,
    children,
    children_warning,
    rename,
    set_note,
    set_tags,
    trash,
)
from nnlib.runtable import (
    Column,
    Layout,
    RunRow,
    column_named,
    columns_for,
    cut,
    detail,
    fit,
    header_texts,
    params_of,
    rows_of,
    select_with_trials,
    sort_rows,
    sortable_columns,
    sweep_rows,
)
from nnlib.sweepindex import SweepIndex, SweepSummary

from ..replay import open_run
from .modals import ConfirmScreen, PathScreen

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
    # a sweep's and its trials' (nnlib.sweeps.driver.STATES)
    "interrupted": "yellow",
    "pending": "dim",
    "pruned": "yellow",
    "failed": "bold red",
    "lost": "bold red",
}
MARK = "mark"
#: What the table's own cells take beside the columns' widths: the mark column (1 wide)
#: and DataTable's padding of one space either side of every cell.
CELL_PADDING = 1
MARK_WIDTH = 1


class RunsTable(DataTable):
    """The runs table: Left and Right move the view by one column (the screen chooses the
    columns that fit), not by one character."""

    def action_cursor_left(self) -> None:
        self.screen.shift_columns(-1)  # type: ignore[attr-defined]

    def action_cursor_right(self) -> None:
        self.screen.shift_columns(1)  # type: ignore[attr-defined]

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable measures every new cell to size its auto-width columns; the screen gives
        every column its width and every row one line, so the measures change nothing drawn
        (9,000 cells for 1,000 runs cost the first screen ~0.2 s). Only the scrollable size is
        then updated, which is what the base class does with no new rows."""
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
        else:
            super()._update_dimensions(())


class FilterInput(Input):
    """The filter field: Enter and Down go back to the table. The focus moves while the key
    is handled (not on a message after it), so keys typed right behind Enter reach the
    table."""

    BINDINGS = [Binding("enter,down", "to_table", "Table", show=False)]

    def action_to_table(self) -> None:
        self.screen.query_one(RunsTable).focus()


class RunsScreen(Screen[None]):
    HELP_TITLE = "runs"
    DEFAULT_CSS = """
    RunsScreen { layout: vertical; }
    RunsScreen #title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    RunsScreen #filter { height: 1; border: none; padding: 0 1; }
    RunsScreen #filter-error { height: auto; padding: 0 1; color: $error; display: none; }
    RunsScreen #filter-error.shown { display: block; }
    RunsScreen RunsTable { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    RunsScreen RunsTable { scrollbar-gutter: stable; }
    RunsScreen #detail { height: 2; padding: 0 1; background: $panel; }
    """
    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("w", "sweep", "Sweep"),
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("t", "tag", "Tag"),
        Binding("n", "note", "Note"),
        Binding("d,delete", "trash", "Trash", show=False),
        Binding("R", "rename", "Rename", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, root: str | Path | None = None) -> None:
        """`root` is the runs folder ($NNLIB_RUNS_DIR, else ./runs, when None)."""
        super().__init__()
        self._show_pending = False  # a draw is asked for after the next refresh
        self.index = RunIndex(root)
        self.sweep_index = SweepIndex(self.index.root)
        self.metas = MetaCache()
        self.summaries: list[RunSummary] = []
        self.sweeps: list[SweepSummary] = []
        #: The sweep folders whose trials are listed under them (Enter on a sweep's row).
        self.expanded: set[Path] = set()
        self.rows: list[RunRow] = []
        #: By sweep folder, its trials' rows.
        self.trials: dict[Path, list[RunRow]] = {}
        #: The rows listed, by key (a run's, sweep's or trial's folder).
        self._listed: dict[str, RunRow] = {}
        self.marked: list[Path] = []
        self.sort_column = "started"
        self.descending = True
        self.filter_text = ""
        #: The last filter that meant something (shown while the typed one does not).
        self._good_filter = ""
        self.filter_error = ""
        #: Optional columns scrolled past (Left/Right), and whether Right was pressed: the
        #: column at the offset is then shown even where the always-shown ones must be cut.
        self.column_offset = 0
        self.columns_moved = False
        self.table_layout: Layout | None = None
        self._columns: list[Column] = []
        self._shown: list[tuple[str, tuple[Text, ...]]] = []
        self._table_shape: tuple = ()
        #: The run the cursor goes to at the next rebuild (a renamed run's new path).
        self._select_next: Path | None = None
        self._skipped: set[Path] = set()  # the unreadable folders already notified

    def compose(self) -> ComposeResult:
        yield Static("", id="title", markup=False)
        yield FilterInput(placeholder="/ filter: lr<0.1 tag:x state:crashed or text", id="filter")
        yield Static("", id="filter-error", markup=False)
        yield RunsTable(cursor_type="row", zebra_stripes=True, cell_padding=CELL_PADDING)
        yield Static("", id="detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_runs()
        self.query_one(RunsTable).focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)

    def on_resize(self) -> None:
        self._show_soon()

    def _show_soon(self) -> None:
        """Draw the table after the next refresh, once however often asked: before the first
        layout the table has no width to fit, and drawing 1,000 rows then and again on the
        resize that follows cost the first screen ~0.5 s."""
        if not self._show_pending:
            self._show_pending = True
            self.call_after_refresh(self._show_now)

    def _show_now(self) -> None:
        self._show_pending = False
        self._show()

    # -- the table ------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """Re-read what changed in the folder and redraw the rows that differ."""
        self.summaries = self.index.refresh()
        self.sweeps = self.sweep_index.refresh()
        sweeps, self.trials = sweep_rows(self.sweeps, self.metas, self.expanded.__contains__)
        self.rows = [*rows_of(self.summaries, self.metas), *sweeps]
        self._forget_gone()
        for path, line in self.index.skipped.items():  # said once, while it stays unreadable
            if path not in self._skipped:
                self.notify(line, severity="warning", markup=False)
        self._skipped = set(self.index.skipped)
        if self.query_one(RunsTable).scrollable_content_region.width:
            self._show()
        else:
            self._show_soon()

    def _forget_gone(self) -> None:
        """The sweeps expanded and the runs marked that are no longer in the folder (a
        trial counts while its sweep lists it) are so no more."""
        self.expanded &= {s.path for s in self.sweeps}
        present = {s.path for s in self.summaries}
        present |= {t.summary.path for t in chain.from_iterable(self.trials.values())}
        self.marked = [p for p in self.marked if p in present]

    def _filtered(self) -> tuple[list[RunRow], dict[Path, list[RunRow]]]:
        """The rows the filter lets through, and the trials under each sweep; a filter that
        means nothing is said under the field, and the last one that did stays in force."""
        try:
            found = select_with_trials(self.rows, self.trials, self.filter_text)
        except FilterError as error:
            self.filter_error = f"✗ {error}"
            try:
                return select_with_trials(self.rows, self.trials, self._good_filter)
            except FilterError:
                return list(self.rows), dict(self.trials)
        self.filter_error, self._good_filter = "", self.filter_text
        return found

    def visible_rows(self) -> list[RunRow]:
        """The runs and sweeps that pass the filter in the chosen order, each expanded
        sweep's trials under it (in that order too)."""
        rows, trials = self._filtered()
        column = self._sort_column(sortable_columns([*rows, *chain.from_iterable(trials.values())]))
        out = []
        for row in sort_rows(rows, column, self.descending):
            out.append(row)
            if row.summary.path in self.expanded:
                out += sort_rows(trials.get(row.summary.path, []), column, self.descending)
        self._listed = {str(r.summary.path): r for r in out}
        return out

    def _sort_column(self, columns: list[Column]) -> Column:
        try:
            return column_named(self.sort_column, columns)
        except KeyError:
            self.sort_column = "started"
            return column_named("started", columns)

    def _cells(self, row: RunRow, columns: list[Column]) -> list[str]:
        cells = [c.text(row) for c in columns]
        if row.problem:
            cells[0] += " !"
        return cells

    def _show(self) -> None:
        table = self.query_one(RunsTable)
        rows = self.visible_rows()
        layout, headers, texts = self._fit(rows, table.scrollable_content_region.width)
        shape = tuple(zip(headers, layout.widths, strict=True))
        shown = [
            (str(row.summary.path), self._row(row, row_texts, layout))
            for row, row_texts in zip(rows, texts, strict=True)
        ]
        if shape != self._table_shape or [k for k, _ in shown] != [k for k, _ in self._shown]:
            self._rebuild(table, shape, shown, layout)
        else:
            self._update_cells(table, shown, layout)
        self._shown = shown
        self._title(sum(r.kind == "run" for r in rows))
        self.query_one("#filter-error", Static).update(self.filter_error)
        self.query_one("#filter-error").set_class(bool(self.filter_error), "shown")
        self._detail()

    def _fit(self, rows: list[RunRow], width: int) -> tuple[Layout, list[str], list[list[str]]]:
        """The columns of `rows` that fit in `width` cells from the offset ←→ chose (the
        sort column among them even when `columns_for` leaves it out), kept as the table's
        layout; their headers and each row's texts in them."""
        columns = columns_for(rows)
        sort = self._sort_column(columns)
        if sort not in columns:
            columns.append(sort)
        headers = header_texts(columns, sort.name, self.descending)
        cells = [self._cells(r, columns) for r in rows]
        room = width - MARK_WIDTH - 4 * CELL_PADDING
        # Listed trials keep their parameters in view, rather than the sort column.
        layout = fit(
            columns,
            headers,
            cells,
            max(room, 20),
            2 * CELL_PADDING,
            self.column_offset,
            params_of(rows) or [sort.name],
            reveal=self.columns_moved,
        )
        self.table_layout, self.column_offset, self._columns = layout, layout.hidden_left, columns
        return layout, layout.pick(headers), [layout.pick(row) for row in cells]

    def _update_cells(
        self, table: RunsTable, shown: list[tuple[str, tuple[Text, ...]]], layout: Layout
    ) -> None:
        """The same rows and columns as shown: only the cells that changed are written."""
        keys = (MARK, *(c.name for c in layout.columns))
        for (key, row), (_, old) in zip(shown, self._shown, strict=True):
            for column, cell, before in zip(keys, row, old, strict=True):
                if cell != before:
                    table.update_cell(key, column, cell)

    def _rebuild(self, table: RunsTable, shape: tuple, shown: list, layout: Layout) -> None:
        """New rows or columns: the table made again, keeping the run under the cursor and
        the scroll position."""
        current, scroll_y, at = self.current(), table.scroll_y, table.cursor_row
        wanted = str(self._select_next or (current.path if current else ""))
        self._select_next = None
        if shape != self._table_shape:
            self._set_columns(table, shape, layout)
        else:
            table.clear()
        for key, row in shown:
            table.add_row(*row, key=key)
        keys = [k for k, _ in shown]
        if keys:  # the same run, else the same row (the run went: trashed, filtered out)
            row = keys.index(wanted) if wanted in keys else min(at, len(keys) - 1)
            table.move_cursor(row=row, scroll=False)
        table.call_after_refresh(table.scroll_to, y=scroll_y, animate=False)

    def _set_columns(self, table: RunsTable, shape: tuple, layout: Layout) -> None:
        """The table emptied and given the columns of `shape` (headers and widths)."""
        table.clear(columns=True)
        table.add_column(" ", key=MARK, width=MARK_WIDTH)
        for (header, width), column in zip(shape, layout.columns, strict=True):
            table.add_column(Text(header), key=column.name, width=width)
        self._table_shape = shape

    def _row(self, row: RunRow, texts: list[str], layout: Layout) -> tuple[Text, ...]:
        path = row.summary.path
        mark = Text(RUN_MARKERS[self.marked.index(path)] if path in self.marked else "", "bold")
        cells = []
        for text, width, column in zip(texts, layout.widths, layout.columns, strict=True):
            cell = Text(cut(text, width, column.cut))
            if column.name == "state":
                cell.stylize(STATE_STYLES.get(row.summary.state, ""))
            elif column.name == "name" and text.endswith(" !"):
                cell.stylize("bold red", len(cell) - 1)
            cells.append(cell)
        return (mark, *cells)

    def _title(self, count: int) -> None:
        total = len(self.summaries)
        where = _plural("run", total)
        counts = f"{count} of {total}" if count != total else f"{total}"
        marked = _part(len(self.marked), "marked (c: compare)")
        skipped = _part(len(self._skipped), "unreadable, left out")
        sweeps = len(self.sweeps)
        skipped = _part(sweeps, f"{_plural('sweep', sweeps)} (w)") + skipped
        layout = self.table_layout
        hidden = (layout.hidden_left + layout.hidden_right) if layout else 0
        more = _part(hidden, f"more {_plural('column', hidden)}", lead="←→ ")
        # The folder last: at 80 columns a long path is what gets cut, not the counts or ←→.
        title = f"nntui · {counts} {where}{marked}{skipped}{more} · {self.index.root}"
        self.query_one("#title", Static).update(title)

    def _detail(self) -> None:
        """The selected run's whole row below the table (a sweep's: what it is at)."""
        row = self.current_row()
        path = row.summary.path if row else None
        sweep = next((s for s in self.sweeps if s.path == path), None)
        line = _sweep_detail(sweep) if sweep is not None else detail(row) if row else ""
        self.query_one("#detail", Static).update(line)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def current_row(self) -> RunRow | None:
        """The run under the cursor, with its tags and note."""
        table = self.query_one(RunsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._listed.get(str(key))

    def current(self) -> RunSummary | None:
        """The run under the cursor."""
        row = self.current_row()
        return row.summary if row else None

    def shift_columns(self, step: int) -> None:
        """Left/Right: the optional columns move by one (the always-shown ones stay). Where
        none of them fits (80 columns), the first Right shows the first of them, the others
        cut for it, and Left from there goes back to none."""
        layout = self.table_layout
        if layout is None or (step > 0 and not layout.hidden_right):
            return
        if step > 0:
            self.column_offset += 1 if self.columns_moved or layout.shown else 0
            self.columns_moved = True
        elif self.column_offset:
            self.column_offset -= 1
        else:
            self.columns_moved = False
        self._show()

    # -- keys -----------------------------------------------------------------------------------
    def action_sort(self, step: int) -> None:
        """Sort by the next (or previous) column, shown ones and not."""
        names = [c.name for c in self._columns]
        at = names.index(self.sort_column) if self.sort_column in names else -1
        self.sort_column = names[(at + step) % len(names)]
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

    def action_mark(self) -> None:
        """Mark the run under the cursor for compare (the first marked is the baseline)."""
        run = self.current()
        if run is None or self._refused_for_sweep("marked: mark its trials (Enter lists them)"):
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

    def _refused_for_sweep(self, what: str, trials: bool = False) -> bool:
        """Whether the row under the cursor is a sweep (or, with `trials`, one of its
        trials), which cannot be `what`: said in a notice."""
        row = self.current_row()
        refused = ("sweep", "trial") if trials else ("sweep",)
        if row is None or row.kind not in refused:
            return False
        which = "a sweep" if row.kind == "sweep" else f"a trial of the sweep {row.sweep}"
        self.notify(f"{row.name} is {which}: not {what}", severity="warning", markup=False)
        return True

    def action_sweep(self) -> None:
        """The sweep under the cursor (or the sweep of the trial under it) in its own view."""
        from .sweep import SweepScreen

        row = self.current_row()
        if row is None or row.kind == "run":
            self.notify("no sweep here: move to a sweep's row (▸)", severity="warning")
            return
        self.app.push_screen(
            SweepScreen(row.summary.path if row.kind == "sweep" else row.summary.path.parent)
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: a sweep's trials listed under it (or folded again); a run on the
        dashboard, followed if it is still being written."""
        from .dashboard import DashboardScreen

        path = Path(str(event.row_key.value))
        row = self._listed.get(str(path))
        if row is not None and row.kind == "sweep":
            self.expanded ^= {path}
            self.refresh_runs()
            return
        try:
            recorded = open_run(path)
        except ValueError as error:
            self.notify(str(error), severity="error", markup=False)
            return
        self.app.push_screen(DashboardScreen(recorded.experiment(), recorded=recorded))

    def _ask(self, title: str, default: str, action) -> None:
        """A one-line dialog whose errors show in place; the table is read again after."""
        self.app.push_screen(PathScreen(title, default, action), lambda _: self.refresh_runs())

    def action_tag(self) -> None:
        """Edit the run's tags (space-separated)."""
        row = self.current_row()
        if row is not None:
            path = row.summary.path

            def save(text: str) -> str:
                meta = set_tags(path, text.split())
                return f"{path.name}: tags {' '.join(meta.tags) or '(none)'}"

            self._ask(f"Tags of {path.name} (space-separated)", " ".join(row.meta.tags), save)

    def action_note(self) -> None:
        row = self.current_row()
        if row is not None:
            path = row.summary.path

            def save(text: str) -> str:
                meta = set_note(path, text)
                return f"{path.name}: note saved" if meta.note else f"{path.name}: note removed"

            self._ask(f"Note on {path.name} (one line)", row.meta.note, save)

    def action_rename(self) -> None:
        run = self.current()
        if run is not None and not self._refused_for_sweep("renamed here", trials=True):
            path = run.path

            def save(name: str) -> str:
                forks = children(path)
                target = rename(path, name)
                self.marked = [target if p == path else p for p in self.marked]
                self._select_next = target
                warning = children_warning(path, forks)
                return f"renamed {path.name} to {target.name}" + (f"; {warning}" if warning else "")

            self._ask(f"Rename {path.name} to", path.name, save)

    def action_trash(self) -> None:
        """Move the run to the runs folder's trash, after a confirmation."""
        run = self.current()
        if run is None or self._refused_for_sweep("moved to the trash here", trials=True):
            return
        path = run.path
        warning = children_warning(path, children(path))
        question = f"Move {path.name} to {path.parent / TRASH}?" + (
            f"\n{warning}" if warning else ""
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                target = trash(path)
            except (OSError, ValueError) as error:
                self.notify(str(error), severity="error", markup=False)
                return
            self.notify(f"moved {path.name} to {target}", markup=False)
            self.refresh_runs()

        self.app.push_screen(ConfirmScreen(question, yes="Move to trash", no="Keep"), answered)

    def action_back(self) -> None:
        """Escape: leave the filter first, else go back to the screen below."""
        field = self.query_one("#filter", Input)
        if field.has_focus:
            self.query_one(RunsTable).focus()
        else:
            self.dismiss()


def _sweep_detail(sweep: SweepSummary) -> str:
    """A sweep's line below the table: its state, the trials done, the best value of its
    metric, the keys that open it, and its problem if it has one."""
    best = "-" if sweep.best_value is None else f"{sweep.best_value:.4g}"
    line = (
        f"{sweep.name}: a sweep, {sweep.state or 'unreadable'} · {sweep.done}/"
        f"{sweep.total} trials done · best {sweep.metric} {best} · Enter: its trials · "
        "w: ranked, with charts"
    )
    return line + (f" · ! {sweep.problem}" * bool(sweep.problem))


def _part(count: int, what: str, lead: str = "") -> str:
    """A part of the title on what there are `count` of (` · 3 marked`), said only when
    there are any."""
    return f" · {lead}{count} {what}" if count else ""


def _plural(noun: str, count: int) -> str:
    """`noun` as `count` of it is said: run, runs (0 runs)."""
    return noun if count == 1 else f"{noun}s"
