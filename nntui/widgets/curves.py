"""Loss and accuracy curves: raw batch values (faint), their EMA, validation per epoch, and
dotted marks where a hyperparameter changed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from rich.text import Text
from textual.reactive import reactive

from ..plot import Series, ema, format_number, line_chart, stacked_heights
from .panel import StatePanel, fit

if TYPE_CHECKING:
    from ..runstate import RunState

SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.97)
RAW, SMOOTH, VALIDATION, MARK = "grey46", "bold #4ea8ff", "bold #e879f9", "#facc15"
#: Without colour (NO_COLOR) the raw batch values are dots, so the EMA line stands out.
RAW_CELL = "·"


class CurvesPanel(StatePanel):
    """Train loss per batch and validation loss per epoch (plus accuracy for classification)."""

    HELP: ClassVar[str] = (
        "The loss (and accuracy) over training steps. The faint spread is every batch's "
        "value, the line its smoothed average (m changes the smoothing), the dots each epoch; "
        "validation is drawn in pink. l switches to a log scale.\n\n"
        "Good: the loss falls quickly, then flattens; validation follows training. Bad: a "
        "flat line from the start (learning rate too low, or a bug), spikes or a climb "
        "(learning rate too high: press -), or validation rising while training keeps falling "
        "(overfitting)."
    )

    INTERVAL = 0.5
    smoothing: reactive[float] = reactive(0.6)
    log_scale: reactive[bool] = reactive(False)
    #: The step the dashboard's time axis shows (None: live): the whole run is drawn, with a
    #: cursor there and the legend's values as they were there.
    cursor: reactive[int | None] = reactive(None)

    def data_key(self) -> tuple[int, int, int, str]:
        state = self.state
        return state.batches.seen, len(state.epochs), len(state.marks), state.task

    def options(self) -> tuple[float, bool, int | None]:
        return self.smoothing, self.log_scale, self.cursor

    def cycle_smoothing(self) -> float:
        """Move to the next EMA weight (m) and return it."""
        index = SMOOTHING_STEPS.index(self.smoothing) if self.smoothing in SMOOTHING_STEPS else 0
        self.smoothing = SMOOTHING_STEPS[(index + 1) % len(SMOOTHING_STEPS)]
        return self.smoothing

    def draw(self, width: int, height: int) -> Text:
        state = self.state
        steps, losses, accuracies, _ = (np.asarray(c) for c in state.batches.columns)
        marks = [m.step for m in state.marks]
        epochs = state.epochs
        charts = _charts(state, losses, accuracies, self.log_scale)
        x_range = (0.0, float(steps.max(initial=1)))
        epoch_steps = [e.step for e in epochs]
        # The legend's values at the cursor: of the batches and epochs up to its step.
        cursor = math.inf if self.cursor is None else self.cursor
        shown = int(np.searchsorted(steps, cursor, "right"))
        shown_epochs = sum(s <= cursor for s in epoch_steps)
        blocks = []
        for chart, chart_h in zip(charts, stacked_heights(height, len(charts)), strict=True):
            smooth = ema(chart.raw, self.smoothing)
            blocks.append(
                self._legend(chart, smooth[:shown], chart.val[:shown_epochs], bool(marks), width)
            )
            blocks.append(
                line_chart(
                    width,
                    chart_h - 1,
                    self._series(steps, chart, smooth, epoch_steps),
                    log_y=chart.log,
                    x_range=x_range,
                    marks=marks,
                    mark_style=MARK,
                    cursor=self.cursor,
                    y_limits=chart.limits,
                    percent=chart.name == "accuracy",
                )
            )
        return Text("\n").join(blocks)

    def _series(
        self, steps: np.ndarray, chart: _Chart, smooth: np.ndarray, epoch_steps: list[int]
    ) -> list[Series]:
        """What one chart draws: every batch's value as a faint spread (dots without colour),
        their EMA as a line, and the validation values per epoch, when there are any."""
        series = [
            Series(steps, chart.raw, RAW, "spread", cell=RAW_CELL if self.app.no_color else None),
            Series(steps, smooth, SMOOTH),
        ]
        values = np.array(chart.val, dtype=np.float64)  # None: NaN
        if np.isfinite(values).any():
            series.append(Series(epoch_steps, values, VALIDATION, "line", "●"))
        return series

    def _legend(
        self, chart: _Chart, smooth: np.ndarray, val: list[float | None], marks: bool, width: int
    ) -> Text:
        """The chart's name and key, with the latest smoothed and validation values."""
        latest = smooth[-1] if len(smooth) else None
        last_val = next((v for v in reversed(val) if v is not None), None)
        percent = chart.name == "accuracy"
        head = Text(f"{chart.name}{' (log)' if chart.log else ''} ", "bold")
        raw_glyph = RAW_CELL if self.app.no_color else "⣿"
        now, val_now = _value(latest, percent), _value(last_val, percent)
        wordings = (
            (f"━ EMA {self.smoothing:g} {now}", "  ┊ hparam change"),
            (f"━ EMA {now}", "  ┊ hp"),
        )
        return fit(
            width,
            *(
                head
                + Text.assemble(
                    (f"{raw_glyph} batch ", RAW),
                    (smoothed, SMOOTH),
                    (f"  ● val {val_now}", VALIDATION),
                    (mark if marks else "", MARK),
                )
                for smoothed, mark in wordings
            ),
        )


@dataclass(frozen=True)
class _Chart:
    """One of the stacked charts: a metric's value per batch (`raw`), its validation value
    per epoch (None where an epoch has none), and its y axis (log, and the limits it stays
    within)."""

    name: str
    raw: np.ndarray
    val: list[float | None]
    log: bool
    limits: tuple[float, float | None]


def _charts(
    state: RunState, losses: np.ndarray, accuracies: np.ndarray, log_scale: bool
) -> list[_Chart]:
    """The charts stacked in the panel: the loss (on a log axis with `log_scale`), and the
    accuracy of a classification run."""
    charts = [_Chart("loss", losses, [e.val_loss for e in state.epochs], log_scale, (0.0, None))]
    if state.task == "classification":
        val = [e.val_accuracy for e in state.epochs]
        charts.append(_Chart("accuracy", accuracies, val, False, (0.0, 1.0)))
    return charts


def _value(value: float | None, percent: bool) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.1%}" if percent else format_number(value)
