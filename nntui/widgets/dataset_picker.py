"""The dataset picker: every dataset `nnlib.datasets.available()` knows, with its size,
sample shape, task and whether it is on disk (or must be downloaded first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from nnlib.datasets import DatasetInfo


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def size_text(count: int) -> str:
    return f"{count / 1000:g}k" if count >= 1000 else str(count)


def option_prompt(info: DatasetInfo) -> Text:
    """One line: name, sample shape, task (classes or regression), train size, on disk."""
    task = f"{info.num_classes}cl" if info.task == "classification" else "reg"
    name = Path(info.name).name if info.source == "file" else info.name
    line = Text(f"{name:<13.13}", style="bold")
    line.append(f"{shape_text(info.input_shape):>8} {task:>4} {size_text(info.train_size):>4} ")
    line.append("●" if info.on_disk else "↓", style="green" if info.on_disk else "yellow")
    return line


def info_text(info: DatasetInfo) -> Text:
    where = (
        "generated on the fly"
        if info.source == "generated"
        else "on disk"
        if info.on_disk
        else "not on disk: downloaded when training starts"
    )
    text = Text(info.description + "\n", style="italic")
    text.append(f"{info.task}, input {shape_text(info.input_shape)}")
    if info.num_classes:
        text.append(f", {info.num_classes} classes")
    text.append(f"\n{info.train_size:,} train / {info.test_size:,} test, {where}", style="dim")
    return text


class DatasetPicker(Vertical):
    """An OptionList of datasets with the highlighted one described in full below it (the
    list scrolls to make room: at 80x24 a description takes five lines)."""

    DEFAULT_CSS = """
    DatasetPicker { height: 1fr; }
    DatasetPicker OptionList, DatasetPicker OptionList:focus {
        height: 1fr; min-height: 4; border: none; padding: 0; scrollbar-size-vertical: 1;
    }
    DatasetPicker #dataset-info { height: auto; color: $text-muted; }
    """

    class Changed(Message):
        """The user highlighted another dataset (a `select` from code is not announced)."""

        def __init__(self, info: DatasetInfo) -> None:
            super().__init__()
            self.info = info

    class Chosen(Message):
        """Enter on a dataset: train with it."""

    def __init__(self, datasets: list[DatasetInfo], selected: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datasets = datasets
        names = [d.name for d in datasets]
        self._initial = names.index(selected) if selected in names else 0
        self.current = datasets[self._initial]

    def compose(self) -> ComposeResult:
        yield OptionList(
            *(Option(option_prompt(d), id=d.name) for d in self.datasets), id="dataset-list"
        )
        yield Static(id="dataset-info")

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = self._initial
        self._describe(self.current)

    def select(self, name: str) -> bool:
        """Highlight the dataset called `name`; False if it is not in the list."""
        for index, info in enumerate(self.datasets):
            if info.name == name:
                self.current = info
                self.query_one(OptionList).highlighted = index
                return True
        return False

    def _describe(self, info: DatasetInfo) -> None:
        self.query_one("#dataset-info", Static).update(info_text(info))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """Announce a dataset the user moved to. Highlights arrive late: one the list has
        since left (its own first highlight at mount) or one `select` made is not news."""
        event.stop()
        if event.option_index != self.query_one(OptionList).highlighted:
            return
        info = self.datasets[event.option_index]
        self._describe(info)
        if info is not self.current:
            self.current = info
            self.post_message(self.Changed(info))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Chosen())
