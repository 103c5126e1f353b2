"""The runs table's columns and how they fit a width: the one definition behind `nnlib runs
list` and the app's runs screen (no Textual here).

Each column says its priority, its smallest and largest width and where a value too long
for it is cut (`…` marks the cut). Priority 0 columns are always shown: the run's name,
state, epochs and scores. The others follow in priority order while they fit: dataset,
architecture (cut before it is left out), tags, parent, start, duration, the training
process's peak memory and mean samples/s, then the hyperparameters that differ among the
runs listed. A table can be scrolled by column (`offset`): the always-shown columns stay,
the others move. The column a table is sorted
by is always shown (`keep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Any

from ._memory import human_bytes
from ._validate import is_number
from .runfilter import Filter, parse
from .runindex import STATES, RunSummary, flatten, settings_of
from .runmeta import MetaCache, RunMeta
from .sweepindex import SweepSummary

#: The hyperparameters the table shows as columns when they differ among the runs listed, by
#: their setting key (`runindex.settings_of`: lr also when a config has only trainer.optimizer.lr).
HPARAMS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "seed",
    "validation_split",
    "subset",
)
#: The space between two columns of `nnlib runs list` (the app's table pads each cell).
GAP = 2


@dataclass(frozen=True)
class RunRow:
    """A run as the table shows it: its summary and the tags and note a user gave it."""

    summary: RunSummary
    meta: RunMeta = RunMeta()
    #: Why meta.json could not be read, "" when it could.
    meta_problem: str = ""
    #: "run"; "sweep": a sweep folder as one row (nnlib.sweepindex); "trial": a sweep's trial.
    kind: str = "run"
    #: A trial's parameters, as its sweep gave them (shown as columns, like hyperparameters).
    params: Mapping[str, Any] = field(default_factory=dict)
    #: What the name column shows before the name: a sweep's ▸/▾, a trial's indent.
    prefix: str = ""
    #: The sweep folder's name, for a trial.
    sweep: str = ""

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def problem(self) -> str:
        """What could not be read of the run: its config or log, else its meta.json; "" when
        nothing."""
        return self.summary.problem or self.meta_problem

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The run's config, each setting once (runindex.settings_of): a script's run, whose
        config.json has lr only as trainer.optimizer.lr, has an lr too."""
        return settings_of(self.summary.config)

    def hparam(self, key: str) -> Any:
        """A hyperparameter: the trial's parameter, else the run's starting value (None when
        it has neither)."""
        value = self.params.get(key, self.settings.get(key))
        return value if isinstance(value, str | int | float) else None

    def fields(self) -> dict[str, Any]:
        """What filters compare (`lr<0.1`, `dataset=glyphs`): the table's values by the
        column's key, then every config key, top level and dotted (trainer.optimizer.lr)."""
        s = self.summary
        own = {
            "name": s.name,
            "state": s.state,
            "dataset": s.dataset,
            "arch": s.arch,
            "epochs": s.epochs_done,
            "best": s.best_value,
            "test": s.test_value,
            "duration": s.duration,
            "peak_rss": s.peak_rss,
            "samples_per_sec": s.samples_per_sec,
            "parent": s.parent,
            "tags": list(self.meta.tags),
            "note": self.meta.note,
        }
        config = {k: v for k, v in flatten(s.config).items() if k not in own}
        return {**config, **own}

    def text(self) -> str:
        """Everything the row says, for free-text filtering: every column and the note."""
        return " ".join([*(c.text(self) for c in FIXED), self.meta.note, *map(str, self.hparams())])

    def hparams(self) -> list[Any]:
        return [self.hparam(k) for k in HPARAMS]


