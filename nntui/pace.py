"""The paces the dashboard's < and > hold a run to, and the next one in either direction.
Textual-free, so the steps are tested without an app; the run applies a pace through its
control (nnlib's 'pace' command) and words it with `nnlib.events.pace_text`."""

from __future__ import annotations

import bisect
import math

#: The paces < and > step through, slowest first, in epochs per second (None: full speed).
PACE_STEPS: tuple[float | None, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, None)


def next_pace(pace: float | None, direction: int) -> int | None:
    """The index in PACE_STEPS of the next slower (direction < 0) or faster pace than `pace`
    (None: full speed, the fastest); None past the slowest or the fastest."""
    speeds = [math.inf if step is None else step for step in PACE_STEPS]  # ascending
    current = math.inf if pace is None else pace
    if direction < 0:
        index = bisect.bisect_left(speeds, current) - 1  # the last slower one
    else:
        index = bisect.bisect_right(speeds, current)  # the first faster one
    return index if 0 <= index < len(speeds) else None
