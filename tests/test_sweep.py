"""Sweeps on local worker processes: the grid, the index and the ranking, a failing trial,
median stopping, a real Ctrl+C to `nnlib sweep` and --resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import default_signals
from rich.console import Console

from nnlib import runs
from nnlib.config import ConfigError
from nnlib.sweeps import create_sweep, load_sweep, median_table, read_index, run_sweep
from nnlib.sweeps.driver import write_index
from nnlib.sweeps.report import best_line, ranking_table
from nnlib.sweeps.trial import INDEX_FILE, SHARED_STORAGE, TrialTask, run_trial

TIMEOUT = 180  # seconds; a bound on waits that normally take a few

BASE = """
dataset = "spirals"
arch = "2-16-16-3"
epochs = 4
batch_size = 32
histogram_every = 1000
"""


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + text)
    return path


def run_in(tmp_path: Path, text: str, workers: int = 2) -> tuple[Path, dict]:
    folder = create_sweep(load_sweep(sweep_file(tmp_path, text)), tmp_path / "sweep")
    lines: list[str] = []
    index = run_sweep(folder, workers=workers, report=lines.append)
    assert lines[0].startswith(f"sweep: {folder}")
    return folder, index


def end_event(run_dir: Path) -> runs.Event:
    events = runs.read(run_dir)
    assert events[0].type == "run_start" and events[-1].type == "end"
    return events[-1]


def test_a_grid_of_four_on_two_workers_writes_runs_an_index_and_a_ranking(tmp_path):
    folder, index = run_in(
        tmp_path,
        """
[sweep]
method = "grid"
metric = "val_accuracy"
[sweep.params]
lr = [0.003, 0.1]
batch_size = [16, 64]
""",
    )
    assert index == read_index(folder)  # what was returned is what is on disk
    assert index["state"] == "finished"
    trials = index["trials"]
    assert [t["params"] for t in trials] == [
        {"lr": 0.003, "batch_size": 16},
        {"lr": 0.003, "batch_size": 64},
        {"lr": 0.1, "batch_size": 16},
        {"lr": 0.1, "batch_size": 64},
    ]
    for trial in trials:
        assert trial["state"] == "finished" and trial["epochs"] == 4, trial
        run_dir = folder / trial["run"]
        # an ordinary run directory: the log, the checkpoints, the rerunnable experiment
        assert end_event(run_dir)["reason"] == "finished"
        assert {"best.npz", "model.npz", "experiment.toml", "config.json"} <= {
            p.name for p in run_dir.iterdir()
        }
        config = json.loads((run_dir / "config.json").read_text())
        assert (config["lr"], config["batch_size"]) == (
            trial["params"]["lr"],
            trial["params"]["batch_size"],
        )
        # the metric is the best epoch's validation accuracy in the run's own log
        logged = [e["val_accuracy"] for e in runs.read(run_dir) if e.type == "epoch"]
        assert trial["metric"] == max(logged) and trial["curve"] == logged
        assert trial["best_epoch"] == logged.index(max(logged))
    by_metric = sorted(trials, key=lambda t: (-t["metric"], t["index"]))
    assert index["best"] == by_metric[0]["index"]
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(ranking_table(index))
    rows = [line for line in console.export_text().splitlines() if "trial-" in line]
    assert [row.split()[3] for row in rows] == [t["run"] for t in by_metric]
    assert best_line(index, str(folder)).startswith(f"best: {by_metric[0]['run']}  val_accuracy")


def test_a_failing_trial_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    folder, index = run_in(
        tmp_path,
        """
[sweep]
method = "grid"
[sweep.params]
lr = [0.05, 1e6]
arch = ["2-16-3", "2-16-5"]
""",
    )
    states = {(t["params"]["lr"], t["params"]["arch"]): t for t in index["trials"]}
    assert states[(0.05, "2-16-3")]["state"] == "finished"
    diverged = states[(1e6, "2-16-3")]
    assert diverged["state"] == "failed" and diverged["reason"] == "diverged"
    assert "NaN or infinite" in diverged["error"]
    assert end_event(folder / diverged["run"])["reason"] == "diverged"
    for lr in (0.05, 1e6):  # 5 outputs for 3 classes: refused before training, named
        wrong = states[(lr, "2-16-5")]
        assert wrong["state"] == "failed" and "dense(3)" in wrong["error"], wrong
    assert index["best"] == states[(0.05, "2-16-3")]["index"]
    assert index["state"] == "finished"


def test_median_stopping_prunes_a_trial_behind_the_finished_ones(tmp_path):
    # One worker: the slow-learning trial starts after the good one finished, so its median
    # table holds the good trial's curve.
    folder, index = run_in(
        tmp_path,
        """
