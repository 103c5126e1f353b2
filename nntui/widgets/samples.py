"""Samples: a gallery of validation images with their true and predicted labels and the
model's confidence, wrong ones marked; filtered to all, the misclassified, the most
confidently wrong, one true class, or one cell of the confusion matrix (its drill-down).

The images come from the run directory's samples file (written once per run), the
predictions from the latest 'samples' event, so a recorded run shows the same gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive

from nnlib.callbacks.samples import SamplesError, read_samples
from nnlib.events import Samples

from .panel import StatePanel, fit
from .pixels import fit_factor, tile_row

#: The filters, in the order the keys name them.
FILTERS = ("all", "misclassified", "confidently wrong", "class", "cell")


def select(
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    mode: str,
    target: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Indices of the images a filter shows, in gallery order. `target` is the class
    (first item) for "class", or (true, predicted) for "cell"; the most confidently wrong
    come most confident first."""
    wrong = labels != predicted
    if mode == "misclassified":
        return np.flatnonzero(wrong)
    if mode == "confidently wrong":
        index = np.flatnonzero(wrong)
        return index[np.argsort(-confidence[index], kind="stable")]
    if mode == "class":
        return np.flatnonzero(labels == target[0])
    if mode == "cell":
        return np.flatnonzero((labels == target[0]) & (predicted == target[1]))
    return np.arange(len(labels))


@dataclass(frozen=True, eq=False)
class Gallery:
    """A samples event's predictions on the file's images (`labels`, `predicted`,
    `confidence`, one per image), the indices the filter shows, and the class names."""

    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    shown: np.ndarray
    names: list[str]

    def name(self, index: int) -> str:
        """A class's name; its number where the run names fewer classes."""
        return self.names[index] if 0 <= index < len(self.names) else str(index)

    def caption(self, index: int) -> tuple[str, str]:
        """An image's caption ("✓3→3 97%", "✗3→8 61%") and its style."""
        truth, guess = int(self.labels[index]), int(self.predicted[index])
        mark, style = ("✓", "green") if truth == guess else ("✗", "bold red")
        return f"{mark}{self.name(truth)}→{self.name(guess)} {int(self.confidence[index])}%", style


