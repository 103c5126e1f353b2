"""How much the TUI costs: a benchmark to run by hand, not a timed test.

    python benchmarks/bench_tui.py [--repeats 5] [--epochs 3] [--spiral-epochs 300]

Runs the real app (`python -m nntui --start`) in a pseudo-terminal of 120x40, the way a user
over SSH sees it, with every view on (the wide layout: curves, layers, confusion, log and the
view cell, which shows the Boundary for spirals; Monitor, Diagnostics and the Boundary view
run in every run, headless too), on the default demo (glyphs, its default model) and on
spirals (its default MLP), and measures for each:

- training throughput under the TUI as a fraction of headless training of the same config,
  measured side by side in this one run (samples/s from the run logs, median of repeats);
  headless with one BLAS thread (as the TUI's worker) and with the library default;
- key press to visible change while training (space: "PAUSING"/"PAUSED" then "RUNNING"
  appears in the output; +: the Log's line of the applied change, "[  step] lr a → b
  (applies next batch)", with a step after every such line before the press: it stays in
  sight, unlike the pending "→", which lasts less than a frame on spirals; a plain "→"
  is no marker, warnings and the matrix's axis have one too), p50 and p95;
- startup to first frame (the setup screen's title in the output);
- bytes written to the terminal per second while training.

Timings here are noisy (shared cores): compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (120, 40)
#: The Log's line of an applied learning-rate change, with its step (styles may sit between).
LR_LINE = re.compile(rb"\[ *(\d+)\] (?:\x1b\[[\d;]*m)*lr \S+ \xe2\x86\x92 \S+ \(applies")


class Terminal:
    """The app in a pseudo-terminal; output bytes are collected with arrival times."""

    def __init__(self, args: list[str], runs_dir: Path, size: tuple[int, int] = SIZE) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "NNLIB_RUNS_DIR": str(runs_dir),
            "COLUMNS": str(size[0]),
            "LINES": str(size[1]),
        }
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nntui", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.output = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def size(self) -> int:
        with self.lock:
            return len(self.output)

    def wait_for(self, text: str, start: int = 0, timeout: float = 60.0) -> float:
        """Seconds until `text` appears in the output after byte `start` (perf_counter)."""
        needle = text.encode()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if needle in self.output[start:]:
                    return time.perf_counter()
            time.sleep(0.001)
        raise TimeoutError(f"{text!r} did not appear within {timeout} s")

    def last_lr_step(self, start: int = 0) -> int:
        """The step of the latest applied lr change shown after byte `start` (-1: none)."""
        with self.lock:
            steps = [int(match.group(1)) for match in LR_LINE.finditer(self.output, start)]
        return max(steps, default=-1)

    def wait_for_lr_change(self, after: int, start: int, timeout: float = 60.0) -> float:
        """Seconds until the Log shows an lr change at a step after `after` (perf_counter)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.last_lr_step(start) > after:
                return time.perf_counter()
            time.sleep(0.001)
        raise TimeoutError(f"no lr change after step {after} within {timeout} s")

    def press(self, data: str) -> None:
        os.write(self.master, data.encode())

    def quit(self) -> None:
        self.press("q")
        time.sleep(0.3)
        self.press("y")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def epoch_speed(run_dir: Path) -> float:
    """Mean samples/s over the epochs of a run log (active training time only) trained at
    full speed: those begun after the run's last change of pace to full speed, if any. A paced
    run's batches each start after a wait, with cold caches: spirals' tens-of-microsecond
    batches then train at about a quarter of their speed, which is no cost of the app."""
    from nnlib import runs  # the log's own reader: compact batch lines carry no "type"

    records = runs.read(run_dir)
    full = [e.step for e in records if e.type == "pace" and e["new"] is None]
    since = full[-1] if full else 0
    epochs = [e for e in records if e.type == "epoch"]
    began = [0] + [e.step for e in epochs[:-1]]  # the step each epoch started after
    pairs = zip(epochs, began, strict=True)
    speeds = [e["samples_per_sec"] for e, start in pairs if start >= since]
    return statistics.mean(speeds)


def to_full_speed(term: Terminal) -> None:
    """Press `>` until the status says full speed: the app paces a model the Boundary view
    draws (spirals: 2 epochs a second, to be watched), and the throughput row measures what
    the app costs a run at full speed."""
    from nntui.pace import PACE_STEPS

    mark = term.size()
    for _ in PACE_STEPS:
        term.press(">")
        time.sleep(0.05)
    term.wait_for("full speed", mark)


def headless(config_args: dict, blas_threads: int | None) -> float:
    from threadpoolctl import threadpool_limits

    from nnlib.config import ExperimentConfig
    from nnlib.experiment import setup

    with tempfile.TemporaryDirectory() as tmp:
        config = ExperimentConfig(**config_args, run_dir=str(Path(tmp) / "run"))
        experiment = setup(config, checkpoints=True)
        with threadpool_limits(blas_threads, user_api="blas"):
            experiment.fit()
        return epoch_speed(experiment.run_dir)


