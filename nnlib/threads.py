"""How many BLAS threads training uses.

Measured on a 2-core machine (benchmarks/README.md): with another thread or process busy on
a core, OpenBLAS with 2 threads ran LeNet-5 2x and the tutorial CNN 4x slower than with 1;
on an idle machine 2 threads gained only 0-35%. So `Trainer.fit` (and with it the CLI)
defaults to one thread on machines with two cores or fewer, and the TUI — whose UI is always
another busy thread — always trains with one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Final, Literal

#: `Trainer.fit(threads=AUTO)`: the measured policy of `default_blas_threads`.
AUTO: Final = "auto"
#: What `Trainer.fit(threads=...)` takes: AUTO, a thread count, or None (leave BLAS alone).
Threads = int | Literal["auto"] | None


def default_blas_threads() -> int | None:
    """1 on machines with at most two cores, else None (BLAS's own default)."""
    return 1 if (os.cpu_count() or 1) <= 2 else None


def resolve_threads(owner: str, threads: Threads) -> int | None:
    """The BLAS thread count for `threads` (AUTO, a positive int or None); ValueError naming
    `owner` for anything else."""
    if threads == AUTO:
        return default_blas_threads()
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(
            f"{owner}: threads must be 'auto', None or a positive integer, got {threads!r}"
        )
    return threads


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[None]:
    """Limit BLAS to `count` threads inside the block (None: leave BLAS as it is)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield
