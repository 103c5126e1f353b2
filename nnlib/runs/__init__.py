"""Run logs: every run leaves a directory with `config.json` and an append-only `events.jsonl`
(and `summary.json`, what the runs table shows of the log: see nnlib.runsummary).

Each line of events.jsonl is one JSON object:

    {"v": 2, "type": "epoch", "time": 1763690000.12, "step": 42, ...fields}

`v` is the schema version, `time` Unix seconds, `step` the number of batches completed when
the event happened. Non-finite numbers are written as null. Batch lines are compact: only
what changed since the batch line before (`nnlib.events.BatchLines`), so a log is read in
order (`nnlib.events.Decoder`). Big fields go to the run's side file (`nnlib.arrays`). The
event types, their fields and their encoding are defined once, in `nnlib.events`
(`nnlib.events.reference()` lists them).

One job per module: `layout` (the files of a run directory and a new run's folder), `lock`
(the writer's lock and the end it may hold), `sidefile` (events' big arrays in the side
file), `reading` (read, tail, scan and follow a log) and `logger` (the RunLogger, which
writes it; how it holds and flushes batch lines is told there, with its timings).
"""

from ..events import (
    MAX_INT,
    SCHEMA_VERSION,
    BatchLines,
    Check,
    Decoder,
    Event,
    EventError,
    decode,
    encode,
    make,
    packed_fields,
)
from .layout import (
    CONFIG_FILE,
    EVENTS_FILE,
    LOCK_FILE,
    RUN_FILES,
    SUMMARY_FILE,
    NewRunDir,
    RunDirError,
    RunDirTaken,
    claim_run_dir,
    default_runs_dir,
    log_file,
    new_run_dir,
    reserve_run_dir,
)
from .lock import (
    END_RESERVE,
    HEARTBEAT_SECONDS,
    HEARTBEAT_STALE,
    MAX_RESERVED_ERROR,
    WriterLock,
    unlogged_end,
    writer_alive,
    writer_started,
)
from .logger import RunLogger, versions
from .reading import (
    WRITER_GONE,
    EventTail,
    LogScan,
    RunTail,
    WriterGone,
    continued,
    follow,
    read,
)
from .sidefile import UNREADABLE, has_arrays, resolve_arrays, store_arrays

__all__ = [
    "CONFIG_FILE",
    "END_RESERVE",
    "EVENTS_FILE",
    "HEARTBEAT_SECONDS",
    "HEARTBEAT_STALE",
    "LOCK_FILE",
    "MAX_INT",
    "MAX_RESERVED_ERROR",
    "RUN_FILES",
    "SCHEMA_VERSION",
    "SUMMARY_FILE",
    "UNREADABLE",
    "WRITER_GONE",
    "BatchLines",
    "Check",
    "Decoder",
    "Event",
    "EventError",
    "EventTail",
    "LogScan",
    "NewRunDir",
    "RunDirError",
    "RunDirTaken",
    "RunLogger",
    "RunTail",
    "WriterGone",
    "WriterLock",
    "claim_run_dir",
    "continued",
    "decode",
    "default_runs_dir",
    "encode",
    "follow",
    "has_arrays",
    "log_file",
    "make",
    "new_run_dir",
    "packed_fields",
    "read",
    "reserve_run_dir",
    "resolve_arrays",
    "store_arrays",
    "unlogged_end",
    "versions",
    "writer_alive",
    "writer_started",
]
