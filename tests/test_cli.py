"""The `nnlib` command line, run as a real process: exit codes 0/1/2/130, one-line errors,
the run directory it writes, config files, evaluate, summary and runs."""

from __future__ import annotations

import json
import os
import re
import signal

import numpy as np
import pytest
from helpers import run_cli, signal_and_wait, train_until_a_batch, usage_error

import nnlib as nl
from nnlib import runs

TIMEOUT = 120  # seconds for one command; they take well under one


@pytest.fixture
def env(tmp_path_factory):
    environment = dict(os.environ)
    environment["NNLIB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    environment.pop("NNLIB_RUNS_DIR", None)
    environment["PYTHONWARNINGS"] = "error::RuntimeWarning"  # numpy warnings would show up
    return environment


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One good run shared by the tests that only read it."""
    cwd = tmp_path_factory.mktemp("trained")
    environment = dict(os.environ, NNLIB_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    environment.pop("NNLIB_RUNS_DIR", None)
    done = run_cli(
        cwd,
        environment,
        "train",
        "--dataset",
        "spirals",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--seed",
        "1",
    )
    return cwd, environment, done


# -- train -------------------------------------------------------------------------------------


def test_a_good_run(trained):
    cwd, _, done = trained
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    run_dirs = list((cwd / "runs").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.endswith("-spirals")
    run_dir = run_dirs[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "arrays.bin",  # the side file: the histograms' numbers
        "best.npz",
        "checkpoints",
        "commands.jsonl",  # the door of `nnlib control`, and its answers
        "config.json",
        "events.jsonl",
        "experiment.toml",
        "model.npz",
        "replies.jsonl",
        "summary.json",  # what the runs table shows of the log
    ]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["dataset"], config["epochs"], config["batch_size"], config["seed"]) == (
        "spirals",
        3,
        32,
        1,
    )
    events = runs.read(run_dir)
    assert events[0].type == "run_start"
    assert events[-1].type == "end" and events[-1]["reason"] == "finished"
    assert [e["epoch"] for e in events if e.type == "epoch"] == [0, 1, 2]
    assert any(e.type == "histograms" for e in events)
    model = nl.load(run_dir / "model.npz")
    assert model.spec == config["arch"] == "2-32-32-3"
    assert nl.load(run_dir / "best.npz").input_shape == (2,)
    # progress: one plain line per epoch when stdout is not a terminal
    assert len(re.findall(r"^epoch \d/3 ", done.stdout, re.M)) == 3
    assert f"run written to {run_dir.relative_to(cwd)}" in done.stderr
    assert re.search(r"^test  loss \d\.\d{4}  accuracy \d\.\d{4}$", done.stderr, re.M)


def test_evaluate_the_saved_model(trained):
    cwd, environment, _ = trained
    run_dir = next((cwd / "runs").iterdir())
    done = run_cli(cwd, environment, "evaluate", str(run_dir / "model.npz"), "--dataset", "spirals")
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"test \((\d+) samples\)  loss (\S+)  accuracy (\S+)\n", done.stdout)
    assert match and match[1] == "500"
    assert 0.0 <= float(match[3]) <= 1.0 and float(match[2]) > 0
    # the same numbers as the test line printed at the end of training: the data is made and
    # normalised as the run did (its config.json is beside the model)
    assert f"test  loss {match[2]}  accuracy {match[3]}" in trained[2].stderr
    # a model file on its own is evaluated too
    (cwd / "alone").mkdir(exist_ok=True)
    (cwd / "alone" / "m.npz").write_bytes((run_dir / "model.npz").read_bytes())
    alone = run_cli(
        cwd, environment, "evaluate", "alone/m.npz", "--dataset", "spirals", "--split", "train"
    )
    assert alone.returncode == 0, alone.stderr
    assert re.fullmatch(r"train \(1500 samples\)  loss \S+  accuracy \S+\n", alone.stdout)


def test_evaluate_errors(trained, env):
    cwd, _, _ = trained
    model = str(next((cwd / "runs").iterdir()) / "model.npz")
    usage_error(run_cli(cwd, env, "evaluate", model, "--dataset", "glyphs"), "(2,)", "(28, 28, 1)")
    usage_error(run_cli(cwd, env, "evaluate", model, "--dataset", "xor"), "needs 2")
    usage_error(run_cli(cwd, env, "evaluate", "nothing.npz", "--dataset", "spirals"), "nothing.npz")
    usage_error(run_cli(cwd, env, "evaluate", model, "--dataset", "nope"), "'nope'")


def test_runs_prints_the_epochs(trained):
    cwd, environment, _ = trained
    run_dir = next((cwd / "runs").iterdir())
    done = run_cli(cwd, environment, "runs", str(run_dir))
    assert done.returncode == 0, done.stderr
    epochs = re.findall(
        r"^step +(\d+)  epoch +epoch (\d) +loss \S+  acc \S+  val_loss", done.stdout, re.M
    )
    assert [int(e) for _, e in epochs] == [1, 2, 3]
    assert done.stdout.splitlines()[-1].split()[2:] == ["end", "run", "ended:", "finished"]
    assert "batch" not in done.stdout.replace("batch_size", "")
    follow = run_cli(cwd, environment, "runs", str(run_dir / "events.jsonl"), "--follow")
    assert follow.returncode == 0 and follow.stdout == done.stdout


def test_runs_errors(tmp_path, env):
    usage_error(run_cli(tmp_path, env, "runs", "missing"), "no run log")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.jsonl").write_text('{"v":1,"type":"run_start"}\n{}\n')
    usage_error(run_cli(tmp_path, env, "runs", "bad"), "events.jsonl:1", "lacks")


def test_a_diverging_run_exits_1(tmp_path, env):
    done = run_cli(
        tmp_path,
        env,
        "train",
        "--dataset",
        "spirals",
        "--lr",
        "1e6",
        "--epochs",
        "3",
        "--run-dir",
        "run",
        "--quiet",
    )
    assert done.returncode == 1, done.stderr
    assert "diverged" in done.stderr and "Traceback" not in done.stderr
    assert "Warning" not in done.stderr
    events = runs.read(tmp_path / "run")
    assert events[-1].type == "end" and events[-1]["reason"] == "diverged"
    assert any(e.type == "diverged" for e in events)
    model = nl.load(tmp_path / "run" / "model.npz")
    assert all(np.isfinite(p.value).all() for p in model.parameters())


def test_a_data_error_exits_1_with_one_line(tmp_path, env):
    (tmp_path / "bad.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
    done = run_cli(tmp_path, env, "train", "--dataset", "bad.csv", "--quiet")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and "bad.csv" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


def test_early_stopping_flag(tmp_path, env):
    done = run_cli(
        tmp_path,
        env,
        "train",
        "--dataset",
        "xor",
        "--epochs",
        "50",
        "--lr",
        "0.5",
        "--early-stopping",
        "0",
        "--run-dir",
        "run",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    events = runs.read(tmp_path / "run")
    epochs = [e for e in events if e.type == "epoch"]
    assert events[-1]["reason"] == "early_stop" and len(epochs) < 50
    assert "done (early_stop)" in done.stderr
    usage_error(run_cli(tmp_path, env, "train", "--early-stopping", "-1"), "--early-stopping")


def test_sigint_closes_the_log_and_saves_the_model(tmp_path, env):
    process = train_until_a_batch(tmp_path, env, "--batch-size", "1")
    stderr = signal_and_wait(process, signal.SIGINT)
    events_file = tmp_path / "run" / "events.jsonl"
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    last = json.loads(events_file.read_text().splitlines()[-1])
    assert last["type"] == "end" and last["reason"] == "interrupted"
    events = runs.read(tmp_path / "run")  # every line complete
    assert events[-1].step == last["step"] >= 1
    model = nl.load(tmp_path / "run" / "model.npz")
    assert all(np.isfinite(p.value).all() for p in model.parameters())
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--bogus"], ["--bogus"]),
        (["train", "--epochs", "0"], ["--epochs"]),
        (["train", "--epochs", "many"], ["--epochs", "'many'"]),
        (["train", "--optimizer", "lbfgs"], ["--optimizer", "'lbfgs'"]),
        (["train", "--lr", "-1"], ["lr", "-1"]),
        (["train", "--momentum", "1.5"], ["momentum"]),
        (["train", "--l1", "-0.1"], ["l1 must be a number >= 0", "-0.1"]),
        (["train", "--noise", "-1"], ["noise must be a number >= 0", "-1.0"]),
        (["train", "--noise", "lots"], ["--noise", "'lots'"]),
        (["train", "--noise", "0.1"], ["noise: glyphs has no noise setting", "spirals"]),
        (["train", "--validation-split", "1"], ["validation_split must be a fraction in [0, 1)"]),
        (
            ["train", "--dataset", "moons", "--subset", "10", "--validation-split", "0.96"],
            ["validation_split 0.96 holds out all 10 training samples of moons"],
        ),
        (["train", "--dataset", "spirals", "--arch", "2-x-3"], ["--arch", "2-x-3"]),
        (["train", "--dataset", "spirals", "--arch", "conv(8,3) dense(3)"], ["--arch"]),
        (["train", "--dataset", "spirals", "--arch", "2-8-5"], ["arch", "needs 3"]),
        (["train", "--dataset", "no-such-set"], ["'no-such-set'", "spirals"]),
        (["train", "--config", "missing.toml"], ["missing.toml", "no such config file"]),
        (["summary", "--arch", "2-8-3"], ["--input-shape", "--dataset"]),
        (["summary", "--arch", "2-8-3", "--input-shape", "28,a,1"], ["--input-shape"]),
        (["summary", "--arch", "2-8-3", "--dataset", "nope"], ["--dataset", "'nope'"]),
        (["summary", "--arch", "maxpool(9)", "--input-shape", "4,4,1"], ["--arch"]),
        (["train", "--dataset", "spirals", "--arch", "lenet"], ["--arch", "LeNet-5 needs images"]),
        (["summary", "--arch", "lenet", "--input-shape", "28,28,1"], ["preset", "--dataset"]),
        (["train", "--dataset", "spirals", "--arch", "maxpol(2)"], ["did you mean 'maxpool'?"]),
        (["frobnicate"], ["frobnicate"]),
        ([], ["command"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, env, args, words):
    usage_error(run_cli(tmp_path, env, *args), *words)
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_summary_of_lenet(tmp_path, env):
    arch = (
        "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu "
        "dense(84) relu dense(10)"
    )
    done = run_cli(tmp_path, env, "summary", "--arch", arch, "--input-shape", "28,28,1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == arch
    assert "total params: 61,706" in done.stdout
    assert re.search(r"^dense_1 +\(None, 120\) +48,120 ", done.stdout, re.M)
    by_dataset = run_cli(tmp_path, env, "summary", "--arch", "2-8-3", "--dataset", "spirals")
    assert by_dataset.returncode == 0 and "total params: 51 " in by_dataset.stdout


def test_presets_by_name_in_the_cli(tmp_path, env):
    """`--arch lenet` was refused as an unknown layer although the app offers LeNet-5."""
    done = run_cli(tmp_path, env, "summary", "--arch", "LeNet-5", "--dataset", "glyphs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == nl.presets.lenet5(10)
    trained = run_cli(
        tmp_path, env, "train", "--dataset", "spirals", "--arch", "small", "--epochs", "1"
    )
    assert trained.returncode == 0, trained.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    assert json.loads((run_dir / "config.json").read_text())["arch"] == "2-16-16-3"


def test_datasets_lists_the_builtins(tmp_path, env):
    done = run_cli(tmp_path, env, "datasets")
    assert done.returncode == 0, done.stderr
    names = {line.split()[0] for line in done.stdout.splitlines()[1:]}
    assert {"spirals", "xor", "blobs", "sine", "glyphs", "mnist"} <= names


# -- config files ------------------------------------------------------------------------------


def test_config_file_with_a_flag_overriding_it(tmp_path, env):
    (tmp_path / "exp.toml").write_text(
        'dataset = "blobs"\narch = "2-16-4"\nepochs = 2\nbatch_size = 50\nlr = 0.02\n'
        'optimizer = "adam"\nseed = 5\nvalidation_split = 0.2\n'
    )
    done = run_cli(
        tmp_path,
        env,
        "train",
        "--config",
        "exp.toml",
        "--lr",
        "0.01",
        "--epochs",
        "1",
        "--run-dir",
        "run",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["dataset"], config["arch"], config["batch_size"], config["seed"]) == (
        "blobs",
        "2-16-4",
        50,
        5,
    )
    assert (config["lr"], config["epochs"], config["validation_split"]) == (0.01, 1, 0.2)
    assert config["optimizer"] == "adam" and config["trainer"]["optimizer"]["lr"] == 0.01
    events = runs.read(tmp_path / "run")
    assert [e["epoch"] for e in events if e.type == "epoch"] == [0]
    assert {e["lr"] for e in events if e.type == "batch"} == {0.01}
    assert {e["size"] for e in events if e.type == "batch"} <= {50, 1200 % 50 or 50}


def test_noise_ratio_and_l1_flags_shape_the_run(tmp_path, env):
    """--noise reaches the generator, --validation-split sets the train/validation ratio,
    --l1 the optimizer; all three are recorded, and evaluate regenerates the same data."""
    done = run_cli(
        tmp_path,
        env,
        "train",
        "--dataset",
        "moons",
        "--noise",
        "0.3",
        "--validation-split",
        "0.4",
        "--l1",
        "0.001",
        "--epochs",
        "1",
        "--run-dir",
        "run",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["noise"], config["validation_split"], config["l1"]) == (0.3, 0.4, 0.001)
    assert config["dataset_info"]["train"] == 900 and config["dataset_info"]["validation"] == 600
    assert config["trainer"]["optimizer"]["l1"] == 0.001
    assert "noise = 0.3" in (tmp_path / "run" / "experiment.toml").read_text()
    assert {e["l1"] for e in runs.read(tmp_path / "run") if e.type == "batch"} == {0.001}
    noisy = nl.datasets.load("moons", noise=0.3)  # the test split as trained: noise 0.3
    normalization = config["dataset_info"]["normalization"]
    x = (noisy.x_test - np.float32(normalization["mean"])) / np.float32(normalization["std"])
    expected = nl.load(tmp_path / "run" / "model.npz").evaluate(
        x, noisy.y_test, nl.SoftmaxCrossEntropy()
    )
    evaluated = run_cli(tmp_path, env, "evaluate", "run/model.npz", "--dataset", "moons")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"loss {expected['loss']:.4f}  accuracy {expected['accuracy']:.4f}" in evaluated.stdout


@pytest.mark.parametrize(
    "text, words",
    [
        ('dataset = "spirals"\nlearning_rate = 0.1\n', ["unknown field 'learning_rate'"]),
        ('dataset = "spirals"\nepochs = \n', ["not valid TOML"]),
        ('dataset = "spirals"\nepochs = 0\n', ["epochs must be a positive integer"]),
        ('dataset = "spirals"\nlr = "fast"\n', ["lr must be a positive number", "'fast'"]),
        ('dataset = "spirals"\nrun_dir = 5\n', ["run_dir"]),
    ],
)
def test_bad_config_files_exit_2_naming_the_field(tmp_path, env, text, words):
    (tmp_path / "exp.toml").write_text(text)
    line = usage_error(run_cli(tmp_path, env, "train", "--config", "exp.toml"), *words)
    assert line.startswith("error: exp.toml: ")
    assert not (tmp_path / "runs").exists()


def test_blas_threads_limits_and_restores():
    from threadpoolctl import threadpool_info

    from nnlib.threads import blas_threads, default_blas_threads

    def blas_counts() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_counts()
    with blas_threads(1):
        assert blas_counts() and all(count == 1 for count in blas_counts())
    assert blas_counts() == before
    with blas_threads(None):
        assert blas_counts() == before
    assert default_blas_threads() in (1, None)
