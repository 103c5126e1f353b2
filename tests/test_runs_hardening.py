"""Issue 8, run directories and run logs: a run directory is never reused or scattered, an
unusable one is one line, stale temporaries are cleaned, followers learn that a writer died
(a real subprocess killed with SIGKILL), and every malformed line is one EventError naming
file:line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import TIMEOUT, WRITER, run_cli, usage_error

from nnlib import runs
from nnlib._atomic import atomic_write_text, remove_stale_temporaries
from nnlib.callbacks import ModelCheckpoint
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ, NNLIB_DATA_DIR=str(tmp_path / "data"))
    environment.pop("NNLIB_RUNS_DIR", None)
    return environment


def train_cli(cwd, env, run_dir, *extra):
    return run_cli(
        cwd, env, "train", "--dataset", "spirals", "--epochs", "1", "--batch-size", "64",
        "--quiet", "--run-dir", str(run_dir), *extra,
    )  # fmt: skip


def quick(run_dir: Path) -> ExperimentConfig:
    return ExperimentConfig(
        dataset="spirals", arch="2-8-3", epochs=2, batch_size=64, seed=0, run_dir=str(run_dir)
    )


# -- item 12: run directories ---------------------------------------------------------------
def test_reusing_a_run_dir_is_refused_and_the_earlier_run_is_kept(tmp_path, env):
    run_dir = tmp_path / "w" / "x"
    first = train_cli(tmp_path, env, run_dir)
    assert first.returncode == 0, first.stderr
    before = {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert {"best.npz", "model.npz", "config.json", "experiment.toml", "events.jsonl"} <= set(
        {Path(name).name for name in before}
    )
    again = train_cli(tmp_path, env, run_dir)
    line = usage_error(again, "--run-dir", str(run_dir), "already holds a run")
    assert "never reused" in line
    assert {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert [e.type for e in runs.read(run_dir)].count("run_start") == 1


def test_a_run_dir_holding_anything_is_refused_and_left_as_it_is(tmp_path, env):
    # The README: --run-dir names a new or empty folder, else exit 2.
    run_dir = tmp_path / "notes"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    line = usage_error(train_cli(tmp_path, env, run_dir), "--run-dir", "not empty (notes.txt)")
    assert "a new or empty folder" in line
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]
    assert (run_dir / "notes.txt").read_text() == "mine"
    (run_dir / "notes.txt").unlink()
    assert train_cli(tmp_path, env, run_dir).returncode == 0  # empty: taken


def test_braces_in_the_run_dir_are_not_a_template(tmp_path):
    run_dir = tmp_path / "w" / "brace{epoch}{x}"
    experiment = setup(quick(run_dir), checkpoints=True)
    experiment.fit()
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["brace{epoch}{x}"]
    assert {"best.npz", "model.npz"} <= {p.name for p in run_dir.iterdir()}
    checkpoints = [e for e in runs.read(run_dir) if e.type == "checkpoint"]
    assert checkpoints and all(Path(e["path"]).parent == run_dir for e in checkpoints)


def test_a_checkpoint_file_name_template_is_checked_when_made(tmp_path):
    ModelCheckpoint(tmp_path / "{x}" / "ck-{epoch}-{step}-{{literal}}.npz")  # folder is as is
    with pytest.raises(ValueError, match=r"ModelCheckpoint: the file name 'ck-\{x\}\.npz'"):
        ModelCheckpoint(tmp_path / "ck-{x}.npz")
    with pytest.raises(ValueError, match="may hold only"):
        ModelCheckpoint(tmp_path / "ck-{epoch.real}{0}.npz")


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_unusable_run_dir_is_one_line(tmp_path, env, where):
    (tmp_path / "f").write_text("not a folder")
    run_dir = tmp_path / "f" if where == "a file" else tmp_path / "f" / "run"
    usage_error(train_cli(tmp_path, env, run_dir), "--run-dir", "cannot be used as a run dir")
    assert (tmp_path / "f").read_text() == "not a folder"


def test_an_unwritable_runs_root_is_a_run_dir_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(runs.RunDirError, match="cannot be used as a run directory"):
        runs.new_run_dir(tmp_path / "f")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporaries_of_our_pattern_are_cleaned_and_nothing_else(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ours = run_dir / ".best.npz.k2_9xq7a.tmp"  # what atomic_write's mkstemp makes
    fresh = run_dir / ".model.npz.abcdefgh.tmp"  # maybe being written right now
    others = [run_dir / n for n in ("notes.tmp", ".keep.tmp", ".x.toolongname.tmp", "a.npz")]
    for path in [ours, fresh, *others]:
        path.write_text("x")
        if path is not fresh:
            _age(path, 3600)
    assert remove_stale_temporaries(run_dir) == [ours]
    assert fresh.exists() and all(p.exists() for p in others)
    # A folder that holds only what killed writers left is empty to a new run.
    ours.write_text("x")
    _age(ours, 3600)
    left = tmp_path / "left"
    left.mkdir()
    os.replace(ours, left / ours.name)
    assert runs.claim_run_dir(left) == left and list(left.iterdir()) == []
    # The pattern is the one atomic_write really uses.
    atomic_write_text(run_dir / "a.txt", "a")  # leaves nothing
    assert remove_stale_temporaries(run_dir, older_than=-1) == [fresh]


def test_the_logger_and_open_run_clean_what_a_killed_writer_left(tmp_path):
    from nntui.replay import open_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    left = run_dir / ".best.npz.aaaaaaaa.tmp"
    left.write_text("half")
    _age(left, 3600)
    open_run(run_dir)
    assert not left.exists()
    left.write_text("half")
    _age(left, 3600)
    setup(quick(run_dir)).fit()
    assert not left.exists()


# -- item 14: followers of a dead run --------------------------------------------------------
def test_writer_alive_follows_the_lock(tmp_path):
    lock = runs.WriterLock(tmp_path)
    assert not runs.writer_alive(tmp_path)
    lock.acquire()  # one open file description; writer_alive makes its own
    assert runs.writer_alive(tmp_path)
    with pytest.raises(ValueError, match="another process is writing this run"):
        runs.WriterLock(tmp_path).acquire()
    lock.release()
    assert not runs.writer_alive(tmp_path) and not (tmp_path / runs.LOCK_FILE).exists()


@pytest.fixture
def killed_run(tmp_path, env):
    """A run whose writer (a real process) was killed with SIGKILL after 3 batches."""
    run_dir = tmp_path / "killed"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(run_dir)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        assert runs.writer_alive(run_dir)
        yield run_dir, writer
    finally:
        writer.kill()
        writer.wait(TIMEOUT)
        writer.stdout.close()


def test_a_follower_learns_that_the_writer_was_killed(killed_run):
    run_dir, writer = killed_run
    seen, errors = [], []

    def follower():
        try:
            seen.extend(e.type for e in runs.follow(run_dir, poll=0.01))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=follower, daemon=True)
    thread.start()
    writer.send_signal(signal.SIGKILL)
    writer.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the follower still waits for a dead run"
    assert seen[0] == "run_start" and "end" not in seen
    assert len(errors) == 1 and isinstance(errors[0], runs.WriterGone)
    assert runs.WRITER_GONE in str(errors[0]) and str(run_dir) in str(errors[0])
    assert not runs.writer_alive(run_dir)


def test_nnlib_runs_follow_of_a_killed_run_exits_1_with_one_line(killed_run, env, tmp_path):
    run_dir, writer = killed_run
    writer.send_signal(signal.SIGKILL)
    writer.wait(TIMEOUT)
    done = run_cli(tmp_path, env, "runs", str(run_dir), "--follow")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and runs.WRITER_GONE in done.stderr
    assert "run_start" in done.stdout and "Traceback" not in done.stderr


def test_a_live_quiet_run_is_not_dead(killed_run):
    run_dir, _ = killed_run
    tail = runs.EventTail(run_dir)
    assert tail.read() and not tail.orphaned and not tail.ended


# -- item 15: the run-log reader ---------------------------------------------------------------
BAD_LINES = [
    ('{"v":"1","type":"pause"}', "v must be a non-negative integer"),
    ('{"v":null,"type":"pause"}', "v must be"),
    ('{"v":1,"type":"pause","step":null}', "step must be"),
    ('{"v":1,"type":"pause","time":[1]}', "time must be a number"),
    ('{"v":1,"type":"pause","step":1e400}', "step must be"),
    ('{"v":1,"type":5}', "type must be a string"),
    ('{"v":1,"type":"pause","x":' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"v":1,"type":"batch","epoch":0,"batch":0,"loss":"high"}', "loss must be a number or"),
    ('{"v":1,"type":"epoch","epoch":-1,"loss":1}', "epoch must be a non-negative integer"),
    ('{"v":1,"type":"confusion","matrix":[[1,2]]}', "matrix must be a square"),
    ('{"v":1,"type":"histograms","layers":{"d":{"weights":{"lo":0}}}}', "lacks hi, counts"),
    ('{"v":1,"type":"end","reason":["x"]}', "reason must be a string"),
    ('{"v":1,"type":"pause","step":' + "9" * 5000 + "}", "not a readable JSON line"),
]


@pytest.fixture(scope="module")
def good_log(tmp_path_factory) -> list[str]:
    run_dir = tmp_path_factory.mktemp("good") / "run"
    setup(quick(run_dir)).fit()
    return (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)


@pytest.mark.parametrize("bad, words", BAD_LINES, ids=[w for _, w in BAD_LINES])
def test_a_bad_line_in_the_middle_is_one_event_error(tmp_path, good_log, bad, words):
    path = tmp_path / runs.EVENTS_FILE
    path.write_text("".join([*good_log[:3], bad + "\n", *good_log[3:]]))
    with pytest.raises(runs.EventError) as error:
        runs.read(path)
    assert str(error.value).startswith(f"{path}:4: ") and words in str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400


@pytest.mark.parametrize("bad, words", BAD_LINES[:7], ids=[w for _, w in BAD_LINES[:7]])
def test_nnlib_runs_says_which_line_in_one_line(tmp_path, env, good_log, bad, words):
    path = tmp_path / "run" / runs.EVENTS_FILE
    path.parent.mkdir()
    path.write_text("".join([*good_log[:3], bad + "\n", *good_log[3:]]))
    usage_error(run_cli(tmp_path, env, "runs", str(path.parent)), f"{path}:4", words)


def test_a_tail_skips_bad_lines_with_a_warning_or_stops_at_them(tmp_path, good_log):
    path = tmp_path / runs.EVENTS_FILE
    path.write_text("".join([*good_log[:2], '{"v":1,"type":5}\n', *good_log[2:]]))
    skipped: list[runs.EventError] = []
    lenient = runs.EventTail(path, on_bad_line=skipped.append)
    assert len(lenient.read()) == len(good_log) and lenient.ended
    assert [str(e).split(": ")[0] for e in skipped] == [f"{path}:3"]
    strict = runs.EventTail(path)
    assert len(strict.read()) == 2  # what came before the bad line...
    for _ in range(2):  # ...then the error, every time
        with pytest.raises(runs.EventError, match=f"{path}:3: type must be a string"):
            strict.read()


def test_optional_fields_may_be_left_out():
    batch = runs.decode(json.dumps({"v": 1, "type": "batch", "epoch": 0, "batch": 0, "loss": 1}))
    confusion = runs.decode(json.dumps({"type": "confusion", "matrix": [[1, 0], [2, 3]]}))
    assert "lr" not in batch.data and "precision" not in confusion.data
