"""How many BLAS threads training uses.

Measured on a 2-core machine (benchmarks/README.md): with another thread or process busy on
a core, OpenBLAS with 2 threads ran LeNet-5 2x and the tutorial CNN 4x slower than with 1;
on an idle machine 2 threads gained only 0-35%. So the CLI defaults to one thread on
machines with two cores or fewer, and the TUI — whose UI is always another busy thread —
always trains with one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def default_blas_threads() -> int | None:
    """1 on machines with at most two cores, else None (BLAS's own default)."""
    return 1 if (os.cpu_count() or 1) <= 2 else None


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[None]:
    """Limit BLAS to `count` threads inside the block (None: leave BLAS as it is)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield
