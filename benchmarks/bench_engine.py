"""One training epoch of nnlib against PyTorch CPU, side by side, on 8,000 MNIST digits.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_engine.py \
        --frameworks nnlib,replicas,processes --runs 5    # the README's Speed table

Each row is one model trained for one epoch (each of `--batches`, default 64 and 256; SGD lr
0.01 momentum 0.9, shuffled with a fixed seed) by each framework, with each of `--threads`
(default 1 and 2), timed with `perf_counter` around the epoch only (the Trainer runners'
epoch includes their validation on the 2,000 test digits, as a fit's does); the frameworks
alternate
run by run (and swap who goes first) in one process so that machine noise hits both. The
first table is the README's: model, batch, threads, both frameworks' median seconds, their
ratio and both peak memories; the tables after it add accuracies, the fraction of the sgemm
peak and the memory detail per batch. The machine facts name the CPU and its vendor, the
BLAS kernels and threads, and torch's.

Memory is measured separately, one fresh subprocess per framework and model (1 thread): the
peak resident set growth over one epoch, i.e. VmHWM after the epoch minus VmRSS before it (the
high-water mark is reset through /proc/self/clear_refs after the data and the model exist),
less the growth of RssFile meanwhile: the library code a first epoch maps in (torch's own:
9-21 MiB) is not memory the training holds.
For nnlib the tracemalloc peak, the largest total of live numpy arrays, is shown as well.
`--memory-only` runs just these probes (every model, each batch size, nnlib and torch).

`--hooks` compares an epoch with the app's default monitoring (Monitor and RunLogger) against
a bare one, alternating, in process CPU time, and times their hooks; `--policy`
adds the BLAS-thread measurement for the trainer: nnlib with 1 and 2 BLAS threads
while another thread of the process is idle, spins in pure Python (a UI thread at its worst),
spins in C without the GIL (a busy core), or runs Python in 10 ms bursts (a UI redrawing).
`--batch-workers` compares the three ways to use a second core: 2 BLAS threads, 2 batch
workers (`nnlib.threads.ThreadPlan(workers=2)`: conv and pool parts two at a time, BLAS at 1
thread) and 2 replicas (`ThreadPlan(replicas=2)`: each batch's halves trained at once, one
by the model and one by a replica sharing its weights, BLAS at 1 thread), each against 1
thread, in wall time and in CPU time (all threads of the process).

A row is a *runner*: a function `(model_name, data, seed) -> (train_one_epoch, accuracy)`.
Add one to RUNNERS to time another way of training (e.g. a Trainer) against the same torch rows.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nnlib as nl  # noqa: E402
from nnlib.callbacks.callback_list import listens  # noqa: E402
from nnlib.replicas import Replicas  # noqa: E402
from nnlib.threads import ThreadPlan, blas_threads  # noqa: E402

DEFAULT_BATCH = 64
BATCH = DEFAULT_BATCH  # set for each of --batches
LR = 0.01
MOMENTUM = 0.9
N_TRAIN, N_TEST = 8000, 2000

MODELS = {
    "MLP 784-512-128-10": "784-512-128-10",
    "LeNet-5": "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) "
    "dense(120) relu dense(84) relu dense(10)",
    "tutorial CNN": "conv(3,5) relu maxpool(3,stride=2) dense(84) relu dense(10)",
    "VGG-style 32x32x3": "conv(32,3,pad=same) relu conv(32,3,pad=same) relu maxpool(2) "
    "conv(64,3,pad=same) relu maxpool(2) dense(128) relu dense(10)",
    "4 stacked conv 16@3x3": "conv(16,3) relu conv(16,3) relu conv(16,3) relu conv(16,3) relu "
    "dense(10)",
}
#: Models fed colour images: the digits padded to 32x32 and repeated over 3 channels (the
#: shape of CIFAR-10, which is not on this machine; the accuracy stays meaningful).
RGB32 = {"VGG-style 32x32x3"}

Epoch = Callable[[], None]
Accuracy = Callable[[], float]
Runner = Callable[[str, "Data", int], tuple[Epoch, Accuracy]]


# -- data -------------------------------------------------------------------------------------
@dataclass
class Data:
    x_train: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1]
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray

    def batches(self, seed: int) -> Iterator[np.ndarray]:
        order = np.random.default_rng(seed).permutation(len(self.x_train))
        for start in range(0, len(order), BATCH):
            yield order[start : start + BATCH]

    def rgb32(self) -> Data:
        """The digits padded to 32x32 and repeated over 3 channels."""

        def convert(x: np.ndarray) -> np.ndarray:
            padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
            return np.ascontiguousarray(np.repeat(padded, 3, axis=3))

        return Data(convert(self.x_train), self.y_train, convert(self.x_test), self.y_test)

    def head(self, count: int) -> Data:
        return Data(
            self.x_train[:count], self.y_train[:count], self.x_test[:count], self.y_test[:count]
        )


def read_idx(path: Path) -> np.ndarray:
    """A minimal IDX reader (the format of the MNIST files): magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(directory: Path) -> tuple[Data, str]:
    """nnlib.datasets when it loads the folder (first 8,000 / last 2,000 of the t10k files),
    else the same split read here."""
    try:
        import warnings

        from nnlib import datasets

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "partial: only the test files are there"
            ds = datasets.load("mnist", data_dir=directory, download=False, cache=False)
        images, labels = (
            np.concatenate([ds.x_train, ds.x_test]),
            np.concatenate([ds.y_train, ds.y_test]),
        )
        source = "nnlib.datasets.load('mnist')"
    except Exception:  # noqa: BLE001 - any failure: fall back to the local reader
        images, labels = (
            read_idx(directory / "t10k-images-idx3-ubyte.gz"),
            read_idx(directory / "t10k-labels-idx1-ubyte.gz"),
        )
        source = "the benchmark's own IDX reader"
    if images.size != (N_TRAIN + N_TEST) * 28 * 28:
        raise SystemExit(f"{directory}: expected the 10,000 MNIST t10k digits, got {images.shape}")
    scale = np.float32(255 if images.dtype == np.uint8 else 1)
    x = (images.reshape(-1, 28, 28, 1) / scale).astype(np.float32)
    y = labels.astype(np.int64)
    return Data(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]), source


