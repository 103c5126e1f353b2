"""NNTui: the Textual app. It owns the screen stack (setup below, a dashboard on top while a
run is shown), the keys that work everywhere (quit, help, the palette) and the
"terminal too small" guard.

The screens are imported when first shown: `nntui --runs` opens on the runs screen, and
its first screen must not wait for the dashboard's and the setup screen's imports, nor for
the setup screen itself, built only when the user leaves the runs screen for it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.events import Resize
from textual.notifications import SeverityLevel

from nnlib.config import ExperimentConfig

from .commands import ActionCommands, screen_keys
from .keyorder import InOrderKeys
from .messages import StartRun
from .screens.modals import ConfirmScreen, HelpScreen, TooSmallScreen
from .screens.runs import RunsScreen
from .terminal import HangupSafeDriver

if TYPE_CHECKING:
    from nnlib.datasets import DatasetInfo

    from .replay import RecordedRun
    from .screens.dashboard import DashboardScreen

MIN_SIZE = (60, 18)


class NNTui(InOrderKeys[None]):
    TITLE = "nntui"
    CSS = """
    Input.-invalid { color: $error; text-style: bold; }
    Toast { max-width: 70; }
    """
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", show=False, priority=True),
        # Textual's ctrl+c copies a selection or says which key quits; the README promises it
        # ends the app, also from a text field (whose text is selected when it takes focus).
        Binding("ctrl+c", "request_quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(
        self,
        config: ExperimentConfig,
        start: bool = False,
        datasets: list[DatasetInfo] | None = None,
        recorded: RecordedRun | None = None,
        runs: Path | None = None,
        start_paused: bool = False,
        lessons: bool = False,
        lang: str | None = None,
    ) -> None:
        """`datasets` replaces nnlib's listing (to add a user's file; tests pin it, since
        what is on disk varies). `recorded` opens that run on the dashboard (the setup
        screen below it holds its experiment, to run again). `runs` opens the runs screen
        on that folder (ctrl+r opens it on the default runs folder otherwise).
        `start_paused`: runs park before their first batch (the setup screen's switch
        starts ticked). `lessons` opens the lessons (ctrl+l on the setup screen otherwise),
        in `lang` (None: the locale's)."""
        super().__init__()
        self.config = config
        self.start = start
        self.start_paused = start_paused
        self.datasets = datasets
        self.recorded = recorded
        self.runs = runs
        self.lessons = lessons
        self.lang = lang
        #: Set when the terminal hung up: the caller must not write to it any more.
        self.lost_terminal = False
        #: The "stop the run and quit?" question while it is shown (asked once at a time).
        self._quit_question: ConfirmScreen | None = None

    def on_mount(self) -> None:
        alone = self.runs is not None and not (self.lessons or self.recorded or self.start)
        if alone:  # the setup screen is built when the runs screen is left for it
            self.push_screen(RunsScreen(self.runs), self._runs_left)
        else:
            self.push_setup()
        if self.lessons:
            self.action_lessons()
        if self.runs is not None and not alone:
            self.push_screen(RunsScreen(self.runs))
        if self.recorded is not None:
            self.push_dashboard(self.config, recorded=self.recorded)
        elif self.start:
            self.push_dashboard(self.config, start_paused=self.start_paused)
        self._check_size(*self.size)
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGTERM, self.shut_down)
        # Not through the event loop: SIGHUP must take effect even while the loop is stuck
        # writing to the terminal that has just gone.
        signal.signal(signal.SIGHUP, self._hangup_signal)

    def push_setup(self) -> None:
        """The setup screen, at the bottom of the stack: where every other screen leads back."""
        from nnlib.datasets import available

        from .screens.setup import SetupScreen

        datasets = self.datasets if self.datasets is not None else available(self.config.data_dir)
        self.push_screen(SetupScreen(self.config, datasets, self.start_paused))

    def _runs_left(self, _: object) -> None:
        """The runs screen `nntui --runs` opened on was left: the setup screen comes next."""
        self.push_setup()

    def push_dashboard(
        self,
        config: ExperimentConfig,
        recorded: RecordedRun | None = None,
        start_paused: bool = False,
    ) -> None:
        """A dashboard on top: `config` trained, or the `recorded` run shown."""
        from .screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(config, recorded=recorded, start_paused=start_paused))

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """App.run; after a hangup, end the process right there: the run log is closed by
        then (the dashboard waits for it), nothing can be printed, and a training thread
        that missed its stop must not keep a process with no terminal alive."""
        try:
            return super().run(*args, **kwargs)
        finally:
            if self.lost_terminal:
                os._exit(self.return_code or 0)

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, or on Linux/macOS one that survives losing the terminal."""
        driver = super().get_driver_class()
        return HangupSafeDriver if driver is LinuxDriver else driver

    def _hangup_signal(self, signum: int, frame: FrameType | None) -> None:
        """Runs between two bytecodes of the main thread: takes no lock, only flags."""
        if isinstance(self._driver, HangupSafeDriver):
            self._driver.mark_lost()  # drops output at once, then calls hang_up on the loop
        else:
            if self._loop is not None:  # None before the app runs and after it ends
                self._loop.call_soon_threadsafe(self.hang_up)

    def hang_up(self) -> None:
        """The terminal hung up (SIGHUP, or EIO reading or writing it): nothing can be
        shown or asked any more, so stop the run, as for SIGTERM."""
        if not self.lost_terminal:
            self.lost_terminal = True
            self.shut_down()

    def shut_down(self) -> None:
        """A dropped SSH connection (SIGHUP) or a kill (SIGTERM): stop any run so that its
        log gets its end event, then exit without asking."""
        for dashboard in self.live_runs():
            dashboard.shutdown()
        self.exit()

    def action_runs(self) -> None:
        """ctrl+r on the setup screen and the dashboard: the runs screen."""
        if not isinstance(self.screen, RunsScreen):
            self.push_screen(RunsScreen(self.runs))

    def action_lessons(self) -> None:
        """ctrl+l on the setup screen (and `nntui --lessons`): the list of lessons."""
        from nnlib.datasets import available

        from .lessons import LessonError, lang_from_env, load_all
        from .screens.lessons import LessonsScreen

        try:
            lessons = load_all()
        except LessonError as error:
            self.notify(str(error), title="Cannot open the lessons", severity="error")
            return
        datasets = self.datasets if self.datasets is not None else available(self.config.data_dir)
        self.push_screen(LessonsScreen(lessons, self.lang or lang_from_env(), datasets))

    def on_start_run(self, message: StartRun) -> None:
        self.push_dashboard(message.config, start_paused=message.start_paused)

    # -- size ---------------------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        # The first Resize comes before on_mount has pushed the setup screen (which then
        # checks the size itself); a notice pushed now would end up buried under it.
        if len(self.screen_stack) > 1:
            self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen(MIN_SIZE))
        elif showing and not small:
            self.pop_screen()

    # -- keys everywhere -------------------------------------------------------------------------
    def dashboards(self) -> list[DashboardScreen]:
        """The dashboards on the stack, without importing their module to look (when it
        was never imported, none was ever shown)."""
        module = sys.modules.get("nntui.screens.dashboard")
        if module is None:
            return []
        return [s for s in self.screen_stack if isinstance(s, module.DashboardScreen)]

    def live_runs(self) -> list[DashboardScreen]:
        return [s for s in self.dashboards() if s.running]

    async def action_quit(self) -> None:
        """Every way to quit that Textual offers (the palette's "Quit" among them) asks
        first while a run is in progress, as `q` does."""
        self.action_request_quit()

    def action_request_quit(self) -> None:
        """Quit; while a run is in progress, ask first (the run is then stopped and its log
        closed before the app exits)."""
        if not self.live_runs():
            self.exit()
            return
        if self._quit_question is not None:  # pressed again while it asks
            return

        def answer(quit_now: bool | None) -> None:
            self._quit_question = None
            if quit_now:
                for dashboard in self.live_runs():
                    dashboard.shutdown()
                self.exit()

        self._quit_question = ConfirmScreen(
            "A run is in progress. Stop it and quit?\n(its log is closed and kept)", yes="Quit"
        )
        self.push_screen(self._quit_question, answer)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a notification as plain text, whatever the caller asks: messages here carry
        specs, file names and exception text (`[stride=1]`, `exp[bold].toml`), which must
        show as typed and must not crash the app as bad markup. Every `notify` in the app,
        a widget's included, ends here; `markup` is accepted for Textual's signature (a
        widget's notify passes it on) and ignored."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = [(key, description) for key, description, _, _ in screen_keys(self.screen)]
        title = getattr(self.screen, "HELP_TITLE", None) or (
            "dashboard" if self.screen in self.dashboards() else "setup"
        )
        self.push_screen(HelpScreen(title, keys))
