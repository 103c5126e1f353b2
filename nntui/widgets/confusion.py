"""The confusion matrix as a heat map with per-class precision and recall — of the
validation split (each epoch) or, by `t`, of the test split (at the end of the run, or on
request) — or, for regression, predicted against true as a density plot. Arrows move a
cursor over the cells; Enter opens the validation images of that cell in Samples."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from nnlib.events import Confusion, Regression, TestResult

from ..plot import confusion_heatmap, density_plot
from .panel import StatePanel


class ConfusionPanel(StatePanel, can_focus=True):
    HELP: ClassVar[str] = (
        "Rows are the true classes, columns what the model predicted, each cell a count of "
        "validation images (t: of the test images, once tested). The diagonal holds the "
        "right answers (green); everything off it is a mistake (red, the worst confusions "
        "brightest). Recall (right) is the share of a true class found; precision (below) "
        "the share of a predicted class that was right. Arrows move the cursor, Enter "
        "shows the images of that cell in Samples. Good: a bright diagonal and dots "
        "elsewhere. Bad: a bright off-diagonal pair (two classes the model mixes up) or a "
        "column that collects everything (one class predicted for all). For regression it "
        "plots predicted against true values instead: good points lie on the diagonal (R² "
        "near 1)."
    )
    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("enter", "open", "Open cell", show=False),
        Binding("t", "split", "Validation/test", show=False),
    ]
    INTERVAL = 0.0
    cursor: reactive[tuple[int, int] | None] = reactive(None)
    test: reactive[bool] = reactive(False)

    class CellChosen(Message):
        """Enter on a cell: show the validation images of true `true` predicted `predicted`."""

        def __init__(self, true: int, predicted: int) -> None:
            super().__init__()
            self.true, self.predicted = true, predicted

    def data_key(self) -> tuple[int, int, int, str]:
        return (
            id(self.state.confusion),
            id(self.state.latest("regression")),
            id(self.state.latest("test")),
            self.state.task,
        )

    def options(self) -> tuple[tuple[int, int] | None, bool]:
        return self.cursor, self.test

    def _class_count(self) -> int:
        confusion = self.state.confusion
        return len(confusion.matrix) if confusion is not None else 0

    def action_move(self, rows: int, columns: int) -> None:
        classes = self._class_count()
        if not classes:
            return
        if self.cursor is None:  # the first press lands on the top-left cell
            self.cursor = (0, 0)
            return
        row, column = self.cursor
        self.cursor = ((row + rows) % classes, (column + columns) % classes)

    def action_open(self) -> None:
        if self.cursor is not None and self.state.task != "regression":
            self.post_message(self.CellChosen(*self.cursor))

    def action_split(self) -> None:
        if not isinstance(self.state.latest("test"), TestResult):
            self.notify("no test results yet: the run is tested when it ends", timeout=3)
            return
        self.test = not self.test

    def draw(self, width: int, height: int) -> Text:
        if self.state.task == "regression":
            return self._density(width, height)
        return self._matrix(width)

    def _density(self, width: int, height: int) -> Text:
        """A regression's predicted against true values, under its latest scores."""
        result = self.state.latest("regression")
        if not isinstance(result, Regression):
            return Text("predicted vs true appears after the first epoch", style="dim")
        where, scores = result.describe().split(": ", 1)  # "validation, epoch N: R² …"
        title = Text.assemble(
            (f"{where}: ", "bold"), scores, ("   ╱ ideal (predicted = true)", "dim")
        )
        plot = density_plot(result.counts, result.lo, result.hi, width, height - 2, style="#38bdf8")
        return Text("\n").join([title, plot, Text("true →", style="dim")])

    def _matrix(self, width: int) -> Text:
        """The validation split's confusion matrix (or, by `t`, the test split's) under a
        title that says which, of what epoch, and its accuracy."""
        tested = self.state.latest("test")
        shown = tested if self.test and isinstance(tested, TestResult) else self.state.confusion
        if shown is None or shown.matrix is None:
            return Text(
                "the confusion matrix appears after the first epoch (needs a validation split)",
                style="dim",
            )
        names = shown.class_names or [str(i) for i in range(len(shown.matrix))]
        heatmap = confusion_heatmap(
            shown.matrix,
            shown.precision or [],
            shown.recall or [],
            names,
            width,
            color=not self.app.no_color,
            cursor=self.cursor,
        )
        return Text("\n").join([self._title(shown, tested), heatmap])

    def _title(self, shown: Confusion | TestResult, tested: object) -> Text:
        """Which split the matrix shown is of, its epoch and accuracy, and the key to the
        other split once the run was tested."""
        matrix = np.asarray(shown.matrix, dtype=np.int64)
        split = "test" if shown is tested else "validation"
        title = Text(f"{split}, epoch {(shown.epoch or 0) + 1}", style="bold")
        if matrix.sum():
            title.append(f" · accuracy {np.trace(matrix) / matrix.sum():.1%} of {matrix.sum():,}")
        if isinstance(tested, TestResult) and tested.matrix is not None:
            title.append("   t validation/test", style="dim")
        return title
