"""The dashboard: trains one experiment in a thread worker and shows it live, or shows a
recorded run (`nntui --open`), following its log while it is still being written.

The worker touches no widget (harlequin's rule): the run source posts the run's immutable
records (`nntui.stream`) to this screen's inbox, which the UI thread folds into a RunState on a
timer, a few times a second,
whatever the training speed (or at once, for what a person waits to see); panels redraw from
that state on the same timer. Keys act on the trainer through its thread-safe
control calls and show their effect at once (a pending value, "pausing…"). On a recorded run
that is still being written, the same keys steer the process writing it, through the run's
command file (`nnlib.remote`); a recorded run that has ended says it cannot be steered. Which
of these it is, is the run source's business (nntui.sources): this screen starts its worker,
shows what it posts, and sends every request through its `steer`.

Every update folded is also kept on the run's time axis (`nntui.history`; where its keys go,
`nntui.timeaxis`): `,` and `.` (and PgUp/PgDn, Home) show the run as it was at an earlier
step, every panel drawn from the state folded up to there while the live state goes on
growing; End returns to now. What an update pops up is `widgets.notifications`'s to say.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Tab, Tabs

from nnlib import events
from nnlib.callbacks.features import FeatureMaps
from nnlib.callbacks.ondemand import OnDemand
from nnlib.callbacks.testset import TestEvaluator
from nnlib.callbacks.tracer import Tracer
from nnlib.config import ExperimentConfig
from nnlib.events import Diagnostic, pace_text
from nnlib.states import RunStatus

from ..history import History
from ..messages import RunUpdate, StartRun
from ..pace import PACE_STEPS, next_pace
from ..replay import RecordedRun
from ..runstate import RunState
from ..sources import FORKABLE, Fork, Inbox, Refused, RunSource, source_for
from ..stream import Rewound, RunStarted, Update
from ..timeaxis import SCRUB_PAGE, TimeAxis
from ..widgets.boundary import BoundaryPanel
from ..widgets.confusion import ConfusionPanel
from ..widgets.curves import CurvesPanel
from ..widgets.eventlog import EventLog
from ..widgets.features import FeaturesPanel
from ..widgets.keybar import KeyBar
from ..widgets.layers import LayersPanel
from ..widgets.notifications import notification, redraw_for
from ..widgets.panel import StatePanel
from ..widgets.samples import SamplesPanel
from ..widgets.status import StatusPanel
from ..widgets.trace import TracePanel
from .modals import ConfirmScreen, HparamScreen, PathScreen
from .panel_help import PanelHelpScreen

if TYPE_CHECKING:
    from nnlib.experiment import Experiment

REDRAW_SECONDS = 0.25
#: The actions that need the model in this process (hidden on a recorded run).
LOCAL_ONLY = ("save_model", "fork", "test")
#: The actions that steer the run (left out of the key bar once it has ended).
STEERING = frozenset({"toggle_pause", "step", "change_lr", "stop", "edit"})
#: What the log says while each kind of worker gets going.
WORKER_NOTES = {"training": "loading {dataset}…", "following": "following the run log as it grows…"}
#: How long leaving the dashboard waits for the training thread to close the run log.
FINISH_TIMEOUT = 30.0
#: + and - multiply and divide the learning rate by this.
LR_FACTOR = 2.0
#: At this size and above, every panel is shown at once; below, one at a time in tabs.
WIDE = (110, 32)
#: Lines the status panel (with its border) and the key bar take in the wide layout.
WIDE_CHROME = 8
#: Tabs whose panels share the wide layout's one "view" cell (upper right), one at a time.
VIEW_TABS = (3, 5, 6, 7, 8)
#: An ended run's history played (space) moves on this often, in seconds (by as many steps
#: as its speed asks: `history.Player`).
PLAY_SECONDS = 0.1


@dataclass(frozen=True)
class PanelEntry:
    """One panel of the dashboard: its id, its tab's title and number key, and how it is
    made from the run state. The table below drives the tabs, the keys and compose; a new
    panel is one entry here plus its widget."""

    key: str
    title: str
    tab: int
    make: Callable[[RunState], Widget]
    #: Whether the run has this view (decided as its events arrive); None: every run has.
    applies: Callable[[RunState], bool] | None = None

    @property
    def view(self) -> bool:
        """In the wide layout, shown in the shared view cell (see VIEW_TABS)."""
        return self.tab in VIEW_TABS


def _images(state: RunState) -> bool:
    """The run's input is an image (height, width, channels)."""
    return state.started is not None and len(state.started.input_shape) == 3


