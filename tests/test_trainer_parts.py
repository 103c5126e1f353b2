"""The Trainer's three parts (the loop, the callback list, the run control), the run states
as one enum, the import graph without loops, the app's one number formatter and the one
default architecture."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT, Gate
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import events
from nnlib.callbacks import CallbackList
from nnlib.control import RunControl
from nnlib.presets import default_arch, lenet5
from nnlib.states import END_REASONS, RunStatus
from nntui.architectures import preset, quick_arch
from nntui.plot import format_exponent, format_number, format_value
from nntui.runstate import RunState
from nntui.widgets.status import STATUS_BADGES

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "nnlib").rglob("*.py")
)


def _trainer(**kw):
    model = nl.build("4-8-3", (4,), seed=0)
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), **kw)


def _data(n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, size=n)


# -- imports -----------------------------------------------------------------------------------


def test_every_nnlib_module_imports_alone_in_a_fresh_interpreter():
    """An import-order loop shows only when a module is the first one imported."""
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for module in MODULES
    }
    failed = {m: p.communicate(timeout=120)[0][-500:] for m, p in processes.items()}
    assert "nnlib.trainer" in failed and "nnlib.callbacks.stopping" in failed
    assert {m: out for m, out in failed.items() if processes[m].returncode} == {}


def _runtime_imports(module: str) -> set[str]:
    """The nnlib modules `module` imports when it runs (at the top or in a function), leaving
    out imports under `if TYPE_CHECKING:` (annotations only)."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if name in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in MODULES and name != module}


def test_no_import_loop_between_nnlib_modules():
    """A module may reach back to another only for annotations (issue 9): trainer.py imports
    the callbacks and no callback imports the trainer when it runs; model.py writes spec text
    through spec_text.py, not through the parser that builds models. Package __init__ files,
    which import everything below them, are left out of the graph."""
    packages = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "nnlib").rglob("__init__.py")
    }
    modules = [m for m in MODULES if m not in packages]
    graph = {module: _runtime_imports(module) - packages for module in modules}
    assert "nnlib.callbacks.callback_list" in graph["nnlib.trainer"]
    assert "nnlib.spec_text" in graph["nnlib.model"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            seen.add(nxt)
            if nxt == goal or reaches(nxt, goal, seen):
                return True
        return False

    assert [m for m in modules if reaches(m, m, set())] == []


# -- run states --------------------------------------------------------------------------------


def test_run_status_members_are_their_strings():
    assert RunStatus.PAUSED == "paused" and f"{RunStatus.EARLY_STOP}" == "early_stop"
    assert str(RunStatus.ERROR) == "error"
    assert [str(r) for r in END_REASONS] == [
        "finished",
        "stopped",
        "early_stop",
        "diverged",
        "interrupted",
        "error",
    ]
    assert all(r.ended for r in END_REASONS)
    assert not any(s.ended for s in (RunStatus.IDLE, RunStatus.RUNNING, RunStatus.PAUSED))


def test_end_reasons_map_to_the_trainers_state_and_the_apps():
    trainer_state = {r: r.trainer_state() for r in END_REASONS}
    assert trainer_state == {
        RunStatus.FINISHED: RunStatus.FINISHED,
        RunStatus.STOPPED: RunStatus.STOPPED,
        RunStatus.EARLY_STOP: RunStatus.STOPPED,
        RunStatus.DIVERGED: RunStatus.DIVERGED,
        RunStatus.INTERRUPTED: RunStatus.STOPPED,
        RunStatus.ERROR: RunStatus.ERROR,
    }
    assert RunStatus.of_end("early_stop") is RunStatus.EARLY_STOP
    assert RunStatus.of_end("some callback's own reason") is RunStatus.STOPPED


def test_every_status_has_a_badge_and_the_app_keeps_a_status_not_a_state():
    assert set(STATUS_BADGES) == set(RunStatus)
    state = RunState()
    assert state.status is RunStatus.LOADING and not hasattr(state, "state")
    state.apply(events.make("end", 7, {"reason": "early_stop", "epoch": 0}))
    assert state.status is RunStatus.EARLY_STOP


def test_the_trainer_reports_its_state_as_the_enum():
    trainer = _trainer()
    assert trainer.state is RunStatus.IDLE
    trainer.fit(*_data(), epochs=1, batch_size=4)
    assert trainer.state is RunStatus.FINISHED
    assert trainer.history.end["reason"] == "finished"
    assert type(trainer.history.end["reason"]) is str  # plain in the logs and the run log


# -- the callback list -------------------------------------------------------------------------


class Events(nl.Callback):
    def __init__(self):
        self.events = []

    def on_event(self, trainer, event, data):
        self.events.append((event, dict(data)))


def test_the_callback_list_puts_history_first_and_adds_the_guard():
    events = Events()
    trainer = _trainer(callbacks=[events])
    callbacks = trainer.callbacks
    assert isinstance(callbacks, CallbackList) and callbacks[0] is trainer.history
    assert [type(c) for c in callbacks] == [nl.History, Events, nl.DivergenceGuard]
    assert [type(c) for c in _trainer(divergence_guard=False).callbacks] == [nl.History]
    trainer.emit("note", text="hello")  # the call form callbacks use today
    trainer.emit("later", step=99)
    assert events.events == [("note", {"text": "hello", "step": 0}), ("later", {"step": 99})]


def test_call_with_every_reaches_all_callbacks_then_raises_the_first_error():
    class Boom(nl.Callback):
        def __init__(self, name):
            self.name = name

        def on_train_end(self, trainer, logs):
            raise RuntimeError(self.name)

    class Seen(nl.Callback):
        ended = False

        def on_train_end(self, trainer, logs):
            self.ended = True

    seen = Seen()
    trainer = _trainer(callbacks=[Boom("first"), seen, Boom("second")])
    with pytest.raises(RuntimeError, match="first"):
        trainer.callbacks.call("on_train_end", {}, every=True)
    assert seen.ended


# -- the run control ---------------------------------------------------------------------------


class Plain:
    """A RunControl's three collaborators, recorded."""

    def __init__(self):
        self.applied, self.announced = [], []

    def validate(self, name, value):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return value

    def control(self):
        return RunControl(
            self.validate,
            lambda n, v, s: self.applied.append((n, v)),
            lambda event, **fields: self.announced.append(event),
        )


def test_run_control_works_without_a_trainer():
    plain = Plain()
    control = plain.control()
    control.set("lr", 0.5)  # no run: applied at once
    assert plain.applied == [("lr", 0.5)] and control.pending() == {}
    token = control.begin_run()
    with pytest.raises(RuntimeError, match="already running"):
        control.begin_run()
    control.start()
    control.set("batch_size", 8)
    control.set("lr", 0.25)
    assert control.pending() == {"batch_size": 8, "lr": 0.25}
    assert control.at_boundary() is None  # a batch boundary: lr now, batch_size waits
    assert plain.applied[1:] == [("lr", 0.25)] and control.pending() == {"batch_size": 8}
    control.stop()
    assert control.at_boundary() is RunStatus.STOPPED
    control.finish(RunStatus.STOPPED)
    control.end_run(token)
    assert plain.applied[2:] == [("batch_size", 8)] and control.state is RunStatus.STOPPED


def test_bad_requests_are_refused_naming_the_value_and_change_nothing():
    plain = Plain()
    control = plain.control()
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        control.set("lr", -1)
    with pytest.raises(ValueError, match=r"one of stopped, interrupted, got 'later'"):
        control.stop("later")
    for findings in ("finished", "early_stop", "diverged", "error"):  # the run's own, not asked
        with pytest.raises(ValueError, match=f"got '{findings}'"):
            control.command("stop", findings)
    assert plain.applied == [] and control.pending() == {}


def test_command_makes_the_same_requests_as_the_methods():
    plain = Plain()
    control = plain.control()
    control.command("set", "momentum", 0.9)
    assert plain.applied == [("momentum", 0.9)]
    control.command("pause")
    assert control.paused
    control.command("resume")
    assert not control.paused
    with pytest.raises(ValueError, match="unknown action 'jump'; expected one of pause, resume"):
        control.command("jump")
    with pytest.raises(ValueError, match="'set' takes a name and a value as arguments, got 1"):
        control.command("set", "lr")
    with pytest.raises(ValueError, match="'pause' takes none as arguments, got 1"):
        control.command("pause", "now")


def test_a_commanded_pause_parks_a_real_run_and_a_commanded_stop_ends_it():
    gate = Gate(step=1)
    trainer = _trainer(callbacks=[gate])
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(history=trainer.fit(*_data(), epochs=50, batch_size=4)),
        daemon=True,
    )
    thread.start()
    assert gate.reached.wait(TIMEOUT)
    trainer.control.command("pause")
    gate.release.set()
    assert trainer.wait_until_parked(timeout=TIMEOUT)
    assert trainer.state is RunStatus.PAUSED and trainer.global_step == 1
    trainer.control.command("stop", "interrupted")
    thread.join(TIMEOUT)
    assert not thread.is_alive() and result["history"].reason == "interrupted"
    assert trainer.state is RunStatus.STOPPED