[sweep]
method = "grid"
metric = "val_loss"
[sweep.params]
lr = [0.1, 0.00001]
[sweep.early_stop]
after = 2
min_trials = 1
""",
        workers=1,
    )
    good, slow = index["trials"]
    assert good["state"] == "finished" and good["epochs"] == 4
    assert slow["state"] == "pruned" and slow["epochs"] == 2, slow
    events = runs.read(folder / slow["run"])
    pruned = [e for e in events if e.type == "pruned"]
    assert len(pruned) == 1 and pruned[0]["epoch"] == 1 and pruned[0]["monitor"] == "val_loss"
    assert pruned[0]["value"] > pruned[0]["median"]
    assert events[-1]["reason"] == "early_stop"
    assert index["best"] == good["index"]


def test_median_table_takes_finished_trials_best_so_far_per_epoch():
    index = {
        "spec": {"direction": "min"},
        "trials": [
            {"state": "finished", "curve": [3.0, 1.0, 2.0]},
            {"state": "finished", "curve": [5.0, 4.0]},
            {"state": "finished", "curve": [1.0, None, 9.0, 0.5]},
            {"state": "pruned", "curve": [0.0, 0.0]},  # not a finished trial: left out
            {"state": "failed", "curve": [0.0]},
        ],
    }
    assert median_table(index, min_trials=1) == (3.0, 1.0, 1.0, 0.5)
    assert median_table(index, min_trials=2) == (3.0, 1.0, 1.0, None)
    assert median_table(index, min_trials=3) == (3.0, 1.0, None, None)


def test_resume_reruns_only_the_trials_that_did_not_finish_in_new_run_dirs(tmp_path):
    folder, index = run_in(
        tmp_path,
        """
