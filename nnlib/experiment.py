"""From a config to a ready trainer: the one path the CLI and the TUI both take.

`setup` loads and prepares the dataset, builds the model, the loss and the optimizer, and
attaches the monitor and the run logger, so every run — headless or in the TUI — writes the
same run directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkpointing, datasets
from .callbacks import Callback, History, ModelCheckpoint, Monitor
from .callbacks.boundary import BoundaryView
from .callbacks.diagnostics import Diagnostics
from .callbacks.features import FeatureMaps
from .callbacks.samples import SampleRecorder
from .callbacks.system import SystemMetrics
from .callbacks.testset import TestEvaluator
from .callbacks.tracer import Tracer
from .config import ConfigError, ExperimentConfig
from .datasets.preprocess import held_out
from .losses import Loss, loss_for
from .model import Sequential
from .optimizers import Optimizer, make_optimizer
from .presets import default_arch, resolve
from .remote import CommandDoor
from .runs import NewRunDir, RunDirError, RunLogger, reserve_run_dir, writer_alive
from .spec import build
from .threads import AUTO, Threads
from .trainer import Trainer


@dataclass
class Experiment:
    """A configured run: its data, model, loss and trainer, and the run directory."""

    config: ExperimentConfig
    data: datasets.Prepared
    model: Sequential
    loss: Loss
    trainer: Trainer
    run_dir: Path
    #: A new run's directory until the run has started (None for a resumed run).
    new_run: NewRunDir | None = None

    @property
    def arch(self) -> str:
        return self.model.spec

    def fit(self, threads: Threads = AUTO) -> History:
        """Train with the config's epochs and batch size; returns the History. `threads`:
        BLAS threads, as for `Trainer.fit`. A new run that fails before its log is open
        takes its directory back (NewRunDir.discard)."""
        validation = (self.data.x_val, self.data.y_val) if len(self.data.x_val) else None
        try:
            return self.trainer.fit(
                self.data.x_train,
                self.data.y_train,
                epochs=self.config.epochs,
                batch_size=self.config.batch_size,
                validation_data=validation,
                seed=self.config.seed,
                threads=threads,
            )
        except BaseException:
            if self.new_run is not None:
                self.new_run.discard()
            raise


def load_data(config: ExperimentConfig) -> datasets.Prepared:
    """Load and prepare the config's dataset (normalised, split, subset). A subset larger
    than the data is the config's error (ConfigError: exit 2 in the CLI), not the data's."""
    dataset = datasets.load(
        config.dataset,
        data_dir=config.data_dir,
        seed=config.seed,
        label_column=config.label_column,
        **_generator_options(config),
    )
    if config.subset is not None and config.subset > len(dataset.x_train):
        raise ConfigError(
            f"subset must be at most the {len(dataset.x_train)} training samples of "
            f"{dataset.name}, got {config.subset}"
        )
    rows = config.subset or len(dataset.x_train)
    if held_out(config.validation_split, rows) >= rows:
        raise ConfigError(
            f"validation_split {config.validation_split} holds out all {rows} training samples "
            f"of {dataset.name}; it must leave some to train on"
        )
    return datasets.prepare(
        dataset, validation_split=config.validation_split, subset=config.subset, seed=config.seed
    )


def _generator_options(config: ExperimentConfig) -> dict[str, Any]:
    """The options of the config's generated dataset: its noise, when set. A noise for a
    dataset that has none is the config's error (ConfigError: exit 2 in the CLI)."""
    if config.noise is None:
        return {}
    found = datasets.resolve(config.dataset, config.data_dir)
    if not isinstance(found, str) or "noise" not in datasets.REGISTRY[found].options:
        noisy = [name for name, entry in datasets.REGISTRY.items() if "noise" in entry.options]
        raise ConfigError(
            f"noise: {config.dataset} has no noise setting; the generated sets have one "
            f"({', '.join(noisy)})"
        )
    return {"noise": config.noise}


def outputs_for(data: datasets.Prepared) -> int:
    """Outputs the model needs per sample: classes, or regression targets."""
    return data.dataset.outputs


