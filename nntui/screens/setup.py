"""The setup screen: dataset, architecture (with presets and a live summary) and
hyperparameters, saved to or loaded from the same TOML file `nnlib train --config` reads.
One key starts training: `t`, or Enter on the dataset list; "start paused" parks the run
before its first batch."""

from __future__ import annotations

import dataclasses
from contextlib import suppress
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Static

from nnlib.config import ConfigError, ExperimentConfig
from nnlib.datasets import DatasetInfo

from ..architectures import PRESETS, PresetRefused, check_spec, outputs_of, quick_arch
from ..messages import StartRun
from ..widgets.arch_editor import ArchEditor
from ..widgets.dataset_picker import DatasetPicker
from ..widgets.hparams_form import HparamsForm
from .modals import PathScreen, SpecScreen

DEFAULT_CONFIG_FILE = "experiment.toml"


def offers(info: DatasetInfo) -> set[str]:
    """The specs the screen itself puts in the editor for `info` (its quick architecture
    and the presets that fit it): a spec among them is not the user's own."""
    specs = {quick_arch(info)}
    for candidate in PRESETS:
        with suppress(PresetRefused):
            specs.add(candidate.spec_for(info))
    return specs


class SetupScreen(Screen[None]):
    DEFAULT_CSS = """
    SetupScreen { layout: vertical; }
    SetupScreen #title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    SetupScreen #top { height: 1fr; }
    SetupScreen .box { border: round $primary-darken-2; border-title-color: $text;
                       padding: 0 1; }
    SetupScreen .box:focus-within { border: round $accent; }
    SetupScreen #dataset-box { width: 2fr; min-width: 38; max-width: 52; }
    SetupScreen #arch-box { width: 3fr; }
    SetupScreen #hparams-box { height: auto; }
    SetupScreen #actions { height: 1; padding: 0 1; }
    SetupScreen #actions Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("t", "train", "Train"),
        Binding("ctrl+s", "save_config", "Save"),
        Binding("ctrl+o", "load_config", "Load"),
        Binding("f2", "edit_spec", "Spec"),
        Binding("ctrl+r", "app.runs", "Runs"),
        Binding("ctrl+l", "app.lessons", "Lessons"),
    ]

    def __init__(
        self, config: ExperimentConfig, datasets: list[DatasetInfo], start_paused: bool = False
    ) -> None:
        """`start_paused`: the "start paused" switch starts ticked (`nntui --start-paused`)."""
        super().__init__()
        self.config = config
        self.datasets = datasets
        self.start_paused = start_paused
        names = [d.name for d in datasets]
        self.info = (
            datasets[names.index(config.dataset)] if config.dataset in names else datasets[0]
        )

    def compose(self) -> ComposeResult:
        yield Static("nntui · set up an experiment", id="title")
        with Horizontal(id="top"):
            with Vertical(id="dataset-box", classes="box") as box:
                box.border_title = "Dataset"
                box.border_subtitle = "Enter: train"
                yield DatasetPicker(self.datasets, self.info.name)
            with Vertical(id="arch-box", classes="box") as box:
                box.border_title = "Architecture"
                box.border_subtitle = "F2: whole spec"
                yield ArchEditor(
                    self.config.arch or quick_arch(self.info), self.info, self.config.batch_size
                )
        with Vertical(id="hparams-box", classes="box") as box:
            box.border_title = "Hyperparameters"
            yield HparamsForm(self.config, self.info)
        with Horizontal(id="actions"):
            yield Button("Train ▶", id="train", variant="success", compact=True)
            yield Button("Save…", id="save", compact=True)
            yield Button("Load…", id="load", compact=True)
            yield Checkbox("start paused", self.start_paused, id="start-paused", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#dataset-list").focus()

    # -- reacting to the form ---------------------------------------------------------------
    def on_dataset_picker_changed(self, event: DatasetPicker.Changed) -> None:
        """A dataset picked by hand. A spec the user gave or typed stays (checked against
        the new dataset, its error shown); one the screen offered is kept if it fits the
        new dataset, else the new dataset's quick architecture is offered."""
        old, self.info = self.info, event.info
        editor = self.query_one(ArchEditor)
        fits = old.input_shape == event.info.input_shape and outputs_of(old) == outputs_of(
            event.info
        )
        offered = editor.spec in offers(old)
        editor.set_dataset(event.info, quick_arch(event.info) if offered and not fits else None)
        self.query_one(HparamsForm).set_dataset(event.info)

    def on_dataset_picker_chosen(self, event: DatasetPicker.Chosen) -> None:
        self.action_train()

    def on_hparams_form_changed(self, event: HparamsForm.Changed) -> None:
        try:
            batch_size = int(self.query_one("#batch_size", Input).value)
        except ValueError:
            return
        if batch_size > 0:
            self.query_one(ArchEditor).set_batch_size(batch_size)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field moves on, as Tab does (it does not start a run by surprise)."""
        event.stop()
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "train": self.action_train,
            "save": self.action_save_config,
            "load": self.action_load_config,
        }
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    # -- the experiment -----------------------------------------------------------------------
    def current_config(self) -> ExperimentConfig:
        """The experiment on screen; raises ConfigError naming the first bad field."""
        editor = self.query_one(ArchEditor)
        if not editor.valid:  # not checked yet (typed a moment ago) or invalid
            result = check_spec(editor.spec, self.info) if editor.spec else None
            if result is None or result.error:
                raise ConfigError(f"arch: {result.error if result else 'enter an architecture'}")
        config = self.query_one(HparamsForm).apply_to(self.config)
        config = config.replace(dataset=self.info.name, arch=editor.spec)
        if self.info.source != "file":  # a CSV label column means nothing to a built-in set
            config = dataclasses.replace(config, label_column=None)
        return config

    def _checked_config(self, refusal: str) -> ExperimentConfig | None:
        """The experiment on screen, or None after a notification titled `refusal` that
        names the first bad field."""
        try:
            return self.current_config()
        except ConfigError as error:
            self.notify(str(error), title=refusal, severity="error")
            return None

    def action_train(self) -> None:
        config = self._checked_config("Cannot start")
        if config is None:
            return
        self.config = config
        self.post_message(StartRun(config, self.query_one("#start-paused", Checkbox).value))

    def show_config(self, config: ExperimentConfig) -> None:
        """Fill the form from a loaded config: its dataset, its architecture (with its error
        if it does not fit; the quick one only if it names none) and its hyperparameters."""
        self.config = config
        picker = self.query_one(DatasetPicker)
        if picker.select(config.dataset):
            self.info = picker.current
        else:
            self.notify(
                f"{config.dataset} is not a built-in dataset; pick one from the list",
                severity="warning",
            )
        self.query_one(HparamsForm).load(config)
        self.query_one(HparamsForm).set_dataset(self.info)
        self.query_one(ArchEditor).set_dataset(self.info, config.arch or quick_arch(self.info))

    def action_save_config(self) -> None:
        config = self._checked_config("Cannot save")
        if config is None:
            return

        def save(path: str) -> str:
            return f"saved {config.save(path or DEFAULT_CONFIG_FILE)}"

        self.app.push_screen(PathScreen("Save the experiment as (TOML)", DEFAULT_CONFIG_FILE, save))

    def action_load_config(self) -> None:
        def load(path: str) -> str:
            self.show_config(ExperimentConfig.load(path))
            return f"loaded {Path(path)}"

        self.app.push_screen(PathScreen("Load an experiment (TOML)", DEFAULT_CONFIG_FILE, load))

    def action_edit_spec(self) -> None:
        """Open the whole spec in a wrapping editor; what it applies is the user's own."""
        editor = self.query_one(ArchEditor)

        def apply(spec: str | None) -> None:
            if spec is not None:
                editor.set_spec(spec)

        self.app.push_screen(SpecScreen(editor.spec), apply)
