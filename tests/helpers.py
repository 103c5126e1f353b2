"""Helpers shared by several test files (imported by name: conftest.py puts this folder on
sys.path), so that no test file imports another."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from textual import events
from textual.pilot import Pilot

import nnlib as nl
import nnlib.datasets as nds
from nnlib import events as run_events
from nnlib import runindex, runs
from nnlib.config import ExperimentConfig
from nnlib.datasets import DatasetInfo
from nnlib.experiment import setup
from nntui.bridge import Bridge
from nntui.screens.dashboard import DashboardScreen
from nntui.stream import Batches, RunStarted, Update
from nntui.widgets.eventlog import EventLog

# -- threads -------------------------------------------------------------------------------
TIMEOUT = 30  # seconds; a bound on waits that normally take milliseconds
CLI_TIMEOUT = 120  # seconds for one `nnlib` command run as a process; they take well under one


class StopAt(nl.Callback):
    """Ask the run to stop once it has trained `step` batches (as a Ctrl+C or the app does)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if trainer.global_step == self.step:
            trainer.stop()


class Gate(nl.Callback):
    """Holds the training thread at on_batch_end of `step` until the test lets it go, so that
    a control call from the test thread lands mid-run, deterministically."""

    def __init__(self, step):
        self.step = step
        self.reached = threading.Event()
        self.release = threading.Event()

    def on_batch_end(self, trainer, batch, logs):
        if logs["step"] == self.step:
            self.reached.set()
            assert self.release.wait(TIMEOUT)


def logged_a_batch(events_file: Path) -> bool:
    """True once a run log being written holds a batch line (read with the log's own decoder:
    schema 2 writes batch lines without a type)."""
    decoder = run_events.Decoder()
    try:
        with events_file.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    return False  # still being written
                if decoder.decode(line).type == "batch":
                    return True
    except FileNotFoundError:
        return False
    return False


@contextlib.contextmanager
def headless_train(run_dir: Path) -> Iterator[subprocess.Popen]:
    """A headless `nnlib train` writing `run_dir` in a subprocess (moons, epochs enough to
    steer for hours), once it takes commands: it has logged a batch, so its command door is
    polled at every boundary (before the first one, setting up the run can take longer than a
    sender waits for a reply on a busy machine); killed if still running afterwards."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    args = ["--dataset", "moons", "--epochs", "100000", "--quiet", "--run-dir", str(run_dir)]
    process = subprocess.Popen(
        [sys.executable, "-m", "nnlib.cli", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (
            (run_dir / "commands.jsonl").exists()
            and nl.runs.writer_alive(run_dir)
            and logged_a_batch(run_dir / nl.runs.EVENTS_FILE)
        ):
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "the headless run did not start"
            time.sleep(0.02)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


# -- the app under the Pilot ------------------------------------------------------------------
def fit_in_thread(trainer: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict]:
    """`trainer.fit(*args, **kwargs)` on a daemon thread; its history or error lands in the
    returned dict (for `join_fit`)."""
    result: dict = {}

    def target() -> None:
        try:
            result["history"] = trainer.fit(*args, **kwargs)
        except BaseException as error:  # surfaced by join_fit
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def join_fit(thread: threading.Thread, trainer: Any, result: dict) -> Any:
    """Wait for `fit_in_thread`'s run; fail (after stopping it) if it does not end, raise its
    error, else return its history."""
    thread.join(TIMEOUT)
    if thread.is_alive():
        trainer.stop()
        trainer.resume()
        thread.join(TIMEOUT)
        pytest.fail("the training thread did not finish")
    if "error" in result:
        raise result["error"]
    return result["history"]


SIZE = (80, 24)


def pilot_test(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async Pilot test on its own event loop (no async pytest plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def until(
    pilot: Pilot,
    condition: Callable[[], bool],
    what: str = "the condition",
    timeout: float = TIMEOUT,
) -> None:
    """Let the app process its messages until `condition` holds (within `timeout` seconds;
    else the failure names `what` it waited for).

    A few rounds yield without sleeping; after that each round sleeps 2 ms. A UI thread that
    only yields keeps the GIL nearly all the time, and the training thread, which gives the
    GIL up at every file access (imports, the run log), then waits about 5 ms each time to
    get it back: setting up a run took 5-20 s instead of 0.1 s."""
    deadline = time.monotonic() + timeout
    rounds = 0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0 if rounds < 20 else 0.002)
        rounds += 1


KEY_HOPS = 5
CHARACTERS = {
    "space": " ",
    "plus": "+",
    "minus": "-",
    "enter": "\r",
    "escape": "\x1b",
    "question_mark": "?",
    "less_than_sign": "<",
    "greater_than_sign": ">",
    "tab": "\t",
}


async def press(pilot: Pilot, *keys: str) -> None:
    """Send keys as the terminal driver does, without Pilot.press's wait for an idle CPU
    (which lasts a second per key while a training thread keeps the process busy)."""
    for key in keys:
        event = events.Key(key, CHARACTERS.get(key, key if len(key) == 1 else None))
        event.set_sender(pilot.app)
        pilot.app._driver.send_message(event)
        for _ in range(KEY_HOPS):  # app -> focused widget -> bindings up the DOM -> action
            await pilot.pause(0)


def screen_text(app: Any) -> str:
    """What the terminal shows now, as text (what was drawn, not what would be)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def burst(pilot: Pilot, *keys: str) -> None:
    """Send `keys` as one read from the terminal delivers them (typed ahead over a slow link):
    all queued before the app handles the first. Pilot.press waits for the app between keys,
    so it never makes a burst. The caller awaits the outcome."""
    for key in keys:
        event = events.Key(key, CHARACTERS.get(key, key if len(key) == 1 else None))
        event.set_sender(pilot.app)
        pilot.app._driver.send_message(event)