@dataclass(frozen=True)
class Column:
    """One column of the runs table."""

    #: The header, also the key in `--json`/`--csv` and, without its space, in filters.
    name: str
    #: 0: always shown; the others are shown lowest first while they fit.
    priority: int
    #: It is cut (with `…`) down to this width before it is left out.
    min_width: int
    #: Longer values are cut to this width when the table has to fit a width.
    max_width: int
    #: "end" keeps a value's start, "middle" its start and end (names end in a number).
    cut: str
    text: Callable[[RunRow], str] = field(compare=False)
    #: A value that sorts as the column should (numbers as numbers); None sorts last.
    value: Callable[[RunRow], Any] = field(compare=False)

    def sort_key(self, row: RunRow) -> tuple[int, Any]:
        """Sorts by value, blanks last (reverse the known ones only to keep that)."""
        value = self.value(row)
        return (1, 0) if value is None or value == "" else (0, value)


def metric_text(name: str, value: float | None) -> str:
    """`93.3%` (an accuracy), `0.0123 loss`: a best or test score and what it measures."""
    if value is None:
        return ""
    short = name.removeprefix("val_").removeprefix("test_")
    return f"{value:.1%}" if short == "accuracy" else f"{value:.4g} {short}"


def format_duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 12s: a run's length in the table."""
    if seconds is None:
        return ""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _epochs(s: RunSummary) -> str:
    return f"{s.epochs_done}/{s.epochs_total}" if s.epochs_total else str(s.epochs_done)


def _started(s: RunSummary) -> str:
    """`12-06 20:17` in the current year, `2025-12-06` before."""
    if s.started is None:
        return ""
    when = datetime.fromtimestamp(s.started)
    return when.strftime("%m-%d %H:%M" if when.year == datetime.now().year else "%Y-%m-%d")


def peak_rss_text(value: int | None) -> str:
    """`219.3 MiB`: a run's peak resident memory in the table."""
    return "" if value is None else human_bytes(value)


def speed_text(value: float | None) -> str:
    """`12,345`: a run's mean samples per second in the table."""
    return "" if value is None else f"{value:,.0f}"


def _text_value(text: Callable[[RunRow], str]) -> Callable[[RunRow], Any]:
    return lambda row: text(row).lower()


def _column(name: str, priority: int, widths: tuple[int, int], cut: str, text, value=None):
    return Column(name, priority, *widths, cut, text, value or _text_value(text))


#: The table's columns in their order, then the differing hyperparameters (`columns_for`).
FIXED = (
    _column("name", 0, (8, 28), "middle", lambda r: r.prefix + r.name, lambda r: r.name.lower()),
    _column(
        "state",
        0,
        (8, 8),
        "end",
        lambda r: r.summary.state,
        lambda r: STATES.index(r.summary.state) if r.summary.state in STATES else len(STATES),
    ),
    _column(
        "epochs", 0, (6, 9), "end", lambda r: _epochs(r.summary), lambda r: r.summary.epochs_done
    ),
    _column(
        "best val",
        0,
        (9, 12),
        "end",
        lambda r: metric_text(r.summary.best_metric, r.summary.best_value),
        lambda r: r.summary.best_value,
    ),
    _column(
        "test",
        0,
        (9, 12),
        "end",
        lambda r: metric_text(r.summary.test_metric, r.summary.test_value),
        lambda r: r.summary.test_value,
    ),
    _column("dataset", 1, (7, 16), "end", lambda r: r.summary.dataset),
    _column("arch", 2, (10, 32), "end", lambda r: r.summary.arch),
    _column("tags", 3, (6, 24), "end", lambda r: " ".join(r.meta.tags)),
    _column("parent", 4, (8, 24), "middle", lambda r: r.summary.parent),
    _column(
        "started", 5, (16, 16), "end", lambda r: _started(r.summary), lambda r: r.summary.started
    ),
    _column(
        "duration",
        6,
        (5, 8),
        "end",
        lambda r: format_duration(r.summary.duration),
        lambda r: r.summary.duration,
    ),
    _column(
        "peak rss",
        7,
        (9, 10),
        "end",
        lambda r: peak_rss_text(r.summary.peak_rss),
        lambda r: r.summary.peak_rss,
    ),
    _column(
        "samples/s",
        8,
        (9, 11),
        "end",
        lambda r: speed_text(r.summary.samples_per_sec),
        lambda r: r.summary.samples_per_sec,
    ),
)
_FIXED_NAMES = frozenset(c.name for c in FIXED)
#: The hyperparameter columns come after these, in HPARAMS order.
HPARAM_PRIORITY = 10
#: A sweep's parameters (on its trials' rows) come right after the always-shown columns.
PARAM_PRIORITY = 1


