"""From a config to a ready trainer: the one path the CLI and the TUI both take.

`setup` loads and prepares the dataset, builds the model, the loss and the optimizer, and
attaches the monitor and the run logger, so every run — headless or in the TUI — writes the
same run directory.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import datasets
from .callbacks import Callback, History, ModelCheckpoint, Monitor
from .callbacks.features import FeatureMaps
from .callbacks.samples import SampleRecorder
from .callbacks.testset import TestEvaluator
from .config import ConfigError, ExperimentConfig
from .losses import Loss, loss_for
from .model import Sequential
from .optimizers import make_optimizer
from .runs import RunLogger, claim_run_dir, new_run_dir
from .spec import build
from .threads import AUTO, Threads
from .trainer import Trainer


def lenet5(outputs: int) -> str:
    """LeCun's LeNet-5 (two conv/pool stages, three dense layers) with `outputs` logits."""
    return (
        "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu "
        f"dense(84) relu dense({outputs})"
    )


def default_arch(input_shape: tuple[int, ...], task: str, outputs: int) -> str:
    """The architecture a run gets when none is given (the CLI's and the app's alike):
    something that visibly learns within seconds.

    For images that is LeNet-5: about 0.5 s an epoch of glyphs with one BLAS thread, 99%
    validation accuracy within a few epochs, and five weighted layers to look at (an MLP
    learns glyphs in 0.06 s, too fast to watch or steer). Other inputs get a small MLP."""
    if len(input_shape) == 3:
        return lenet5(outputs)
    features = math.prod(input_shape)
    if task == "regression":
        return f"{features}-32-32-{outputs}:tanh"
    return f"{features}-32-32-{outputs}"


@dataclass
class Experiment:
    """A configured run: its data, model, loss and trainer, and the run directory."""

    config: ExperimentConfig
    data: datasets.Prepared
    model: Sequential
    loss: Loss
    trainer: Trainer
    run_dir: Path

    @property
    def arch(self) -> str:
        return self.model.spec

    def fit(self, threads: Threads = AUTO) -> History:
        """Train with the config's epochs and batch size; returns the History. `threads`:
        BLAS threads, as for `Trainer.fit`."""
        validation = (self.data.x_val, self.data.y_val) if len(self.data.x_val) else None
        return self.trainer.fit(
            self.data.x_train,
            self.data.y_train,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            validation_data=validation,
            seed=self.config.seed,
            threads=threads,
        )


def load_data(config: ExperimentConfig) -> datasets.Prepared:
    """Load and prepare the config's dataset (normalised, split, subset). A subset larger
    than the data is the config's error (ConfigError: exit 2 in the CLI), not the data's."""
    dataset = datasets.load(
        config.dataset,
        data_dir=config.data_dir,
        seed=config.seed,
        label_column=config.label_column,
    )
    if config.subset is not None and config.subset > len(dataset.x_train):
        raise ConfigError(
            f"subset must be at most the {len(dataset.x_train)} training samples of "
            f"{dataset.name}, got {config.subset}"
        )
    return datasets.prepare(
        dataset, validation_split=config.validation_split, subset=config.subset, seed=config.seed
    )


def outputs_for(data: datasets.Prepared) -> int:
    """Outputs the model needs per sample: classes, or regression targets."""
    return data.num_classes if data.task == "classification" else int(data.y_train.shape[1])


def view_callbacks(data: datasets.Prepared, run_dir: Path) -> list[Callback]:
    """The callbacks behind the app's Samples, Features and test views, attached to every
    run (each does nothing where it does not apply: no images, no conv layer, no test split);
    they cost about 1% of a LeNet-5 epoch (benchmarks/bench_views.py)."""
    views: list[Callback] = [SampleRecorder(run_dir, data.class_names), FeatureMaps()]
    if len(data.x_test):
        views.append(TestEvaluator(data.x_test, data.y_test, data.class_names))
    return views


def setup(
    config: ExperimentConfig,
    callbacks: Sequence[Callback] = (),
    data: datasets.Prepared | None = None,
    run_root: str | Path | None = None,
    checkpoints: bool = False,
) -> Experiment:
    """Build everything a run needs. Raises ValueError (with a clear message) on a bad
    dataset, spec or hyperparameter, and RunDirError on a run directory that holds a run
    already or cannot be written. With `checkpoints`, the run directory also gets
    best.npz (best validation loss) and model.npz (written when the run ends, however)."""
    data = data if data is not None else load_data(config)
    outputs = outputs_for(data)
    arch = config.arch or default_arch(tuple(data.input_shape), data.task, outputs)
    model = build(arch, data.input_shape, seed=config.seed, batch_size=config.batch_size)
    if model.output_shape != (outputs,):
        raise ValueError(
            f"arch: the model outputs {model.output_shape} values per sample but "
            f"{data.dataset.name} needs {outputs}; end the spec with "
            f"dense({outputs})"
        )
    loss = loss_for(data.task)
    hyper = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        hyper["momentum"] = config.momentum
    optimizer = make_optimizer(config.optimizer, **hyper)
    run_dir = (
        claim_run_dir(config.run_dir)
        if config.run_dir
        else new_run_dir(run_root, Path(config.dataset).stem)
    )
    record = {
        **config.to_dict(),
        "arch": model.spec,
        "run_dir": str(run_dir),
        "dataset_info": {
            "name": data.dataset.name,
            "task": data.task,
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "train": len(data.x_train),
            "validation": len(data.x_val),
            "test": len(data.x_test),
            "normalization": data.normalization,
        },
    }
    # experiment.toml reruns this experiment: `nnlib train --config <run>/experiment.toml`.
    dataclasses.replace(config, arch=model.spec, run_dir=None).save(run_dir / "experiment.toml")
    monitor = Monitor(every=config.histogram_every, class_names=data.class_names)
    views = view_callbacks(data, run_dir)
    saving: list[Callback] = []
    if checkpoints:
        best_of = "val_loss" if len(data.x_val) else "loss"
        saving = [
            ModelCheckpoint(run_dir / "best.npz", monitor=best_of),
            ModelCheckpoint(run_dir / "model.npz", save_best_only=False, at_end=True),
        ]
    logger = RunLogger(run_dir=run_dir, config=record)
    # The logger goes last so that what other callbacks emit while the run ends is logged;
    # the views come before the caller's (the app's bridge), which sees their last events.
    trainer = Trainer(
        model, loss, optimizer, callbacks=[monitor, *views, *callbacks, *saving, logger]
    )
    trainer.batch_size = config.batch_size
    return Experiment(config, data, model, loss, trainer, run_dir)
