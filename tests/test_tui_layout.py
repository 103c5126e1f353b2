"""The dashboard's text is whole at 80x24 (tabs) and 110x32 (grid): numbers keep their
exponent, legends say less instead of being cut, the confusion matrix shows every row and
its precision, and the event log wraps at the panel's width whenever it is shown."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import numpy as np
import pytest
from helpers import DATASETS, classification_run, config, screen_text, until
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual.pilot import Pilot

from nnlib import events
from nntui.app import NNTui
from nntui.plot import Series, confusion_heatmap, format_number, line_chart
from nntui.screens.dashboard import PANELS, DashboardScreen
from nntui.screens.modals import HelpScreen
from nntui.screens.panel_help import PanelHelpScreen
from nntui.stream import Update
from nntui.widgets.eventlog import EventLog
from nntui.widgets.panel import fit

LONG = (
    "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu dense(84) "
    "relu dense(10) — a line much longer than twenty columns"
)


def tiny_gradients(run: list[Update]) -> list[Update]:
    """The run, with gradients of order 1e-5 (as in a real network's first layers)."""
    tiny = {
        "lo": -3.1e-05,
        "hi": 2.7e-05,
        "counts": [1, 5, 20, 5, 1],
        "percentiles": [-3.1e-05, -1e-5, 0.0, 0.0, 0.0, 1e-5, 2.7e-05],
    }
    return [
        dataclasses.replace(
            s,
            layers={
                name: {**layer, "grads": tiny} if "weights" in layer else layer
                for name, layer in s.layers.items()
            },
        )
        if isinstance(s, events.Histograms)
        else s
        for s in run
    ]


async def dashboard(pilot: Pilot, snapshots: list[Update]) -> DashboardScreen:
    screen = DashboardScreen(config(), replay=snapshots)
    await pilot.app.push_screen(screen)
    await pilot.pause()
    return screen


def run_app(size: tuple[int, int], body) -> None:
    async def main() -> None:
        app = NNTui(config(), datasets=DATASETS)
        async with app.run_test(size=size) as pilot:
            await body(pilot)

    asyncio.run(main())


def assert_matrix_whole(text: str) -> None:
    lines = text.splitlines()
    for i in range(10):
        row = re.compile(rf"(^|│)\s*{i} +[·\d].*\d%")
        assert any(row.search(line) for line in lines), f"row {i} missing"
    prec = next(line for line in lines if "prec%" in line)
    for value in ("98", "89", "100", "97"):
        assert f" {value} " in prec + " "


@pytest.mark.parametrize("size", [(80, 24), (110, 32)])
def test_every_panel_is_whole(size):
    async def body(pilot: Pilot) -> None:
        screen = await dashboard(pilot, tiny_gradients(classification_run()))
        screen.state.request("weight_decay", 0.001)
        screen.state.request("batch_size", 128)
        screen.state.request("lr", 0.1)
        screen.redraw(at_once=True)
        texts = []
        for key in ("1", "2", "g", "3"):
            await pilot.press(key)
            await pilot.pause()
            texts.append(screen_text(pilot.app))
        text = "\n".join(texts)
        assert "-3.1e-5" in text and "2.7e-5" in text  # the histogram's axis
        assert "…" not in text.replace("conv(16,5) rel…", "").replace("re…", "")
        assert "━median" in text or "━50" in text
        assert "wd 0→0.001" in text or "wd 0 → 0.001" in text
        assert "batch 64→128" in text or "batch 64 → 128" in text
        assert "Layers" in text
        assert_matrix_whole(texts[-1])

    run_app(size, body)


def log_rows(log: EventLog) -> list[str]:
    return [line.text.rstrip() for line in log.lines]


def test_log_lines_wrap_at_the_panel_width_when_shown_and_after_a_resize():
    async def body(pilot: Pilot) -> None:
        screen = await dashboard(pilot, classification_run())
        log = screen.query_one(EventLog)
        log.add(7, LONG)  # arrives while the Curves tab is shown
        await pilot.press("4")
        await pilot.pause()
        await pilot.pause()
        rows = log_rows(log)
        assert rows[0].startswith("[     0] run started")  # a step, not an indent
        assert max(map(len, rows)) > 60  # wrapped at the panel's ~78 columns, not 20
        assert any(row.startswith("[     7] conv(6,5,pad=2) relu maxpool(2) conv") for row in rows)
        await pilot.resize_terminal(120, 40)  # the grid: the log's column is 58 wide
        await pilot.pause()
        await pilot.pause()
        width = log.scrollable_content_region.width
        rows = log_rows(log)
        assert width > 40 and all(len(row) <= width for row in rows)
        assert max(map(len, rows)) > width - 12  # wrapped at the new width, not the old
        assert "".join(rows).replace(" ", "").count(LONG.replace(" ", "")) == 1

    run_app((80, 24), body)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.integers(min_value=7, max_value=10),
)
def test_numbers_fit_their_width_and_keep_their_value(value, width):
    text = format_number(value, width)
    assert len(text) <= width
    if value != 0:
        assert float(text.replace(",", "")) == pytest.approx(
            value, rel=0.34
        )  # one digit left at worst