def hparam_text(value: Any) -> str:
    """A hyperparameter as the table shows it: 0.05, 1e-05, 64, adam."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _hparam_value(key: str) -> Callable[[RunRow], Any]:
    def value(row: RunRow) -> Any:
        found = row.hparam(key)
        if is_number(found):
            return (0, found, "")
        return None if found is None else (1, 0, str(found).lower())

    return value


def hparam_column(key: str, priority: int | None = None) -> Column:
    """The column of a hyperparameter or sweep parameter `key` (priority: HPARAMS order)."""
    return Column(
        key,
        HPARAM_PRIORITY + HPARAMS.index(key) if priority is None else priority,
        max(len(key), 4),
        16,
        "end",
        lambda r: hparam_text(r.hparam(key)),
        _hparam_value(key),
    )


def columns_for(rows: Sequence[RunRow]) -> list[Column]:
    """The fixed columns, then a column per sweep parameter of the trials among `rows`, then
    per hyperparameter that differs among them."""
    columns = sortable_columns(rows)
    named = {c.name for c in columns}
    differing = (key for key in HPARAMS if key not in named and _differs(rows, key))
    return [*columns, *map(hparam_column, differing)]


def sortable_columns(rows: Sequence[RunRow]) -> list[Column]:
    """The fixed columns and a column per sweep parameter of the trials among `rows`: with
    `column_named`'s hyperparameters, every column the table can be sorted by (without
    looking for the hyperparameters that differ, which reads every row's config)."""
    params = [key for key in params_of(rows) if key not in _FIXED_NAMES]
    return [*FIXED, *(hparam_column(key, PARAM_PRIORITY) for key in params)]


def params_of(rows: Sequence[RunRow]) -> list[str]:
    """The sweep parameters of the trials among `rows`, in first-seen order."""
    return list(dict.fromkeys(key for r in rows for key in r.params))


def _differs(rows: Sequence[RunRow], key: str) -> bool:
    """Whether two of `rows` have different values of the hyperparameter `key`."""
    values = (repr(r.hparam(key)) for r in rows)
    first = next(values, None)
    return any(value != first for value in values)


def column_named(name: str, columns: Sequence[Column]) -> Column:
    """The column called `name` (one of `columns`, else a known hyperparameter's)."""
    for column in columns:
        if column.name == name:
            return column
    if name in HPARAMS:
        return hparam_column(name)
    raise KeyError(name)


def sort_rows(rows: Sequence[RunRow], column: Column, descending: bool) -> list[RunRow]:
    """`rows` by `column`'s value, blanks last whichever the direction."""
    by_value = sorted(rows, key=column.sort_key, reverse=descending)
    return sorted(by_value, key=lambda row: column.sort_key(row)[0])  # stable: blanks last


# -- fitting a width -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """The columns a table shows (in table order) and each one's width."""

    columns: tuple[Column, ...]
    widths: tuple[int, ...]
    #: Where each column shown is among the columns fitted.
    indices: tuple[int, ...]
    #: Optional columns scrolled past on the left, and left out on the right.
    hidden_left: int = 0
    hidden_right: int = 0
    #: Optional columns shown.
    shown: int = 0

    def pick(self, texts: Sequence[str]) -> list[str]:
        """The texts of the columns shown, from a row of every fitted column's."""
        return [texts[i] for i in self.indices]


def fit(
    columns: Sequence[Column],
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    width: int | None,
    gap: int = GAP,
    offset: int = 0,
    keep: Sequence[str] = (),
    reveal: bool = False,
) -> Layout:
    """The columns that fit in `width` characters with `gap` between two of them (None:
    every column, each as wide as its longest value). The priority 0 columns and those in
    `keep` are always there; the others follow, from the `offset`-th on in priority order,
    while there is room: one that does not fit whole is cut to the room left if that is
    at least its `min_width` (and ends the table), else it is left out. Room still left
    goes to the columns cut to their `max_width`. Columns blank in every row are left out
    too. `reveal` (the user moved to the optional columns): the `offset`-th is shown even
    where the others must be cut to their floors for it (80 columns leave none room)."""
    natural, want, floor = _measure(columns, headers, cells)
    if width is None:
        return Layout(tuple(columns), tuple(natural), tuple(range(len(columns))))
    required, optional = _choose(columns, cells, keep)
    offset = max(0, min(offset, len(optional) - 1))
    widths = {i: want[i] for i in required}
    room_kept = floor[optional[offset]] + gap if reveal and optional else 0
    _shrink(widths, floor, width - room_kept, gap)
    used = sum(widths.values()) + gap * (len(widths) - 1)
    taken, added = _take(widths, optional[offset:], want, floor, width - used, gap)
    _grow(widths, natural, columns, width - used - added)
    order = sorted(widths)
    return Layout(
        tuple(columns[i] for i in order),
        tuple(widths[i] for i in order),
        tuple(order),
        hidden_left=offset,
        hidden_right=len(optional) - offset - taken,
        shown=taken,
    )


def _measure(
    columns: Sequence[Column], headers: Sequence[str], cells: Sequence[Sequence[str]]
) -> tuple[list[int], list[int], list[int]]:
    """Each column's natural width (its longest value), the width it wants when the table
    must fit (cut to its `max_width`) and the floor it is cut to before it is left out;
    never narrower than its header."""
    natural = [max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in range(len(columns))]
    want = [min(natural[i], max(c.max_width, len(headers[i]))) for i, c in enumerate(columns)]
    floor = [min(want[i], max(c.min_width, len(headers[i]))) for i, c in enumerate(columns)]
    return natural, want, floor


def _choose(
    columns: Sequence[Column], cells: Sequence[Sequence[str]], keep: Sequence[str]
) -> tuple[list[int], list[int]]:
    """The columns always shown (priority 0, or kept), and the optional ones that have a
    value in some row, in priority order."""
    required = [i for i, c in enumerate(columns) if c.priority == 0 or c.name in keep]
    optional = sorted(
        (i for i, c in enumerate(columns) if i not in required and any(row[i] for row in cells)),
        key=lambda i: (columns[i].priority, i),
    )
    return required, optional


def _take(
    widths: dict[int, int],
    candidates: Sequence[int],
    want: Sequence[int],
    floor: Sequence[int],
    room: int,
    gap: int,
) -> tuple[int, int]:
    """Add the `candidates` (optional columns, in priority order) to `widths` while `room`
    is left: each whole, or cut to the room left if that is at least its floor (and then the
    last). Returns how many were added and the room they used."""
    taken, used = 0, 0
    for i in candidates:
        left = room - used - gap
        if left < floor[i]:
            continue  # a narrower one further on may fit
        widths[i] = min(want[i], left)
        used += widths[i] + gap
        taken += 1
        if widths[i] < want[i]:
            break
    return taken, used


def _grow(
    widths: dict[int, int], natural: Sequence[int], columns: Sequence[Column], room: int
) -> None:
    """Give the `room` left to the columns cut short, in priority order, up to their
    natural width."""
    for i in sorted(widths, key=lambda i: (columns[i].priority, i)):
        grow = min(natural[i] - widths[i], room)
        if grow > 0:
            widths[i] += grow
            room -= grow


def _shrink(widths: dict[int, int], floor: Sequence[int], width: int, gap: int) -> None:
    """Cut the always-shown columns, widest over its floor first, until they fit `width`."""
    excess = sum(widths.values()) + gap * (len(widths) - 1) - width
    while excess > 0:
        i = max(widths, key=lambda i: widths[i] - floor[i])
        if widths[i] <= floor[i]:
            return
        cut = min(excess, widths[i] - floor[i])
        widths[i] -= cut
        excess -= cut


def cut(text: str, width: int, where: str = "end") -> str:
    """`text` in at most `width` characters, `…` where it was cut."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    if where == "middle":
        head = (width - 1) // 2 + (width - 1) % 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: width - 1] + "…"


def header_texts(
    columns: Sequence[Column], sort: str | None = None, descending: bool = True
) -> list[str]:
    """The headers, the sort column's with ▼ (descending) or ▲."""
    arrow = " ▼" if descending else " ▲"
    return [c.name + (arrow if c.name == sort else "") for c in columns]


def format_table(rows: Sequence[RunRow], width: int | None = None) -> str:
    """`nnlib runs list`: plain aligned columns within `width` characters (None: every
    column whole); the last column is not padded."""
    columns = columns_for(rows)
    headers = header_texts(columns)
    cells = [[c.text(r) for c in columns] for r in rows]
    layout = fit(columns, headers, cells, width)
    lines = []
    for row in [headers, *cells]:
        parts = [
            cut(text, w, c.cut).ljust(w)
            for text, w, c in zip(layout.pick(row), layout.widths, layout.columns, strict=True)
        ]
        lines.append((" " * GAP).join(parts).rstrip())
    return "\n".join(line if width is None else cut(line, width) for line in lines)


def record(row: RunRow) -> dict[str, Any]:
    """A run as one flat JSON-ready record (`nnlib runs list --json`/`--csv`): raw values,
    times as Unix seconds, every hyperparameter of HPARAMS."""
    s = row.summary
    return {
        "name": s.name,
        "path": str(s.path),
        "state": s.state,
        "reason": s.reason,
        "error": s.error,
        "epochs_done": s.epochs_done,
        "epochs_total": s.epochs_total,
        "best_metric": s.best_metric if s.best_value is not None else "",
        "best_value": _finite(s.best_value),
        "test_metric": s.test_metric,
        "test_value": _finite(s.test_value),
        "dataset": s.dataset,
        "arch": s.arch,
        "tags": list(row.meta.tags),
        "note": row.meta.note,
        "parent": s.parent,
        "started": s.started,
        "duration": s.duration,
        "peak_rss": s.peak_rss,
        "samples_per_sec": _finite(s.samples_per_sec),
        **{key: _finite(row.hparam(key)) for key in HPARAMS},
        "problem": row.problem,
        "kind": row.kind,
        "sweep": row.sweep,
        "params": dict(row.params),
    }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


#: The keys of `record`, in order: the header of `nnlib runs list --csv`.
RECORD_FIELDS = tuple(record(RunRow(RunSummary(Path(".")))))


def detail(row: RunRow) -> str:
    """The whole row of one run, for the app's detail line: every column, the note and the
    error or problem, each named."""
    s = row.summary
    state = s.state + (f" ({s.error})" if s.error else "")
    hparams = [f"{k}={hparam_text(row.hparam(k))}" for k in HPARAMS if row.hparam(k) is not None]
    parts = [
        f"{s.name}: {state}",
        f"epochs {_epochs(s)}",
        f"best val {metric_text(s.best_metric, s.best_value) or '-'}",
        f"test {metric_text(s.test_metric, s.test_value) or '-'}",
        s.dataset,
        s.arch,
        " ".join(hparams),
        _labelled("tags: ", " ".join(row.meta.tags)),
        _labelled("parent ", s.parent),
    ]
    parts += _cost(s)
    parts += [_labelled("note: ", row.meta.note), _labelled("! ", row.problem)]
    return " · ".join(p for p in parts if p)


