"""A random sweep on a Dask LocalCluster: two worker processes on 127.0.0.1, started and
stopped by the test itself (no outside network). The same driver path as the local one:
only the executor differs (`Client.get_executor()`). And faults: a worker killed under a
trial, and the scheduler killed under the sweep, each followed by --resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    SWEEP_TIMEOUT,
    attempts_that_finished,
    ended,
    start_sweep,
    wait_for_batches,
    writer_pid,
)

from nnlib import runs
from nnlib.sweeps import create_sweep, load_sweep, read_index, run_sweep

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


# -- faults --------------------------------------------------------------------------------------
LONGER = """
dataset = "spirals"
arch = "2-16-16-3"
epochs = 6
batch_size = 4
histogram_every = 1000

[sweep]
[sweep.params]
lr = [0.01, 0.02, 0.03, 0.04]
"""
needs_proc_locks = pytest.mark.skipif(
    not Path("/proc/locks").is_file(), reason="finds the worker in /proc/locks"
)


@pytest.fixture
def env(tmp_path_factory):
    environment = dict(os.environ)
    environment["NNLIB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    environment.pop("NNLIB_RUNS_DIR", None)
    return environment


def local_cluster() -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


@needs_proc_locks
def test_a_killed_dask_worker_s_trial_runs_again_in_a_new_folder(tmp_path, env):
    # Dask itself reruns the task of a worker that died (on the worker its nanny restarts,
    # or the other): the rerun takes trial-000.2, never the killed attempt's folder.
    (tmp_path / "s.toml").write_text(LONGER)
    folder = tmp_path / "s"
    with local_cluster() as cluster:
        process = start_sweep(
            tmp_path, env, "s.toml", "--scheduler", cluster.scheduler_address, "--sweep-dir", "s"
        )
        wait_for_batches(process, [folder / "trial-000", folder / "trial-001"])
        os.kill(writer_pid(folder / "trial-000"), signal.SIGKILL)
        stderr = ended(process)
    assert process.returncode == 0, stderr
    assert not [word for word in ("failed", "shared", "Traceback") if word in stderr], stderr
    index = read_index(folder)
    assert [t["state"] for t in index["trials"]] == ["finished"] * 4
    assert index["trials"][0]["run"] == "trial-000.2" and index["trials"][0]["attempts"] == 2
    assert runs.read(folder / "trial-000")[-1].type != "end"  # killed: the attempt is kept
    finished = attempts_that_finished(folder)
    assert finished == {t["run"].partition(".")[0]: [t["run"]] for t in index["trials"]}
    before = sorted(p.name for p in folder.iterdir())

    with local_cluster() as cluster:
        address = cluster.scheduler_address
        again = start_sweep(tmp_path, env, "--resume", "s", "--scheduler", address)
        stderr = ended(again)
    assert again.returncode == 0 and "0 of 4 trials to run" in stderr, stderr
    assert sorted(p.name for p in folder.iterdir()) == before


@contextlib.contextmanager
def dask_processes(tmp_path: Path, name: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A `dask scheduler` and a `dask worker` (two processes of one thread) on 127.0.0.1, each in
    a process group of its own, killed at the end; yields the address and the scheduler."""
    scheduler_file = tmp_path / f"{name}.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0", *common,
         "--scheduler-file", str(scheduler_file)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    worker = None
    try:
        with distributed.Client(
            scheduler_file=str(scheduler_file), timeout=f"{SWEEP_TIMEOUT}s"
        ) as client:
            worker = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", *common,
                 "--scheduler-file", str(scheduler_file), "--nworkers", "2", "--nthreads", "1"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            client.wait_for_workers(2, timeout=SWEEP_TIMEOUT)
            address = client.scheduler.address
        yield address, scheduler
    finally:
        for process in (worker, scheduler):
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=SWEEP_TIMEOUT)


def test_a_killed_scheduler_stops_the_sweep_and_resume_runs_what_did_not_finish(tmp_path, env):
    # The trials running when the scheduler dies go on on their workers and finish there:
    # --resume records them from their logs; the two never started run then. Each once.
    (tmp_path / "s.toml").write_text(LONGER)
    folder = tmp_path / "s"
    with dask_processes(tmp_path, "first") as (address, scheduler):
        process = start_sweep(
            tmp_path, env, "s.toml", "--scheduler", address, "--sweep-dir", "s",
            "--connect-timeout", "2",
        )  # fmt: skip
        wait_for_batches(process, [folder / "trial-000", folder / "trial-001"])
        os.killpg(scheduler.pid, signal.SIGKILL)
        stderr = ended(process)
        # the orphaned trials end on their workers (a few seconds; bounded)
        deadline = time.monotonic() + SWEEP_TIMEOUT
        while any(runs.writer_alive(folder / f"trial-00{i}") for i in (0, 1)):
            assert time.monotonic() < deadline, "the orphaned trials did not end"
            time.sleep(0.1)
    assert process.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {folder.resolve()}: the sweep stopped: lost the Dask")
    assert "Traceback" not in stderr, stderr
    assert last.endswith(f"continue with: nnlib sweep --resume {folder.resolve()}")
    index = read_index(folder)
    assert index["state"] == "interrupted"
    assert [t["state"] for t in index["trials"]] == ["lost", "lost", "pending", "pending"]
    assert all(t["error"].startswith("worker lost:") for t in index["trials"][:2])

    with dask_processes(tmp_path, "second") as (address, _):
        again = start_sweep(tmp_path, env, "--resume", "s", "--scheduler", address)
        stderr = ended(again)
    assert again.returncode == 0, stderr
    assert "2 of 4 trials to run" in stderr, stderr
    for name in ("trial-000", "trial-001"):
        assert f"{name} finished while no driver was listening: recorded" in stderr
    index = read_index(folder)
    assert [t["state"] for t in index["trials"]] == ["finished"] * 4
    assert [t["run"] for t in index["trials"]] == [f"trial-00{i}" for i in range(4)]
    assert attempts_that_finished(folder) == {f"trial-00{i}": [f"trial-00{i}"] for i in range(4)}
