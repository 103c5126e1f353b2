"""The validation confusion matrix as a heat map with per-class precision and recall, or,
for regression, predicted against true as a density plot."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from nnlib.events import Regression

from ..plot import confusion_heatmap, density_plot
from .panel import StatePanel


class ConfusionPanel(StatePanel):
    HELP: ClassVar[str] = (
        "The confusion matrix on the validation set after each epoch: a row per true class, a "
        "column per predicted class; each cell counts the samples. Precision (per column) is "
        "how often a prediction of that class is right; recall (per row) how many of that "
        "class are found.\n\n"
        "Good: the counts sit on the diagonal. Bad: a bright cell off the diagonal is two "
        "classes the model confuses; a whole column lit means the model predicts one class "
        "for everything.\n\n"
        "For regression it plots predicted against true values instead: good points lie on "
        "the diagonal (R² near 1)."
    )
    INTERVAL = 0.0

    def data_key(self) -> tuple[int, int, str]:
        return id(self.state.confusion), id(self.state.latest("regression")), self.state.task

    def draw(self, width: int, height: int) -> Text:
        state = self.state
        if state.task == "regression":
            result = state.latest("regression")
            if not isinstance(result, Regression):
                return Text("predicted vs true appears after the first epoch", style="dim")
            where, scores = result.describe().split(": ", 1)  # "validation, epoch N: R² …"
            title = Text.assemble(
                (f"{where}: ", "bold"), scores, ("   ╱ ideal (predicted = true)", "dim")
            )
            plot = density_plot(
                result.counts, result.lo, result.hi, width, height - 2, style="#38bdf8"
            )
            return Text("\n").join([title, plot, Text("true →", style="dim")])
        confusion = state.confusion
        if confusion is None:
            return Text(
                "the confusion matrix appears after the first epoch (needs a validation split)",
                style="dim",
            )
        total = sum(map(sum, confusion.matrix))
        correct = sum(row[i] for i, row in enumerate(confusion.matrix))
        title = Text(f"validation, epoch {confusion.epoch + 1}", style="bold")
        if total:
            title.append(f" · accuracy {correct / total:.1%} of {total:,}")
        heatmap = confusion_heatmap(
            confusion.matrix,
            confusion.precision,
            confusion.recall,
            confusion.class_names,
            width,
            color=not self.app.no_color,
        )
        return Text("\n").join([title, heatmap])