def _convolutional(state: RunState) -> bool:
    """A model with a convolution on images: the Features view has maps to show."""
    return _images(state) and state.started is not None and "conv" in state.started.arch


#: In grid order (the wide layout places them in this order: curves, matrix, layers, log).
PANELS = (
    PanelEntry("curves", "Curves", 1, lambda state: CurvesPanel(state, id="curves")),
    PanelEntry("confusion", "Matrix", 3, lambda state: ConfusionPanel(state, id="confusion")),
    PanelEntry("layers", "Layers", 2, lambda state: LayersPanel(state, id="layers")),
    PanelEntry("log", "Log", 4, lambda state: EventLog(id="log")),
    PanelEntry(
        "boundary",
        "Boundary",
        5,
        lambda state: BoundaryPanel(state, id="boundary"),
        lambda state: state.latest("boundary") is not None,  # 1 or 2 input features
    ),
    PanelEntry(
        "samples",
        "Samples",
        6,
        lambda state: SamplesPanel(state, id="samples"),
        lambda state: _images(state) and state.task == "classification",
    ),
    PanelEntry(
        "features",
        "Features",
        7,
        lambda state: FeaturesPanel(state, id="features"),
        _convolutional,
    ),
    PanelEntry("trace", "Trace", 8, lambda state: TracePanel(state, id="trace")),
)
TABS = sorted(PANELS, key=lambda entry: entry.tab)
ENTRIES = {entry.key: entry for entry in PANELS}


def grid_order(entries: Iterable[PanelEntry]) -> list[PanelEntry]:
    """The panels in the wide grid's order: the view panels together, where the first is."""
    entries = list(entries)
    views = [entry for entry in entries if entry.view]
    first = entries.index(views[0]) if views else len(entries)
    rest = [entry for entry in entries if not entry.view]
    return rest[:first] + views + rest[first:]


@dataclass
class ScreenState:
    """The dashboard's own state, beside the run's (its RunState): what it has been sent and
    not yet folded, which view it shows, and where on the time axis."""

    #: Updates from the run's worker thread, folded in by the UI thread.
    inbox: Inbox
    #: Every update folded, and the position shown on it (None: now).
    axis: TimeAxis
    #: The panel in the wide layout's view cell (Matrix until a number key picks another).
    view_key: str = "confusion"
    #: Tab key -> shown, for the views only some runs have (decided as their events arrive).
    offered: dict[str, bool] = field(default_factory=dict)
    #: The timer moving the time axis on while a run that has ended is played (None: still).
    playing: Timer | None = None


class DashboardScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    BINDINGS = [
        Binding("space", "toggle_pause", "Pause/Resume"),
        Binding("n", "step", "Step"),
        Binding(
            "plus,equals_sign", f"change_lr({LR_FACTOR})", f"lr×{LR_FACTOR:g}", key_display="+"
        ),
        Binding("minus", f"change_lr({1 / LR_FACTOR})", f"lr÷{LR_FACTOR:g}", key_display="-"),
        Binding("less_than_sign", "pace(-1)", "Slower", key_display="<"),
        Binding("greater_than_sign", "pace(1)", "Faster", key_display=">"),
        Binding("s", "stop", "Stop"),
        Binding("e", "edit", "Edit hparams"),
        Binding("m", "smoothing", "Smoothing"),
        Binding("l", "log_scale", "Log scale"),
        Binding("g", "gradients", "Grads"),
        Binding("left_square_bracket", "layer(-1)", "Prev layer", key_display="["),
        Binding("right_square_bracket", "layer(1)", "Next layer", key_display="]"),
        Binding("w", "save_model", "Save model"),
        Binding("f", "fork", "Fork", show=False),  # in the help (?) and the palette
        Binding("T", "test", "Test now", show=False),
        Binding("A", "apply_fix", "Apply the warning's fix", show=False),
        # The time axis. `,`/`.` and Home/End are the screen's wherever the focus is; PgUp/PgDn
        # too, except in the panels that turn their own pages with them (Boundary's neurons,
        # Samples, Features) and the Log, which scrolls.
        Binding("comma", "scrub(-1)", "Back in time", key_display=",", show=False),
        Binding("full_stop", "scrub(1)", "Forward in time", key_display=".", show=False),
        Binding("pageup", f"scrub_page(-{SCRUB_PAGE})", "Back 10%", show=False),
        Binding("pagedown", f"scrub_page({SCRUB_PAGE})", "Forward 10%", show=False),
        Binding("home", "scrub_first", "First step", show=False, priority=True),
        Binding("end", "live", "Live (now)", show=False, priority=True),
        Binding("escape", "back", "Setup"),
        Binding("ctrl+r", "app.runs", "Runs"),
        Binding("i", "explain", "What am I looking at?"),
        Binding("z", "panel('trace')", "Trace one sample", show=False),
        *(
            Binding(str(entry.tab), f"panel('{entry.key}')", entry.title, show=False)
            for entry in PANELS
        ),
    ]

    def __init__(
        self,
        config: ExperimentConfig,
        replay: Iterable[Update] | None = None,
        recorded: RecordedRun | None = None,
        start_paused: bool = False,
    ) -> None:
        """Train `config` (parked before its first batch with `start_paused`); or, with
        `replay`, show a fixed sequence of updates instead (reproducible pictures for tests
        and docs); or, with `recorded`, show a run read from its directory, following its
        log until its end event."""
        super().__init__()
        self.config = config
        self.recorded = recorded  # the run directory shown, if it is one
        self.source: RunSource = source_for(config, replay, recorded, start_paused)
        self.state = RunState(
            recorded.dataset if recorded else Path(config.dataset).stem,
            config.arch or "",
            recorded=self.source.recorded,
        )
        # Made here, not queried: every update and every timer tick reaches them.
        self._status = StatusPanel(self.state)
        self.panels: dict[str, Widget] = {entry.key: entry.make(self.state) for entry in PANELS}
        self._curves = cast(CurvesPanel, self.panels["curves"])
        self._confusion = cast(ConfusionPanel, self.panels["confusion"])
        self._layers = cast(LayersPanel, self.panels["layers"])
        self._event_log = cast(EventLog, self.panels["log"])
        self._state_panels: tuple[StatePanel, ...] = (
            self._status,
            *(panel for panel in self.panels.values() if isinstance(panel, StatePanel)),
        )
        history = History(
            lambda: RunState(self.state.dataset, config.arch or "", recorded=self.source.recorded)
        )
        self.screen_state = ScreenState(
            Inbox(lambda: self.post_message(RunUpdate()), self.source.paused), TimeAxis(history)
        )

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        self._status.border_title = "nntui"
        yield self._status
        yield Tabs(
            *(Tab(f"{entry.tab} {entry.title}", id=f"tab-{entry.key}") for entry in TABS),
            id="tabs",
        )
        with Container(id="panels"):
            for entry in grid_order(PANELS):
                panel = self.panels[entry.key]
                panel.add_class("panel")
                panel.set_class(entry.view, "view")
                panel.set_class(entry.key == self.screen_state.view_key, "-view")
                panel.border_title = entry.title
                yield panel
        yield KeyBar(hidden=lambda: STEERING if self.state.end is not None else ())

    def on_mount(self) -> None:
        self._curves.add_class("-active")
        self._offer_tabs()
        self._layout(self.app.size.width, self.app.size.height)
        self.set_interval(REDRAW_SECONDS, self._tick)
        self._status.border_title = self.source.title
        for update in self.source.updates:
            self.apply(update)
        self.redraw(at_once=True)
        worker = self.source.worker
        if worker is not None:
            if self.state.end is None:  # (an ended run is watched only for a resume)
                note = WORKER_NOTES[worker].format(dataset=self.config.dataset)
                self._event_log.add(None, note)
            self.run_worker(
                lambda: self.source.run(self.screen_state.inbox.post),
                thread=True,
                exit_on_error=False,
                name=worker,
                group=worker,
            )

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        """Tabs below WIDE; above, a grid: curves over layers on the left, each half the
        height; on the right the matrix, as tall as its rows need (or half), over the log.
        Three grid rows make that: curves = 1, matrix = 1-2, layers = 2-3, log = 3."""
        wide = width >= WIDE[0] and height >= WIDE[1]
        self.set_class(wide, "-wide")
        if wide:
            panels = self.query_one("#panels")
            total = max(panels.size.height, height - WIDE_CHROME)
            half = total // 2
            confusion = self.screen_state.view_key == "confusion"
            wanted = self._matrix_lines() + 2 if confusion else total * 2 // 3
            matrix = max(half, min(wanted, total - 5))
            panels.styles.grid_rows = f"{half} {matrix - half} 1fr"

    def _matrix_lines(self) -> int:
        """Lines the confusion matrix needs: title, axis, header, a row per class, precision."""
        started = self.state.started
        classes = len(started.class_names) if started and self.state.task != "regression" else 0
        return classes + 4

    @on(Tabs.TabActivated)
    def _show_panel(self, event: Tabs.TabActivated) -> None:
        key = (event.tab.id or "").removeprefix("tab-")
        for widget in self.query("#panels > .panel"):
            widget.set_class(widget.id == key, "-active")
        if key in ENTRIES and ENTRIES[key].view and key != self.screen_state.view_key:
            self.screen_state.view_key = key
            for name, view in self.panels.items():
                view.set_class(name == key, "-view")
            self._layout(*self.app.size)
        panel = self.panels.get(key)
        if panel is not None and panel.can_focus:
            panel.focus()  # its own keys (the boundary's v, d, arrows) reach it
        if isinstance(panel, TracePanel) and self.source.trainer and self.state.end is None:
            self._trace(TracePanel.Requested(panel.index))

    def action_panel(self, key: str) -> None:
        if not self._applies(ENTRIES[key]):
            self.notify(f"this run has no {ENTRIES[key].title} view", severity="warning")
            return
        self.query_one(Tabs).active = f"tab-{key}"

    def _applies(self, entry: PanelEntry) -> bool:
        return entry.applies is None or entry.applies(self.state)

    def _offer_tabs(self) -> None:
        """Show the tabs of the views this run has (a boundary for 1 or 2 input features),
        hide the others."""
        tabs, offered = self.query_one(Tabs), self.screen_state.offered
        for entry in PANELS:
            if entry.applies is not None:
                shown = self._applies(entry)
                if shown != offered.get(entry.key):
                    offered[entry.key] = shown
                    (tabs.show if shown else tabs.hide)(f"tab-{entry.key}")

    def action_explain(self) -> None:
        """What am I looking at? The active panel's help, in plain words."""
        key = (self.query_one(Tabs).active or "tab-curves").removeprefix("tab-")
        entry, panel = ENTRIES[key], self.panels[key]
        self.app.push_screen(PanelHelpScreen(entry.title, getattr(panel, "HELP", "")))

    @on(ConfusionPanel.CellChosen)
    def _drill_down(self, message: ConfusionPanel.CellChosen) -> None:
        """Enter on a matrix cell: the validation images of that cell, in Samples."""
        if not self._applies(ENTRIES["samples"]):
            return
        cast(SamplesPanel, self.panels["samples"]).show_cell(message.true, message.predicted)
        self.action_panel("samples")

    @on(FeaturesPanel.UpdateRequested)
    def _update_features(self) -> None:
        self._request(FeatureMaps, "feature maps")

    @on(TracePanel.Requested)
    def _trace(self, message: TracePanel.Requested) -> None:
        """A trace of one validation sample; with `update`, after one step (paused only)."""
        if message.update and not self._paused():
            self.notify("pause first (space), then n runs one batch", severity="warning")
            return
        asked = self._request(Tracer, "a trace", index=message.index, update=message.update)
        if asked and message.update:
            self.action_step()

    def action_test(self) -> None:
        """Evaluate on the test split now (at the next batch boundary)."""
        self._request(TestEvaluator, "test results")

    def _request(self, kind: type[OnDemand], what: str, **arguments: Any) -> bool:
        """Ask the run for `what` through its source (`RunSource.ask`); False, and said why,
        when it cannot be asked."""
        try:
            when = self.source.ask(kind, what, **arguments)
        except Refused as refusal:
            self.notify(str(refusal), severity="warning", timeout=3, markup=False)
            return False
        if when is not None:
            self.notify(when, timeout=3)
        return True

    # -- the run source (its worker runs on its own thread and touches no widget) ------------
    @property
    def experiment(self) -> Experiment | None:
        """The experiment trained here, once set up (None for a recorded run)."""
        return self.source.experiment

    @property
    def _finished(self) -> threading.Event:
        """Set once the source's worker is done (the run log closed)."""
        return self.source.finished

    def shutdown(self) -> None:
        """Ask the run to end at the next batch boundary (also when paused), so the worker
        thread exits and the run log gets its end event."""
        self.source.stop()

    async def on_unmount(self) -> None:
        """Leaving (or quitting): end the run and let its thread close the run log before
        the app goes on, so a quit never leaves a log without its end event."""
        self.shutdown()
        if self.source.worker is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, self._finished.wait, FINISH_TIMEOUT
            )

    @property
    def running(self) -> bool:
        """True while a run is loading or training here (not a recorded one)."""
        return self.source.worker == "training" and self.state.end is None

    # -- updates -----------------------------------------------------------------------------
    def on_run_update(self, message: RunUpdate) -> None:
        self._take_inbox()

    def _take_inbox(self) -> None:
        """Fold in the updates the worker queued, in order."""
        for update in self.screen_state.inbox.take():
            self.apply(update)

    def _tick(self) -> None:
        """The redraw timer: what the worker queued, then a redraw."""
        self._take_inbox()
        self.redraw()

    def apply(self, update: Update) -> None:
        """Fold `update` into the run's state and its time axis, log it, and show it as soon
        and as loudly as `notifications` says."""
        self.state.apply(update)
        axis = self.screen_state.axis
        axis.history.record(update)
        if isinstance(update, Rewound) and axis.at is not None:
            self.action_live()  # what was shown is superseded
        self._event_log.add_update(update, len(axis.history))
        redraw = redraw_for(update, self.state)
        if redraw == "all":
            self.redraw(at_once=True)
        elif redraw == "status":
            self._show_status()
        if isinstance(update, RunStarted):
            self._started(update)
        if isinstance(update, RunStarted | events.Event):
            self._offer_tabs()
        if isinstance(update, events.End):  # the key bar loses the steering keys
            self.query_one(KeyBar).update_keys()
        said = notification(update, self.state, self.source.recorded)
        if said is not None:  # text from exceptions, paths and files: brackets are not markup
            self.notify(
                said.message,
                title=said.title,
                severity=said.severity,
                timeout=said.timeout,
                markup=False,
            )

    def _started(self, started: RunStarted) -> None:
        """The run has begun: the matrix's height follows its classes, and a regression's
        matrix is its predicted-against-true plot."""
        self._layout(*self.app.size)
        if started.task == "regression":
            self.query_one("#tab-confusion", Tab).label = "3 Pred vs true"
            self._confusion.border_title = "Predicted vs true"

    def redraw(self, at_once: bool = False) -> None:
        """Offer each panel a redraw (on a timer, and `at_once` after a key); panels whose
        data did not move stay as they are."""
        now = time.monotonic()
        for panel in self._state_panels:
            panel.offer_redraw(now, at_once)

    def _show_status(self) -> None:
        """What a key asked for (or the change it brought) shows in the status panel at once;
        the other panels wait for the timer: drawing them all with it made the frame after a
        + key on spirals 40-80 ms late beside its training thread."""
        self._status.offer_redraw(time.monotonic(), at_once=True)

    # -- keys ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A recorded run's model is in another process: the keys that need it here are not
        offered (its steering keys go to that process, see `_steer`)."""
        return not (self.source.recorded and action in LOCAL_ONLY)

    def _steer(self, action: str, *arguments: Any, then: Callable[[], None]) -> None:
        """Make one request of the run through its source, the one door for every request.
        A run here answers at once; the process writing a recorded run answers through its
        command file, so that request waits in a worker. `then` shows the request's effect
        once it is accepted; a refusal is shown with its reason, and changes nothing."""
        if self._unsteerable():
            return
        if self.source.recorded:
            self.run_worker(
                lambda: self.app.call_from_thread(
                    self._answered, *self._ask(action, arguments), then
                ),
                thread=True,
                exit_on_error=False,
                group="steering",
            )
        else:
            self._answered(*self._ask(action, arguments), then)

    def _unsteerable(self) -> bool:
        """Say why the run takes no request now, if it does not."""
        if self.state.end is not None:
            ended = f"the run has ended ({self.state.end.reason})"
            self.notify(f"{ended}; it cannot be steered", severity="warning")
            return True
        if self.state.started is None:
            self.notify("still loading the dataset", severity="warning")
            return True
        return False

    def _ask(self, action: str, arguments: tuple[Any, ...]) -> tuple[str | None, str | None]:
        """(Any thread.) The source's answer to a request, or its refusal."""
        try:
            return self.source.steer(action, *arguments), None
        except ValueError as error:  # refused, or (remote.SteerError) not delivered
            return None, str(error)

    def _answered(self, answer: str | None, refusal: str | None, then: Callable[[], None]) -> None:
        if refusal is not None:
            self.notify(refusal, title="Not applied", severity="warning", markup=False)
            return
        if answer is None:  # the run here has not begun: Trainer.set would run on this thread
            self.notify("still loading the dataset", severity="warning")
            return
        if self.source.recorded:
            self.notify(answer, title="Sent to the process writing this run", markup=False)
        then()
        self._show_status()

    def _paused(self) -> bool:
        """Paused, or a pause asked for: of the trainer here, or as the run log shows."""
        paused = self.source.paused()
        if paused is None:
            return self.state.status in (RunStatus.PAUSED, RunStatus.PAUSING)
        return paused

    # -- the time axis (its positions: nntui.timeaxis) -------------------------------------------
    def show_at(self, position: int | None) -> None:
        """Show the run as it was after `position` updates of its history (None, or the
        latest position: now). The one place the panels are handed a state: each draws from
        it, the curves draw the whole run with a cursor at that step, the log holds the lines
        written by then."""
        axis = self.screen_state.axis
        axis.seek(position)
        state = axis.shown(self.state)
        for panel in self._state_panels:
            if panel is not self._curves:
                panel.show(state)
        self._curves.cursor = axis.step
        self._event_log.show_until(axis.at, axis.history.records)
        self._status.at = axis.label(state, playing=self.screen_state.playing is not None)
        self.redraw(at_once=True)

    def _scrub_to(self, position: int | None) -> None:
        """Show `position` of the time axis (None: nothing is recorded to go to)."""
        if position is None:
            self.notify("nothing recorded yet", timeout=2)
        else:
            self.show_at(position)

    def action_scrub(self, count: int) -> None:
        """, and .: the previous or next step at which a view changed."""
        self._scrub_to(self.screen_state.axis.moved(count))

    def action_scrub_page(self, fraction: float) -> None:
        """PgUp and PgDn: a tenth of the run's steps back or forward."""
        self._scrub_to(self.screen_state.axis.paged(fraction))

    def action_scrub_first(self) -> None:
        """Home: the run's first step."""
        self._scrub_to(self.screen_state.axis.first())

    def action_live(self) -> None:
        """End: back to now (and the end of a history being played)."""
        self._stop_playing()
        if self.screen_state.axis.at is not None:
            self.show_at(None)

    def action_play(self) -> None:
        """Space on a run that has ended: play its history from the start (or from where the
        time axis is), the whole run in about 20 s at ×1 (`<` `>` slower, faster); space again
        stops there."""
        own = self.screen_state
        if own.playing is not None:
            self._stop_playing()
            return
        if own.axis.at is None:
            self.action_scrub_first()
        own.axis.play()
        own.playing = self.set_interval(PLAY_SECONDS, self._play_step, pause=True)
        self.show_at(own.axis.at)  # the status line says it plays, and how fast
        self.notify(f"playing {own.axis.player.describe()}; < > speed, space stops", timeout=3)
        own.playing.resume()  # its first step a tick from now, not from before the redraw

    def _play_step(self) -> None:
        count = self.screen_state.axis.tick(PLAY_SECONDS)
        if count is None:  # the end reached (or End pressed): now
            self._stop_playing()
        elif count:
            self.action_scrub(count)

    def _stop_playing(self) -> None:
        own = self.screen_state
        if own.playing is not None:
            own.playing.stop()
            own.playing = None
            if own.axis.at is not None:
                self.show_at(own.axis.at)

    def action_toggle_pause(self) -> None:
        if self.state.end is not None:  # nothing to pause: space plays the run's history
            self.action_play()
            return
        if self._paused():
            self._steer("resume", then=lambda: self.state.mark_status(RunStatus.RUNNING))
        else:
            self._steer("pause", then=lambda: self.state.mark_status(RunStatus.PAUSING))

    def action_step(self) -> None:
        if not self._paused():
            self.notify("pause first (space), then n runs one batch", severity="warning")
            return
        self._steer("step", then=lambda: None)

    def action_change_lr(self, factor: float) -> None:
        current = self.state.pending.get(
            "lr", self.source.editable(self.state.hyperparameters).get("lr")
        )
        if not isinstance(current, int | float):
            self.notify("the run's learning rate is not known yet", severity="warning")
            return
        value = current * factor
        self._ask_value("lr", value)

    def action_pace(self, direction: int) -> None:
        """< and >: the next slower or faster of PACE_STEPS (full speed is the fastest); on
        a run that has ended, of the speeds its history plays at."""
        if self.state.end is not None:
            self._play_speed(direction)
            return
        index = next_pace(self.state.pace, direction)
        if index is None:
            edge = "slowest" if direction < 0 else "fastest"
            self.notify(f"already at the {edge} pace ({pace_text(self.state.pace)})", timeout=2)
            return
        pace = PACE_STEPS[index]
        self._steer("pace", pace, then=lambda: self.state.mark_pace(pace))

    def _play_speed(self, direction: int) -> None:
        """< and > on a run that has ended: the speed its history plays at."""
        own = self.screen_state
        self.notify(own.axis.change_speed(direction))
        if own.playing is not None and own.axis.at is not None:
            self.show_at(own.axis.at)  # the status line says the new speed

    def action_stop(self) -> None:
        self._steer("stop", then=lambda: self.state.mark_status(RunStatus.STOPPING))

    def action_apply_fix(self) -> None:
        """Apply the latest warning's suggested change, as the + and - keys apply theirs; or,
        where it comes too late live, fork with it from before the evidence began."""
        warning = self.state.events.get("warning")
        if not isinstance(warning, Diagnostic):
            self.notify("no warning so far", timeout=3)
            return
        if warning.fork is not None:
            suggestion = warning.fork
            self._start_fork(lambda: self.source.fork_before(suggestion))
            return
        if warning.fix is None:
            self.notify(
                f"the last warning ({warning.kind}) has no change to apply: {warning.suggestion}",
                severity="warning",
                markup=False,
            )
            return
        self._ask_value(warning.fix["name"], warning.fix["value"])

    def action_edit(self) -> None:
        """Edit the hyperparameters; the changes come back to `_edited`."""
        if not self._unsteerable():
            self.app.push_screen(self._hparam_screen(), self._edited)

    def _hparam_screen(self, fork: bool = False) -> HparamScreen:
        current = self.source.editable(self.state.hyperparameters)
        return HparamScreen(current, self.state.pending, self.source.validate, fork=fork)

    def _edited(self, changes: dict[str, Any] | None) -> None:
        """Apply the dialog's changes as the + and - keys do: one `set` request each."""
        for name, value in (changes or {}).items():
            self._ask_value(name, value)

    def _ask_value(self, name: str, value: Any) -> None:
        """One `set` request, shown pending once accepted unless the run's log has brought
        the change meanwhile (counted from the changes logged when it is sent)."""
        sent_after = len(self.state.marks)
        self._steer(
            "set", name, value, then=functools.partial(self.state.request, name, value, sent_after)
        )

    def action_smoothing(self) -> None:
        value = self._curves.cycle_smoothing()
        self.notify(f"smoothing {value:g}", timeout=1.5)

    def action_log_scale(self) -> None:
        self._curves.log_scale = not self._curves.log_scale

    def action_gradients(self) -> None:
        self._layers.gradients = not self._layers.gradients

    def action_layer(self, offset: int) -> None:
        self._layers.select(offset)

    def action_save_model(self) -> None:
        """Save the model where the dialog says (the run's model.npz by default)."""
        try:
            default = self.source.model_file()
        except Refused as refusal:
            self.notify(str(refusal), severity="warning", markup=False)
            return

        def save(path: str) -> str:
            written = self.source.save_model(path or None)
            step = self.state.progress.step if self.state.progress else None
            self._event_log.add(step, f"model saved to {written}", "good")
            return f"model saved to {written}"

        self.app.push_screen(PathScreen("Save the model (.npz)", str(default), save))

    def action_fork(self) -> None:
        """From a paused or ended run: edit hyperparameters, then start a new run from this
        one's state with them (this run stops and stays on disk)."""
        try:
            self.source.forkable()
        except Refused as refusal:
            self.notify(str(refusal), severity="warning", markup=False)
            return
        self.app.push_screen(self._hparam_screen(fork=True), self._fork)

    def _fork(self, changes: dict[str, Any] | None) -> None:
        """The dialog's changes: the fork, started in place of this dashboard."""
        if changes is None:
            return
        left = sorted(set(changes) - FORKABLE)
        if left:  # Adam's betas, say: the config has no field for them
            self.notify(f"a fork keeps the run's {', '.join(left)}", severity="warning")
        self._start_fork(lambda: self.source.fork(changes))

    def _start_fork(self, make: Callable[[], Fork]) -> None:
        """Stop this run and start the fork `make` gives in place of this dashboard (this run
        stays on disk); a refusal is shown and nothing is forked."""
        try:
            fork = make()
        except Refused as refusal:
            self.notify(str(refusal), severity="warning", timeout=20, markup=False)
            return
        if fork.note:
            self.app.notify(fork.note, title="Forked", timeout=10, markup=False)
        self.shutdown()
        self.dismiss()
        self.app.post_message(StartRun(fork.config))

    def action_back(self) -> None:
        """Back to the setup screen (stopping the run, after asking, if it is live)."""
        if not self.running:
            self.dismiss()
            return

        def answer(stop: bool | None) -> None:
            if stop:
                self.shutdown()
                self.dismiss()

        self.app.push_screen(
            ConfirmScreen("Stop this run and go back to the setup?", yes="Stop run"), answer
        )
