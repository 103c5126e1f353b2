"""The data and model steps that train, evaluate, trace and summary share: data loaded as
training loads it, a loaded model checked against it, and the spec's warnings printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import UsageError

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..datasets import Prepared
    from ..losses import Loss
    from ..model import Sequential


def load_data_or_fail(config: ExperimentConfig) -> Prepared:
    """Prepared data; an unknown dataset name or a config field that does not fit the data
    is a usage error, a bad file a data error. The dataset's notes (e.g. a partial MNIST
    folder) are printed as one line each."""
    from ..config import ConfigError
    from ..datasets import UnknownDataset
    from ..experiment import load_data

    try:
        data = load_data(config)
    except (UnknownDataset, ConfigError) as error:
        raise UsageError(str(error)) from None
    for note in data.dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    return data


def check_model_fits(model: Sequential, data: Prepared, source: str, dataset: str) -> None:
    """A usage error unless the loaded `model` takes `data`'s inputs and gives its outputs."""
    from ..experiment import outputs_for

    if tuple(data.input_shape) != model.input_shape:
        raise UsageError(
            f"{source} expects inputs of shape {model.input_shape}, "
            f"{dataset} has {tuple(data.input_shape)}"
        )
    if model.output_shape != (outputs_for(data),):
        raise UsageError(
            f"{source} outputs {model.output_shape} values per sample, "
            f"{dataset} needs {outputs_for(data)}"
        )


def preparation_of(checkpoint: Path, dataset: str) -> dict[str, Any]:
    """How the run that wrote `checkpoint` prepared its data (seed, split, subset, CSV label
    column, and the noise of a generated `dataset` when it trained on that one), read from the
    config.json beside it, so that the data is generated and normalised as in training."""
    from ..runs import CONFIG_FILE

    try:
        saved = json.loads((checkpoint.parent / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"validation_split": 0.0}
    if not isinstance(saved, dict):
        return {}
    keys = ["seed", "validation_split", "subset", "label_column"]
    if saved.get("dataset") == dataset:
        keys.append("noise")
    return {key: saved[key] for key in keys if key in saved}


def print_warnings(model: Sequential, loss: Loss | str | None) -> None:
    """The spec's advice for this loss (nnlib.spec.warnings_for), one line each on stderr."""
    from ..spec import warnings_for

    for text in warnings_for(model, loss):
        print(f"warning: {text}", file=sys.stderr)
