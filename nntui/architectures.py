"""Architectures for a dataset, without Textual (the CLI checks --arch with them before the
terminal is taken over): presets adapted to the dataset's input and outputs or refused with
a reason (a CNN on 2-D points), and `check_spec`, which plans a typed spec against it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnlib.datasets import DatasetInfo
from nnlib.experiment import default_arch, lenet5
from nnlib.model import Summary


class PresetRefused(ValueError):
    """The preset cannot be used with this dataset; the message says why."""


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    description: str

    def spec_for(self, info: DatasetInfo) -> str:
        """The preset written for `info`'s input shape and outputs."""
        features = math.prod(info.input_shape)
        outputs = outputs_of(info)
        image = len(info.input_shape) == 3
        if self.key in ("lenet", "cnn", "vgg") and not image:
            shape = "x".join(map(str, info.input_shape))
            raise PresetRefused(
                f"{self.label} needs images (height, width, channels); "
                f"{info.name} has {shape} features per sample"
            )
        if self.key == "mlp":
            return f"{features}-512-128-{outputs}"
        if self.key == "lenet":
            return lenet5(outputs)
        if self.key == "vgg":
            return (
                "conv(32,3,pad=same) relu conv(32,3,pad=same) relu maxpool(2) "
                "conv(64,3,pad=same) relu maxpool(2) dense(128) relu "
                f"dense({outputs})"
            )
        if self.key == "cnn":
            return f"conv(3,5) relu maxpool(3,stride=2) dense(84) relu dense({outputs})"
        activation = ":tanh" if info.task == "regression" else ""
        return f"{features}-16-16-{outputs}{activation}"


PRESETS = (
    Preset("mlp", "MLP", "the classic 784-512-128-10 multilayer perceptron"),
    Preset("lenet", "LeNet-5", "LeCun's LeNet-5 (two conv/pool stages, three dense layers)"),
    Preset("cnn", "CNN", "the tutorial CNN: one conv, one pool, two dense layers"),
    Preset("vgg", "VGG", "a small VGG-style CNN for colour photos like CIFAR-10 (3x3 convs)"),
    Preset("small", "Small MLP", "a small MLP for the 2-D datasets (16-16 hidden units)"),
)


def outputs_of(info: DatasetInfo) -> int:
    """Model outputs for a dataset: one logit per class, or one value for regression (the
    built-in regression sets have a single target; the listing does not give the width)."""
    return info.num_classes if info.task == "classification" and info.num_classes else 1


def preset(key: str) -> Preset:
    return next(p for p in PRESETS if p.key == key)


def quick_arch(info: DatasetInfo) -> str:
    """What the setup screen offers first: nnlib's default architecture for `info`."""
    return default_arch(tuple(info.input_shape), info.task, outputs_of(info))


@dataclass(frozen=True)
class SpecCheck:
    """The outcome of building one spec for one input shape."""

    spec: str
    shape: tuple[int, ...]
    summary: Summary | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()  # trains, but badly (nnlib.spec.warnings_for)


def check_spec(spec: str, info: DatasetInfo, batch_size: int = 64) -> SpecCheck:
    """Plan `spec` for `info` and compare its outputs with what the dataset needs.

    nnlib's plan works out every shape and the memory to train with `batch_size` without
    allocating a weight, and refuses a model that would not fit in the available memory,
    so a typo in the editor costs microseconds, not gigabytes."""
    from nnlib.losses import loss_for
    from nnlib.spec import plan, warnings_for

    shape = tuple(info.input_shape)
    try:
        summary = plan(spec, shape, batch_size=batch_size)
    except ValueError as error:
        return SpecCheck(spec, shape, error=str(error))
    outputs = outputs_of(info)
    if summary.output_shape != (outputs,):
        return SpecCheck(
            spec,
            shape,
            summary,
            f"the model outputs {summary.output_shape} per "
            f"sample but {info.name} needs ({outputs},): end the spec with "
            f"dense({outputs})",
        )
    return SpecCheck(spec, shape, summary, warnings=tuple(warnings_for(spec, loss_for(info.task))))
