"""Sweeps on local worker processes: the grid, the index and the ranking, a failing trial,
median stopping, a real Ctrl+C to `nnlib sweep` and --resume."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import attempts_that_finished, ended, start_sweep, wait_for_batches, writer_pid
from rich.console import Console

from nnlib import runs
from nnlib.cli import main
from nnlib.config import ConfigError
from nnlib.sweeps import create_sweep, driver, load_sweep, median_table, read_index, run_sweep
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
lr = [0.01, 0.05, 0.1, 0.2]
""",
    )
    logs = {t["run"]: (folder / t["run"] / "events.jsonl").read_bytes() for t in index["trials"]}
    recorded = [dict(t) for t in index["trials"]]
    # The driver died before it heard back: trial 1 had ended on its worker all the same; trial
    # 2's worker was killed (its log has no end); Dask ran trial 3 again, in trial-003.2, after
    # its first worker was killed.
    index["trials"][1].update(state="running", metric=None, curve=[], epochs=0)
    kill(folder / "trial-002")
    shutil.copytree(folder / "trial-003", folder / "trial-003.2")
    kill(folder / "trial-003")
    index["trials"][2]["state"] = "lost"
    index["trials"][3].update(state="lost", metric=None)
    index["state"] = "interrupted"
    write_index(folder, index)
    lines: list[str] = []
    resumed = run_sweep(folder, workers=2, report=lines.append)
    assert lines[:2] == [
        "trial-001 finished while no driver was listening: recorded",
        "trial-003.2 finished while no driver was listening: recorded",
    ]
    assert f"{folder}  1 of 4 trials to run" in lines[2]
    assert [t["state"] for t in resumed["trials"]] == ["finished"] * 4
    assert [t["run"] for t in resumed["trials"]] == [
        "trial-000",
        "trial-001",
        "trial-002.2",
        "trial-003.2",
    ]
    assert [t["attempts"] for t in resumed["trials"]] == [1, 1, 2, 2]
    for i in (1, 3):  # as the trial reported itself (but for the seconds and host)
        mine = {k: v for k, v in resumed["trials"][i].items() if k not in ("seconds", "host")}
        assert mine == {k: v for k, v in recorded[i].items() if k in mine} | {
            "run": mine["run"],
            "attempts": mine["attempts"],
        }
    for name in ("trial-000", "trial-001"):  # left alone
        assert (folder / name / "events.jsonl").read_bytes() == logs[name]
    assert "end" not in {e.type for e in runs.read(folder / "trial-002")}  # the old one kept
    assert end_event(folder / "trial-002.2")["reason"] == "finished"
    assert resumed["state"] == "finished"


def test_resume_refuses_while_a_worker_of_the_last_session_still_runs_a_trial(tmp_path):
    # Running it again would run it twice: the record would then hold one of two runs.
    folder, index = run_in(tmp_path, "[sweep]\n[sweep.params]\nlr = [0.01]\n", workers=1)
    kill(folder / "trial-000")
    index["trials"][0]["state"] = "lost"
    write_index(folder, index)
    lock = runs.WriterLock(folder / "trial-000")
    lock.acquire()  # as the orphaned worker holds it
    try:
        with pytest.raises(ConfigError, match="trial-000: a worker of the sweep's earlier"):
            run_sweep(folder, workers=1, report=lambda line: None)
    finally:
        lock.release()
    assert read_index(folder)["trials"][0]["state"] == "lost"
    assert run_sweep(folder, workers=1, report=lambda line: None)["trials"][0]["run"] == (
        "trial-000.2"
    )


def kill(run_dir: Path) -> None:
    """Make `run_dir` look like a run whose writer was killed: its log loses its end."""
    log = run_dir / "events.jsonl"
    log.write_bytes(log.read_bytes().rstrip(b"\n").rpartition(b"\n")[0] + b"\n")


