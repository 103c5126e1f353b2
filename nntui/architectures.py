"""Architectures for a dataset, without Textual (the CLI checks --arch with them before the
terminal is taken over): the presets (nnlib's table, nnlib.presets, adapted to the dataset's
input and outputs or refused with a reason) and `check_spec`, which plans a typed spec (or a
preset's name) against it."""

from __future__ import annotations

from dataclasses import dataclass

from nnlib.datasets import DatasetInfo
from nnlib.model import Summary
from nnlib.presets import PRESETS, Preset, PresetRefused, default_arch, named, outputs_of, preset

__all__ = [
    "PRESETS",
    "Preset",
    "PresetRefused",
    "SpecCheck",
    "check_spec",
    "named",
    "outputs_of",
    "preset",
    "quick_arch",
]


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
    """Plan `spec` (or the preset it names) for `info` and compare its outputs with what the
    dataset needs.

    nnlib's plan works out every shape and the memory to train with `batch_size` without
    allocating a weight, and refuses a model that would not fit in the available memory,
    so a typo in the editor costs microseconds, not gigabytes."""
    from nnlib.losses import loss_for
    from nnlib.spec import plan, warnings_for

    shape = tuple(info.input_shape)
    try:
        found = named(spec)
        written = found.spec_for(info) if found else spec
        summary = plan(written, shape, batch_size=batch_size)
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
    warnings = tuple(warnings_for(written, loss_for(info.task)))
    return SpecCheck(spec, shape, summary, warnings=warnings)
