"""TracePanel: one validation sample through the network, drawn from the latest 'trace' event.

Per layer a block: each array the event carries (input, output, δ at the output, the gradient
at the input, each parameter and its gradient) with its shape and every value of a small one,
or its range, mean and a heat strip of a large one; after a single step, each parameter before
the step, the batch's gradient and the change. The panel asks for traces (a message the
dashboard turns into a request of the training thread) and draws only what the event carries.
"""

from __future__ import annotations

import textwrap
from typing import Any, ClassVar

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from nnlib.events import RASTER_ALPHABET

from .panel import StatePanel

#: A value as the panel and `nnlib trace` print it.
NUMBER = "{:.4e}"
#: Cells a value takes, with the space before it.
CELL = 12
#: Heat strip shades, low to high, for terminals without colour too.
SHADES = " ░▒▓█"


def number(value: float | None) -> str:
    """A value of the event (None: not finite)."""
    return "nan/inf" if value is None else NUMBER.format(value)


def _heat(level: int) -> Style:
    """Dark blue (the array's minimum) through to yellow (its maximum)."""
    t = level / (len(RASTER_ALPHABET) - 1)
    low, high = (40, 40, 140), (250, 220, 60)
    rgb = (round(a + (b - a) * t) for a, b in zip(low, high, strict=True))
    return Style(color=Color.from_rgb(*rgb))


def strip_text(strip: str) -> Text:
    """A heat strip: one cell per character of the event's strip ("." for none)."""
    text = Text()
    top = len(RASTER_ALPHABET) - 1
    for char in strip:
        if char not in RASTER_ALPHABET:
            text.append("·", style="dim")
            continue
        level = RASTER_ALPHABET.index(char)
        text.append(SHADES[round(level / top * (len(SHADES) - 1))] or " ", style=_heat(level))
    return text


def array_lines(record: dict[str, Any], width: int, indent: int = 2) -> list[Text]:
    """One array: its label and shape, then every value (wrapped to `width`), or its range
    and mean and a heat strip."""
    shape = "x".join(map(str, record["shape"])) or "scalar"
    head = Text(" " * indent)
    head.append(record["label"], style="bold")
    head.append(f"  {shape}", style="dim")
    pad = " " * (indent + 2)
    values = record.get("values")
    if values is not None:
        lines = [head]
        per_line = max((width - len(pad)) // CELL, 1)
        for start in range(0, len(values), per_line):
            cells = values[start : start + per_line]
            lines.append(Text(pad + "".join(f"{number(v):>{CELL}}" for v in cells)))
        return lines
    numbers = f"min {number(record['min'])}  max {number(record['max'])}"
    numbers += f"  mean {number(record['mean'])}"
    strip = Text(pad)
    strip.append_text(strip_text(record["strip"]))
    if head.cell_len + 2 + len(numbers) <= width:
        return [head.append(f"  {numbers}"), strip]
    return [head, Text(pad + numbers), strip]  # a narrow panel: the range on a line of its own


class TracePanel(StatePanel, can_focus=True):
    """The latest trace, scrolled with the arrows; ←/→ pick the sample, n steps one batch."""

    HELP: ClassVar[str] = (
        "One validation sample through the network, the actual numbers (float64, the model "
        "in evaluation mode, as `nnlib trace` prints them). Per layer: its input, its output "
        "(a dense or conv layer's output is the pre-activation; the activation is the next "
        "layer), δ = dL/d(output) from the backward pass, dL/d(input) (the δ of the layer "
        "before), each parameter and its gradient for this one sample. Arrays of up to 32 "
        "values show every value; larger ones their shape, min, max, mean and a heat strip "
        "(the values in order, dark low, bright high). Keys: ←/→ another sample, ↑/↓ and "
        "PgUp/PgDn scroll, r trace again, n (paused) steps one batch and shows what it did to "
        "each parameter: W before, the batch's gradient dW and the change ΔW; with plain "
        "SGD ΔW = −lr·dW exactly, with momentum or Adam the optimizer's own rule made it."
    )
    SCROLLS = True
    BINDINGS = [
        Binding("left", "sample(-1)", "Prev sample", show=False),
        Binding("right", "sample(1)", "Next sample", show=False),
        Binding("up", "scroll(-1)", "Up", show=False),
        Binding("down", "scroll(1)", "Down", show=False),
        Binding("pageup", "scroll(-10)", "Page up", show=False),
        Binding("pagedown", "scroll(10)", "Page down", show=False),
        Binding("r", "retrace", "Trace again", show=False),
        Binding("n", "step", "Step and show the update", show=False),
    ]

    class Requested(Message):
        """The user asked for a trace of validation sample `index` (after a step: `update`)."""

        def __init__(self, index: int, update: bool = False) -> None:
            super().__init__()
            self.index, self.update = index, update

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The validation sample asked for.
        self.index = 0

    def data_key(self) -> tuple[int]:
        return (id(self.state.latest("trace")),)

    def action_sample(self, offset: int) -> None:
        event = self.state.latest("trace")
        count = event["samples"] if event is not None else 0
        self.index = (self.index + offset) % count if count else max(self.index + offset, 0)
        self.post_message(self.Requested(self.index))

    def action_retrace(self) -> None:
        self.post_message(self.Requested(self.index))

    def action_step(self) -> None:
        self.post_message(self.Requested(self.index, update=True))

    def action_scroll(self, lines: int) -> None:
        self.scroll_top += lines
        self.refresh()

    def _no_trace(self) -> str:
        """What to do for a trace: a trace is made on the training thread, so none comes
        once the run has ended (z would say nothing, and "at the next batch" would not hold)."""
        if self.state.end is None:
            return (
                "No trace yet. z (or this tab) traces validation sample 0 at the next batch, "
                "at once while paused; a recorded run shows the traces it recorded."
            )
        return (
            "No trace was made while this run trained, and traces are made while a run "
            "trains (z: at the next batch, at once while paused). f forks the run from its "
            "last checkpoint: trace the fork."
        )

    def draw(self, width: int, height: int) -> Text:
        event = self.state.latest("trace")
        if event is None:
            return Text("\n".join(textwrap.wrap(self._no_trace(), max(width, 20))), style="dim")
        lines = [self._title(event)]
        if event.get("lr") is not None:
            rule = event.get("rule")
            lines.append(
                Text(
                    f"after one step, lr {event['lr']:g}: "
                    + (f"ΔW ≠ −lr·dW, the rule of {rule}" if rule else "ΔW = −lr·dW (plain SGD)"),
                    style="italic",
                )
            )
        for layer in event["layers"]:
            lines.append(Text(""))
            title = Text(layer["name"], style="bold reverse")
            title.append(f" {layer['kind']}", style="dim")
            lines.append(title)
            for record in layer["arrays"]:
                lines += array_lines(record, width)
            if layer.get("update"):
                lines.append(Text("  the step:", style="italic"))
                for record in layer["update"]:
                    lines += array_lines(record, width, indent=4)
        for line in lines:
            line.no_wrap = True
        return Text("\n").join(lines)

    @staticmethod
    def _title(event: Any) -> Text:
        title = Text()
        title.append(f"sample {event['index']} of {event['samples']}", style="bold")
        title.append(f"  label {event['label']}  predicted {event['predicted']}")
        loss = event["loss"]
        title.append(f"  loss {number(loss)}  ")
        title.append("←/→ sample  n step", style="dim")
        return title