async def log_text(pilot: Pilot, dashboard: DashboardScreen) -> str:
    """The event log's lines (shown first: a hidden RichLog defers its writes)."""
    await press(pilot, "4")
    log = dashboard.query_one(EventLog)
    await until(pilot, lambda: log.lines)
    return "\n".join(str(line.text) for line in log.lines)


# -- a fixed synthetic run (snapshot images, layout tests) --------------------------------------
LENET = (
    "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu "
    "dense(84) relu dense(10)"
)
DATASETS = [
    DatasetInfo(
        "spirals",
        "3 interleaved spiral arms in 2-D",
        "classification",
        (2,),
        3,
        1500,
        500,
        True,
        "generated",
        noise=0.2,
    ),
    DatasetInfo(
        "sine", "noisy sine wave", "regression", (1,), None, 1000, 300, True, "generated", 0.1
    ),
    DatasetInfo(
        "glyphs",
        "offline 28x28 digit images drawn from a stroke font",
        "classification",
        (28, 28, 1),
        10,
        6000,
        1000,
        True,
        "generated",
    ),
    DatasetInfo(
        "mnist",
        "MNIST handwritten digits",
        "classification",
        (28, 28, 1),
        10,
        60000,
        10000,
        False,
        "download",
    ),
]
STEPS_PER_EPOCH = 85
LAYERS = ("conv_1", "conv_2", "dense_1", "dense_2", "dense_3")


def hist(rng: np.random.Generator, scale: float, shift: float = 0.0) -> dict:
    """A histogram as a `histograms` record holds one."""
    values = rng.normal(shift, scale, 2000)
    counts, _ = np.histogram(values, bins=30)
    percentiles = np.percentile(values, (0, 7, 16, 50, 84, 93, 100))
    return {
        "lo": float(values.min()),
        "hi": float(values.max()),
        "counts": [int(c) for c in counts],
        "percentiles": [float(p) for p in percentiles],
    }


