"""The architecture editor: a spec Input validated as you type (debounced, built in a thread
against the chosen dataset's input shape) with a live model summary, and preset buttons that
are adapted to the dataset or refused with the reason shown in place."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Input, Static

from nnlib.datasets import DatasetInfo
from nnlib.model import Summary

from ..architectures import PRESETS, PresetRefused, SpecCheck, check_spec, preset

DEBOUNCE_SECONDS = 0.15


def summary_table(summary: Summary, batch_size: int) -> Table:
    from nnlib.model import human_bytes

    table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("act./batch", justify="right", no_wrap=True)
    for layer in summary.layers:
        table.add_row(  # Text, not str: a Table would read a str as markup
            Text(layer.name),
            "×".join(map(str, layer.output_shape)),
            f"{layer.params:,}",
            human_bytes(layer.activation_bytes * batch_size),
        )
    table.add_row(
        Text("total", style="bold"),
        "",
        Text(f"{summary.total_params:,}", style="bold"),
        Text(human_bytes(summary.activation_bytes(batch_size)), style="bold"),
    )
    return table


class ArchEditor(Vertical):
    DEFAULT_CSS = """
    ArchEditor { height: 1fr; }
    ArchEditor #presets { height: 1; }
    ArchEditor #presets Button { margin-right: 0; min-width: 5; }
    ArchEditor #arch-message { height: auto; min-height: 1; }
    ArchEditor #arch-message.-error { color: $error; }
    ArchEditor #summary-scroll { height: 1fr; }
    """

    def __init__(self, spec: str, info: DatasetInfo, batch_size: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.info = info
        self.batch_size = batch_size
        self.result: SpecCheck | None = None
        self._initial = spec
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            self._initial,
            placeholder="e.g. 784-128-10 or conv(8,3) relu maxpool(2) dense(10)",
            id="arch",
            compact=True,
        )
        yield Static("", id="arch-message")
        with Horizontal(id="presets"):
            for p in PRESETS:
                yield Button(p.label, id=f"preset-{p.key}", compact=True, tooltip=p.description)
        with VerticalScroll(id="summary-scroll"):
            yield Static("", id="summary")

    def on_mount(self) -> None:
        self.validate_now()

    @property
    def spec(self) -> str:
        return self.query_one("#arch", Input).value.strip()

    @property
    def valid(self) -> bool:
        return (
            self.result is not None
            and self.result.error is None
            and self.result.spec == self.spec
            and self.result.shape == self.info.input_shape
        )

    def set_spec(self, spec: str) -> None:
        self.query_one("#arch", Input).value = spec
        self.validate_now()

    def set_dataset(self, info: DatasetInfo, spec: str | None = None) -> None:
        """Check against another dataset, with a new spec if one is given."""
        self.info = info
        if spec is not None:
            self.query_one("#arch", Input).value = spec
        self.validate_now()

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = batch_size
        if self.result is not None and self.result.summary is not None:
            self._show(self.result)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "arch":
            return
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self.validate_now)

    def validate_now(self) -> None:
        """Check the spec in a thread: building a big model allocates its weights."""
        self._check(self.spec, self.info)

    @work(thread=True, exclusive=True, group="spec-check", exit_on_error=False)
    def _check(self, spec: str, info: DatasetInfo) -> None:
        result = (
            check_spec(spec, info)
            if spec
            else SpecCheck(spec, tuple(info.input_shape), error="enter an architecture")
        )
        self.app.call_from_thread(self._show, result)

    def _show(self, result: SpecCheck) -> None:
        if result.spec != self.spec or result.shape != tuple(self.info.input_shape):
            return  # a newer edit is being checked
        self.result = result
        message = self.query_one("#arch-message", Static)
        arch_input = self.query_one("#arch", Input)
        arch_input.set_class(result.error is not None, "-invalid")
        message.set_class(result.error is not None, "-error")
        if result.error:
            message.update(Text(f"✗ {result.error}"))
        else:
            params = result.summary.total_params if result.summary else 0
            text = Text.assemble(("✓ ", "green"), f"{params:,} parameters")
            for warning in result.warnings:
                text.append_text(Text.assemble("\n", ("⚠ ", "bold yellow"), warning))
            message.update(text)
        if result.summary is not None:
            self.query_one("#summary", Static).update(
                summary_table(result.summary, self.batch_size)
            )
        elif result.error:
            self.query_one("#summary", Static).update("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if not (event.button.id or "").startswith("preset-"):
            return
        event.stop()
        self.apply_preset((event.button.id or "").removeprefix("preset-"))

    def apply_preset(self, key: str) -> None:
        try:
            self.set_spec(preset(key).spec_for(self.info))
        except PresetRefused as error:
            message = self.query_one("#arch-message", Static)
            message.set_class(True, "-error")
            message.update(Text(f"✗ {error}"))
