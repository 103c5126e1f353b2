"""Where the dashboard's time axis stands on a run's history, and how its keys move it: `,`
and `.` a stop at a time, PgUp and PgDn a tenth of the run, Home to the first step, End back
to now, and a run that has ended played from a step to its end. Only the positions: the
screen binds the keys, runs the play timer and draws the state given here, so this logic is
tested without an app. Importable without Textual."""

from __future__ import annotations

from .history import History, Player
from .runstate import RunState

#: PgUp and PgDn move the time axis by this fraction of the run's steps.
SCRUB_PAGE = 0.1


class TimeAxis:
    """A position on a run's `history` (None: now, the live state) and the player that moves
    it on while a run that has ended is played. A method that moves returns the position to
    show, or None when nothing is recorded yet (there is nowhere to go)."""

    def __init__(self, history: History) -> None:
        self.history = history
        #: The position shown: after this many updates of the history (None: now).
        self.at: int | None = None
        #: How the history is played (its speed is kept from one play to the next).
        self.player = Player(0)

    def seek(self, position: int | None) -> None:
        """Stand at `position`; the latest position (or None) is now, which goes on growing."""
        self.at = None if position is None or position >= len(self.history) else position

    def moved(self, count: int) -> int | None:
        """`count` stops on from here, back for a negative count (`,` and `.`)."""
        if not len(self.history):
            return None
        here = len(self.history) if self.at is None else self.at
        return self.history.stop_after(here, count)

    def paged(self, fraction: float) -> int | None:
        """A `fraction` of the run's stops on (back, if negative), one stop at least."""
        count = max(round(len(self.history.stops) * abs(fraction)), 1)
        return self.moved(count if fraction > 0 else -count)

    def first(self) -> int | None:
        """The run's first step (Home)."""
        stops = self.history.stops
        return stops[0] if stops else None

    @property
    def step(self) -> int | None:
        """The training step shown (None: now)."""
        return None if self.at is None else self.history.step_at(self.at)

    def shown(self, live: RunState) -> RunState:
        """The state the panels draw: the run as it was at the position, or `live` now."""
        return live if self.at is None else self.history.state_at(self.at)

    def label(self, state: RunState, playing: bool) -> str | None:
        """What the status line says instead of the run's state: `at step 1234 (epoch 56)`,
        and the speed while the history plays; None at now. `state` is the one shown."""
        if self.at is None:
            return None
        progress = state.progress
        epoch = ""
        if progress:
            number = progress.epoch + 1
            epoch = f" (epoch {min(number, progress.epochs) if progress.epochs else number})"
        text = f"at step {self.step}{epoch}"
        return f"{text} ▶ ×{self.player.speed:g}" if playing else text

    def play(self) -> None:
        """Start playing the history as it is now, at the speed the last play had."""
        self.player = Player(len(self.history.stops), self.player.speed)

    def tick(self, seconds: float) -> int | None:
        """The stops to move on after `seconds` more of playing; None once the position is
        now (the end reached, or End pressed): the play is over."""
        return None if self.at is None else self.player.advance(seconds)

    def change_speed(self, direction: int) -> str:
        """The next faster (or, for a negative direction, slower) play speed, and what to
        say about it."""
        self.player.stops = len(self.history.stops)
        changed = self.player.change(direction)
        speed = self.player.describe()
        edge = "fastest" if direction > 0 else "slowest"
        return f"play speed {speed}" if changed else f"already the {edge}: {speed}"