_RGB32_CACHE: dict[int, Data] = {}


def model_data(name: str, data: Data) -> Data:
    """The data a model trains on: MNIST as is, or its 32x32x3 version for RGB32 models."""
    if name not in RGB32:
        return data
    if id(data) not in _RGB32_CACHE:
        _RGB32_CACHE.clear()
        _RGB32_CACHE[id(data)] = data.rgb32()
    return _RGB32_CACHE[id(data)]


# -- runners: (model name, data, seed) -> (train one epoch, test accuracy) --------------------
#: Seconds each replica process took to start (outside the timed epochs), for the notes.
CHILD_STARTS: list[float] = []


def nnlib_loop(
    name: str,
    data: Data,
    seed: int,
    replicas: int = 1,
    processes: bool = False,
    end_in_epoch: bool = False,
) -> tuple[Epoch, Accuracy]:
    """The plain loop: forward, loss, backward_params, optimizer step; with `replicas` > 1,
    each batch's forward and backward in that many parts at once (`nnlib.replicas`), the
    parts beyond the first in child processes with `processes`. Those are started here,
    before the epoch is timed (once per fit, not per epoch; its time goes to
    CHILD_STARTS), and end after it, in `accuracy` (their end took 37-65 ms), or with
    `end_in_epoch` at the epoch's end (the workers table, whose CPU time counts a child's
    only once it has ended)."""
    data = model_data(name, data)
    model = nl.build(MODELS[name], data.x_train.shape[1:], seed=seed)
    loss = nl.SoftmaxCrossEntropy()
    optimizer = nl.SGD(LR, momentum=MOMENTUM)
    parts, held = Replicas(model, loss, replicas, processes), contextlib.ExitStack()
    if processes:
        start = time.perf_counter()
        held.enter_context(parts)
        CHILD_STARTS.append(time.perf_counter() - start)

    def train_epoch() -> None:  # with one replica, a step is the model's own pass
        with contextlib.nullcontext() if processes else parts:
            for idx in data.batches(seed):
                parts.step(data.x_train[idx], data.y_train[idx])
                optimizer.step(model.parameters())
        if end_in_epoch:
            held.close()

    def accuracy() -> float:
        held.close()
        return float(np.mean(model.predict(data.x_test).argmax(axis=1) == data.y_test))

    return train_epoch, accuracy


def plan_runner(label: str) -> Runner:
    """The plain loop on two cores with THREAD_PLANS[label] (replicas on threads or in
    processes, one BLAS thread each). Timed only in the 2-thread rows."""

    def runner(name: str, data: Data, seed: int) -> tuple[Epoch, Accuracy]:
        plan = THREAD_PLANS[label]
        train_epoch, accuracy = nnlib_loop(name, data, seed, plan.replicas, plan.processes)

        def epoch() -> None:
            with blas_threads(plan):
                train_epoch()

        return epoch, accuracy

    return runner


def trainer_runner(monitored: bool) -> Runner:
    """nl.Trainer for one epoch with the test split as validation data; `monitored` adds
    everything the TUI relies on: Monitor (histograms every 50 batches, the confusion matrix
    after the epoch) and a RunLogger writing every batch to a temporary run directory."""

    def runner(name: str, data: Data, seed: int) -> tuple[Epoch, Accuracy]:
        import tempfile

        data = model_data(name, data)
        model = nl.build(MODELS[name], data.x_train.shape[1:], seed=seed)
        callbacks: list[nl.Callback] = []
        folder = tempfile.TemporaryDirectory(prefix="bench-run-")  # removed with the runner
        if monitored:
            callbacks = [nl.Monitor(every=50), nl.RunLogger(run_dir=Path(folder.name) / "run")]
        trainer = nl.Trainer(
            model, nl.SoftmaxCrossEntropy(), nl.SGD(LR, momentum=MOMENTUM), callbacks=callbacks
        )

        def train_epoch() -> None:
            trainer.fit(
                data.x_train,
                data.y_train,
                epochs=1,
                batch_size=BATCH,
                validation_data=(data.x_test, data.y_test),
                seed=seed,
                threads=None,  # set_threads chose (fit's "auto" would be 1 on 2 cores)
            )

        def accuracy() -> float:
            folder.cleanup()
            return float(np.mean(model.predict(data.x_test).argmax(axis=1) == data.y_test))

        return train_epoch, accuracy

    return runner