class SampleFile:
    """The samples file of a run, read once (it is written once per run); `problem` says
    why it cannot be shown, in place of the gallery."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.images = np.zeros((0, 1, 1, 1), dtype=np.uint8)
        self.labels = np.zeros(0, dtype=np.int64)
        self.problem = ""

    def load(self, path: Path) -> None:
        if path == self.path:
            return
        self.path, self.problem = path, ""
        try:
            samples = read_samples(path)
        except SamplesError as error:
            self.images, self.labels = self.images[:0], self.labels[:0]
            reason = str(error).removeprefix(f"{path}: ")
            self.problem = f"{path.name} is unreadable: {reason}"
            return
        self.images, self.labels = samples.images, samples.labels


class SamplesPanel(StatePanel, can_focus=True):
    """The gallery, a page at a time."""

    HELP: ClassVar[str] = (
        "Validation images the model has not trained on, each with its true label, the "
        "label the model predicts and how sure it is (the softmax probability of that "
        "label). Wrong ones are marked ✗ in red. Keys: a all, x misclassified, c the most "
        "confidently wrong, k one true class (again: the next), arrows select an image "
        "(its caption reversed; past the edge, the next page), PgUp/PgDn pages, "
        "Enter opens it large (the whole panel, a pixel a half cell: 28x28 pixels are 28 "
        "columns by 14 lines; there ←/→ go on to the next image, Enter or Esc come back); "
        "Enter on a cell of the Matrix opens the images of that cell. Good: mistakes "
        "become rare and the "
        "ones left are digits a person would hesitate over too. Bad: confident mistakes on "
        "clear images (the model learned something else), or one class always wrong "
        "(look at its row in the Matrix)."
    )
    INTERVAL = 0.5
    SCROLLS = True
    BINDINGS = [
        Binding("a", "filter('all')", "All", show=False),
        Binding("x", "filter('misclassified')", "Misclassified", show=False),
        Binding("c", "filter('confidently wrong')", "Confidently wrong", show=False),
        Binding("k", "next_class", "One class", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Prev page", show=False),
        Binding("pagedown", "page(1)", "Next page", show=False),
        Binding("enter", "large", "Open large", show=False),
        Binding("escape", "close", "Back", show=False),
    ]
    mode: reactive[str] = reactive("all")
    target: reactive[tuple[int, int]] = reactive((0, 0))
    #: The selected image: its place among those the filter shows (its page follows).
    selected: reactive[int] = reactive(0)
    #: The selected image fills the panel.
    large: reactive[bool] = reactive(False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.file = SampleFile()
        #: The last drawn gallery: images a row, images a page, images the filter shows.
        self.grid = (1, 1, 0)

    def data_key(self) -> tuple[int, str]:
        started = self.state.started
        return id(self.state.latest("samples")), started.run_dir if started else ""

    def options(self) -> tuple[str, tuple[int, int], int, bool]:
        return self.mode, self.target, self.selected, self.large

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc closes the large view; otherwise it is the dashboard's (back to setup)."""
        return self.large if action == "close" else True

    def action_filter(self, mode: str) -> None:
        self.mode, self.selected = mode, 0

    def action_next_class(self) -> None:
        """One true class; pressed again, the next one."""
        classes = max(len(self.state.started.class_names) if self.state.started else 0, 1)
        self.target = ((self.target[0] + 1) % classes if self.mode == "class" else 0, 0)
        self.mode, self.selected = "class", 0

    def action_move(self, columns: int, rows: int) -> None:
        """Arrows: the next image (left and right go on across rows and pages)."""
        per_row, _, count = self.grid
        self.selected = min(max(self.selected + columns + rows * per_row, 0), max(count - 1, 0))

    def action_page(self, offset: int) -> None:
        """The same place on another page."""
        _, per_page, count = self.grid
        self.selected = min(max(self.selected + offset * per_page, 0), max(count - 1, 0))

    def action_large(self) -> None:
        self.large = not self.large and self.grid[2] > 0

    def action_close(self) -> None:
        self.large = False

    def show_cell(self, true: int, predicted: int) -> None:
        """The drill-down: the images of true class `true` predicted as `predicted`."""
        self.mode, self.target, self.selected, self.large = "cell", (true, predicted), 0, False

    def _names(self) -> list[str]:
        started = self.state.started
        return list(started.class_names) if started else []

    def draw(self, width: int, height: int) -> Text:
        event = self.state.latest("samples")
        started = self.state.started
        if not isinstance(event, Samples) or started is None:
            return Text("the gallery appears after the first epoch (image data)", style="dim")
        self.file.load(Path(started.run_dir) / event.file)
        if self.file.problem:
            return Text(self.file.problem, style="red")
        gallery = self._gallery(event)
        image_h, image_w = self.file.images.shape[1:3]
        # Tiles at half size (28x28 -> 14 cells by 7 lines) where two rows fit, else smaller.
        factor = max(2, fit_factor(image_h, image_w, width, max((height - 3) // 2, 1)))
        tile_w = max(-(-image_w // factor), 7)
        tile_h = -(-image_h // factor // 2) + 1  # image lines and a caption
        per_row = max(1, (width + 1) // (tile_w + 1))
        per_page = per_row * max(1, (height - 1) // tile_h)
        shown = gallery.shown
        self.grid = (per_row, per_page, len(shown))
        selected = min(self.selected, max(len(shown) - 1, 0))
        page, pages = selected // per_page, max(1, -(-len(shown) // per_page))
        what = self._what(gallery)
        title = self._title(event, gallery, what, f"{page + 1}/{pages}", width)
        if not len(shown):
            return Text("\n").join([title, Text("no images here", style="dim")])
        color = not self.app.no_color
        if self.large:
            return self._draw_large(gallery, selected, what, width, height, color)
        lines = [title]
        chosen = shown[page * per_page : (page + 1) * per_page]
        for start in range(0, len(chosen), per_row):
            tiles = []
            for place, index in enumerate(chosen[start : start + per_row], start):
                tile = self.pictures.draw(self.file.images[index], factor, color)
                text, style = gallery.caption(index)
                if page * per_page + place == selected:
                    text, style = text[:tile_w].ljust(tile_w), f"{style} reverse"
                tile.append_text(Text("\n" + text[:tile_w], style=style))
                tiles.append(tile)
            lines.append(tile_row(tiles))
        return Text("\n").join(lines)

    def _gallery(self, event: Samples) -> Gallery:
        """The event's predictions on the file's images (as many as both have), filtered."""
        count = min(len(self.file.labels), len(event.predicted), len(event.confidence))
        labels = self.file.labels[:count]
        predicted = np.asarray(event.predicted[:count], dtype=np.int64)
        confidence = np.asarray(event.confidence[:count], dtype=np.int64)
        shown = select(labels, predicted, confidence, self.mode, self.target)
        names = self._names() or [str(i) for i in range(int(labels.max(initial=0)) + 1)]
        return Gallery(labels, predicted, confidence, shown, names)

    def _what(self, gallery: Gallery) -> str:
        """What the filter shows, in words."""
        true, predicted = (gallery.name(i) for i in self.target)
        return {
            "class": f"true class {true}",
            "cell": f"true {true}, predicted {predicted}",
        }.get(self.mode, self.mode)

    def _title(self, event: Samples, gallery: Gallery, what: str, page: str, width: int) -> Text:
        """The gallery's first line (`page`: "2/5"), shorter where the panel is narrow."""
        epoch = (f"validation, epoch {(event.epoch or 0) + 1}", "bold")
        counts = f"{len(gallery.shown):,} of {len(gallery.labels):,}"
        return fit(
            width,
            Text.assemble(
                epoch,
                f" · {what}: {counts} · page {page}",
                ("   a all  x wrong  c confident  k class  PgUp/PgDn page  ⏎ large", "dim"),
            ),
            Text.assemble(epoch, f" · {what}: {counts} · {page}"),
            Text.assemble((f"{what}: {counts}", "bold"), f" · {page}"),
        )

    def _draw_large(
        self, gallery: Gallery, selected: int, what: str, width: int, height: int, color: bool
    ) -> Text:
        """The selected image filling the panel, with what is known about it beside it."""
        index = int(gallery.shown[selected])
        text, style = gallery.caption(index)
        image = self.file.images[index]
        heading = fit(
            width,
            Text.assemble(
                (f"validation image {index}", "bold"),
                f" · {what} {selected + 1} of {len(gallery.shown):,} · ",
                (text, style),
                ("   ←→ image  ⏎/esc back", "dim"),
            ),
            Text.assemble((f"image {index}", "bold"), " ", (text, style)),
        )
        facts = [
            Text("x".join(str(n) for n in image.shape[:2]) + " pixels", style="bold"),
            Text(f"true {gallery.name(int(gallery.labels[index]))}"),
            Text(f"predicted {gallery.name(int(gallery.predicted[index]))}"),
            Text(f"sure {int(gallery.confidence[index])}%"),
            Text(f"black {int(image.min())}, white {int(image.max())}"),
            Text(""),
            Text("←→ image", style="dim"),
            Text("⏎/esc back", style="dim"),
        ]
        return self.pictures.large(image, heading, facts, width, height, color)