def view_callbacks(data: datasets.Prepared, run_dir: Path) -> list[Callback]:
    """The callbacks behind the app's views — system metrics, warnings, Boundary, Samples,
    Features, Trace and test results — attached to every run (each does nothing where it does not
    apply: no 2-D input, no images, no conv layer, no test split)."""
    # Diagnostics reads the Monitor's histograms and the batch's own activations, so it comes
    # before the boundary view's extra forward pass.
    views: list[Callback] = [
        SystemMetrics(),
        Diagnostics(),
        BoundaryView(data.x_train, data.y_train),
        SampleRecorder(run_dir, data.class_names),
        FeatureMaps(),
        Tracer(data.class_names),
    ]
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
    best.npz (best validation loss) and model.npz (written when the run ends, however).
    Every run writes complete checkpoints (`config.checkpoint_every`, nnlib.checkpointing).

    A config with `parent_run` is a fork: the new run starts from that run's checkpoint at
    `parent_step` (weights, optimizer state, generators, position), with this config's
    hyperparameters (`fork_config` fills in the parent's where none is changed)."""
    parent = _parent_checkpoint(config)  # before a run directory is made for nothing
    if parent is not None:
        _check_epochs_left(config, parent, f"the fork of {config.parent_run}", "fork it again")
    data = data if data is not None else load_data(config)
    parts = _parts(config, data)  # nothing is made for a bad spec or hyperparameter
    new_run = reserve_run_dir(config.run_dir or None, run_root, Path(config.dataset).stem)
    try:
        experiment = _assemble(config, data, parts, new_run.path, callbacks, checkpoints)
        if parent is not None:
            record = {"run": config.parent_run, "step": parent.step}
            checkpointing.restore(
                experiment.trainer, parent, hyperparameters=False, extra={"parent": record}
            )
    except BaseException:
        new_run.discard()
        raise
    experiment.new_run = new_run
    return experiment


def resume(
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    data: datasets.Prepared | None = None,
    checkpoints: bool = False,
) -> Experiment:
    """The run in `run_dir` (stopped, interrupted or crashed), ready to continue from its
    last checkpoint in its own directory: `fit()` appends to its events.jsonl, starting
    with a run_resume event. Raises RunDirError when it is not a run, another process is
    writing it, it has no checkpoint, or it has trained all its epochs."""
    run_dir = Path(run_dir)
    toml = run_dir / "experiment.toml"
    if not toml.is_file():
        raise RunDirError(f"{run_dir}: not a run directory to resume (no experiment.toml)")
    if writer_alive(run_dir):
        raise RunDirError(f"{run_dir}: another process is writing this run; it cannot be resumed")
    config = ExperimentConfig.load(toml).replace(run_dir=str(run_dir))
    try:
        checkpoint = checkpointing.load(checkpointing.find(run_dir, "last"))
    except checkpointing.CheckpointError as error:
        raise RunDirError(str(error)) from None
    _check_epochs_left(config, checkpoint, str(run_dir), "fork it")
    data = data if data is not None else load_data(config)
    parts = _parts(config, data)
    experiment = _assemble(config, data, parts, run_dir, callbacks, checkpoints, append=True)
    checkpointing.restore(experiment.trainer, checkpoint)
    return experiment


def fork_config(source: str, **changes: Any) -> ExperimentConfig:
    """The config of a fork of `source` ("RUN", "RUN@last", "RUN@best" or "RUN@<step>"):
    the parent's experiment, with its hyperparameters as they stood at that checkpoint
    (changes made while it ran included), then `changes` (None values ignored), and the
    parent recorded. Raises ConfigError naming what is wrong."""
    try:
        run, which = checkpointing.parse_source(source)
        checkpoint = checkpointing.load(checkpointing.find(run, which))
    except checkpointing.CheckpointError as error:
        raise ConfigError(f"fork: {error}") from None
    toml = Path(run) / "experiment.toml"
    if not toml.is_file():
        raise ConfigError(f"fork: {run}: not a run directory (no experiment.toml)")
    parent = ExperimentConfig.load(toml)
    live = checkpoint.state["optimizer"]["hyperparameters"]
    in_force = {"batch_size": checkpoint.state["batch_size"]}
    if checkpoint.state["optimizer"]["name"] == parent.optimizer:
        steered = ("lr", "momentum", "weight_decay", "l1")
        in_force.update({k: live[k] for k in steered if k in live})
    return parent.replace(
        **in_force,
        run_dir=None,
        parent_run=str(Path(run)),
        parent_step=checkpoint.step,
    ).replace(**changes)


def _parent_checkpoint(config: ExperimentConfig) -> checkpointing.Checkpoint | None:
    if config.parent_run is None or config.parent_step is None:  # validate: both or neither
        return None
    try:
        return checkpointing.load(checkpointing.find(config.parent_run, config.parent_step))
    except checkpointing.CheckpointError as error:
        raise ConfigError(f"parent_run: {error}") from None


def _check_epochs_left(
    config: ExperimentConfig, checkpoint: checkpointing.Checkpoint, what: str, advice: str
) -> None:
    """Refuse a continuation with nothing left to train."""
    if checkpoint.epoch >= config.epochs:
        raise ConfigError(
            f"epochs: {what} has trained {checkpoint.epoch} of its {config.epochs} epochs "
            f"at step {checkpoint.step}; {advice} with more epochs (--epochs) to train longer"
        )


def build_model(config: ExperimentConfig, data: datasets.Prepared) -> Sequential:
    """The untrained model a run of `config` starts from on `data`: its architecture (or the
    default one) with weights drawn from its seed. Raises SpecError for a bad spec and
    ValueError for one whose outputs do not fit the data (`nnlib trace` builds it this way
    too)."""
    outputs = outputs_for(data)
    shape = tuple(data.input_shape)
    arch = (
        resolve(config.arch, shape, outputs, data.task, data.dataset.name)
        if config.arch
        else default_arch(shape, data.task, outputs)
    )
    model = build(arch, data.input_shape, seed=config.seed, batch_size=config.batch_size)
    if model.output_shape != (outputs,):
        raise ValueError(
            f"arch: the model outputs {model.output_shape} values per sample but "
            f"{data.dataset.name} needs {outputs}; end the spec with "
            f"dense({outputs})"
        )
    return model


def _parts(config: ExperimentConfig, data: datasets.Prepared) -> tuple[Sequential, Loss, Optimizer]:
    """The model, loss and optimizer of `config` for `data`; ValueError when they do not fit."""
    model = build_model(config, data)
    hyper = {"lr": config.lr, "weight_decay": config.weight_decay, "l1": config.l1}
    if config.optimizer == "sgd":
        hyper["momentum"] = config.momentum
    return model, loss_for(data.task), make_optimizer(config.optimizer, **hyper)


def _assemble(
    config: ExperimentConfig,
    data: datasets.Prepared,
    parts: tuple[Sequential, Loss, Optimizer],
    run_dir: Path,
    callbacks: Sequence[Callback],
    checkpoints: bool,
    append: bool = False,
) -> Experiment:
    """The run of `config` (its `_parts`) with its callbacks, writing `run_dir`: a new run,
    or with `append` a resumed one whose config files are there already."""
    model, loss, optimizer = parts
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
    if config.parent_run is not None:
        record["parent"] = {"run": config.parent_run, "step": config.parent_step}
    if not append:
        # experiment.toml reruns this experiment: `nnlib train --config <run>/experiment.toml`.
        dataclasses.replace(config, arch=model.spec, run_dir=None).save(run_dir / "experiment.toml")
    monitor = Monitor(every=config.histogram_every, class_names=data.class_names)
    views = view_callbacks(data, run_dir)
    best_of = "val_loss" if len(data.x_val) else "loss"
    saving: list[Callback] = [
        checkpointing.Checkpointer(
            run_dir / checkpointing.FOLDER, every=config.checkpoint_every, monitor=best_of
        )
    ]
    if checkpoints:
        saving += [
            ModelCheckpoint(run_dir / "best.npz", monitor=best_of),
            ModelCheckpoint(run_dir / "model.npz", save_best_only=False, at_end=True),
        ]
    logger = RunLogger(run_dir=run_dir, config=record, append=append)
    # The logger goes last so that what other callbacks emit while the run ends is logged;
    # the door before it lets other processes steer the run (`nnlib control`). The views come
    # before the caller's callbacks (the app's bridge), which see their last events.
    door = CommandDoor(run_dir)
    trainer = Trainer(
        model, loss, optimizer, callbacks=[monitor, *views, *callbacks, *saving, door, logger]
    )
    trainer.batch_size = config.batch_size
    return Experiment(config, data, model, loss, trainer, run_dir)
