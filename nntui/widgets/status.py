"""The status panel: run state, epoch and batch, progress with ETA, speed, the
hyperparameters in force (pending ones marked), the latest metrics, and where the run is
written."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from nnlib._memory import human_bytes
from nnlib.events import System, TestResult, pace_text
from nnlib.states import RunStatus

from ..plot import format_number, format_value
from ..runstate import RunState
from .panel import StatePanel, fit

#: Each RunStatus as its badge: words and style.
STATUS_BADGES: dict[RunStatus, tuple[str, str]] = {
    RunStatus.IDLE: ("idle", "bold"),
    RunStatus.WAITING: ("waiting", "bold yellow"),
    RunStatus.LOADING: ("loading data", "bold cyan"),
    RunStatus.RUNNING: ("running", "bold green"),
    RunStatus.PAUSED: ("paused", "bold yellow"),
    RunStatus.PAUSING: ("pausing…", "bold yellow"),
    RunStatus.STOPPING: ("stopping…", "bold yellow"),
    RunStatus.STOPPED: ("stopped", "bold blue"),
    RunStatus.FINISHED: ("finished", "bold blue"),
    RunStatus.EARLY_STOP: ("early stop", "bold blue"),
    RunStatus.DIVERGED: ("diverged", "bold red"),
    RunStatus.ERROR: ("error", "bold red"),
    RunStatus.INTERRUPTED: ("interrupted", "bold red"),
    RunStatus.CRASHED: ("crashed", "bold red"),
}
SHOWN_HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "l1", "batch_size")
SHORT_NAMES = {"weight_decay": "wd", "batch_size": "batch"}
#: When a pending change applies, by hyperparameter (the others: at the next batch).
APPLIES = {"batch_size": "next epoch"}


def duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_bar(fraction: float, width: int) -> Text:
    """`width` cells filled to `fraction`, with a half cell at the tip."""
    filled = fraction * width
    whole = int(filled)
    bar = Text("━" * whole, style="green")
    if whole < width:
        bar.append(*(("╸", "green") if filled - whole >= 0.5 else ("─", "grey37")))
        bar.append("─" * (width - whole - 1), style="grey37")
    return bar


class StatusPanel(StatePanel):
    """Four lines: state and progress, hyperparameters, metrics, where the run is written."""

    INTERVAL = 1.0  # keys redraw it at once; the rest is numbers ticking
    #: While the time axis shows an earlier step: what the badge says instead of the state.
    at: str | None = None
    DEFAULT_CSS = """
    StatusPanel { height: 4; }
    """

    def news_key(self) -> tuple[int]:
        """An epoch's end shows here with the Log and the matrix, not up to INTERVAL later."""
        return (len(self.state.epochs),)

    def options(self) -> tuple[str | None]:
        return (self.at,)

    def draw(self, width: int, height: int) -> Text:
        line1 = self._badge()
        line1.append_text(self._progress(width - line1.cell_len))
        lines = [line1, self._hyperparameters(width), self._metrics(width), self._where()]
        return Text("\n").join(lines)

    def _badge(self) -> Text:
        """The run's state as a badge (or the step the time axis shows, and the key back to
        live), and how many warnings the Log holds."""
        state = self.state
        label, style = STATUS_BADGES[state.status]
        if state.recorded:
            label = f"recorded · {label}"
        line = Text.assemble((f" {label.upper()} ", "reverse " + style), " ")
        if self.at is not None:
            line = Text.assemble((f" {self.at} ", "reverse bold magenta"), " ")
            line.append("End: live  ", style="dim")
        warnings = state.counts.get("warning", 0)
        if warnings:  # the Log says what they are; i on the Log explains them
            line.append(f"⚠ {warnings} warning{'s' if warnings > 1 else ''}", "bold yellow")
            line.append(" ")
        return line

    def _progress(self, width: int) -> Text:
        """Epoch and batch, a progress bar, the share done, the ETA and the speed in `width`
        cells; before the first batch, what the run is doing (nothing once it has ended)."""
        state, p = self.state, self.state.progress
        if p is None:
            return _note(state)
        words = Text(
            f"epoch {min(p.epoch + 1, p.epochs)}/{p.epochs}  batch {p.batch}/{p.steps_per_epoch}  "
        )
        done = state.fraction_done()
        after = Text(f" {done:4.0%}")
        eta = state.eta_seconds()
        if eta is not None:
            after.append(f"  ETA {duration(eta)}")
        speed = state.samples_per_sec()
        if speed:
            after.append(f"  {speed:,.0f} samples/s", style="dim")
        # The bar takes what the words leave, within 8..30 cells.
        bar_width = min(max(width - words.cell_len - after.cell_len, 8), 30)
        return Text.assemble(words, progress_bar(done, bar_width), after)

    def _hyperparameters(self, width: int) -> Text:
        """Values in force, each pending change after an arrow with when it applies; when
        that does not fit, the arrows alone and one note at the end. The process's CPU and
        memory follow where there is room (they go first)."""
        line, compact, waiting = self._values()
        if self.state.started is not None and self.state.end is None:  # < and > change it
            pace = _pace(self.state.pace)
            line.append_text(pace)
            compact.append_text(pace)
        if waiting:
            compact.append("(→ pending)", "yellow")
        # The process's CPU and memory go first; then the spacing, then the pending words.
        with_system = self._with_system([(line, "   ")] + ([] if waiting else [(compact, "  ")]))
        return fit(width, *with_system, line, compact)

    def _with_system(self, lines: list[tuple[Text, str]]) -> list[Text]:
        """Each of `lines` (a line and the separator its parts have) with the process's CPU
        and memory after it; none before the first 'system' event."""
        with_system = []
        for text, sep in lines:
            system = self._system(sep)
            if system:
                text = text.copy()
                text.rstrip()
                with_system.append(text.append_text(system))
        return with_system

    def _values(self) -> tuple[Text, Text, bool]:
        """The hyperparameters in force written in full (a pending change after an arrow,
        with when it applies) and compact (the arrow alone), and whether one is pending."""
        values, pending = self.state.hyperparameters, self.state.pending
        line, compact, waiting = Text(), Text(), False
        for name in SHOWN_HYPERPARAMETERS:
            if name not in values:
                continue
            for text in (line, compact):
                text.append(f"{SHORT_NAMES.get(name, name)} ", style="dim")
                text.append(format_value(values[name]), style="bold")
            if name in pending and pending[name] != values[name]:
                waiting = True
                line.append(f" → {format_value(pending[name])}", style="bold yellow")
                line.append(f" (pending, {APPLIES.get(name, 'next batch')})", style="yellow")
                compact.append(f"→{format_value(pending[name])}", style="bold yellow")
            line.append("   ")
            compact.append("  ")
        return line, compact, waiting

    def _system(self, sep: str) -> Text:
        """`cpu 98%   rss 210.3 MiB` from the latest 'system' event (`peak rss` once the
        run has ended), each part after `sep`; nothing before the first."""
        measured = self.state.latest("system")
        if not isinstance(measured, System):
            return Text()
        parts: list[tuple[str, float | None, Callable[[float], str]]] = [
            ("cpu", measured.cpu_percent, "{:.0f}%".format),
            ("rss", measured.rss_bytes, human_bytes),
        ]
        if self.state.end is not None:
            parts = [("peak rss", measured.peak_rss_bytes, human_bytes)]
        text = Text()
        for label, value, written in parts:
            if value is not None:
                text.append(f"{sep}{label} ", style="dim")
                text.append(written(value))
        return text

    def _metrics(self, width: int) -> Text:
        """The latest batch, epoch (with validation) and test scores, each labelled (`val
        loss 0.74 acc 59.3%`); what does not fit goes, the batch first (the curves show it),
        then the epoch's training loss: the test score, which ends a run, stays whole."""
        state = self.state
        if state.end is not None and state.end.error:
            return Text(f"error: {state.end.error}", style="bold red")
        batch, (epoch, val), test = _batch_scores(state), _epoch_scores(state), _test_scores(state)
        epoch_val = Text.assemble(epoch, "  ", val) if val else epoch
        variants = ([batch, epoch_val, test], [epoch_val, test], [val or epoch, test])
        return fit(width, *(_joined(parts) for parts in variants))

    def _where(self) -> Text:
        """Where the run is written first (it matters most), the long spec last."""
        state, started = self.state, self.state.started
        dataset, arch = (state.dataset, "bold"), f" · {state.arch or 'default architecture'}"
        if started is None:
            return Text.assemble(dataset, arch)
        run = (("run ", "dim"), (started.run_dir, "underline"), " · ")
        return Text.assemble(*run, dataset, f" · {started.params:,} params", arch)