def torch_model(name: str):  # noqa: ANN201 - torch is optional
    from torch import nn

    if name.startswith("MLP"):
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Linear(512, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "LeNet-5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )
    if name.startswith("VGG"):
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 8 * 8, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name.startswith("4 stacked"):
        layers: list[nn.Module] = []
        for channels in (1, 16, 16, 16):
            layers += [nn.Conv2d(channels, 16, 3), nn.ReLU()]
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * 20 * 20, 10))
    return nn.Sequential(
        nn.Conv2d(1, 3, 5),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Flatten(),
        nn.Linear(363, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def torch_loop(name: str, data: Data, seed: int) -> tuple[Epoch, Accuracy]:
    """The idiomatic PyTorch loop on NCHW tensors (torch's native layout)."""
    import torch

    data = model_data(name, data)
    torch.manual_seed(seed)
    model = torch_model(name)
    for module in model.modules():  # nnlib's "he" init, so that accuracies compare
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(np.ascontiguousarray(data.x_train.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(data.y_train)
    x_test = torch.from_numpy(np.ascontiguousarray(data.x_test.transpose(0, 3, 1, 2)))

    def train_epoch() -> None:
        model.train()
        for idx in data.batches(seed):
            index = torch.from_numpy(idx)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[index]), y[index]).backward()
            optimizer.step()

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            predicted = torch.cat(
                [model(x_test[i : i + 256]).argmax(dim=1) for i in range(0, len(x_test), 256)]
            )
        return float(np.mean(predicted.numpy() == data.y_test))

    return train_epoch, accuracy


RUNNERS: dict[str, Runner] = {
    "nnlib": nnlib_loop,
    "replicas": plan_runner("2 replicas"),
    "processes": plan_runner("2 processes"),
    "trainer": trainer_runner(False),
    "monitored": trainer_runner(True),
    "torch": torch_loop,
}
REFERENCE = "torch"
#: Runners that use two cores by design: timed in the 2-thread rows only.
TWO_THREADS_ONLY = ("replicas", "processes")
#: Runners whose memory the peak-memory probe cannot see (a replica process's is not in its
#: parent's resident set): not probed.
UNPROBED = ("processes",)


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def set_threads(count: int) -> threadpool_limits:
    """Limit numpy's BLAS (and any OpenMP pool) and torch's intra-op pool to `count` threads."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    return threadpool_limits(limits=count)


class OtherLoad:
    """How busy the machine was with other processes during a block: busy CPU time from
    /proc/stat minus this process's own and its ended children's (replica processes), per
    second of wall time (in cores)."""

    cores = 0.0

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as handle:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, handle.readline().split()[1:9]
            )
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> OtherLoad:
        self._start = (self._busy(), sum(os.times()[:4]), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = self._busy(), sum(os.times()[:4]), time.perf_counter()
        self.cores = max(0.0, (busy - self._start[0]) - (own - self._start[1])) / max(
            wall - self._start[2], 1e-9
        )

    def note(self) -> str:
        return (
            f"Other processes kept {self.cores:.2f} cores busy on average meanwhile (/proc/stat); "
            f"load average {loadavg()} at the end."
        )


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages (/proc/loadavg)."""
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


# -- timing -----------------------------------------------------------------------------------
@dataclass
class Result:
    seconds: list[float]
    accuracy: list[float]


def time_epoch(runner: Runner, name: str, data: Data, seed: int) -> tuple[float, float]:
    """Build a fresh model, time one epoch, return (seconds, test accuracy)."""
    train_epoch, accuracy = runner(name, data, seed)
    start = time.perf_counter()
    train_epoch()
    seconds = time.perf_counter() - start
    return seconds, accuracy()


def measure(
    frameworks: list[str], names: list[str], threads: list[int], runs: int, data: Data, seed: int
) -> dict[tuple[str, str, int], Result]:
    """Interleaved: for each run, each model, each framework (alternating who goes first)."""
    results: dict[tuple[str, str, int], Result] = {}
    for count in threads:
        timed = [f for f in frameworks if count > 1 or f not in TWO_THREADS_ONLY]
        with set_threads(count):
            for framework in timed:  # warm-up: thread pools, lazy inits, caches
                for name in names:
                    time_epoch(RUNNERS[framework], name, data.head(640), seed)
            for run in range(runs):
                for name in names:
                    order = timed if run % 2 == 0 else timed[::-1]
                    for framework in order:
                        seconds, acc = time_epoch(RUNNERS[framework], name, data, seed)
                        result = results.setdefault((framework, name, count), Result([], []))
                        result.seconds.append(seconds)
                        result.accuracy.append(acc)
                        print(
                            f"  {count} thread(s) run {run + 1}/{runs} {name:20s} "
                            f"{framework:8s} {seconds:6.2f} s  acc {acc:.3f}",
                            file=sys.stderr,
                            flush=True,
                        )
    return results


def speed_table(
    results: dict[tuple[str, str, int], Result],
    frameworks: list[str],
    names: list[str],
    threads: list[int],
    runs: int,
) -> str:
    others = [f for f in frameworks if f != REFERENCE]
    has_ref = REFERENCE in frameworks
    head = ["model", "threads", *[f"{f} s" for f in frameworks]]
    if has_ref:
        head += [f"{f}/{REFERENCE}" for f in others]
    head += [f"{f} acc" for f in frameworks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        for count in threads:
            timed = [f for f in frameworks if (f, name, count) in results]  # replicas: 2
            median = {f: statistics.median(results[f, name, count].seconds) for f in timed}
            accuracy = {f: statistics.median(results[f, name, count].accuracy) for f in timed}
            cells = [name, str(count), *[_seconds_cell(median, f) for f in frameworks]]
            if has_ref:
                cells += [_ratio_cell(median, f) for f in others]
            cells += [f"{accuracy[f]:.1%}" if f in timed else "" for f in frameworks]
            lines.append("| " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + f"\n\nMedian of {runs} runs; one epoch of {N_TRAIN:,} digits, "
        f"batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}. "
        "nnlib: the plain loop; replicas: the same with 2 replicas (2-thread rows only); "
        "trainer: nl.Trainer.fit with validation "
        "on the 2,000 test digits; monitored: the same plus Monitor "
        "(histograms every 50 batches, confusion matrix per epoch) and "
        "RunLogger."
    )


class HookTimer(nl.Callback):
    """Wraps a callback and adds up the CPU time of the calling thread spent inside its
    hooks, less the time of other timed hooks called from inside (the Monitor's emit runs
    the RunLogger's on_event: counted once, for the logger). The RunLogger's writer thread
    is not in it: `hook_cost_table` compares whole-process CPU time for that. It passes on
    every hook, `on_record` (the events, epochs and end the run log writes) included, and
    what the callback list reads of a callback (`record_batches`, `essential`)."""

    _inside: ClassVar[list[HookTimer]] = []

    def __init__(self, inner: nl.Callback) -> None:
        self.inner, self.seconds = inner, 0.0
        self.record_batches, self.essential = inner.record_batches, inner.essential
        for hook in (
            "on_train_begin",
            "on_epoch_begin",
            "on_batch_begin",
            "on_batch_end",
            "on_epoch_end",
            "on_train_end",
            "on_event",
            "on_record",
        ):
            if listens(inner, hook):  # as the callback list calls it: no-op hooks are not
                setattr(self, hook, self._timed(getattr(inner, hook)))

    def _timed(self, hook: Callable[..., None]) -> Callable[..., None]:
        def call(*args: object) -> None:
            outer = HookTimer._inside[-1] if HookTimer._inside else None
            HookTimer._inside.append(self)
            start = time.thread_time()
            try:
                hook(*args)
            finally:
                HookTimer._inside.pop()
                spent = time.thread_time() - start
                self.seconds += spent
                if outer is not None:
                    outer.seconds -= spent

        return call


class EpochClock(nl.Callback):
    """Process CPU time at each epoch's start and at the end of training, taken before the
    other callbacks' hooks of the end (placed first): the RunLogger's closing is a cost of
    the run, not of its last epoch."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.end = 0.0

    def on_epoch_begin(self, trainer: nl.Trainer, epoch: int) -> None:
        self.starts.append(time.process_time())

    def on_train_end(self, trainer: nl.Trainer, logs: dict) -> None:
        self.end = time.process_time()


#: Epochs of each `--hooks` run: the first carries what a run pays once (opening its log,
#: the Monitor's first histograms before training and at step 1), the others are its steady
#: cost per epoch.
HOOK_EPOCHS = 3


def hook_cost_table(names: list[str], threads: list[int], data: Data, runs: int, seed: int) -> str:
    """What the app's default monitoring costs: nl.Trainer runs of HOOK_EPOCHS epochs with
    the Monitor (histograms every 50 batches, the confusion matrix after each epoch) and a
    RunLogger writing to a temporary run directory, against the same runs with no callbacks,
    alternating run by run, in CPU time of the whole process (the RunLogger's writer thread
    included): the first epoch (with the run's start) and the later epochs apart; and the
    CPU time inside each one's hooks on the training thread over the whole run."""
    import shutil
    import tempfile

    lines = [
        "| model | threads | bare epoch CPU s | first epoch share | later epochs share "
        "| whole run share | Monitor hooks ms | RunLogger hooks ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        inputs = model_data(name, data)
        for count in threads:
            times: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
            hooks: list[tuple[float, float]] = []
            with set_threads(count):
                for run in range(runs + 1):  # the first of each is a warm-up
                    for monitored in (False, True) if run % 2 else (True, False):
                        model = nl.build(MODELS[name], inputs.x_train.shape[1:], seed=seed)
                        run_dir = tempfile.mkdtemp(prefix="bench-hooks-")
                        monitor = HookTimer(nl.Monitor(every=50))
                        logger = HookTimer(nl.RunLogger(run_dir=run_dir))
                        clock = EpochClock()
                        trainer = nl.Trainer(
                            model,
                            nl.SoftmaxCrossEntropy(),
                            nl.SGD(LR, momentum=MOMENTUM),
                            callbacks=[clock, monitor, logger] if monitored else [clock],
                        )
                        start = time.process_time()
                        trainer.fit(
                            inputs.x_train,
                            inputs.y_train,
                            epochs=HOOK_EPOCHS,
                            batch_size=BATCH,
                            validation_data=(inputs.x_test, inputs.y_test),
                            seed=seed,
                            threads=None,  # set_threads chose
                        )
                        whole = time.process_time() - start
                        shutil.rmtree(run_dir, ignore_errors=True)
                        if run == 0:
                            continue
                        first = clock.starts[1] - start
                        later = (clock.end - clock.starts[1]) / (HOOK_EPOCHS - 1)
                        times[monitored].append((first, later, whole))
                        if monitored:
                            hooks.append((monitor.seconds, logger.seconds))
            bare, full = (
                [statistics.median(column) for column in zip(*times[m], strict=True)]
                for m in (False, True)
            )
            shares = [(f - b) / b for f, b in zip(full, bare, strict=True)]
            mon, log = (statistics.median(column) * 1000 for column in zip(*hooks, strict=True))
            lines.append(
                f"| {name} | {count} | {bare[1]:.3f} | "
                + " | ".join(f"{share:+.1%}" for share in shares)
                + f" | {mon:.1f} | {log:.1f} |"
            )
    return (
        "\n".join(lines) + f"\n\nBatch {BATCH}, medians of {runs} alternating runs after a "
        f"warm-up; nl.Trainer.fit for {HOOK_EPOCHS} epochs with validation on the 2,000 test "
        "digits. Shares: (monitored - bare) / bare, process CPU time; the first epoch includes "
        "the run's start (the RunLogger opening its log, the Monitor's histograms before "
        "training and at step 1), the later epochs are the mean of the others, the whole run "
        "adds the RunLogger's end. Hooks: the training thread's CPU time inside them, whole run."
    )


def overhead_table(
    results: dict[tuple[str, str, int], Result], names: list[str], threads: list[int]
) -> str:
    """What the monitoring callbacks cost: monitored vs bare trainer, medians of separate
    runs (noisy on a shared machine; hook_cost_table measures it within each run)."""
    lines = [
        "| model | threads | trainer s | monitored s | callbacks cost |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        for count in threads:
            bare = statistics.median(results["trainer", name, count].seconds)
            full = statistics.median(results["monitored", name, count].seconds)
            lines.append(
                f"| {name} | {count} | {bare:.3f} | {full:.3f} | {(full - bare) / bare:+.1%} |"
            )
    return "\n".join(lines)


# -- fraction of the machine's sgemm peak ------------------------------------------------------
def epoch_gflop(name: str, data: Data) -> float:
    """Multiply-adds x 2 of one training epoch: forward, weight gradient and, except for the
    first layer with weights, input gradient of every conv and dense layer."""
    inputs = model_data(name, data)
    model = nl.build(MODELS[name], inputs.x_train.shape[1:], seed=0)
    total, first = 0.0, True
    for layer in model.layers:
        if not isinstance(layer, nl.Conv2D | nl.Dense):
            continue
        forward = 2.0 * float(np.prod(layer.output_shape)) * (layer.params["W"].value.size)
        forward /= layer.params["W"].value.shape[-1]  # per output value: kh*kw*C (or inputs)
        total += forward * (2 if first else 3)
        first = False
    return total * len(inputs.x_train) / 1e9


def sgemm_peak(threads: int, runs: int = 5) -> float:
    """GFLOP/s of a 2048x2048 float32 matmul, best of `runs`, by numpy's BLAS and, when it is
    loaded, torch's (its kernels use AVX-512 where this OpenBLAS falls back to Haswell's):
    the faster is the machine's reachable peak."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    products = [lambda: a @ a]
    if "torch" in sys.modules:
        t = sys.modules["torch"].from_numpy(a)
        products.append(lambda: t @ t)
    best = 0.0
    with set_threads(threads):
        for product in products:
            product()
            for _ in range(runs):
                start = time.perf_counter()
                product()
                best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def peak_table(
    results: dict[tuple[str, str, int], Result],
    frameworks: list[str],
    names: list[str],
    threads: list[int],
    data: Data,
) -> str:
    shown = [f for f in ("nnlib", REFERENCE) if f in frameworks]
    peaks = {count: sgemm_peak(count) for count in threads}
    lines = [
        "| model | GFLOP/epoch | threads | sgemm peak GFLOP/s | "
        + " | ".join(f"{f} % of peak" for f in shown)
        + " |",
        "|---|---|---|---|" + "---|" * len(shown),
    ]
    for name in names:
        gflop = epoch_gflop(name, data)
        for count in threads:
            cells = [name, f"{gflop:.1f}", str(count), f"{peaks[count]:.0f}"]
            for f in shown:
                seconds = statistics.median(results[f, name, count].seconds)
                cells.append(f"{gflop / seconds / peaks[count]:.0%}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\nsgemm peak: best of 5 2048x2048 float32 matmuls, numpy and torch; "
        f"load average {loadavg()}."
    )


# -- memory (one fresh subprocess per framework and model) -------------------------------------
def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def memory_probe(framework: str, name: str, data: Data, seed: int) -> dict[str, float]:
    """Run inside a fresh process: peak RSS growth over one epoch less the file pages (library
    code) mapped in meanwhile, and numpy's peak for nnlib."""
    if framework == REFERENCE:
        import torch  # noqa: F401 - imported before the baseline is taken
    with set_threads(1):
        train_epoch, _ = RUNNERS[framework](name, data, seed)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        before = _status()
        traced = framework != REFERENCE
        if traced:
            tracemalloc.start()
        train_epoch()
        after = _status()
        code = after["RssFile"] - before["RssFile"]
        report = {"rss": after["VmHWM"] - before["VmRSS"] - code, "code": code}
        if traced:
            report["numpy"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return report


def memory_reports(
    frameworks: list[str], names: list[str], args: argparse.Namespace
) -> dict[tuple[str, str], dict[str, float]]:
    """Each framework's memory probe for each model at the current BATCH, each in a fresh
    process, by (framework, model)."""
    reports = {}
    for name in names:
        for framework in frameworks:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--mnist-dir",
                    str(args.mnist_dir),
                    "--seed",
                    str(args.seed),
                    "--batches",
                    str(BATCH),
                    "--probe-memory",
                    framework,
                    name,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            reports[framework, name] = json.loads(out.strip().splitlines()[-1])
    return reports


def memory_table(
    reports: dict[tuple[str, str], dict[str, float]], frameworks: list[str], names: list[str]
) -> str:
    head = ["model", *[f"{f} peak RSS +" for f in frameworks]]
    traced = [f for f in frameworks if f != REFERENCE]
    head += [f"{f} numpy peak" for f in traced]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [name, *[f"{reports[f, name]['rss'] / 2**20:.1f} MiB" for f in frameworks]]
        cells += [f"{reports[f, name]['numpy'] / 2**20:.1f} MiB" for f in traced]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        f"\n\nBatch {BATCH}. Peak RSS + : resident-set high-water mark during one epoch minus "
        "the RSS before it and minus the file pages (library code) mapped in meanwhile, fresh "
        "process, 1 thread.\nnumpy peak: tracemalloc's peak of live "
        "numpy arrays during the epoch (numpy reports its allocations to tracemalloc; torch "
        "does not)."
    )


def _seconds_cell(median: dict[str, float], runner: str) -> str:
    """A runner's median seconds, blank where it was not timed."""
    return f"{median[runner]:.2f}" if runner in median else ""


def _ratio_cell(median: dict[str, float], runner: str) -> str:
    """A runner's median over torch's, blank where either was not timed."""
    both = runner in median and REFERENCE in median
    return f"{median[runner] / median[REFERENCE]:.2f}x" if both else ""


def _time_cells(median: dict[str, float]) -> list[str]:
    """nnlib s, torch s, nnlib / torch, then seconds and ratio for 2 replicas on threads
    and in processes."""
    return [
        _seconds_cell(median, "nnlib"),
        _seconds_cell(median, REFERENCE),
        _ratio_cell(median, "nnlib"),
        _seconds_cell(median, "replicas"),
        _ratio_cell(median, "replicas"),
        _seconds_cell(median, "processes"),
        _ratio_cell(median, "processes"),
    ]


def summary_table(
    results: dict[int, dict[tuple[str, str, int], Result]],
    memory: dict[int, dict[tuple[str, str], dict[str, float]]],
    names: list[str],
    threads: list[int],
    runs: int,
) -> str:
    """The README's table: a row per model, batch and thread count with nnlib's plain loop
    and torch (when both ran), their ratio and, on 1-thread rows, both peak memories."""
    lines = [
        "| model | batch | threads | nnlib s | torch s | nnlib / torch | 2 replicas s "
        "| replicas / torch | 2 processes s | processes / torch | nnlib peak MiB "
        "| torch peak MiB | replicas peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = ("nnlib", REFERENCE, "replicas", "processes")
    measured = [f for f in shown if f not in UNPROBED]  # the memory columns
    for name in names:
        for batch, by_key in results.items():
            for count in threads:
                median = {
                    f: statistics.median(by_key[f, name, count].seconds)
                    for f in shown
                    if (f, name, count) in by_key
                }

                cells = [name, str(batch), str(count), *_time_cells(median)]
                for f in measured:
                    report = memory.get(batch, {}).get((f, name))
                    if count == min(threads) and report is not None:
                        cells.append(f"{report['rss'] / 2**20:.1f}")
                    else:
                        cells.append("")
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        f"\n\nMedians of {runs} alternating runs of one epoch ({N_TRAIN:,} digits, SGD lr {LR} "
        f"momentum {MOMENTUM}); nnlib: the plain loop (2 threads: 2 BLAS threads); 2 replicas: "
        "the same loop with each batch's halves trained at once, 1 BLAS thread each; 2 "
        "processes: the second half in a child process (started before the timed epoch and "
        "ended after it). Peak MiB: resident-set growth over one epoch in a fresh process, less "
        "the library code mapped in meanwhile (1 BLAS thread; replicas: 2 threads; a child "
        "process's memory is not in it, so processes are not probed)."
    )


# -- BLAS thread policy: 1 vs 2 threads beside other work ---------------------------------------
def python_spin(stop: threading.Event) -> None:
    """Pure-Python busy loop: holds the GIL except when the interpreter hands it over."""
    while not stop.is_set():
        total = 0
        for i in range(10_000):
            total += i


def native_spin(stop: threading.Event) -> None:
    """Busy in C without the GIL (hashlib releases it for large inputs): takes a core only."""
    block = bytes(1 << 20)
    while not stop.is_set():
        hashlib.sha256(block).digest()


def python_bursts(stop: threading.Event) -> None:
    """10 ms of pure Python every 100 ms, roughly a UI thread redrawing 10 times a second."""
    while not stop.is_set():
        end = time.perf_counter() + 0.010
        while time.perf_counter() < end:
            sum(range(1000))
        stop.wait(0.090)


BACKGROUNDS: dict[str, Callable[[threading.Event], None] | None] = {
    "nothing": None,
    "busy Python thread": python_spin,
    "busy Python thread, switch interval 1 ms": python_spin,
    "busy native thread (GIL released)": native_spin,
    "Python thread, 10 ms busy every 100 ms": python_bursts,
}


def policy_table(names: list[str], data: Data, runs: int, seed: int) -> str:
    """nnlib epoch time with 1 and 2 BLAS threads while another thread of the process works."""
    times: dict[tuple[str, str, int], list[float]] = {}
    with set_threads(1):
        for name in names:
            time_epoch(nnlib_loop, name, data.head(640), seed)
    interval = sys.getswitchinterval()
    for run in range(runs):
        for name in names:
            for background, target in BACKGROUNDS.items():
                for count in (1, 2) if run % 2 == 0 else (2, 1):
                    stop = threading.Event()
                    worker = threading.Thread(target=target, args=(stop,), daemon=True)
                    if "switch interval" in background:
                        sys.setswitchinterval(0.001)
                    if target:
                        worker.start()
                    try:
                        with set_threads(count):
                            seconds, _ = time_epoch(nnlib_loop, name, data, seed)
                    finally:
                        stop.set()
                        if target:
                            worker.join()
                        sys.setswitchinterval(interval)
                    times.setdefault((name, background, count), []).append(seconds)
                    print(
                        f"  policy run {run + 1}/{runs} {name:20s} {count} thread(s) beside "
                        f"{background}: {seconds:6.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    head = ["model", "beside the training thread", "1 BLAS thread", "2 BLAS threads", "2 / 1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        for background in BACKGROUNDS:
            one, two = (statistics.median(times[name, background, c]) for c in (1, 2))
            lines.append(f"| {name} | {background} | {one:.2f} s | {two:.2f} s | {two / one:.2f} |")
    return (
        "\n".join(lines) + f"\n\nnnlib plain loop, median of {runs} runs; the Python "
        f"switch interval is {interval * 1000:g} ms unless the row says otherwise."
    )


#: The thread settings `--batch-workers` compares: a label and the ThreadPlan it trains with.
THREAD_PLANS = {
    "1 thread": ThreadPlan(blas=1),
    "2 BLAS threads": ThreadPlan(blas=2),
    "2 batch workers": ThreadPlan(blas=1, workers=2),
    "2 replicas": ThreadPlan(blas=1, replicas=2),
    "2 processes": ThreadPlan(blas=1, replicas=2, processes=True),
}


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a replica process
    ends with its epoch)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def workers_table(names: list[str], data: Data, runs: int, seed: int) -> str:
    """nnlib epoch wall and CPU time with each of THREAD_PLANS (1 thread first),
    alternating run by run (the order rotates). CPU time counts every thread of the
    process, so CPU / wall says how many cores a setting kept busy."""
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    labels = list(THREAD_PLANS)
    for name in names:
        with blas_threads(THREAD_PLANS["1 thread"]):
            time_epoch(nnlib_loop, name, data.head(640), seed)
    for run in range(runs):
        for name in names:
            turn = run % len(labels)
            for label in labels[turn:] + labels[:turn]:
                plan = THREAD_PLANS[label]
                train_epoch, _ = nnlib_loop(
                    name, data, seed, plan.replicas, plan.processes, end_in_epoch=True
                )
                with blas_threads(plan):
                    wall, cpu = time.perf_counter(), _cpu_seconds()
                    train_epoch()
                    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
                times.setdefault((name, label), []).append((wall, cpu))
                print(
                    f"  workers run {run + 1}/{runs} {name:20s} {label:15s} "
                    f"{wall:6.2f} s wall {cpu:6.2f} s CPU",
                    file=sys.stderr,
                    flush=True,
                )
    head = ["model", *(f"{label} wall / CPU s" for label in labels)]
    head += [f"{label} / 1 thread, wall (CPU)" for label in labels[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        walls = {k: statistics.median(w for w, _ in times[name, k]) for k in labels}
        cpus = {k: statistics.median(c for _, c in times[name, k]) for k in labels}
        cells = [name, *(f"{walls[k]:.2f} / {cpus[k]:.2f}" for k in labels)]
        base = labels[0]
        cells += [
            f"{walls[k] / walls[base]:.2f}x ({cpus[k] / cpus[base]:.2f}x)" for k in labels[1:]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + f"\n\nnnlib plain loop, batch {BATCH}, medians of {runs} runs. "
        "Only an idle machine tells the wall-time gain; on a busy one read the CPU ratios "
        "(the cost of the second thread's work and of handing parts over)."
    )


# -- machine facts --------------------------------------------------------------------------
def cpu_facts() -> tuple[str, str, str]:
    """The CPU's model name, vendor and widest vector extension, from /proc/cpuinfo: the
    issue's ratios differ by vendor (MKL/oneDNN are stronger on Intel) and OpenBLAS picks
    its kernels by the extensions."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    vector = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "unknown")
    return (
        fields.get("model name", platform.processor() or "unknown"),
        fields.get("vendor_id", "unknown"),
        vector,
    )


def machine_facts() -> str:
    cpu, vendor, vector = cpu_facts()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = [
        f"{p['internal_api']} {p.get('version')} ({p.get('architecture', '?')} kernels, "
        f"{p.get('threading_layer', '?')}, {p.get('num_threads', '?')} threads by default)"
        for p in threadpool_info()
        if p["user_api"] == "blas" and "numpy" in p["filepath"]
    ]
    forced = {k: v for k, v in os.environ.items() if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    lines = [
        f"- CPU: {cpu} (vendor {vendor}, {vector}), {cores} cores available",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"BLAS: {', '.join(blas) or 'unknown'}"
        + (
            "; kernels forced by " + ", ".join(f"{k}={v}" for k, v in forced.items())
            if forced
            else "; OpenBLAS's own kernel choice"
        ),
    ]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        lines.append(
            f"- torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels, "
            f"{torch.get_num_threads()} threads by default)"
        )
    lines.append(f"- load average {loadavg()} at the start")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row (default 3)")
    parser.add_argument(
        "--threads", default="1,2", help="BLAS/torch thread counts, comma separated (default 1,2)"
    )
    parser.add_argument("--mnist-dir", type=Path, default=REPO.parent / "shared/datasets/mnist")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS)
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batches",
        "--batch",
        default=f"{DEFAULT_BATCH},256",
        help=f"batch sizes, comma separated (default {DEFAULT_BATCH},256)",
    )
    parser.add_argument("--no-torch", action="store_true", help="time nnlib only")
    parser.add_argument(
        "--frameworks",
        default=",".join(f for f in RUNNERS if f != REFERENCE),
        help="comma-separated nnlib runners to time (default: all of "
        + ", ".join(f for f in RUNNERS if f != REFERENCE)
        + ")",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the peak-memory probes (fresh processes, 1 thread): no timed epochs",
    )
    parser.add_argument(
        "--hooks",
        action="store_true",
        help="also measure what the Monitor and the RunLogger cost an epoch (CPU time)",
    )
    parser.add_argument(
        "--hooks-only", action="store_true", help="only the --hooks table: no other timed epochs"
    )
    parser.add_argument(
        "--policy",
        action="store_true",
        help="also time nnlib with 1 and 2 BLAS threads beside a busy thread",
    )
    parser.add_argument(
        "--batch-workers",
        action="store_true",
        help="also time nnlib with 1 thread, 2 BLAS threads, 2 batch workers and 2 replicas",
    )
    parser.add_argument(
        "--probe-memory", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    global BATCH  # noqa: PLW0603 - one setting read by every runner
    batches = [int(b) for b in args.batches.split(",")]
    BATCH = batches[0]

    data, source = load_mnist(args.mnist_dir)
    if args.probe_memory:
        print(json.dumps(memory_probe(*args.probe_memory, data, args.seed)))
        return
    names = [n.strip() for n in args.models.split(",")]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    threads = [int(t) for t in args.threads.split(",")]
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    if not set(frameworks) <= set(RUNNERS) - {REFERENCE}:
        parser.error(f"--frameworks: choose from {', '.join(f for f in RUNNERS if f != REFERENCE)}")
    if not args.no_torch and have_torch():
        frameworks.append(REFERENCE)

    print(f"## Engine speed: one epoch on MNIST (t10k files, loaded by {source})\n")
    print(machine_facts() + "\n")
    probed = [f for f in frameworks if f not in UNPROBED]
    if args.memory_only:
        for batch in batches:
            BATCH = batch
            print(f"### Batch {batch}\n")
            print(memory_table(memory_reports(probed, names, args), probed, names) + "\n")
        return
    if args.hooks_only:
        print(hook_cost_table(names, threads, data, args.runs, args.seed))
        print(f"Load average {loadavg()} at the end.\n")
        return
    results, memory, notes = {}, {}, []
    for batch in batches:
        BATCH = batch
        with OtherLoad() as load:
            results[batch] = measure(frameworks, names, threads, args.runs, data, args.seed)
        notes.append(f"Batch {batch}: " + load.note())
        if not args.no_memory:
            memory[batch] = memory_reports(probed, names, args)
    print(summary_table(results, memory, names, threads, args.runs))
    if CHILD_STARTS:
        notes.append(
            f"A replica process started in {statistics.median(CHILD_STARTS):.2f} s (median of "
            f"{len(CHILD_STARTS)}; once per fit, outside the timed epochs)."
        )
    print(" ".join(notes) + "\n")
    for batch in batches:
        BATCH = batch
        print(f"### Batch {batch}\n")
        print(speed_table(results[batch], frameworks, names, threads, args.runs) + "\n")
        print(peak_table(results[batch], frameworks, names, threads, data) + "\n")
        if {"trainer", "monitored"} <= set(frameworks):
            print(overhead_table(results[batch], names, threads) + "\n")
        if batch in memory:
            print(memory_table(memory[batch], probed, names) + "\n")
    if args.hooks:
        BATCH = batches[0]
        print(hook_cost_table(names, threads, data, args.runs, args.seed))
        print(f"Load average {loadavg()} at the end.\n")
    if args.policy:
        with OtherLoad() as load:
            table = policy_table(names, data, args.runs, args.seed)
        print(table + " " + load.note() + "\n")
    if args.batch_workers:
        BATCH = batches[0]
        with OtherLoad() as load:
            table = workers_table(names, data, args.runs, args.seed)
        print(table + " " + load.note() + "\n")


if __name__ == "__main__":
    main()