def test_a_worker_that_cannot_see_or_write_the_sweep_folder_fails_the_trial_saying_so(tmp_path):
    config = {"dataset": "spirals", "epochs": 1}
    unseen = run_trial(TrialTask(str(tmp_path), 0, "t", 1, config, "loss", "min"))
    assert unseen.state == "failed"
    assert INDEX_FILE in unseen.error and SHARED_STORAGE in unseen.error
    (tmp_path / INDEX_FILE).write_text("{}")
    (tmp_path / "t").write_text("a file where the run directory should go")
    unwritable = run_trial(TrialTask(str(tmp_path), 0, "t", 1, config, "loss", "min"))
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
    process = start_sweep(tmp_path, env, "endless.toml", "--workers", "2", "--sweep-dir", "s")
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

    process = start_sweep(tmp_path, env, "--resume", "s", "--workers", "2")
    wait_for_batches(process, [folder / "trial-000.2", folder / "trial-001.2"])
    ctrl_c(process)
    index = read_index(folder)
    assert [t["run"] for t in index["trials"]] == ["trial-000.2", "trial-001.2", None]
    assert [t["attempts"] for t in index["trials"]] == [2, 2, 0]
    assert end_event(folder / "trial-000")["reason"] == "interrupted"  # the first attempt kept


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="finds the worker in /proc/locks")
def test_a_killed_local_worker_loses_only_its_trial_which_runs_again(tmp_path, env):
    # Two workers; the one running trial-000 is SIGKILLed (as the OOM killer would): that
    # trial runs again in trial-000.2, the other worker's trial goes on undisturbed, and
    # --resume then finds nothing to do: every trial finished exactly once.
    (tmp_path / "s.toml").write_text(
        BASE.replace("epochs = 4", "epochs = 6").replace("batch_size = 32", "batch_size = 4")
        + "[sweep]\n[sweep.params]\nlr = [0.01, 0.02, 0.03]\n"
    )
    folder = tmp_path / "s"
    process = start_sweep(tmp_path, env, "s.toml", "--workers", "2", "--sweep-dir", "s")
    wait_for_batches(process, [folder / "trial-000", folder / "trial-001"])
    os.kill(writer_pid(folder / "trial-000"), signal.SIGKILL)
    stderr = ended(process)
    assert process.returncode == 0, stderr
    assert "trial-000 lost its worker (BrokenProcessPool" in stderr
    assert "failed" not in stderr and "Traceback" not in stderr, stderr
    index = read_index(folder)
    assert index["state"] == "finished"
    assert [t["state"] for t in index["trials"]] == ["finished"] * 3
    assert [t["run"] for t in index["trials"]] == ["trial-000.2", "trial-001", "trial-002"]
    assert [t["attempts"] for t in index["trials"]] == [2, 1, 1]
    assert runs.read(folder / "trial-000")[-1].type != "end"  # killed: the attempt is kept
    assert attempts_that_finished(folder) == {
        "trial-000": ["trial-000.2"],
        "trial-001": ["trial-001"],
        "trial-002": ["trial-002"],
    }
    before = sorted(p.name for p in folder.iterdir())

    again = start_sweep(tmp_path, env, "--resume", "s", "--workers", "2")
    stderr = ended(again)
    assert again.returncode == 0 and "0 of 3 trials to run" in stderr, stderr
    assert sorted(p.name for p in folder.iterdir()) == before
    assert read_index(folder)["trials"] == index["trials"]


class LosingWorkers(ThreadPoolExecutor):
    """Runs trials in threads, but every attempt of trial 0 loses its worker."""

    def submit(self, fn, /, *args, **kwargs):
        if args[0].index != 0:
            return super().submit(fn, *args, **kwargs)
        future: Future = Future()
        future.set_exception(BrokenExecutor("the worker died"))
        return future


def test_a_trial_that_loses_its_worker_again_and_again_is_left_for_resume(
    tmp_path, monkeypatch, capsys
):
    @contextlib.contextmanager
    def losing(*args, **kwargs):
        with LosingWorkers(2) as executor:
            yield driver.Workers(executor, 2, "2 threads")

    sweep_file(tmp_path, "[sweep]\n[sweep.params]\nlr = [0.01, 0.02, 0.03]\n")
    with monkeypatch.context() as patched:
        patched.setattr(driver, "executor_for", losing)
        code = main(["sweep", str(tmp_path / "sweep.toml"), "--sweep-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("trial-000") >= driver.MAX_LOST and "failed" not in err
    assert "trial-000.3 lost its worker 3 times: left for --resume" in err
    assert err.strip().splitlines()[-1] == (
        "1 trial(s) did not run to their end (trial-000.3: worker lost: BrokenExecutor: the "
        f"worker died); continue with: nnlib sweep --resume {tmp_path / 's'}"
    )
    index = read_index(tmp_path / "s")
    assert index["state"] == "interrupted"
    assert [t["state"] for t in index["trials"]] == ["lost", "finished", "finished"]
    assert index["trials"][0]["attempts"] == driver.MAX_LOST

    assert main(["sweep", "--resume", str(tmp_path / "s"), "--workers", "1"]) == 0
    index = read_index(tmp_path / "s")
    assert index["state"] == "finished"
    assert [t["state"] for t in index["trials"]] == ["finished"] * 3
    assert index["trials"][0]["run"] == "trial-000.4"
    assert attempts_that_finished(tmp_path / "s") == {
        "trial-000": ["trial-000.4"],
        "trial-001": ["trial-001"],
        "trial-002": ["trial-002"],
    }


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
        (("--resume", ""), "--resume: give the sweep folder, got ''"),
        (("s.toml", "--sweep-dir", ""), "--sweep-dir: give the sweep folder, got ''"),
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


@pytest.mark.parametrize(
    ("stem", "suffix"),
    [
        ("sweep", "-sweep"),
        ("lr-sweep", "-lr-sweep"),
        ("Sweep_lr", "-Sweep_lr"),
        ("lr", "-sweep-lr"),
    ],  # noqa: E501
)
def test_a_new_sweep_folder_is_named_once_as_a_sweep(tmp_path, stem, suffix):
    """Issue 20 item 2: sweep.toml made `<date>-sweep-sweep`; the folder says sweep once."""
    text = '[sweep]\nmethod = "grid"\n[sweep.params]\nlr = [0.1]\n'
    spec = load_sweep(sweep_file(tmp_path, text))
    folder = create_sweep(spec, root=tmp_path / "runs", name=stem)
    assert folder.parent == (tmp_path / "runs").resolve()
    assert re.fullmatch(r"\d{8}-\d{6}" + re.escape(suffix), folder.name), folder.name