def classification_run(regression: bool = False) -> list[Update]:
    """Seven and a bit epochs of a LeNet-like run, with an lr change at step 400."""
    rng = np.random.default_rng(0)
    hp = (
        ("lr", 0.05),
        ("momentum", 0.9),
        ("weight_decay", 0.0),
        ("decay", 0.0),
        ("base_lr", 0.05),
        ("batch_size", 64),
    )
    names = () if regression else tuple(str(i) for i in range(10))
    out: list[Update] = [
        RunStarted(
            "runs/20250101-120000-glyphs",
            "regression" if regression else "classification",
            "1-32-32-1:tanh" if regression else LENET,
            2209 if regression else 61706,
            20,
            names,
            LAYERS,
            hp,
            train_size=STEPS_PER_EPOCH * 64,
        )
    ]
    step, lr = 0, 0.05
    for epoch in range(8):
        batches = STEPS_PER_EPOCH if epoch < 7 else 5
        held: list[run_events.Batch] = []
        for batch in range(batches):
            step += 1
            if step == 400:
                change = {"name": "lr", "old": 0.05, "new": 0.1, "applies": "next batch"}
                out.append(run_events.make("hparam", step, change, when=0.0))
                lr = 0.1
            loss = 2.3 * math.exp(-step / 90) + 0.08 + abs(rng.normal(0, 0.06))
            accuracy = None if regression else min(1.0, 1 - loss / 2.5 + rng.normal(0, 0.02))
            held.append(
                run_events.Batch(
                    step=step,
                    epoch=epoch,
                    batch=batch,
                    loss=loss,
                    accuracy=accuracy,
                    lr=lr,
                    batch_size=64,
                    samples_per_sec=9876.0,
                    extra={k: v for k, v in hp if k not in ("lr", "batch_size")},
                )
            )
            if step % 50 == 0 or step == 1:
                layers: dict = {}
                for i, name in enumerate(LAYERS):
                    layers[name] = {
                        "weights": hist(rng, 0.1 + 0.02 * i + step / 8000),
                        "grads": hist(rng, 0.01 / (1 + step / 200)),
                        "grad_norm": 0.2 / (i + 1),
                        "update_ratio": 1e-3 * (i + 1),
                    }
                    if i < 4:
                        layers[f"relu_{i + 1}"] = {"dead_fraction": 0.05 * i}
                out.append(run_events.Histograms(epoch=epoch, step=step, layers=layers))
            if batch % 20 == 19 or batch == batches - 1:
                out.append(Batches(tuple(held)))
                held = []
        if epoch < 7:
            val = 2.3 * math.exp(-step / 90) + 0.12
            out.append(
                run_events.Epoch(
                    epoch=epoch,
                    step=step,
                    loss=val - 0.03,
                    accuracy=None if regression else 1 - val / 3,
                    val_loss=val,
                    val_accuracy=None if regression else 1 - val / 2.8,
                    seconds=0.55,
                    samples_per_sec=9876.0,
                )
            )
    if regression:
        grid = np.zeros((12, 24), dtype=int)
        for column in range(24):
            grid[11 - column // 2, column] = 8 + column % 3
            grid[max(0, 10 - column // 2), column] = 2
        out.append(
            run_events.Regression(
                epoch=6, step=595, counts=grid.tolist(), lo=-1.2, hi=1.2, r2=0.93, mae=0.081
            )
        )
    else:
        matrix = np.diag([57, 59, 55, 56, 58, 54, 59, 57, 55, 56])
        for i, j, count in (
            (3, 5, 3),
            (5, 3, 4),
            (4, 9, 2),
            (9, 4, 3),
            (7, 1, 3),
            (2, 7, 5),
            (8, 3, 3),
            (0, 6, 3),
            (6, 0, 1),
            (1, 7, 1),
            (8, 5, 2),
        ):
            matrix[i, j] = count
        precision = np.diag(matrix) / matrix.sum(axis=0)
        recall = np.diag(matrix) / matrix.sum(axis=1)
        out.append(
            run_events.Confusion(
                epoch=6,
                step=595,
                matrix=matrix.tolist(),
                precision=precision.tolist(),
                recall=recall.tolist(),
                class_names=list(names),
            )
        )
    saved = {"path": "runs/20250101-120000-glyphs/best.npz", "reason": "best"}
    out.append(run_events.make("checkpoint", 595, saved, when=0.0))
    return out


def config(**changes: object) -> ExperimentConfig:
    return ExperimentConfig(
        **{"dataset": "glyphs", "arch": LENET, "epochs": 20, "run_dir": "runs/demo", **changes}
    )


# -- a local mirror for dataset downloads ----------------------------------------------------------


class Server:
    """Serves `files` (name -> bytes) under /mnist/; `lie_about_length` truncates every body."""

    def __init__(self, files: dict[str, bytes]):
        self.files = {f"/mnist/{name}": body for name, body in files.items()}
        self.requests: list[str] = []
        self.lie_about_length = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                claimed = len(body) + 100 if outer.lie_about_length else len(body)
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# -- fuzzing the file readers ----------------------------------------------------------------------

SETTINGS = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


#: The most a read of a fuzzed file (a few kB) may allocate: far below any header's claim.
MEMORY_BOUND = 16 * 1024 * 1024


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid seed file with a few flips, overwrites (often in the header), inserts, deletes."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "insert", "delete", "truncate"]))
        # half the edits hit the first 64 bytes: magic numbers, dimensions, zip/npy headers
        hi = len(data) - 1 if draw(st.booleans()) else min(63, len(data) - 1)
        if hi < 0:
            break
        at = draw(st.integers(0, hi))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, ord("9"), ord(",")]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def check_read(read, data: bytes) -> None:
    """Run a read; only DatasetError may escape and the traced peak stays bounded."""
    tracemalloc.start()
    try:
        read()
    except nds.DatasetError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"read of {len(data)} bytes allocated {peak} bytes"


# -- a live run in the app -------------------------------------------------------------------------


def long_run(tmp_path: Path, **changes: object) -> ExperimentConfig:
    """Spirals in batches of 10 for many epochs: still running when the keys arrive."""
    values = dict(
        dataset="spirals",
        arch="2-16-16-3",
        epochs=500,
        batch_size=10,
        lr=0.05,
        seed=0,
        run_dir=str(tmp_path / "run"),
        histogram_every=20,
    )
    values.update(changes)
    return ExperimentConfig(**values)


async def started(pilot: Pilot) -> DashboardScreen:
    """The dashboard once its trainer has run a few batches."""
    await until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen))
    dashboard = pilot.app.screen
    await until(
        pilot,
        lambda: dashboard.experiment is not None and dashboard.experiment.trainer.global_step > 3,
    )
    return dashboard


async def paused(pilot: Pilot, dashboard: DashboardScreen) -> None:
    await press(pilot, "space")
    trainer = dashboard.experiment.trainer
    await until(pilot, lambda: trainer.state == "paused" and dashboard.state.status == "paused")
    assert trainer.wait_until_parked(timeout=5)


def end_event(tmp_path: Path) -> runs.Event:
    return runs.read(tmp_path / "run")[-1]


# -- run directories written by hand ---------------------------------------------------------------


def config_for(name: str, **changes: object) -> dict:
    """A config.json like the one an experiment writes, with `changes` on top."""
    return {
        "dataset": "spirals",
        "arch": "2-16-3",
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "sgd",
        "lr": 0.1,
        "seed": 0,
        "run_dir": f"runs/{name}",
        "dataset_info": {"name": "spirals", "task": "classification", "num_classes": 3},
        "trainer": {"model": {"spec": "2-16-3", "params": 99}, "epochs": 3, "batch_size": 32},
        **changes,
    }


def write_run(
    root: Path,
    name: str,
    epochs: int = 3,
    batches: int = 10,
    end: str | None = "finished",
    scale: float = 1.0,
    **config: object,
) -> Path:
    """A run directory with fixed numbers: a loss falling from 2*scale, accuracy rising."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / runs.CONFIG_FILE).write_text(json.dumps(config_for(name, **config)))
    lines = [runs.encode("run_start", 0, {"run": str(run_dir), "config": {}})]
    step = 0
    for epoch in range(epochs):
        for batch in range(batches):
            step += 1
            loss = 2.0 * scale * math.exp(-step / 12) + 0.05 * ((step * 7) % 5) / 5
            accuracy = min(0.99, 0.3 + step / (epochs * batches * 1.3) + 0.02 * (step % 3))
            lines.append(
                runs.encode(
                    "batch",
                    step,
                    {"epoch": epoch, "batch": batch, "loss": loss, "accuracy": accuracy, "lr": 0.1},
                )
            )
        val_loss = 1.5 * scale * math.exp(-step / 15) + 0.03
        lines.append(
            runs.encode(
                "epoch",
                step,
                {
                    "epoch": epoch,
                    "loss": loss,
                    "accuracy": accuracy,
                    "val_loss": val_loss,
                    "val_accuracy": min(0.98, 0.35 + 0.6 * (epoch + 1) / epochs / scale),
                },
            )
        )
    if end is not None:
        lines.append(runs.encode("end", step, {"reason": end}))
    (run_dir / runs.EVENTS_FILE).write_text("".join(lines))
    return run_dir


def deny_reading(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """What this process sees of another user's 0700 `folder` (for in-process tests; the
    tests run as root here, which reads anything): the folder itself can be looked at, but
    its list, or a look at anything in it, fails with EACCES."""
    real = {name: getattr(os, name) for name in ("stat", "scandir", "listdir")}

    def check(path: Any, itself: bool) -> None:
        if isinstance(path, int):  # a file descriptor
            return
        where = Path(os.fsdecode(path)).absolute()
        if folder in where.parents or (itself and where == folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        check(path, itself=False)
        return real["stat"](path, *args, **kwargs)

    def lister(name: str) -> Callable[..., Any]:
        def listing(path: Any = ".") -> Any:
            check(path, itself=True)
            return real[name](path)

        return listing

    folder = folder.absolute()
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "scandir", lister("scandir"))
    monkeypatch.setattr(os, "listdir", lister("listdir"))


def writer_env() -> dict:
    """The environment of a subprocess that imports this tree's nnlib."""
    return {**os.environ, "PYTHONPATH": str(Path(runindex.__file__).parents[1])}


