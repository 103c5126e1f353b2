"""Run logs: config.json, the events.jsonl schema, every event type of a real run, the reader
on torn and bad lines, and following a run while it is written."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import numpy as np
import pytest
from helpers import TIMEOUT, Gate

import nnlib as nl
from nnlib import datasets, runs
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup


def _data(n=24, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, size=n)


def _small_run(run_dir, epochs=2, callbacks=(), **logger_options):
    trainer = nl.Trainer(
        nl.build("4-8-3", (4,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[*callbacks, runs.RunLogger(run_dir=run_dir, **logger_options)],
    )
    trainer.fit(*_data(), epochs=epochs, batch_size=8, validation_data=_data(6, seed=1))
    return trainer


def _lines(run_dir):
    return (run_dir / runs.EVENTS_FILE).read_text(encoding="utf-8").splitlines()


def _in_thread(trainer, *args, **kwargs):
    errors = []

    def target():
        try:
            trainer.fit(*args, **kwargs)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


# -- schema ------------------------------------------------------------------------------------


def test_every_line_is_a_versioned_event_or_a_compact_batch_line(tmp_path):
    trainer = _small_run(tmp_path / "run")
    records = [json.loads(line) for line in _lines(tmp_path / "run")]
    batches = [r for r in records if "type" not in r]
    others = [r for r in records if "type" in r]
    assert all(r["v"] == runs.SCHEMA_VERSION == 2 for r in others)
    assert all(isinstance(r["time"], float) and isinstance(r["step"], int) for r in others)
    # a batch line: only what changed since the batch line before it (the step one on, the
    # time as milliseconds after it); the first is complete (its step, time, every value)
    assert batches[0]["b"] == 1 and "time" in batches[0]
    assert all(("time" in r) != ("t" in r) and ("b" in r) == ("time" in r) for r in batches)
    assert batches[0]["epoch"] == 0 and batches[0]["batch"] == 0 and batches[0]["size"] == 8
    assert {"lr", "batch_size", "s", "a", "l"} <= set(batches[0])
    assert not {"lr", "batch_size", "size", "batch"} & set(batches[1])  # unchanged, implied
    assert batches[3]["epoch"] == 1 and batches[3]["batch"] == 0  # a new epoch says so
    events = runs.read(tmp_path / "run")
    assert [e.type for e in events] == ["run_start"] + ["batch"] * 3 + ["epoch"] + ["batch"] * 3 + [
        "epoch",
        "end",
    ]
    assert [e.step for e in events] == [0, 1, 2, 3, 3, 4, 5, 6, 6, 6]
    times = [e.time for e in events]
    assert times == sorted(times)
    batch = events[1]
    assert batch["epoch"] == 0 and batch["batch"] == 0 and batch["size"] == 8
    assert batch["loss"] == trainer.history.batches[0]["loss"]  # a float32 model's, exactly
    assert {"lr", "batch_size", "samples_per_sec", "accuracy"} <= set(batch.data)
    assert [(e["epoch"], e["batch"], e["size"]) for e in events if e.type == "batch"] == [
        (epoch, index, 8) for epoch in (0, 1) for index in (0, 1, 2)
    ]
    epoch = events[4]
    assert epoch["val_loss"] == trainer.history.epochs[0]["val_loss"]
    assert events[-1]["reason"] == "finished"
    assert events[-1].get("error") is None and events[-1]["epoch"] == 1


def test_non_finite_numbers_are_written_as_null():
    line = runs.encode(
        "custom",
        3,
        {
            "a": float("nan"),
            "b": [np.float32(np.inf), 1.5],
            "c": np.float64(-np.inf),
            "d": np.arange(3),
            "e": {"f": np.int64(7)},
        },
    )
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert (record["a"], record["b"], record["c"]) == (None, [None, 1.5], None)
    assert record["d"] == [0, 1, 2] and record["e"] == {"f": 7}
    assert "NaN" not in line and "Infinity" not in line


def test_decode_checks_version_and_required_fields():
    good = runs.encode("hparam", 2, {"name": "lr", "old": 0.1, "new": 0.2})
    event = runs.decode(good)
    assert (event.type, event.step, event["name"], event.get("missing", 5)) == (
        "hparam",
        2,
        "lr",
        5,
    )
    newer = json.dumps({"v": 3, "type": "batch", "epoch": 0, "batch": 0, "loss": 1.0})
    with pytest.raises(ValueError, match="run.jsonl:7: schema version 3 is newer"):
        runs.decode(newer, "run.jsonl:7")
    with pytest.raises(ValueError, match="hparam event lacks old, new"):
        runs.decode(json.dumps({"v": 1, "type": "hparam", "name": "lr"}))
    with pytest.raises(ValueError, match="not an event record"):
        runs.decode("[1, 2]")
    with pytest.raises(ValueError, match="not valid JSON"):
        runs.decode('{"v": 1, "type": "ba')
    assert runs.decode(json.dumps({"type": "future_kind", "x": 1})).type == "future_kind"


def test_diverged_run_logs_null_losses(tmp_path):
    prepared = datasets.prepare(
        datasets.load("spirals", n_train=200, n_test=10), validation_split=0.25
    )
    trainer = nl.Trainer(
        nl.build("2-32-32-3", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=1e6, momentum=0.9),
        callbacks=[runs.RunLogger(run_dir=tmp_path / "run")],
    )
    trainer.fit(
        prepared.x_train,
        prepared.y_train,
        epochs=3,
        batch_size=16,
        validation_data=(prepared.x_val, prepared.y_val),
    )
    lines = [json.loads(line) for line in _lines(tmp_path / "run")]
    assert [line for line in lines if "type" not in line][-1]["l"] is None  # null, written
    records = runs.read(tmp_path / "run")
    diverged = [r for r in records if r.type == "diverged"]
    assert len(diverged) == 1 and diverged[0]["loss"] is None
    assert records[-1].type == "end" and records[-1]["reason"] == "diverged"
    batches = [r for r in records if r.type == "batch"]
    assert batches[-1]["loss"] is None and all(b["loss"] is not None for b in batches[:-1])
    assert diverged[0].step == batches[-1].step == trainer.global_step


# -- config.json -------------------------------------------------------------------------------


def test_config_json_of_an_experiment(tmp_path):
    config = ExperimentConfig(
        dataset="spirals",
        epochs=1,
        batch_size=32,
        lr=0.07,
        momentum=0.5,
        seed=4,
        run_dir=str(tmp_path / "run"),
        histogram_every=5,
    )
    experiment = setup(config, checkpoints=True)
    experiment.fit()
    saved = json.loads((tmp_path / "run" / runs.CONFIG_FILE).read_text())
    assert saved["dataset"] == "spirals" and saved["seed"] == 4
    assert saved["arch"] == experiment.model.spec == "2-32-32-3"
    assert (saved["lr"], saved["momentum"], saved["batch_size"], saved["epochs"]) == (
        0.07,
        0.5,
        32,
        1,
    )
    view = saved["trainer"]
    assert view["model"] == {
        "spec": "2-32-32-3",
        "input_shape": [2],
        "params": experiment.model.summary().total_params,
    }
    assert view["optimizer"]["name"] == "sgd" and view["optimizer"]["lr"] == 0.07
    assert view["optimizer"]["momentum"] == 0.5
    assert view["loss"] == "softmax_cross_entropy"
    assert saved["versions"] == {
        "nnlib": nl.__version__,
        "numpy": np.__version__,
        "python": saved["versions"]["python"],
    }
    info = saved["dataset_info"]
    assert info["name"] == "spirals" and info["num_classes"] == 3
    assert info["train"] + info["validation"] == len(experiment.data.x_train) + len(
        experiment.data.x_val
    )
    # the experiment's fields are all there, untouched by the trainer's view
    fields = {k: saved[k] for k in config.to_dict()}
    assert ExperimentConfig.from_dict(fields) == config.replace(arch="2-32-32-3")
    events = runs.read(tmp_path / "run")
    assert events[0].type == "run_start" and events[0]["config"]["seed"] == 4
    assert events[0]["run"] == str(tmp_path / "run")
    # the run directory holds the checkpoints and a rerunnable config, no temporary files
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "arrays.bin",
        "best.npz",
        "checkpoints",
        "commands.jsonl",
        "config.json",
        "events.jsonl",
        "experiment.toml",
        "model.npz",
        "replies.jsonl",
        "summary.json",
    ]
    rerun = ExperimentConfig.load(tmp_path / "run" / "experiment.toml")
    assert rerun == dataclasses.replace(config, arch="2-32-32-3", run_dir=None)


def test_new_run_dirs_are_unique(tmp_path, monkeypatch):
    first = runs.new_run_dir(tmp_path, "my run/1")
    second = runs.new_run_dir(tmp_path, "my run/1")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.endswith("-my-run-1") and second.name == first.name + "-1"
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs.new_run_dir().parent == tmp_path / "elsewhere"


# -- every event type in a real run ------------------------------------------------------------


def test_a_real_run_writes_every_event_type(tmp_path):
    prepared = datasets.prepare(
        datasets.load("spirals", n_train=200, n_test=10), validation_split=0.25
    )

    class SetLr(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 2:
                trainer.set("lr", 0.05)

    class Weights(nl.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            epochs.append(trainer.model.get_weights())

    epochs = []
    gate = Gate(step=4)
    run_dir = tmp_path / "run"
    trainer = nl.Trainer(
        nl.build("2-16-3", (2,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[
            nl.Monitor(every=5),
            SetLr(),
            gate,
            Weights(),
            nl.EarlyStopping(patience=1, min_delta=100.0),
            nl.ModelCheckpoint(run_dir / "best.npz"),
            nl.ModelCheckpoint(run_dir / "model.npz", save_best_only=False, at_end=True),
            runs.RunLogger(run_dir=run_dir),
        ],
    )
    thread, errors = _in_thread(
        trainer,
        prepared.x_train,
        prepared.y_train,
        epochs=10,
        batch_size=32,
        validation_data=(prepared.x_val, prepared.y_val),
    )
    assert gate.reached.wait(TIMEOUT)
    trainer.pause()
    gate.release.set()
    assert trainer.wait_until_parked(timeout=10)
    trainer.resume()
    thread.join(TIMEOUT)
    assert not thread.is_alive() and not errors

    events = runs.read(run_dir)
    types = [e.type for e in events]
    assert set(types) == {
        "run_start",
        "batch",
        "epoch",
        "histograms",
        "confusion",
        "hparam",
        "pause",
        "resume",
        "checkpoint",
        "early_stop",
        "end",
    }
    assert types[0] == "run_start" and types[-1] == "end" and types.count("end") == 1
    # the initial histograms come from on_train_begin of the Monitor, before the logger's
    assert types[1] == "histograms" and events[1].step == 0
    assert [e.step for e in events if e.type == "histograms"][:3] == [0, 1, 5]
    by_type = {t: [e for e in events if e.type == t] for t in set(types)}
    hparam = by_type["hparam"][0]
    assert (hparam.step, hparam["name"], hparam["old"], hparam["new"], hparam["applies"]) == (
        2,
        "lr",
        0.1,
        0.05,
        "next batch",
    )
    assert [(e.type, e.step) for e in events if e.type in ("pause", "resume")] == [
        ("pause", 4),
        ("resume", 4),
    ]
    assert [e["epoch"] for e in by_type["epoch"]] == [0, 1]  # stopped early after epoch 1
    assert [e["epoch"] for e in by_type["confusion"]] == [0, 1]
    assert np.sum(by_type["confusion"][0]["matrix"]) == len(prepared.y_val)
    early = by_type["early_stop"][0]
    assert (early["monitor"], early["best_epoch"], early["epoch"]) == ("val_loss", 0, 1)
    checkpoints = [(e["reason"], e["path"], e["epoch"]) for e in by_type["checkpoint"]]
    assert checkpoints[0] == ("best", str(run_dir / "best.npz"), 0)
    assert checkpoints[-1] == ("end", str(run_dir / "model.npz"), 1)
    end = by_type["end"][0]
    assert end["reason"] == "early_stop" and end["restored_epoch"] == 0
    assert end["checkpoint"] == str(run_dir / "model.npz") and end.step == trainer.global_step
    # the end-of-run checkpoint holds the weights EarlyStopping restored
    final = nl.load(run_dir / "model.npz").get_weights()
    for name, value in epochs[0].items():
        np.testing.assert_array_equal(final[name], value)
    # batch lines: one per step
    assert [e.step for e in by_type["batch"]] == list(range(1, trainer.global_step + 1))


def test_batch_every_thins_batch_lines(tmp_path):
    _small_run(tmp_path / "run", epochs=3, batch_every=4)  # 9 steps
    events = runs.read(tmp_path / "run")
    assert [e.step for e in events if e.type == "batch"] == [4, 8]
    assert len([e for e in events if e.type == "epoch"]) == 3
    with pytest.raises(ValueError, match="batch_every"):
        runs.RunLogger(batch_every=0)


def test_a_second_run_appends_to_the_same_log(tmp_path):
    trainer = _small_run(tmp_path / "run", epochs=1)
    trainer.fit(*_data(), epochs=1, batch_size=8)
    types = [e.type for e in runs.read(tmp_path / "run")]
    assert types.count("run_start") == 2 and types.count("end") == 2
    assert types[-1] == "end"


# -- the reader: torn and bad lines ------------------------------------------------------------


def test_read_drops_a_torn_last_line(tmp_path):
    _small_run(tmp_path / "run")
    path = tmp_path / "run" / runs.EVENTS_FILE
    complete = runs.read(tmp_path / "run")
    whole = runs.encode("batch", 7, {"epoch": 2, "batch": 0, "loss": 0.5})
    with path.open("a", encoding="utf-8") as handle:
        handle.write(whole[: len(whole) // 2])  # killed mid-write: no newline
    assert runs.read(tmp_path / "run") == complete
    assert runs.read(path) == complete  # the file itself, too
    # a complete last record without its newline is kept
    path.write_text(path.read_text().rsplit("\n", 1)[0] + "\n" + whole.rstrip("\n"))
    events = runs.read(path)
    assert events[:-1] == complete and events[-1].type == "batch" and events[-1].step == 7


def test_read_rejects_a_bad_line_in_the_middle(tmp_path):
    _small_run(tmp_path / "run")
    path = tmp_path / "run" / runs.EVENTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, '{"v":1,"type":"batch","ep\n')
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"events\.jsonl:3: not valid JSON"):
        runs.read(tmp_path / "run")
    # a bad last line that does end with a newline was complete, so it is an error too
    lines = lines[:2] + lines[3:] + ['{"v":1,"type":"epoch"}\n']
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=rf"events\.jsonl:{len(lines)}: epoch event lacks"):
        runs.read(path)


def test_read_of_a_missing_run(tmp_path):
    with pytest.raises(ValueError, match="no run log"):
        runs.read(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run log"):
        runs.read(tmp_path / "empty")


# -- follow ------------------------------------------------------------------------------------


def test_follow_yields_events_as_the_run_grows(tmp_path):
    run_dir = tmp_path / "run"
    gate = Gate(step=3)
    trainer = nl.Trainer(
        nl.build("4-8-3", (4,)),
        nl.SoftmaxCrossEntropy(),
        nl.SGD(lr=0.1),
        callbacks=[runs.RunLogger(run_dir=run_dir), gate],
    )
    follower = runs.follow(run_dir, poll=0.01, idle_timeout=TIMEOUT)
    thread, errors = _in_thread(trainer, *_data(), epochs=3, batch_size=8)
    assert gate.reached.wait(TIMEOUT)
    # the training thread is held at step 3: the follower sees what is written so far
    seen = []
    for event in follower:
        seen.append((event.type, event.step))
        if event.type == "batch" and event.step == 3:
            break
    assert seen == [("run_start", 0), ("batch", 1), ("batch", 2), ("batch", 3)]
    assert thread.is_alive() and trainer.state == "running"
    gate.release.set()
    rest = [(event.type, event.step) for event in follower]
    thread.join(TIMEOUT)
    assert not thread.is_alive() and not errors
    assert rest[-1] == ("end", 9) and rest[0] == ("epoch", 3)
    assert seen + rest == [(e.type, e.step) for e in runs.read(run_dir)]


def test_follow_waits_for_a_run_directory_that_does_not_exist_yet(tmp_path):
    run_dir = tmp_path / "later"
    collected, errors = [], []

    def reader():
        try:
            collected.extend(e.type for e in runs.follow(run_dir, poll=0.01, idle_timeout=TIMEOUT))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    threading.Event().wait(0.05)  # let the reader poll a path that is not there
    assert not run_dir.exists()
    _small_run(run_dir)
    thread.join(TIMEOUT)
    assert not thread.is_alive() and not errors
    assert collected[0] == "run_start" and collected[-1] == "end"
    assert collected == [e.type for e in runs.read(run_dir)]


def test_follow_stops_after_idle_timeout_and_skips_a_partial_line(tmp_path):
    path = tmp_path / "events.jsonl"
    whole = runs.encode("batch", 1, {"epoch": 0, "batch": 0, "loss": 1.0})
    path.write_text(whole + whole[:10])
    events = list(runs.follow(path, poll=0.01, idle_timeout=0.05))
    assert [(e.type, e.step) for e in events] == [("batch", 1)]
    assert math.isclose(events[0]["loss"], 1.0)