[sweep]
method = "grid"
[sweep.params]
lr = [0.01, 0.05, 0.1]
""",
    )
    first = (folder / "trial-000" / "events.jsonl").read_bytes()
    index["trials"][1]["state"] = "interrupted"
    index["trials"][2]["state"] = "running"  # the driver died before it heard back
    index["state"] = "interrupted"
    write_index(folder, index)
    resumed = run_sweep(folder, workers=2, report=lambda line: None)
    assert [t["state"] for t in resumed["trials"]] == ["finished"] * 3
    assert [t["run"] for t in resumed["trials"]] == ["trial-000", "trial-001.2", "trial-002.2"]
    assert [t["attempts"] for t in resumed["trials"]] == [1, 2, 2]
    assert (folder / "trial-000" / "events.jsonl").read_bytes() == first  # left alone
    assert end_event(folder / "trial-001")["reason"] == "finished"  # the old attempt is kept
    assert end_event(folder / "trial-001.2")["reason"] == "finished"
    assert resumed["state"] == "finished"


def test_a_worker_that_cannot_see_or_write_the_sweep_folder_fails_the_trial_saying_so(tmp_path):
    config = {"dataset": "spirals", "epochs": 1, "run_dir": str(tmp_path / "t")}
    unseen = run_trial(TrialTask(str(tmp_path), 0, "t", config, "loss", "min"))
    assert unseen.state == "failed"
    assert INDEX_FILE in unseen.error and SHARED_STORAGE in unseen.error
    (tmp_path / INDEX_FILE).write_text("{}")
    (tmp_path / "t").write_text("a file where the run directory should go")
    unwritable = run_trial(TrialTask(str(tmp_path), 0, "t", config, "loss", "min"))
    assert unwritable.state == "failed"
    assert "cannot be used as a run directory" in unwritable.error
    assert SHARED_STORAGE in unwritable.error


def test_a_sweep_folder_is_never_reused(tmp_path):
    spec = load_sweep(sweep_file(tmp_path, "[sweep]\n[sweep.params]\nlr = [0.1]\n"))
    folder = create_sweep(spec, tmp_path / "s")
    before = (folder / INDEX_FILE).read_bytes()
    with pytest.raises(ConfigError, match="never reused.*--resume"):
        create_sweep(spec, folder)
    assert (folder / INDEX_FILE).read_bytes() == before


# -- the command ------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path_factory):
    environment = dict(os.environ)
    environment["NNLIB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    environment.pop("NNLIB_RUNS_DIR", None)
    return environment


def start(tmp_path: Path, env: dict, *args: str) -> subprocess.Popen:
    """`nnlib sweep ...` in its own process group, as a terminal's foreground job is."""
    return subprocess.Popen(
        [sys.executable, "-m", "nnlib.cli", "sweep", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )


def wait_for_batches(process: subprocess.Popen, run_dirs: list[Path]) -> None:
    """Until every run in `run_dirs` has logged a batch (bounded; fails on an early exit)."""
    for _ in range(TIMEOUT * 50):
        if all(
            (d / "events.jsonl").exists() and '"type":"batch"' in (d / "events.jsonl").read_text()
            for d in run_dirs
        ):
            return
        try:
            process.wait(timeout=0.02)
            pytest.fail(f"nnlib sweep exited early: {process.communicate()}")
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    pytest.fail(f"no batch logged in {run_dirs}")


def ctrl_c(process: subprocess.Popen) -> str:
    """SIGINT to the whole process group (driver and workers), as Ctrl+C in a terminal."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    return stderr


def test_ctrl_c_stops_the_running_trials_cleanly_and_resume_continues(tmp_path, env):
    (tmp_path / "endless.toml").write_text(
        BASE.replace("epochs = 4", "epochs = 100000").replace("batch_size = 32", "batch_size = 1")
        + "[sweep]\n[sweep.params]\nlr = [0.01, 0.02, 0.03]\n"
    )
    folder = tmp_path / "s"
    process = start(tmp_path, env, "endless.toml", "--workers", "2", "--sweep-dir", "s")
    wait_for_batches(process, [folder / "trial-000", folder / "trial-001"])
    stderr = ctrl_c(process)
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted (SIGINT); continue with: nnlib sweep --resume {folder.resolve()}"
    )
    index = read_index(folder)
    assert index["state"] == "interrupted"
    assert [t["state"] for t in index["trials"]] == ["interrupted", "interrupted", "pending"]
    for name in ("trial-000", "trial-001"):  # logs closed: an end event, the writer lock freed
        assert end_event(folder / name)["reason"] == "interrupted"
        assert not runs.writer_alive(folder / name)
        assert (folder / name / "model.npz").exists()
    assert not (folder / "stop.request").exists()

    process = start(tmp_path, env, "--resume", "s", "--workers", "2")
    wait_for_batches(process, [folder / "trial-000.2", folder / "trial-001.2"])
    ctrl_c(process)
    index = read_index(folder)
    assert [t["run"] for t in index["trials"]] == ["trial-000.2", "trial-001.2", None]
    assert [t["attempts"] for t in index["trials"]] == [2, 2, 0]
    assert end_event(folder / "trial-000")["reason"] == "interrupted"  # the first attempt kept


def test_the_command_prints_the_ranking_and_names_the_best(tmp_path, env):
    (tmp_path / "s.toml").write_text(
        BASE + '[sweep]\nmetric = "val_accuracy"\n[sweep.params]\nlr = [0.003, 0.1]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "nnlib.cli", "sweep", "s.toml", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    [folder] = (tmp_path / "runs").iterdir()
    index = read_index(folder)
    best = index["trials"][index["best"]]
    assert f"best: {best['run']}  val_accuracy {best['metric']:.4f}" in done.stderr
    assert "trial-000" in done.stdout and "trial-001" in done.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "give a SWEEP.toml file, or --resume"),
        (("missing.toml",), "missing.toml: no such config file"),
        (("--resume", "nowhere"), "nowhere: not a sweep folder"),
        (("bad.toml",), "params.lr[1]: lr must be a positive number, got -1"),
        (("s.toml", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1"), "Dask"),
    ],
)
def test_bad_arguments_are_one_line_with_exit_2(tmp_path, env, args, words):
    (tmp_path / "bad.toml").write_text(BASE + "[sweep]\n[sweep.params]\nlr = [0.1, -1]\n")
    (tmp_path / "s.toml").write_text(BASE + "[sweep]\n[sweep.params]\nlr = [0.1]\n")
    done = subprocess.run(
        [sys.executable, "-m", "nnlib.cli", "sweep", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr


def test_the_shipped_example_sweep_file_plans_six_trials():
    """examples/sweep.toml, named in the README, is a valid sweep file on a built-in set."""
    from pathlib import Path

    from nnlib.sweeps.spec import load_sweep

    example = Path(__file__).resolve().parent.parent / "examples" / "sweep.toml"
    sweep = load_sweep(example)
    assert sweep.base.dataset == "spirals" and len(sweep.trials) == 6
    assert {trial["lr"] for trial in sweep.trials} == {0.01, 0.05, 0.2}