def _note(state: RunState) -> Text:
    """Before the first batch: what the run is doing, dim (nothing once it has ended)."""
    note = state.note or "preparing the dataset and the model…"
    return Text().append(note, style="dim") if state.end is None else Text()


def _pace(pace: float | None) -> Text:
    """The pace the run is held to (`pace 5 ep/s`), or a dim "full speed" for none (< and >
    change it while the run goes)."""
    if not pace:
        return Text(pace_text(pace), style="dim")
    return Text.assemble(("pace ", "dim"), (pace_text(pace), "bold"))


def _batch_scores(state: RunState) -> Text:
    """The latest batch's loss (and accuracy); nothing before the first."""
    steps, losses, accuracies, _ = state.batches.columns
    if not steps:
        return Text()
    accuracy = accuracies[-1] if state.task == "classification" else None
    return _scores("batch", losses[-1], _accuracy(accuracy))


def _epoch_scores(state: RunState) -> tuple[Text, Text]:
    """The last epoch's training loss, and its validation scores (nothing when it has none
    or before the first epoch)."""
    last = state.last_epoch
    if last is None:
        return Text(), Text()
    epoch = _scores(f"epoch {last.epoch + 1}", last.loss)
    if last.val_loss is None and last.val_accuracy is None:
        return epoch, Text()
    return epoch, _scores("val", last.val_loss, _accuracy(last.val_accuracy), "#e879f9")


def _test_scores(state: RunState) -> Text:
    """The test split's scores (at the end or on request): loss, and accuracy or MAE."""
    tested = state.latest("test")
    if not isinstance(tested, TestResult):
        return Text()
    other = _accuracy(tested.accuracy)
    if not other and tested.mae is not None:
        other = f"MAE {format_number(tested.mae)}"
    return _scores("test", tested.loss, other, "bold #facc15")


def _scores(label: str, loss: float | None, other: str = "", style: str = "") -> Text:
    """`label loss 0.123` and `other` (`acc 45.6%`), the scores in `style`."""
    line = Text(f"{label} ", style="dim")
    line.append(f"loss {format_number(loss)}", style=style)
    if other:
        line.append(f" {other}", style=style)
    return line


def _accuracy(value: float | None) -> str:
    """`acc 45.6%`, or nothing for no (or a NaN) accuracy."""
    return f"acc {value:.1%}" if value is not None and value == value else ""


def _joined(parts: list[Text]) -> Text:
    """The parts that have something, between bars."""
    return Text(" │ ", style="dim").join(part for part in parts if part)
