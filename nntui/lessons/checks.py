"""The checks a lesson's task names: predicates over the RunState the dashboard already folds
(no code per lesson). Each is called after every snapshot the dashboard takes in, so an event
that a later one of its type replaces is still seen; a task once met stays done.

Importable without Textual, like the RunState it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..runstate import RunState


@dataclass(frozen=True)
class Check:
    """A predicate and the arguments (name -> type) a task gives it."""

    test: Callable[[RunState, Mapping[str, Any]], bool]
    args: Mapping[str, type]


def _trained(state: RunState, args: Mapping[str, Any]) -> bool:
    """The run has trained `steps` batches."""
    return state.progress is not None and state.progress.step >= args["steps"]


def _traced(state: RunState, args: Mapping[str, Any]) -> bool:
    """A trace of validation sample `sample` is shown."""
    trace = state.latest("trace")
    return trace is not None and trace["index"] == args["sample"]


def _stepped(state: RunState, args: Mapping[str, Any]) -> bool:
    """A trace taken after a single step (n in the Trace view): W before, dW and ΔW."""
    trace = state.latest("trace")
    return trace is not None and trace.get("lr") is not None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _val_accuracy_above(state: RunState, args: Mapping[str, Any]) -> bool:
    """An epoch's validation accuracy above `value` (a fraction)."""
    return any(
        _finite(epoch.val_accuracy) and epoch.val_accuracy > args["value"] for epoch in state.epochs
    )


def _val_loss_below(state: RunState, args: Mapping[str, Any]) -> bool:
    """An epoch's validation loss below `value`."""
    return any(_finite(epoch.val_loss) and epoch.val_loss < args["value"] for epoch in state.epochs)


def _warning(state: RunState, args: Mapping[str, Any]) -> bool:
    """A 'warning' event of kind `kind` (dead_relu, loss_spike, ...)."""
    warning = state.latest("warning")
    return warning is not None and warning["kind"] == args["kind"]


CHECKS: dict[str, Check] = {
    "trained": Check(_trained, {"steps": int}),
    "traced": Check(_traced, {"sample": int}),
    "stepped": Check(_stepped, {}),
    "val_accuracy_above": Check(_val_accuracy_above, {"value": float}),
    "val_loss_below": Check(_val_loss_below, {"value": float}),
    "warning": Check(_warning, {"kind": str}),
}


def met(name: str, args: Mapping[str, Any], state: RunState) -> bool:
    """Whether the check `name` holds for `state`."""
    return CHECKS[name].test(state, args)
