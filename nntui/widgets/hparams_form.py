"""The hyperparameter form of the setup screen: optimizer, lr, momentum, weight decay, L1,
batch size, epochs, seed, validation split, subset and the noise of a generated dataset, each
checked in place by ExperimentConfig's own validation (the messages the CLI and config files
get too)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from nnlib.config import OPTIMIZER_NAMES, ConfigError, ExperimentConfig
from nnlib.datasets import DatasetInfo

#: Form fields: config name, label, parser.
FIELDS: tuple[tuple[str, str, type], ...] = (
    ("lr", "lr", float),
    ("momentum", "momentum", float),
    ("weight_decay", "weight decay", float),
    ("l1", "L1", float),
    ("batch_size", "batch size", int),
    ("epochs", "epochs", int),
    ("seed", "seed", int),
    ("validation_split", "val. split", float),
    ("subset", "subset", int),
    ("noise", "noise", float),
)
PARSERS = {name: parser for name, _, parser in FIELDS}
#: Fields that may be left empty: all the data, the dataset's own noise.
OPTIONAL = ("subset", "noise")


def parse_field(name: str, text: str) -> Any:
    """The typed value of a form field; an empty optional field is None (unset)."""
    parser = PARSERS[name]
    text = text.strip()
    if name in OPTIONAL and not text:
        return None
    try:
        return parser(text)
    except ValueError:
        kind = "an integer" if parser is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {text!r}") from None


def field_text(value: Any) -> str:
    return "" if value is None else str(value)


class HparamsForm(Vertical):
    """The optimizer and one Input per FIELDS entry; `errors` holds each bad field's message."""

    DEFAULT_CSS = """
    HparamsForm { height: auto; }
    HparamsForm Grid { grid-size: 6; grid-columns: 13 1fr; grid-rows: 1; grid-gutter: 0 1;
                       height: auto; }
    HparamsForm Label { width: 100%; text-align: right; color: $text-muted; }
    HparamsForm #hp-error { height: 1; color: $error; }
    """

    class Changed(Message):
        """A field changed (valid or not)."""

    def __init__(self, config: ExperimentConfig, info: DatasetInfo, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config = config
        self._info = info  # until the screen says otherwise (set_dataset)
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label("optimizer")
            yield Select(
                [(name, name) for name in OPTIMIZER_NAMES],
                value=self._config.optimizer,
                allow_blank=False,
                id="optimizer",
                compact=True,
            )
            for name, label, _ in FIELDS:
                yield Label(label)
                yield Input(
                    field_text(getattr(self._config, name)),
                    id=name,
                    compact=True,
                    placeholder="all" if name == "subset" else "",
                )
        yield Static("", id="hp-error", markup=False)

    def on_mount(self) -> None:
        self._momentum_enabled()
        self.set_dataset(self._info)

    def set_dataset(self, info: DatasetInfo) -> None:
        """The dataset picked: its noise field is offered where it has one, its default
        shown as the placeholder (an empty field keeps it); elsewhere the field is off and
        counts as unset."""
        noise = self.query_one("#noise", Input)
        noise.disabled = info.noise is None
        noise.placeholder = "-" if info.noise is None else f"{info.noise:g}"
        self._show_errors()

    def load(self, config: ExperimentConfig) -> None:
        """Show `config` in the form."""
        self.query_one("#optimizer", Select).value = config.optimizer
        for name, _, _ in FIELDS:
            self.query_one(f"#{name}", Input).value = field_text(getattr(config, name))

    def values(self) -> dict[str, Any]:
        """Typed values of every field; raises ConfigError for the first bad one."""
        values: dict[str, Any] = {"optimizer": self.query_one("#optimizer", Select).value}
        for name, _, _ in FIELDS:
            text = "" if self._unset(name) else self.query_one(f"#{name}", Input).value
            values[name] = parse_field(name, text)
        return values

    def apply_to(self, config: ExperimentConfig) -> ExperimentConfig:
        """`config` with the form's values; raises ConfigError naming the first bad field."""
        errors = self._in_use_errors()
        if errors:
            raise ConfigError(errors[0])
        return ExperimentConfig.from_dict({**config.to_dict(), **self.values()})

    def _unset(self, name: str) -> bool:
        """An optional field turned off (the noise of a dataset without one): unset,
        whatever it holds."""
        return name in OPTIONAL and self.query_one(f"#{name}", Input).disabled

    def _in_use_errors(self) -> list[str]:
        return [message for name, message in self.errors.items() if not self._unset(name)]

    def _show_errors(self) -> None:
        first = next(iter(self._in_use_errors()), "")
        self.query_one("#hp-error", Static).update(f"✗ {first}" if first else "")

    def on_input_changed(self, event: Input.Changed) -> None:
        name = event.input.id or ""
        if name not in PARSERS:
            return
        event.stop()
        try:
            value = parse_field(name, event.value)
            if value is not None:
                ExperimentConfig().replace(**{name: value})
        except ConfigError as error:
            self.errors[name] = str(error)
        else:
            self.errors.pop(name, None)
        event.input.set_class(name in self.errors, "-invalid")
        self._show_errors()
        self.post_message(self.Changed())

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._momentum_enabled()
        self.post_message(self.Changed())

    def _momentum_enabled(self) -> None:
        """Momentum is an SGD setting; the other optimizers ignore it."""
        self.query_one("#momentum", Input).disabled = (
            self.query_one("#optimizer", Select).value != "sgd"
        )