def test_batch_and_ema_differ_without_colour():
    steps = np.arange(200.0)
    raw = np.sin(steps / 7) + 1
    series = [Series(steps, raw, "grey46", "spread", cell="·"), Series(steps, raw * 0 + 1, "blue")]
    chart = line_chart(40, 8, series).plain
    assert "·" in chart and any(0x2800 < ord(c) <= 0x28FF for c in chart)


def test_precision_row_is_labelled_as_percent_and_names_are_whole():
    names = ["T-shirt", "Trouser", "Pullover"]
    chart = confusion_heatmap(np.eye(3, dtype=int) * 50, [1.0, 0.5, 0.25], [1, 1, 1], names, 78)
    lines = chart.plain.splitlines()
    assert "prec%" in lines[-1] and lines[-1].split()[1:] == ["100", "50", "25"]
    assert all(any(line.lstrip().startswith(name) for line in lines) for name in names)


def test_fit_says_less_rather_than_cutting():
    assert fit(10, Text("a long legend"), Text("short")).plain == "short"
    assert fit(4, Text("a long legend"), Text("short")).plain == "sho…"


def box_words(pilot: Pilot) -> str:
    """The words in the dialog's box (its border and the dashboard around it left out)."""
    if not pilot.app.screen.children:  # not mounted yet
        return ""
    box = pilot.app.screen.children[0].region
    lines = screen_text(pilot.app).splitlines()[box.y + 1 : box.bottom - 1]
    return " ".join(word for line in lines for word in line[box.x + 1 : box.right - 1].split())


async def read_to_the_end(pilot: Pilot, first: str, last: str, what: str) -> None:
    """The dialog shows `first`, and `last` once scrolled to its end."""
    await until(pilot, lambda: first in box_words(pilot), f"{what}: its beginning")
    await pilot.press("end")
    await until(pilot, lambda: last in box_words(pilot), f"{what}: its end")


@pytest.mark.parametrize("size", [(80, 24), (60, 18)])
def test_every_help_scrolls_to_its_last_line(size):
    """At 80x24 the Layers and Boundary help ran past the box, cut with no way to scroll."""

    async def body(pilot: Pilot) -> None:
        screen = await dashboard(pilot, classification_run())
        for entry in PANELS:
            text = screen.panels[entry.key].HELP
            words = text.split()
            await pilot.app.push_screen(PanelHelpScreen(entry.title, text))
            await read_to_the_end(pilot, " ".join(words[:3]), " ".join(words[-2:]), entry.title)
            text = screen_text(pilot.app)
            assert f"What am I looking at? — {entry.title}" in text and "Escape closes" in text
            await pilot.press("escape")
            await until(pilot, lambda: pilot.app.screen is screen, "the dashboard")
        pilot.app.action_help()  # every key, in two columns: the last row is the left one's
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the key help")
        keys = pilot.app.screen.keys
        await read_to_the_end(pilot, keys[0][1], keys[(len(keys) - 1) // 2][1], "the key help")

    run_app(size, body)


def test_status_scores_are_labelled_and_the_test_score_is_whole_at_80_columns():
    """The validation loss and accuracy ran together (`val 0.74059.3%` where the SVG export
    drops the space's cell) and the test score was cut (`test l…`) at 80 columns."""
    from nnlib import events

    test = events.make("test", 595, {"loss": 0.0832, "samples": 1000, "accuracy": 0.9712})

    async def body(pilot: Pilot) -> None:
        screen = await dashboard(pilot, [*classification_run(), test])
        status = screen._status
        metrics = status.render().plain.splitlines()[2]
        assert "val loss 0.123 acc 95.6%" in metrics
        assert metrics.rstrip().endswith("test loss 0.083 acc 97.1%")
        assert len(metrics) <= status.content_size.width
        await pilot.resize_terminal(160, 24)
        await until(pilot, lambda: status.content_size.width > 150, "the wider status")
        wide = status.render().plain.splitlines()[2]
        assert wide.startswith("batch loss ") and "epoch 7 loss 0.093" in wide

    run_app((80, 24), body)


def test_accuracy_axes_are_in_percent_as_their_legends():
    """The legend said `EMA 0.6 91.6%` over an axis from 0.059 to 1.00."""

    async def body(pilot: Pilot) -> None:
        screen = await dashboard(pilot, classification_run())
        text = screen.panels["curves"].render().plain
        loss, accuracy = text.split("\naccuracy ")
        assert re.search(r"EMA 0\.6 \d+\.\d%", accuracy)
        labels = [line.split("┤")[0].strip() for line in accuracy.splitlines() if "┤" in line]
        assert len(labels) == 3 and all(re.fullmatch(r"\d+%", label) for label in labels)
        assert labels[0] == "100%"
        assert all("%" not in line.split("┤")[0] for line in loss.splitlines() if "┤" in line)

    run_app((80, 24), body)


def test_percent_labels_keep_a_decimal_on_a_narrow_axis():
    xs = np.arange(50.0)
    text = line_chart(40, 8, [Series(xs, 0.95 + 0.04 * xs / 49, "red")], percent=True).plain
    labels = [line.split("┤")[0].strip() for line in text.splitlines() if "┤" in line]
    assert len(set(labels)) == 3 and all(re.fullmatch(r"9\d\.\d%", label) for label in labels)
