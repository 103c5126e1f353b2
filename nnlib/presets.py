"""The named architectures (presets): the classic MLP, LeNet-5, the tutorial CNN, a VGG-style
CNN and a small MLP, each written for a dataset's input and outputs or refused with a reason
(a CNN on 2-D points). One table for the app's preset buttons and for every place that takes
an architecture by name: `--arch lenet` (nnlib and nntui), `arch = "lenet"` in a config file
or a sweep, the app's spec field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .datasets import DatasetInfo
from .spec import SpecError


class PresetRefused(SpecError):
    """The preset cannot be used with this dataset; the message says why."""


def lenet5(outputs: int) -> str:
    """LeCun's LeNet-5 (two conv/pool stages, three dense layers) with `outputs` logits."""
    return (
        "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu "
        f"dense(84) relu dense({outputs})"
    )


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    description: str

    def spec(
        self, input_shape: tuple[int, ...], outputs: int, task: str, dataset: str = "the data"
    ) -> str:
        """The preset written for this input shape and number of outputs (`dataset` names
        the data in a refusal)."""
        features = math.prod(input_shape)
        image = len(input_shape) == 3
        if self.key in ("lenet", "cnn", "vgg") and not image:
            shape = "x".join(map(str, input_shape))
            raise PresetRefused(
                f"{self.label} needs images (height, width, channels); "
                f"{dataset} has {shape} features per sample"
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
        activation = ":tanh" if task == "regression" else ""
        return f"{features}-16-16-{outputs}{activation}"

    def spec_for(self, info: DatasetInfo) -> str:
        """The preset written for a listed dataset."""
        return self.spec(tuple(info.input_shape), outputs_of(info), info.task, info.name)


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


def _plain(name: str) -> str:
    return re.sub(r"[\s_-]", "", name.lower())


def named(arch: str) -> Preset | None:
    """The preset `arch` names by its key or label, in any case, with or without spaces and
    dashes (lenet, LeNet-5, lenet5, small-mlp); None for a spec."""
    plain = _plain(arch)
    return next((p for p in PRESETS if plain in (p.key, _plain(p.label))), None)


def resolve(
    arch: str, input_shape: tuple[int, ...], outputs: int, task: str, dataset: str = "the data"
) -> str:
    """`arch` itself, or the spec of the preset it names written for this data (a
    PresetRefused, a SpecError, when the preset does not apply)."""
    found = named(arch)
    return found.spec(input_shape, outputs, task, dataset) if found else arch


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
