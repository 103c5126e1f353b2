"""The run's time axis: every update of the run's stream the dashboard folded (its records,
`nntui.stream`), in order, so that any earlier moment can be shown again, as it was.

The state after the first n updates is, by definition, the fold of those updates
(`RunState.apply`, the same fold the live state grows by). Folding a whole long run for every
key press would be slow, so a copy of the state is saved every `every` updates: `state_at(n)`
copies the nearest saved state at or before n and folds the few updates after it.
Importable without Textual (the dashboard and the benchmarks share it).

Bounded: consecutive `Batches` (batch records and nothing a view draws between them) are
joined into one update, which folds to the same state; past `max_points` batch records the
older updates keep every other record, as the curves' own series do past their cap
(`runstate.Decimated`), so a scrubbed curve may then be a little sparser than the live one
was at that step.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from .runstate import RunState
from .stream import Batches, Rewound, Update, joined

#: Records between two saved states: a jump folds at most this many. Measured on a
#: 1,000-epoch spirals run (benchmarks/bench_scrub.py): 128 keeps a jump near 1 ms and the
#: saved states near 30 kB each.
SAVE_EVERY = 128
#: Batch records kept over the whole run before the older ones are thinned: a batch record
#: with its optimizer's values measured 1.0 kB live and 1.3 kB read back, against 216 B for
#: the bare curve point kept before, so this holds about the 108 MB that 500,000 points took.
MAX_POINTS = 80_000


class History:
    """The updates of one run (since its latest rewind) and saved states along them."""

    def __init__(
        self,
        make: Callable[[], RunState],
        every: int = SAVE_EVERY,
        max_points: int = MAX_POINTS,
    ) -> None:
        """`make` builds the empty state a fold starts from (the dashboard's dataset and
        architecture, before anything is known)."""
        self._make = make
        self.every = every
        self.max_points = max_points
        self._clear()

    def _clear(self) -> None:
        self.records: list[Update] = []
        self.steps: list[int] = []  # the step each record happened at
        self._head = self._make()  # the fold of every record
        self._saved: list[RunState] = [self._head.copy()]  # after 0, every, 2*every, ...
        self._points = 0
        self._stops: list[int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def record(self, update: Update) -> None:
        """Add the next update of the run (a Rewound starts the run again: the history of
        what it superseded goes)."""
        if isinstance(update, Rewound):
            self._clear()
            return
        self._head.apply(update)
        self._stops = None
        step = getattr(update, "step", None)
        step = step if isinstance(step, int) else (self.steps[-1] if self.steps else 0)
        self._keep(update, step)
        if isinstance(update, Batches):
            self._points += len(update.records)
            if self._points > self.max_points:
                self._thin()

    def _keep(self, update: Update, step: int) -> None:
        """Keep `update` (folded into the head already) at `step`: joined to the last update
        when both are batches and no state was saved after the last (fewer updates to fold
        and to step through), else after it, with the state saved every `every` updates."""
        last = self.records[-1] if self.records else None
        if (
            isinstance(update, Batches)
            and isinstance(last, Batches)
            and len(self.records) % self.every  # no state was saved after `last`
        ):
            self.records[-1], self.steps[-1] = joined(last, update), step
            return
        self.records.append(update)
        self.steps.append(max(step, self.steps[-1]) if self.steps else step)
        if len(self.records) % self.every == 0:
            self._saved.append(self._head.copy())

    def _thin(self) -> None:
        """Keep every other batch record of every update (the last one of each, so the
        latest value at each update stays what it was)."""
        self._points = 0
        for index, update in enumerate(self.records):
            if isinstance(update, Batches):
                if len(update.records) > 1:
                    update = Batches(update.records[::-1][::2][::-1])
                    self.records[index] = update
                self._points += len(update.records)

    def state_at(self, n: int) -> RunState:
        """The run as it was after its first `n` records (a state of its own: folding into
        it changes nothing here)."""
        if not 0 <= n <= len(self.records):
            raise IndexError(f"history position {n} is outside 0..{len(self.records)}")
        if n == len(self.records):
            return self._head.copy()
        base = n // self.every
        state = self._saved[base].copy()
        for record in self.records[base * self.every : n]:
            state.apply(record)
        return state

    def step_at(self, n: int) -> int:
        """The step of the latest of the first `n` records (0 before any)."""
        return self.steps[n - 1] if n > 0 else 0

    @property
    def stops(self) -> list[int]:
        """The positions worth showing, in order: after the last record of each step (what
        a run stopped at that step would have shown)."""
        if self._stops is None:
            steps = self.steps
            self._stops = [
                i + 1 for i in range(len(steps)) if i + 1 == len(steps) or steps[i + 1] > steps[i]
            ]
        return self._stops

    def stop_after(self, n: int, count: int = 1) -> int:
        """The position `count` stops after n (before it, for a negative count), within the
        first and the last stop; n itself when there is none."""
        stops = self.stops
        if not stops:
            return n
        if count > 0:
            index = bisect.bisect_right(stops, n) + count - 1
        else:
            index = bisect.bisect_left(stops, n) + count
        return stops[min(max(index, 0), len(stops) - 1)]

    def position_of(self, step: int) -> int:
        """The position after the last record at or before `step`."""
        return bisect.bisect_right(self.steps, step)


#: A history played at speed ×1 takes about this many seconds, however long the run...
PLAY_SPAN = 20.0
#: ...but shows at most this many steps a second (a short run's steps stay visible).
PLAY_MIN_RATE = 10.0
#: The play speeds `<` and `>` step through, as multiples of that.
PLAY_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class Player:
    """How far a history being played moves at each tick: its `stops` in about PLAY_SPAN
    seconds at ×1 (a 1,000-epoch run as watchable as a 3-epoch one), in whole stops, the
    fractions carried to the next tick."""

    def __init__(self, stops: int, speed: float = 1.0) -> None:
        self.stops = stops
        self.speed = speed
        self._carry = 0.0

    @property
    def rate(self) -> float:
        """Stops a second."""
        return max(self.stops / PLAY_SPAN, PLAY_MIN_RATE) * self.speed

    def advance(self, seconds: float) -> int:
        """The stops to move on after `seconds` more of playing."""
        self._carry += self.rate * seconds
        count = int(self._carry)
        self._carry -= count
        return count

    def change(self, direction: int) -> bool:
        """The next faster (or slower, for a negative direction) of PLAY_SPEEDS; False at
        the end of them."""
        index = PLAY_SPEEDS.index(self.speed) + (1 if direction > 0 else -1)
        if not 0 <= index < len(PLAY_SPEEDS):
            return False
        self.speed = PLAY_SPEEDS[index]
        return True

    def describe(self) -> str:
        """'×2: the whole run in 10 s', for the status line and notices."""
        return f"×{self.speed:g}: the whole run in {self.stops / self.rate:.3g} s"