# -- numbers in the app ------------------------------------------------------------------------


def test_format_number_edges():
    assert format_number(None) == "–"
    assert (format_number(math.nan), format_number(math.inf), format_number(-math.inf)) == (
        "nan",
        "inf",
        "-inf",
    )
    assert format_number(0.1) == "0.100" and format_number(0.1, trim=True) == "0.1"
    assert format_number(2.0, trim=True) == "2" and format_number(3e-4, trim=True) == "3.0e-4"
    assert format_number(12345.0) == "12,345"
    assert format_exponent(0.00123) == "1.2e-3" and format_exponent(math.nan) == "nan"
    assert (format_value(0.05), format_value(64), format_value(True)) == ("0.05", "64", "True")


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_trimming_keeps_the_value_and_never_pads(value):
    text, trimmed = format_number(value), format_number(value, trim=True)
    assert text == text.strip() and float(trimmed.replace(",", "")) == float(text.replace(",", ""))


# -- the default architecture ------------------------------------------------------------------


def test_one_default_architecture_for_the_cli_and_the_app():
    glyphs = next(i for i in nl.datasets.available() if i.name == "glyphs")
    spec = default_arch(tuple(glyphs.input_shape), glyphs.task, 10)
    assert spec == lenet5(10) and spec.startswith("conv(6,5,pad=2)")
    assert quick_arch(glyphs) == spec == preset("lenet").spec_for(glyphs)
    spirals = next(i for i in nl.datasets.available() if i.name == "spirals")
    assert quick_arch(spirals) == default_arch((2,), "classification", 3) == "2-32-32-3"
