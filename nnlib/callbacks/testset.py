"""TestEvaluator: the model on the test split when a run ends (finished, stopped or early
stopped) and on request mid-run, as a 'test' event: loss and accuracy (MSE and MAE for
regression), and for classification the confusion matrix with precision and recall.

The test split is held out of training and of model choice; it is looked at once, at the
end. The mid-run request is for learners who want to see the gap to validation shrink or
grow; it is served at the next batch boundary (see OnDemand).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..events import Event, TestResult
from ..metrics import confusion_matrix, evaluate_predictions, precision_recall
from ..states import RunStatus
from .base import Logs
from .ondemand import OnDemand

if TYPE_CHECKING:
    from ..trainer import Trainer

#: The ends after which the weights are worth testing (not an error or a divergence).
TESTED_ENDS = (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.EARLY_STOP)


class TestEvaluator(OnDemand):
    """Evaluate on (x, y) at the end of a run and on `request()`."""

    essential = False  # a view (see Callback.essential)

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, x: np.ndarray, y: np.ndarray, class_names: list[str] | None = None) -> None:
        super().__init__()
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"TestEvaluator: needs as many test labels as images, at least one; got "
                f"{len(x)} images and {len(y)} labels"
            )
        self.x, self.y = x, y
        self.class_names = class_names
        self.last: TestResult | None = None  # the latest test event (the CLI prints it)

    def on_record(self, trainer: Trainer, record: Event) -> None:
        if isinstance(record, TestResult):
            self.last = record

    def on_train_end(self, trainer: Trainer, logs: Logs) -> None:
        if logs.get("reason") in TESTED_ENDS:
            self.serve(trainer, "end")

    def serve(self, trainer: Trainer, trigger: str) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = trainer.model.predict(self.x)
            scores = evaluate_predictions(outputs, self.y, trainer.loss)
        data: dict[str, object] = {"loss": scores["loss"], "samples": len(self.x)}
        if trainer.loss.task == "classification":
            classes = outputs.shape[1]
            matrix = confusion_matrix(self.y, outputs.argmax(axis=1), classes)
            precision, recall = precision_recall(matrix)
            data.update(
                accuracy=scores["accuracy"],
                matrix=matrix.tolist(),
                precision=precision.tolist(),
                recall=recall.tolist(),
                class_names=self.class_names or [str(i) for i in range(classes)],
            )
        else:
            error = outputs.reshape(len(outputs), -1) - self.y.reshape(len(self.y), -1)
            data.update(mse=float(np.mean(error**2)), mae=float(np.mean(np.abs(error))))
        trainer.emit("test", epoch=trainer.epoch, trigger=trigger, **data)