# -- a run writer in another process ---------------------------------------------------------------

WRITER = """
import sys, threading
from nnlib.callbacks import Callback
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup

class Hang(Callback):
    def on_batch_end(self, trainer, batch, logs):
        if trainer.global_step == 3:
            print("ready", flush=True)
            threading.Event().wait()

config = ExperimentConfig(dataset="spirals", arch="2-8-3", epochs=50, batch_size=16, seed=0,
                          run_dir=sys.argv[1])
setup(config, callbacks=[Hang()], checkpoints=True).fit()
"""


# -- the nnlib command line, run as a process ------------------------------------------------------

#: The stop signals tests send to a child process.
SENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def child_process(argv: list[str], **popen: Any) -> subprocess.Popen:
    """`argv` started for a test that signals it and reads its output: text pipes for its
    stdout and stderr, the stop signals at their defaults (`default_signals`); `popen` adds
    Popen's other arguments (cwd, env, start_new_session)."""
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
        **popen,
    )


def nnlib_process(cwd: Path, env: dict, *words: str, **popen: Any) -> subprocess.Popen:
    """`nnlib WORDS...` run from `cwd` with `env`, as `child_process`."""
    command = [sys.executable, "-m", "nnlib.cli", *words]
    return child_process(command, cwd=cwd, env=env, **popen)


def train_until_a_batch(cwd: Path, env: dict, *flags: str) -> subprocess.Popen:
    """`nnlib train` of spirals (endless in practice) into `cwd`/run with `flags`, once it
    has logged at least one batch; the test fails if it exits first or logs none."""
    endless = ["train", "--dataset", "spirals", "--epochs", "100000", "--run-dir", "run"]
    process = nnlib_process(cwd, env, *endless, "--quiet", *flags)
    events_file = cwd / "run" / "events.jsonl"
    for _ in range(6000):  # at most ~2 minutes; normally a second
        if logged_a_batch(events_file):
            return process
        try:
            process.wait(timeout=0.02)  # a bounded wait that also notices an early exit
            pytest.fail(f"nnlib exited early: {process.communicate()}")
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    pytest.fail("no batch was logged")


def signal_and_wait(process: subprocess.Popen, *signals: int) -> str:
    """Send `signals` back to back (no wait in between), then wait for the process (killed
    if it outlives TIMEOUT): its stderr."""
    try:
        for signum in signals:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return stderr


def default_signals() -> None:
    """A Popen preexec_fn for a child that a test sends signals to: the child starts with
    their default disposition, unblocked, whatever the test run inherited (`nohup` ignores
    SIGHUP, a shell's background job SIGINT; both are kept by exec and rightly by nnlib).
    So the test tests nnlib, not the harness it runs under."""
    for signum in SENT_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SENT_SIGNALS)


