"""Issue 11 item 5, `nnlib plot`: a recorded run's chart (its text with colour off, against a
stored snapshot), several runs overlaid with a legend, --watch following a run as it grows,
and bad arguments ending with one line and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_run

from nnlib import runs
from nnlib.cli import main, plot_text
from nnlib.runindex import read_curves

# Not under __snapshots__: syrupy would count it unused and --snapshot-update delete it.
SNAPSHOT = Path(__file__).parent / "text_snapshots" / "plot_recorded_run_80x24.txt"


def test_a_recorded_run_is_charted_as_its_snapshot(tmp_path, capsys):
    run_dir = write_run(tmp_path, "recorded", epochs=3)
    assert main(["plot", str(run_dir), "--size", "80x24", "--color", "never"]) == 0
    out = capsys.readouterr().out
    if os.environ.get("UPDATE_TEXT_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(out)
    assert out == SNAPSHOT.read_text()
    assert "\x1b" not in out and "loss" in out and "accuracy" in out


def test_several_runs_are_overlaid_with_a_legend_and_options(tmp_path, capsys):
    paths = [str(write_run(tmp_path, f"run-{i}", scale=1 + i)) for i in range(3)]
    argv = ["plot", *paths, "--metric", "loss", "--x", "epoch", "--log-y", "--size", "100x30"]
    assert main([*argv, "--smoothing", "0.9", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert all(f"run-{i} EMA 0.9" in out and f"run-{i} val" in out for i in range(3))
    assert "accuracy" not in out and "loss (log y)" in out and "epoch" in out
    assert "▲" in out and "■" in out  # one marker per run, readable without colour


def test_colour_only_when_asked_or_on_a_terminal_without_no_color(tmp_path, capsys, monkeypatch):
    curves = [read_curves(write_run(tmp_path, "r"))]
    assert "\x1b[" in plot_text(curves, color=True)
    assert "\x1b[" not in plot_text(curves, color=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["plot", str(tmp_path / "r"), "--size", "60x20"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_watch_redraws_as_the_run_grows_and_ends_with_it(tmp_path, capsys, monkeypatch):
    run_dir = write_run(tmp_path, "live", epochs=1, end=None)
    lock = runs.WriterLock(run_dir)
    lock.acquire()
    waits = []

    def sleep(seconds: float) -> None:
        """The writer goes on while `nnlib plot --watch` waits: one more epoch, then its end."""
        waits.append(seconds)
        if len(waits) == 1:
            with (run_dir / runs.EVENTS_FILE).open("a") as log:
                log.write(runs.encode("epoch", 99, {"epoch": 1, "loss": 0.1, "val_loss": 987.0}))
                log.write(runs.encode("end", 99, {"reason": "finished"}))
            lock.release()

    monkeypatch.setattr("time.sleep", sleep)
    assert main(["plot", str(run_dir), "--watch", "0.5", "--size", "60x30"]) == 0
    frames = capsys.readouterr().out.split("\x1b[H\x1b[2J")[1:]
    assert waits == [0.5]  # the run ended: no more waiting
    assert len(frames) == 2 and "987" not in frames[0] and "987" in frames[1]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["plot", "{missing}"], "no such run directory"),
        (["plot", "{empty}"], "no run log"),
        (["plot", "{run}", "--size", "5x5"], "expected WIDTHxHEIGHT"),
        (["plot", "{run}", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["plot", "{run}", "--watch", "0"], "positive number of seconds"),
        (["plot", "{run}", "--metric", "f1"], "invalid choice"),
        (["plot", *["{run}"] * 7], "at most 6 runs"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, words):
    run_dir = write_run(tmp_path, "r", epochs=1)
    (tmp_path / "empty").mkdir()
    paths = {
        "run": str(run_dir),
        "missing": str(tmp_path / "nope"),
        "empty": str(tmp_path / "empty"),
    }
    assert main([a.format(**paths) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and words in captured.err and not captured.out
