"""`nnlib plot`: the loss and accuracy curves of runs, drawn in the terminal with plotext.

plotext, not the app's braille renderer (nntui/plot.py): this chart is printed once or redrawn
every few seconds in a plain terminal, which plotext is made for, and nnlib imports no UI
library (rich, which nntui's renderer draws into, included). The app redraws its charts several
times a second beside the training thread, where plotext measured 30-75 ms a chart against
about 1 ms for its own."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .argtypes import positive_float, smoothing
from .common import EXIT_FAILED, EXIT_OK, UsageError, fail

if TYPE_CHECKING:
    from ..runindex import CurvesFollower, RunCurves
    from .common import Subcommands

#: The smallest chart `nnlib plot` draws, and the largest (sizes are checked first).
MIN_PLOT, MAX_PLOT = (20, 6), (1000, 500)
#: Cursor home and clear screen: `--watch` redraws in place.
CLEAR = "\x1b[H\x1b[2J"
#: plotext colours, one per overlaid run (the markers are runindex.RUN_MARKERS).
PLOT_STYLES = ("blue+", "orange+", "green+", "magenta+", "yellow+", "red+")


def size(text: str) -> tuple[int, int]:
    """An argparse type: a chart size WIDTHxHEIGHT within MIN_PLOT and MAX_PLOT."""
    expected = (
        f"expected WIDTHxHEIGHT from {MIN_PLOT[0]}x{MIN_PLOT[1]} to {MAX_PLOT[0]}x{MAX_PLOT[1]}"
    )
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not (MIN_PLOT[0] <= width <= MAX_PLOT[0] and MIN_PLOT[1] <= height <= MAX_PLOT[1]):
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return width, height


def add_parser(commands: Subcommands) -> None:
    """`nnlib plot RUN... [--metric M] [--x step|epoch] [--watch [S]] ...`."""
    plot = commands.add_parser(
        "plot", help="draw the loss and accuracy curves of runs in the terminal (plotext)"
    )
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run directories to overlay")
    plot.add_argument(
        "--metric",
        action="append",
        choices=("loss", "accuracy"),
        help="a metric to chart (repeat for more; default: loss, and accuracy when logged)",
    )
    plot.add_argument("--x", choices=("step", "epoch"), default="step", help="the x axis")
    plot.add_argument(
        "--smoothing",
        type=smoothing,
        default=None,
        help="EMA weight of the training curve, in [0, 1) (default 0.6; 0: raw)",
    )
    plot.add_argument("--log-y", action="store_true", help="a logarithmic y axis")
    plot.add_argument(
        "--size", type=size, metavar="WxH", help="chart size (default: the terminal's)"
    )
    plot.add_argument(
        "--watch",
        type=positive_float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until the runs end",
    )
    plot.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="auto: colour on a terminal unless NO_COLOR is set",
    )


def run(args: argparse.Namespace) -> int:
    """Print the chart once, or with --watch redraw it in place until every run has ended."""
    from ..runindex import DEFAULT_SMOOTHING

    followers = _followers(args.runs)
    draw = functools.partial(
        plot_text,
        metrics=args.metric,
        x=args.x,
        smoothing=DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing,
        log_y=args.log_y,
        size=args.size or _terminal_size(),
        color=_colored(args.color),
    )
    chart = draw([f.curves for f in followers])
    if args.watch is None:
        print(chart)
        return EXIT_OK
    print(CLEAR + chart, flush=True)
    return _watch(followers, draw, args.watch)


def _followers(paths: Sequence[str]) -> list[CurvesFollower]:
    """The runs to overlay, each read and then followed as it is written; a usage error (one
    line) for a run that cannot be read, or for more runs than there are PLOT_STYLES."""
    from ..runindex import CurvesFollower

    try:
        followers = [CurvesFollower(path) for path in paths]
    except ValueError as error:
        raise UsageError(str(error)) from None
    if len(followers) > len(PLOT_STYLES):
        raise UsageError(
            f"nnlib plot: at most {len(PLOT_STYLES)} runs overlaid, got {len(followers)}"
        )
    return followers


def _terminal_size() -> tuple[int, int]:
    """The chart size when none is given: the terminal's, a line left for the prompt, never
    below MIN_PLOT."""
    import shutil

    terminal = shutil.get_terminal_size()
    return max(terminal.columns, MIN_PLOT[0]), max(terminal.lines - 1, MIN_PLOT[1])


def _colored(choice: str) -> bool:
    """--color: always, never, or (auto) on a terminal unless NO_COLOR is set."""
    return choice == "always" or (
        choice == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    )


def _watch(
    followers: Sequence[CurvesFollower],
    draw: Callable[[list[RunCurves]], str],
    seconds: float,
) -> int:
    """--watch: every `seconds`, read what the runs appended and redraw when anything was,
    until every run has ended (EXIT_FAILED, one line, on a bad line written since)."""
    import time

    while True:
        time.sleep(seconds)
        done = all(f.done for f in followers)  # asked first: then the last poll has it all
        try:
            if any([f.poll() for f in followers]):
                print(CLEAR + draw([f.curves for f in followers]), flush=True)
        except ValueError as error:  # a bad line written since
            return fail(str(error), EXIT_FAILED)
        if done:
            return EXIT_OK


def plot_text(
    runs: Sequence[RunCurves],
    metrics: Sequence[str] | None = None,
    x: str = "step",
    smoothing: float = 0.6,
    log_y: bool = False,
    size: tuple[int, int] = (80, 24),
    color: bool = False,
) -> str:
    """The charts of `nnlib plot` as text: one per metric, stacked; per run its smoothed
    training curve and its validation points (one run: its raw batch values too, faint).
    `runs` are runindex.RunCurves. Drawn with plotext (imported here, never by `import
    nnlib`), which suits a chart printed once or redrawn every few seconds."""
    import plotext as plt

    metrics = _default_metrics(runs) if metrics is None else metrics
    _new_figure(plt, size, len(metrics), color)
    for row, metric in enumerate(metrics, start=1):
        plt.subplot(row, 1)
        _plot_metric(plt, runs, metric, x, smoothing, log_y, color)
    text = plt.build()
    return text if color else plt.uncolorize(text)


def _new_figure(plt: Any, size: tuple[int, int], charts: int, color: bool) -> None:
    """Clear plotext's figure (its state is global) and lay it out as `charts` charts
    stacked in `size`, themed for colour or not."""
    plt.main()  # back to the whole figure: clear_figure clears only the active subplot
    plt.clear_figure()
    plt.theme("pro" if color else "clear")
    plt.limitsize(False, False)  # the size asked for, not clipped to the terminal
    plt.plotsize(*size)
    plt.subplots(charts, 1)


def _plot_metric(
    plt: Any,
    runs: Sequence[RunCurves],
    metric: str,
    x: str,
    smoothing: float,
    log_y: bool,
    color: bool,
) -> None:
    """The chart of `metric` on plotext's current subplot: its title and axes, and every
    run's curves of it."""
    plt.title(metric + (" (log y)" if log_y else ""))
    plt.xlabel("epoch" if x == "epoch" else "step")
    if log_y:
        plt.yscale("log")
    for i, curves in enumerate(runs):
        _plot_run(plt, curves, i, metric, x, smoothing, color, alone=len(runs) == 1)