def run_cli(cwd, env, *args, timeout=CLI_TIMEOUT):
    return subprocess.run(
        [sys.executable, "-m", "nnlib.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def usage_error(done, *words):
    """Exit 2 with exactly one line on stderr, naming `words`, and no traceback."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


# -- a short run, as the bridge saw it live --------------------------------------------------------

EPOCHS = 3


def train(
    run_dir: Path, epochs: int = EPOCHS, callbacks: tuple = (), **changes: Any
) -> list[Update]:
    """A short spirals run written to `run_dir` (or another, by `changes` to its config:
    `IMAGES` is a small image run); returns what a live Bridge sent."""
    live: list[Update] = []
    config = ExperimentConfig(
        **{
            "dataset": "spirals",
            "arch": "2-16-16-3",
            "epochs": epochs,
            "batch_size": 32,
            "lr": 0.1,
            "seed": 0,
            "run_dir": str(run_dir),
            "histogram_every": 10,
            **changes,
        }
    )
    setup(config, callbacks=[Bridge(live.append, interval=0.0), *callbacks]).fit()
    return live


#: Two conv layers (one keeping 28x28) and their pooling on 400 glyphs: a run with samples
#: and feature maps that trains in a second or two.
TINY_CNN = "conv(3,3,pad=1) relu maxpool(2) conv(4,3) relu maxpool(2) dense(10)"
IMAGES = {"dataset": "glyphs", "arch": TINY_CNN, "subset": 400, "batch_size": 50, "lr": 0.05}


def of(kind: type, updates: list[Update]) -> list:
    return [s for s in updates if isinstance(s, kind)]


# -- sweeps whose workers are killed ---------------------------------------------------------------
SWEEP_TIMEOUT = 180  # seconds; a bound on sweeps that normally take a few


def start_sweep(cwd: Path, env: dict, *args: str) -> subprocess.Popen:
    """`nnlib sweep ...` in its own process group, as a terminal's foreground job is."""
    return nnlib_process(cwd, env, "sweep", *args, start_new_session=True)


def ended(process: subprocess.Popen) -> str:
    """Its stderr once it has exited (bounded: else its process group is killed)."""
    try:
        return process.communicate(timeout=SWEEP_TIMEOUT)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def wait_for_batches(process: subprocess.Popen, run_dirs: list[Path]) -> None:
    """Until every run in `run_dirs` has logged a batch (bounded; fails on an early exit)."""
    for _ in range(SWEEP_TIMEOUT * 50):
        if all(logged_a_batch(d / "events.jsonl") for d in run_dirs):
            return
        try:
            process.wait(timeout=0.02)
            pytest.fail(f"nnlib sweep exited early: {process.communicate()}")
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    pytest.fail(f"no batch logged in {run_dirs}")


def writer_pid(run_dir: Path) -> int:
    """The process writing `run_dir`: the holder of its writer lock, as /proc/locks lists it."""
    inode = (run_dir / runs.LOCK_FILE).stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()  # 1: FLOCK  ADVISORY  WRITE 22947 fe:00:2147811 0 EOF
        if fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5].endswith(f":{inode}"):
            return int(fields[4])
    pytest.fail(f"no process holds the writer lock of {run_dir}")


def attempts_that_finished(folder: Path) -> dict[str, list[str]]:
    """Per trial of the sweep in `folder`, its attempt folders whose log ends 'finished'."""
    finished: dict[str, list[str]] = {}
    for run_dir in sorted(folder.glob("trial-*")):
        events = runs.read(run_dir)
        if events[-1].type == "end" and events[-1]["reason"] == "finished":
            finished.setdefault(run_dir.name.partition(".")[0], []).append(run_dir.name)
    return finished


# -- runs stopped, failed or killed at a step, to be resumed ------------------------------------

RESUMED_EPOCHS = 4  # spirals: 1,400 training samples in batches of 64, 22 steps an epoch


def resumable_config(run_dir: Path, **changes: object) -> ExperimentConfig:
    """A small spirals run with a checkpoint every 30 steps, to stop and resume."""
    values = dict(
        dataset="spirals",
        arch="2-16-3",
        epochs=RESUMED_EPOCHS,
        batch_size=64,
        seed=0,
        run_dir=str(run_dir),
        checkpoint_every=30,
    )
    return ExperimentConfig(**{**values, **changes})  # type: ignore[arg-type]


class At(nl.Callback):
    """At step `step`: stop the run (as the app's `s` or a Ctrl+C does), or fail with an error."""

    def __init__(self, step: int, fail: bool = False) -> None:
        self.step, self.fail = step, fail

    def on_batch_end(self, trainer, batch, logs) -> None:
        if trainer.global_step == self.step:
            if self.fail:
                raise RuntimeError(f"failed at step {self.step}")
            trainer.stop()


def stopped(run_dir: Path, step: int) -> Path:
    setup(resumable_config(run_dir), callbacks=[At(step)]).fit(threads=1)
    return run_dir


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from nnlib.callbacks import Callback
    from nnlib.config import ExperimentConfig
    from nnlib.experiment import setup

    class Kill(Callback):
        def on_batch_end(self, trainer, batch, logs):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = ExperimentConfig(**eval(sys.argv[3]))
    setup(config, callbacks=[Kill()]).fit(threads=1)
    """
)


def killed(run_dir: Path, step: int) -> Path:
    values = {k: v for k, v in resumable_config(run_dir).to_dict().items() if v is not None}
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(run_dir), str(step), repr(values)],
        env=writer_env(),
        capture_output=True,
        timeout=TIMEOUT * 4,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return run_dir
