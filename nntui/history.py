"""The run's time axis: every snapshot the dashboard folded, in order, so that any earlier
moment can be shown again, as it was.

The state after the first n snapshots is, by definition, the fold of those snapshots
(`RunState.apply`). Folding a whole long run for every key press would be slow, so a copy of
the state is saved every `every` records: `state_at(n)` copies the nearest saved state at or
before n and folds the few records after it. Importable without Textual (the dashboard and
the benchmarks share it).

Bounded: consecutive Progress snapshots (batch points and nothing a view draws between
them) are merged into one record, which folds to the same state; past `max_points` batch
points the older records keep every other point, as the curves' own series do past their
cap (`runstate.Decimated`), so a scrubbed curve may then be a little sparser than the live
one was at that step.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable

from .bridge import Progress, Rewound, Snapshot
from .runstate import RunState

#: Records between two saved states: a jump folds at most this many. Measured on a
#: 1,000-epoch spirals run (benchmarks/bench_scrub.py): 128 keeps a jump near 1 ms and the
#: saved states near 30 kB each.
SAVE_EVERY = 128
#: Batch points kept over the whole run before the older records are thinned.
MAX_POINTS = 500_000


def merged(first: Progress, second: Progress) -> Progress:
    """One Progress that folds as `first` then `second` do: the second's position and
    values, the points of both."""
    return dataclasses.replace(second, points=first.points + second.points)


class History:
    """The snapshots of one run (since its latest rewind) and saved states along them."""

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
        self.records: list[Snapshot] = []
        self.steps: list[int] = []  # the step each record happened at
        self._head = self._make()  # the fold of every record
        self._saved: list[RunState] = [self._head.copy()]  # after 0, every, 2*every, ...
        self._points = 0
        self._stops: list[int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def record(self, snapshot: Snapshot) -> None:
        """Add the next snapshot of the run (a Rewound starts the run again: the history of
        what it superseded goes)."""
        if isinstance(snapshot, Rewound):
            self._clear()
            return
        self._head.apply(snapshot)
        self._stops = None
        step = getattr(snapshot, "step", None)
        step = step if isinstance(step, int) else (self.steps[-1] if self.steps else 0)
        last = self.records[-1] if self.records else None
        if (
            isinstance(snapshot, Progress)
            and isinstance(last, Progress)
            and len(self.records) % self.every  # no state was saved after `last`
        ):
            self.records[-1], self.steps[-1] = merged(last, snapshot), step
        else:
            self.records.append(snapshot)
            self.steps.append(max(step, self.steps[-1]) if self.steps else step)
            if len(self.records) % self.every == 0:
                self._saved.append(self._head.copy())
        if isinstance(snapshot, Progress):
            self._points += len(snapshot.points)
            if self._points > self.max_points:
                self._thin()

    def _thin(self) -> None:
        """Keep every other batch point of every record (the last one of each, so the
        latest value at each record stays what it was)."""
        self._points = 0
        for index, record in enumerate(self.records):
            if isinstance(record, Progress) and len(record.points) > 1:
                kept = record.points[::-1][::2][::-1]
                self.records[index] = dataclasses.replace(record, points=kept)
            if isinstance(record, Progress):
                self._points += len(record.points)

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