def _cost(s: RunSummary) -> list[str]:
    """When the run started and what it took (time, memory, speed), for the detail line:
    only the facts its log gave."""
    parts = []
    if s.started is not None:
        when = datetime.fromtimestamp(s.started).strftime("%Y-%m-%d %H:%M")
        parts.append(f"started {when}, {format_duration(s.duration)}")
    if s.peak_rss is not None or s.samples_per_sec is not None:
        speed = speed_text(s.samples_per_sec) or "-"
        parts.append(f"peak rss {peak_rss_text(s.peak_rss) or '-'}, {speed} samples/s")
    return parts


def _labelled(label: str, text: str) -> str:
    """`text` after its label, or nothing when there is no text (the detail line names only
    what a run has)."""
    return label + text if text else ""


def rows_of(summaries: Sequence[RunSummary], metas: MetaCache) -> list[RunRow]:
    """The table's rows: each summary with its run's tags and note."""
    return [RunRow(s, *metas.get(s.path)) for s in summaries]


def sweep_rows(
    sweeps: Sequence[SweepSummary], metas: MetaCache, expanded: Callable[[Path], bool]
) -> tuple[list[RunRow], dict[Path, list[RunRow]]]:
    """A row per sweep (▾ when `expanded`, else ▸) and, by sweep folder, its trials' rows."""
    rows, trials = [], {}
    for sweep in sweeps:
        path = sweep.path
        prefix = "▾ " if expanded(path) else "▸ "
        rows.append(RunRow(sweep.as_run(), *metas.get(path), kind="sweep", prefix=prefix))
        trials[path] = [
            RunRow(t.run, *metas.get(t.run.path), "trial", t.params, "  ", sweep.name)
            for t in sweep.trials
        ]
    return rows, trials


def select_with_trials(
    rows: Sequence[RunRow], trials: Mapping[Path, Sequence[RunRow]], text: str
) -> tuple[list[RunRow], dict[Path, list[RunRow]]]:
    """The rows that pass the filter `text` (runfilter) and, by sweep, the trials listed
    under it: every trial of a sweep row that passes, else the trials that pass (a sweep
    is listed when it or one of its trials passes). FilterError when the filter means
    nothing, a comparison on a field no row has included."""
    wanted = parse(text)
    if not wanted.terms:  # no filter: nothing to compute for 1,000 rows
        return list(rows), {path: list(listed) for path, listed in trials.items()}
    passes = _matcher([*rows, *chain.from_iterable(trials.values())], wanted)
    under = {
        row.summary.path: _listed(trials.get(row.summary.path, ()), passes, passes(row))
        for row in rows
        if row.kind == "sweep"
    }
    return [row for row in rows if passes(row) or under.get(row.summary.path)], under


def _listed(
    trials: Sequence[RunRow], passes: Callable[[RunRow], bool], sweep_passes: bool
) -> list[RunRow]:
    """The trials listed under a sweep's row: all of them when the sweep itself passes the
    filter, else those that pass."""
    return list(trials) if sweep_passes else [t for t in trials if passes(t)]


def _matcher(every: Sequence[RunRow], wanted: Filter) -> Callable[[RunRow], bool]:
    """The filter `wanted` as a test of one of `every` row, each row's fields read once;
    FilterError when it compares a field none of them has."""
    fields = {id(r): r.fields() for r in every}
    wanted.check_keys({key for f in fields.values() for key in f})
    return lambda row: wanted.matches(fields[id(row)], row.text())


def select(rows: Sequence[RunRow], text: str) -> list[RunRow]:
    """The rows that pass the filter `text` (see `select_with_trials`)."""
    return select_with_trials(rows, {}, text)[0]


def with_trials(rows: Sequence[RunRow], trials: Mapping[Path, Sequence[RunRow]]) -> list[RunRow]:
    """`rows` with the trials of each sweep among them right after its row."""
    return [out for r in rows for out in (r, *trials.get(r.summary.path, ()))]