def under_tui(config_args: dict) -> tuple[float, float]:
    """(samples/s, terminal bytes/s while training) for one run in the real app."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        flags = [
            "--start",
            *config_flags(config_args),
            "--epochs",
            str(config_args["epochs"]),
            "--seed",
            "0",
            "--run-dir",
            str(run_dir),
        ]
        term = Terminal(flags, Path(tmp))
        term.wait_for("RUNNING")
        to_full_speed(term)
        began, first = time.perf_counter(), term.size()
        term.wait_for("FINISHED", timeout=600)
        rate = (term.size() - first) / (time.perf_counter() - began)
        term.quit()
        return epoch_speed(run_dir), rate


def config_flags(config_args: dict) -> list[str]:
    """--dataset, and --arch when the config names one (else the dataset's default model)."""
    arch = config_args.get("arch")
    return ["--dataset", config_args["dataset"], *(["--arch", arch] if arch else [])]


#: The keys pressed in each latency round, with what shows their effect (None: the Log's line
#: of a new lr change).
KEYS = (("pause", " ", "PAUS"), ("resume", " ", "RUNNING"), ("lr", "+", None))


def latencies(config_args: dict, rounds: int) -> tuple[dict[str, list[float]], float]:
    """Key to visible change, in seconds, for each of KEYS while training; and startup to
    first frame."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in KEYS}
    with tempfile.TemporaryDirectory() as tmp:
        flags = [
            *config_flags(config_args),
            "--epochs",
            "100000",
            "--run-dir",
            str(Path(tmp) / "run"),
        ]
        term = Terminal(flags, Path(tmp))
        startup = term.wait_for("set up an experiment") - term.started
        term.press("t")
        term.wait_for("RUNNING")
        time.sleep(1.0)  # let training settle in
        for _ in range(rounds):
            for name, key, shown in KEYS:
                mark = term.size()
                before = term.last_lr_step()
                sent = time.perf_counter()
                term.press(key)
                if shown is None:
                    seen = term.wait_for_lr_change(before, mark)
                else:
                    seen = term.wait_for(shown, mark)
                samples[name].append(seen - sent)
                time.sleep(0.15)
            term.press("-")
            time.sleep(0.15)
        term.quit()
    return samples, startup


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(name: str, config: dict, repeats: int, rounds: int) -> None:
    """Throughput under the app against headless, measured alternately (median of
    `repeats`), key-to-screen latency and terminal bytes/s for one config."""
    one, default, tui, rates = [], [], [], []
    for repeat in range(repeats):
        one.append(headless(config, 1))
        speed, rate = under_tui(config)
        tui.append(speed)
        rates.append(rate)
        default.append(headless(config, None))
        print(
            f"{name} repeat {repeat + 1}: headless 1 BLAS thread {one[-1]:,.0f}  TUI "
            f"{tui[-1]:,.0f}  headless default threads {default[-1]:,.0f} samples/s  "
            f"terminal {rate / 1000:.1f} kB/s  (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    keys, startup = latencies(config, rounds)
    print()
    arch = config.get("arch") or "its default model"
    print(
        f"config: {name}: {config['dataset']}, {arch}, {config['epochs']} epochs, terminal "
        f"{SIZE[0]}x{SIZE[1]}, every view on"
    )
    ratios = [t / o for t, o in zip(tui, one, strict=True)]
    print(
        f"throughput under the TUI: {statistics.median(tui):,.0f} samples/s = "
        f"{statistics.median(ratios):.0%} of headless with one BLAS thread (median of "
        f"{repeats} paired runs; headless {statistics.median(one):,.0f}); headless with "
        f"default BLAS threads: {statistics.median(default):,.0f}"
    )
    every = [seconds for values in keys.values() for seconds in values]
    each = ", ".join(
        f"{name} {percentile(values, 50) * 1000:.0f}/{percentile(values, 95) * 1000:.0f}"
        for name, values in keys.items()
    )
    print(
        f"key to visible change while training: p50 {percentile(every, 50) * 1000:.0f} ms, "
        f"p95 {percentile(every, 95) * 1000:.0f} ms, max {max(every) * 1000:.0f} ms "
        f"({len(every)} presses; p50/p95 ms by key: {each})"
    )
    print(f"startup to first frame: {startup * 1000:.0f} ms")
    print(f"terminal output while training: {statistics.median(rates) / 1000:.1f} kB/s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the default demo")
    parser.add_argument("--spiral-epochs", type=int, default=300, help="epochs of spirals")
    parser.add_argument("--rounds", type=int, default=15, help="key-latency rounds (3 keys)")
    parser.add_argument("--only", choices=("demo", "spirals"), help="one config only")
    args = parser.parse_args()
    configs = {
        "demo": {"dataset": "glyphs", "epochs": args.epochs, "seed": 0},
        "spirals": {"dataset": "spirals", "epochs": args.spiral_epochs, "seed": 0},
    }
    for name, config in configs.items():
        if args.only in (None, name):
            report(name, config, args.repeats, args.rounds)


if __name__ == "__main__":
    main()