def _default_metrics(runs: Sequence[RunCurves]) -> list[str]:
    """The charts drawn when no --metric is given: the loss, and the accuracy when any of
    the runs logged it per batch."""
    logged = any(c.metrics("batch").count("accuracy") for c in runs)
    return ["loss", "accuracy"] if logged else ["loss"]


def _plot_run(
    plt: Any,
    curves: RunCurves,
    i: int,
    metric: str,
    x: str,
    smoothing: float,
    color: bool,
    alone: bool,
) -> None:
    """Run number `i`'s curves of `metric` on plotext's current subplot: its raw batch values
    when it is `alone` and smoothed, its EMA line, its validation points."""
    from ..runindex import RUN_MARKERS, ema

    name, style = curves.name, PLOT_STYLES[i]
    xs, raw = curves.series("batch", metric, x)
    if len(xs):
        if alone and smoothing > 0:
            plt.plot(xs.tolist(), raw.tolist(), label="batch", color="gray", marker="dot")
        label = f"{name} EMA {smoothing:g}" if smoothing > 0 else name
        marker = "braille" if color or i == 0 else RUN_MARKERS[i]
        smooth = ema(raw, smoothing)
        plt.plot(xs.tolist(), smooth.tolist(), label=label, color=style, marker=marker)
    _plot_validation(plt, curves, i, metric, x)


def _plot_validation(plt: Any, curves: RunCurves, i: int, metric: str, x: str) -> None:
    """Run number `i`'s validation points of `metric` (its epoch rows' val_ values), in its
    colour and marker; nothing when it logged none."""
    from ..runindex import RUN_MARKERS

    vx, val = curves.series("epoch", f"val_{metric}", x)
    if not np.isnan(val).all():  # none logged (also when there is no epoch row)
        label, style = f"{curves.name} val", PLOT_STYLES[i]
        plt.scatter(vx.tolist(), val.tolist(), label=label, color=style, marker=RUN_MARKERS[i])
