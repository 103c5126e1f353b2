"""How much memory this process may still allocate, and byte counts as people read them:
below every module that checks a size before allocating (model files, datasets, arrays)."""

from __future__ import annotations

import math
import os
import sys

#: What a memory check assumes is free where the system does not say (no /proc/meminfo, no
#: sysconf): a modest laptop's worth.
FALLBACK_AVAILABLE_BYTES = 4 * 2**30

#: Where Linux reports the memory that can be allocated without swapping.
MEMINFO = "/proc/meminfo"


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB". Integers of any size are fine (the estimate for a refused model
    can exceed what a float holds)."""
    if count < 1024:
        return f"{count:.0f} B"
    if count >= 1024**6:
        return "more than 1 EiB"
    power = 1
    while count >= 1024 ** (power + 1):
        power += 1
    return f"{count / 1024**power:.1f} {'KMGTP'[power - 1]}iB"


def human_count(count: int) -> str:
    """1234567 -> "1,234,567"; a count too long to read (or to print) as "about 10^40"."""
    if count < 10**15:
        return f"{count:,}"
    return f"about 10^{int(count.bit_length() * math.log10(2))}"


def available_memory() -> tuple[int, str]:
    """Bytes this process can still allocate, and where that figure comes from:
    MemAvailable on Linux, else the free physical pages, else an assumed 4 GiB."""
    try:
        with open(MEMINFO, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, f"MemAvailable in {MEMINFO}"
    except (OSError, ValueError, IndexError):
        pass
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        if free > 0:
            return free, "free physical memory reported by sysconf"
    except (AttributeError, OSError, ValueError):
        pass
    return FALLBACK_AVAILABLE_BYTES, "assumed; this system does not report its free memory"


#: Where Linux reports this process's memory in pages (size, resident, ...).
STATM = "/proc/self/statm"


def process_memory() -> tuple[int | None, int | None]:
    """This process's resident memory now and at its peak, in bytes (the system metrics of
    a run); None for what the system does not say. Now: /proc/self/statm (Linux). Peak:
    getrusage's ru_maxrss (KiB on Linux, bytes on macOS; no `resource` on Windows), never
    below now."""
    current = peak = None
    try:
        with open(STATM, "rb") as handle:
            current = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource  # not on Windows

        unit = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit or None
    except (ImportError, OSError, ValueError):
        pass
    if current is not None:
        peak = max(peak or 0, current)
    return current, peak
