"""A random sweep on a Dask LocalCluster: two worker processes on 127.0.0.1, started and
stopped by the test itself (no outside network). The same driver path as the local one:
only the executor differs (`Client.get_executor()`)."""

from __future__ import annotations

import json

import pytest

from nnlib import runs
from nnlib.sweeps import create_sweep, load_sweep, run_sweep

distributed = pytest.importorskip(
    "dask.distributed",
    reason="Dask is an optional extra (pip install 'nntui[cluster]'); CI installs it",
)

SWEEP = """
dataset = "spirals"
arch = "2-16-16-3"
epochs = 3
batch_size = 32
histogram_every = 1000

[sweep]
method = "random"
trials = 4
seed = 7
metric = "val_loss"
[sweep.params]
lr = { min = 0.001, max = 0.3, log = true }
batch_size = [16, 32, 64]
"""


def test_a_random_sweep_of_four_on_a_local_dask_cluster(tmp_path):
    (tmp_path / "sweep.toml").write_text(SWEEP)
    spec = load_sweep(tmp_path / "sweep.toml")
    folder = create_sweep(spec, tmp_path / "sweep")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        lines: list[str] = []
        index = run_sweep(folder, scheduler=cluster.scheduler_address, report=lines.append)
    assert "Dask at tcp://127.0.0.1:" in lines[0] and "2 at a time" in lines[0]
    trials = index["trials"]
    assert [t["params"] for t in trials] == list(spec.trials)  # the seeded draws, in order
    assert all(0.001 <= t["params"]["lr"] <= 0.3 for t in trials)
    for trial in trials:
        assert trial["state"] == "finished", trial
        events = runs.read(folder / trial["run"])
        assert events[-1].type == "end" and events[-1]["reason"] == "finished"
        logged = [e["val_loss"] for e in events if e.type == "epoch"]
        assert trial["metric"] == min(logged)
    assert all(t["host"] for t in trials)  # each trial says which worker host ran it
    best = min(trials, key=lambda t: t["metric"])
    assert index["best"] == best["index"]
    assert json.loads((folder / "sweep.json").read_text())["best"] == best["index"]
