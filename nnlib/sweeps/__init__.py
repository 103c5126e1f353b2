"""Hyperparameter and architecture sweeps: `nnlib sweep SWEEP.toml`.

A sweep file (`spec`) names a base experiment and what to vary; the driver (`driver`) runs
each trial as an ordinary run directory inside one sweep folder, on local worker processes or
a Dask cluster, and keeps the folder's index, `sweep.json`; `trial` is what a worker runs.
"""

from __future__ import annotations

from .driver import WorkersLost, create_sweep, median_table, ranked, read_index, run_sweep
from .spec import EarlyStop, SweepError, SweepSpec, load_sweep, parse_sweep

__all__ = [
    "EarlyStop",
    "SweepError",
    "SweepSpec",
    "WorkersLost",
    "create_sweep",
    "load_sweep",
    "median_table",
    "parse_sweep",
    "ranked",
    "read_index",
    "run_sweep",
]
