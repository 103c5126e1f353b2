"""Steering a run from another process: `nnlib control` and the command file of nnlib.remote,
the pollers of RunControl (a parked run still hears commands), and the `source` of the events
that record each applied change."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT, headless_train
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import remote, runs
from nnlib.cli import main
from nnlib.states import RunStatus


def _events(run_dir: Path, kind: str) -> list[runs.Event]:
    """The run's events of `kind`; none while the writer has not made its log yet (a
    subprocess that starts slowly on a busy machine)."""
    if not (run_dir / runs.EVENTS_FILE).exists():
        return []
    return [e for e in runs.read(run_dir) if e.type == kind]


def _wait_for(condition, what: str) -> None:
    """Poll `condition` until it holds (bounded: a subprocess's progress, never a timing)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _control(capsys, run_dir: Path, *words: str) -> tuple[int, str, str]:
    code = main(["control", str(run_dir), *words])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def headless_run(tmp_path):
    run_dir = tmp_path / "run"
    with headless_train(run_dir) as process:
        yield run_dir, process


def test_a_headless_run_is_paused_stepped_set_resumed_and_stopped_by_nnlib_control(
    headless_run, capsys
):
    run_dir, process = headless_run
    # Once it has trained: a pause heard at its first boundary parks it before any batch.
    _wait_for(lambda: _events(run_dir, "batch"), "the first batch")
    code, out, _ = _control(capsys, run_dir, "pause")
    assert code == 0 and "pausing" in out
    _wait_for(lambda: _events(run_dir, "pause"), "the pause event")
    (pause,) = _events(run_dir, "pause")
    assert pause["source"] == "remote"
    parked_at = pause.step

    # One step: exactly one more batch, then parked again (the next reply comes from there).
    assert _control(capsys, run_dir, "step")[0] == 0
    _wait_for(lambda: _events(run_dir, "batch")[-1].step == parked_at + 1, "the stepped batch")
    code, _, err = _control(capsys, run_dir, "set", "lr", "-1")
    assert code == 2 and "refused by the run" in err and "lr" in err and "-1" in err
    code, _, err = _control(capsys, run_dir, "set", "lr", "fast")
    assert code == 2 and "'fast'" in err
    code, _, err = _control(capsys, run_dir, "set", "nesterov_speed", "2")
    assert code == 2 and "no hyperparameter 'nesterov_speed'" in err
    code, out, _ = _control(capsys, run_dir, "set", "lr", "0.01")
    assert code == 0 and "lr set to 0.01" in out
    assert _events(run_dir, "batch")[-1].step == parked_at + 1  # still parked
    assert _events(run_dir, "hparam") == []  # refused values changed nothing; 0.01 waits

    assert _control(capsys, run_dir, "resume")[0] == 0
    _wait_for(lambda: len(_events(run_dir, "batch")) > parked_at + 3, "batches after resume")
    (hparam,) = _events(run_dir, "hparam")
    assert (hparam.step, hparam["name"], hparam["new"], hparam["source"]) == (
        parked_at + 1,
        "lr",
        0.01,
        "remote",
    )
    (resume,) = _events(run_dir, "resume")
    assert resume.step == parked_at + 1 and resume["source"] == "remote"
    lr_by_step = {e.step: e["lr"] for e in _events(run_dir, "batch")}
    assert lr_by_step[parked_at + 1] == 0.05 and lr_by_step[parked_at + 2] == 0.01

    assert _control(capsys, run_dir, "stop")[0] == 0
    assert process.wait(TIMEOUT) == 0
    (stop,) = _events(run_dir, "stop")
    assert stop["source"] == "remote" and stop["reason"] == "stopped"
    assert runs.read(run_dir)[-1]["reason"] == "stopped"

    # The run has ended: commands are refused, and the CLI says why.
    code, _, err = _control(capsys, run_dir, "resume")
    assert code == 1 and "the run has ended (stopped); it cannot be steered" in err


def test_the_command_file_is_the_owners_alone(headless_run):
    run_dir, _ = headless_run
    for name in (remote.COMMANDS_FILE, remote.REPLIES_FILE):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600


def test_commands_to_a_run_that_is_not_running_are_refused_saying_why(tmp_path, capsys):
    code, _, err = _control(capsys, tmp_path / "nowhere", "pause")
    assert code == 1 and "no such run directory" in err
    waiting = tmp_path / "waiting"
    waiting.mkdir()
    code, _, err = _control(capsys, waiting, "pause")
    assert code == 1 and "has not started yet" in err
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / runs.EVENTS_FILE).write_text(runs.encode("run_start", 0, {"run": "x", "config": {}}))
    (crashed / runs.LOCK_FILE).touch()  # left by a writer that died
    code, _, err = _control(capsys, crashed, "stop")
    assert code == 1 and "crashed or killed" in err
    assert not (crashed / remote.COMMANDS_FILE).exists()  # nothing was written


# -- the door, driven by hand (no subprocess) ----------------------------------------------------
def _trainer(callbacks=()) -> nl.Trainer:
    model = nl.build("2-8-2", (2,), seed=0)
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=callbacks)


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 2, n)


class Door:
    """A CommandDoor opened on a trainer that is not running: a poll applies at once."""

    def __init__(self, run_dir: Path) -> None:
        self.trainer = _trainer()
        self.door = remote.CommandDoor(run_dir)
        self.door.on_train_begin(self.trainer)
        self.replies = run_dir / remote.REPLIES_FILE
        self.read = 0

    def send(self, line: str | bytes) -> list[dict]:
        """Append raw bytes to the command file, poll, and return the new replies."""
        data = line.encode() if isinstance(line, str) else line
        with open(self.door.commands, "ab") as handle:
            handle.write(data)
        self.door.poll()
        lines = self.replies.read_text().splitlines()
        new, self.read = lines[self.read :], len(lines)
        return [json.loads(x) for x in new]


def _command(action: str, *args, ident: str = "c1") -> str:
    return json.dumps({"id": ident, "action": action, "args": list(args), "from": "test"}) + "\n"


def test_malformed_commands_are_answered_and_the_door_reads_on(tmp_path):
    door = Door(tmp_path)
    assert door.send("not json\n") == [
        {"id": None, "time": pytest.approx(time.time(), abs=60), "ok": False,
         "message": "commands.jsonl: a command line that is not valid JSON"}
    ]  # fmt: skip
    (reply,) = door.send('{"id": "x1", "action": 3}\n')
    assert reply["id"] == "x1" and not reply["ok"] and "action must be a string" in reply["message"]
    (reply,) = door.send(_command("set", "lr", [1, 2], ident="x2"))
    assert not reply["ok"] and "args must be a list of at most" in reply["message"]
    (reply,) = door.send(_command("jump", ident="x3"))
    assert not reply["ok"] and "unknown action 'jump'" in reply["message"]
    (reply,) = door.send(b"[" * 5000 + b"\n")  # longer than MAX_LINE: skipped, not parsed
    assert reply["id"] is None and "longer than 4096 bytes" in reply["message"]
    (reply,) = door.send(b"x" * 5000)  # no newline yet: skipped up to its end
    assert "longer than 4096 bytes" in reply["message"]
    assert door.send(b"y" * 100 + b"\n") == []  # the rest of that line
    half = _command("set", "lr", 0.5, ident="ok1")
    assert door.send(half[:10]) == []  # a line being written waits for its newline
    (reply,) = door.send(half[10:])
    assert reply == {**reply, "id": "ok1", "ok": True} and door.trainer.optimizer.lr == 0.5


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
)
def test_a_set_through_the_door_is_validated_as_trainer_set(tmp_path_factory, value):
    door = Door(tmp_path_factory.mktemp("door"))
    expected = None
    try:
        expected = _trainer().validate_hyperparameter("lr", value)
    except ValueError as error:
        refusal = str(error)
    (reply,) = door.send(_command("set", "lr", value))
    if expected is None:
        assert reply["ok"] is False and reply["message"] == refusal
        assert door.trainer.optimizer.lr == 0.1  # nothing changed
    else:
        assert reply["ok"] is True and door.trainer.optimizer.lr == expected


def test_commands_left_when_the_run_ends_are_answered_as_refused(tmp_path):
    door = Door(tmp_path)
    with open(door.door.commands, "a") as handle:
        handle.write(_command("pause", ident="late"))
    door.door.on_train_end(door.trainer, {"reason": "finished"})
    (reply,) = [json.loads(x) for x in door.replies.read_text().splitlines()]
    assert reply["id"] == "late" and not reply["ok"]
    assert reply["message"] == "the run has ended (finished)"
    assert not door.trainer.paused


# -- RunControl: a parked run still hears its pollers ---------------------------------------
def test_a_parked_run_wakes_to_poll_so_a_resume_from_elsewhere_reaches_it():
    polls_while_parked = []

    trainer = _trainer()

    def poller():
        if trainer.control.state is RunStatus.PAUSED:
            polls_while_parked.append(trainer.global_step)
            if len(polls_while_parked) == 3:
                trainer.control.command("resume", source="remote")

    trainer.control.add_poller(poller)
    trainer.pause()  # parks at the first boundary; only the poller can let it go
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (trainer.fit(*_data(), epochs=1, batch_size=16), done.set()), daemon=True
    )
    thread.start()
    assert done.wait(TIMEOUT), "the parked run never polled"
    assert polls_while_parked == [0, 0, 0] and trainer.global_step == 4
    assert trainer.history.reason == "finished"


def test_each_applied_change_records_its_source():
    recorded = []
    trainer = _trainer()

    class Recorder(nl.Callback):
        def on_event(self, trainer, event, data):
            recorded.append((event, data.get("source")))

        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 1:
                trainer.control.pause(source="app")
                trainer.control.set("lr", 0.2, source="app")
            if logs["step"] == 2:
                trainer.control.stop(source="signal")

    def poller():  # another door, heard while parked
        if trainer.control.state is RunStatus.PAUSED:
            trainer.control.resume(source="remote")

    trainer.callbacks.append(Recorder())
    trainer.control.add_poller(poller)
    trainer.fit(*_data(), epochs=1, batch_size=16)
    assert recorded == [
        ("pause", "app"),
        ("resume", "remote"),
        ("hparam", "app"),
        ("stop", "signal"),
    ]
    assert trainer.history.reason == "stopped"


# -- values from outside: checked whole at the door, the run trains on (issue 17, item 2) ---------
HUGE = 10**400  # an integer no float holds: float() of it raised OverflowError in the writer


class Feed(nl.Callback):
    """Appends `lines` to the run's command file once the first batch has run."""

    def __init__(self, commands: Path, lines: list[bytes]) -> None:
        self.commands, self.lines = commands, lines

    def on_batch_end(self, trainer, batch, logs):
        if logs["step"] == 1:
            with open(self.commands, "ab") as handle:
                handle.write(b"".join(self.lines))


def _steered_run(run_dir: Path, lines: list[bytes]) -> tuple[nl.Trainer, list[dict]]:
    """A logged run of 3 epochs of 4 batches fed `lines` after its first batch: its trainer
    (fit has returned) and the replies it wrote."""
    door = remote.CommandDoor(run_dir)
    trainer = _trainer([Feed(door.commands, lines), door, runs.RunLogger(run_dir=run_dir)])
    trainer.fit(*_data(), epochs=3, batch_size=16)
    written = (run_dir / remote.REPLIES_FILE).read_text().splitlines()
    return trainer, [json.loads(line) for line in written]


def test_values_no_float_or_run_log_holds_are_refused_and_the_run_trains_on(tmp_path):
    sent = [
        ("set", "lr", HUGE),
        ("set", "momentum", HUGE),
        ("set", "weight_decay", -HUGE),
        ("set", "batch_size", 2**63),  # accepted before, then the hparam event failed
        ("set", "batch_size", 10**23),
        ("set", "batch_size", 1e20),
        ("stop", "diverged"),  # ended a healthy run as diverged
        ("stop", "error"),
        ("set", "lr", 0.2),
    ]
    lines = [_command(*c, ident=f"c{i}").encode() for i, c in enumerate(sent)]
    trainer, replies = _steered_run(tmp_path, lines)
    assert trainer.history.reason == "finished" and trainer.global_step == 12
    assert [r["id"] for r in replies] == [f"c{i}" for i in range(len(sent))]  # one each
    assert [r["ok"] for r in replies] == [False] * 8 + [True]
    messages = [r["message"] for r in replies]
    assert messages[0] == (
        "SGD: learning rate (lr) must be a number within a float's range (±1.8e308), "
        "got an integer of about 401 digits"
    )
    assert messages[2].endswith("got a negative integer of about 401 digits")
    assert messages[3] == (
        "Trainer: batch_size must be at most 9223372036854775807, got 9223372036854775808"
    )
    assert messages[5] == "Trainer: batch_size must be at most 9223372036854775807, got 1e+20"
    assert messages[6] == "Trainer.stop: reason must be one of stopped, interrupted, got 'diverged'"
    assert [(e["name"], e["new"]) for e in _events(tmp_path, "hparam")] == [("lr", 0.2)]
    assert runs.read(tmp_path)[-1]["reason"] == "finished"
    assert trainer.batch_size == 16 and trainer.optimizer.momentum == 0.0


def test_a_line_is_answered_once_even_when_answering_it_fails(tmp_path, monkeypatch):
    """A fault while answering a line (not a refusal) still gives it one reply, and the lines
    before it are not answered again when the run ends."""
    door = Door(tmp_path)
    command = door.trainer.control.command

    def faulty(action, *args, **kwargs):
        if action == "resume":
            raise RuntimeError("a fault")
        return command(action, *args, **kwargs)

    monkeypatch.setattr(door.trainer.control, "command", faulty)
    with pytest.raises(RuntimeError):
        door.send(_command("set", "lr", 0.5, ident="a") + _command("resume", ident="b"))
    door.door.on_train_end(door.trainer, {"reason": "error"})
    replies = [json.loads(x) for x in door.replies.read_text().splitlines()]
    assert [(r["id"], r["ok"]) for r in replies] == [("a", True), ("b", False)]
    assert replies[1]["message"] == "not applied: RuntimeError"


def test_nnlib_control_refuses_out_of_range_values_in_one_line(headless_run, capsys):
    run_dir, process = headless_run
    big = "1" + "0" * 400
    sent = [
        ("set", "lr", big),
        ("set", "momentum", big),
        ("set", "weight_decay", big),
        ("set", "batch_size", str(2**63)),
        ("set", "batch_size", str(10**23)),
        ("stop", "diverged"),
    ]
    for words in sent:
        code, out, err = _control(capsys, run_dir, *words)
        assert (code, out) == (2, ""), words
        assert err.startswith("error: refused by the run: ") and err.count("\n") == 1, err
    trained = len(_events(run_dir, "batch"))
    _wait_for(lambda: len(_events(run_dir, "batch")) > trained + 5, "batches after refusals")
    assert process.poll() is None and _events(run_dir, "hparam") == []
    assert len((run_dir / remote.REPLIES_FILE).read_text().splitlines()) == len(sent)
    assert _control(capsys, run_dir, "stop")[0] == 0
    assert process.wait(TIMEOUT) == 0 and runs.read(run_dir)[-1]["reason"] == "stopped"


# The fuzzer: what a raw line may carry. A huge integer, NaN and infinity included (the door
# reads NaN and Infinity as JSON numbers); pause is left out (nothing here would resume it).
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**63 - 1, 2**63, 10**23, 10**308, 10**309, 1e20, 1e308]),
    st.floats(),
    st.text(max_size=12),
)
_NAMES = st.one_of(
    st.sampled_from(["lr", "base_lr", "momentum", "weight_decay", "decay", "batch_size"]),
    st.sampled_from(["nesterov", "eps", "beta1", "step"]),
    st.text(max_size=8),
    _VALUES,
)
_COMMANDS = st.one_of(
    st.tuples(_NAMES, _VALUES).map(lambda a: ("set", list(a))),
    st.one_of(st.sampled_from(["stopped", "interrupted", "finished", "diverged"]), _VALUES).map(
        lambda reason: ("stop", [reason])
    ),
    st.tuples(
        st.one_of(st.sampled_from(["set", "stop", "step", "resume", "jump"]), st.text(max_size=6)),
        st.lists(_VALUES, max_size=5),
    ).filter(lambda c: c[0] != "pause"),
)
_RAW = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"?"))


def _accepted(action: str, args: list) -> bool:
    """Whether a command should be made: the sets Trainer.set takes, a stop with no reason or
    one a user may give, a resume; nothing else (a step while running does nothing)."""
    if action == "set":
        if len(args) != 2:
            return False
        try:
            _trainer().validate_hyperparameter(*args)
        except ValueError:
            return False
        return True
    if action == "stop":
        return args in ([], ["stopped"], ["interrupted"])
    return action == "resume" and args == []


@settings(derandomize=True, max_examples=60, deadline=None)
@given(lines=st.lists(st.one_of(_COMMANDS, _RAW), min_size=1, max_size=8))
def test_raw_command_lines_never_crash_the_run_and_each_gets_one_reply(tmp_path_factory, lines):
    run_dir = tmp_path_factory.mktemp("fuzz")
    sent = [
        line + b"\n"
        if isinstance(line, bytes)
        else _command(line[0], *line[1], ident=f"f{i}").encode()
        for i, line in enumerate(lines)
    ]
    trainer, replies = _steered_run(run_dir, sent)  # never raises
    answered = [line for line in sent if line.strip()]
    assert len(replies) == len(answered)
    assert all("\n" not in r["message"] and len(r["message"]) < 200 for r in replies)
    commands = {f"f{i}": line for i, line in enumerate(lines) if not isinstance(line, bytes)}
    for reply in replies:
        if reply["id"] in commands:
            assert reply["ok"] is _accepted(*commands[reply["id"]]), reply
    stops = [commands[r["id"]][1] for r in replies if r["ok"] and commands[r["id"]][0] == "stop"]
    reason = trainer.history.reason
    # the first stop ends the run with its reason; an accepted value may be one that diverges
    # (lr 1e300): the guard ends that run, never an error
    assert reason == (stops[0] or ["stopped"])[0] if stops else reason in ("finished", "diverged")
    assert runs.read(run_dir)[-1]["reason"] == reason  # the log took every event
    last: dict = {}
    for reply in replies:
        if reply["ok"] and commands[reply["id"]][0] == "set":
            name, value = commands[reply["id"]][1]
            last[name] = _trainer().validate_hyperparameter(name, value)
    for name, value in last.items():  # applied, in the run or as it ended
        held = trainer.batch_size if name == "batch_size" else getattr(trainer.optimizer, name)
        assert held == value


# -- symbolic links are never followed (issue 17, item 11) ---------------------------------------
def _plant(link: Path, target: Path, text: str = "theirs\n") -> None:
    """Make `link` a symbolic link to a file `target` (mode 0644) holding `text`."""
    target.write_text(text)
    target.chmod(0o644)
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def _untouched(target: Path, text: str = "theirs\n") -> bool:
    return target.read_text() == text and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_resumed_run_refuses_planted_links_and_leaves_their_targets_alone(tmp_path, capsys):
    from nnlib.config import ExperimentConfig
    from nnlib.experiment import setup

    class StopAt(nl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            if logs["step"] == 3:
                trainer.stop()

    run = tmp_path / "run"
    config = ExperimentConfig(dataset="moons", epochs=3, checkpoint_every=0, run_dir=str(run))
    setup(config, callbacks=[StopAt()]).fit(threads=1)
    log = (run / runs.EVENTS_FILE).read_bytes()
    for name in (remote.COMMANDS_FILE, remote.REPLIES_FILE):
        _plant(run / name, tmp_path / f"target-{name}", _command("stop"))
        assert main(["train", "--resume", str(run), "--quiet"]) == 1
        last = capsys.readouterr().err.splitlines()[-1]  # after 'continuing from' and 'run:'
        assert last.startswith("error: ") and f"{run / name}: is a symbolic link" in last
        assert _untouched(tmp_path / f"target-{name}", _command("stop"))  # no chmod, no reply
        (run / name).unlink()
    assert (run / runs.EVENTS_FILE).read_bytes() == log  # refused before the log was touched
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # without the links, it goes


def test_nnlib_control_refuses_to_write_through_a_link(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.EVENTS_FILE).write_text(runs.encode("run_start", 0, {"run": "x", "config": {}}))
    lock = runs.WriterLock(run_dir)  # a live writer, as far as a sender can tell
    lock.acquire()
    try:
        _plant(run_dir / remote.COMMANDS_FILE, tmp_path / "commands-target")
        code, _, err = _control(capsys, run_dir, "pause")
        assert code == 1 and "commands.jsonl: is a symbolic link" in err
        assert _untouched(tmp_path / "commands-target")
        (run_dir / remote.COMMANDS_FILE).unlink()
        (run_dir / remote.COMMANDS_FILE).touch(0o600)
        _plant(run_dir / remote.REPLIES_FILE, tmp_path / "replies-target")
        code, _, err = _control(capsys, run_dir, "pause")
        assert code == 1 and "replies.jsonl: is a symbolic link" in err
        assert (run_dir / remote.COMMANDS_FILE).read_text() == ""  # refused before sending
    finally:
        lock.release()


def test_a_command_file_replaced_by_a_link_mid_run_is_not_obeyed(tmp_path):
    door = Door(tmp_path)
    _plant(door.door.commands, tmp_path / "elsewhere", _command("pause"))
    door.door.poll()
    assert not door.trainer.paused and door.replies.read_text() == ""
    assert _untouched(tmp_path / "elsewhere", _command("pause"))


def test_a_headless_run_goes_at_full_speed_until_nnlib_control_paces_it(headless_run, capsys):
    run_dir, process = headless_run
    _wait_for(lambda: len(_events(run_dir, "batch")) > 3, "batches")
    assert _events(run_dir, "pace") == []  # `nnlib train` is never paced by itself
    code, _, err = _control(capsys, run_dir, "pace", "0")
    assert code == 2 and "refused by the run" in err and "pace must be in" in err
    code, out, _ = _control(capsys, run_dir, "pace", "1000")
    assert code == 0 and "at most 1000 epochs a second" in out
    code, out, _ = _control(capsys, run_dir, "pace", "full")
    assert code == 0 and "full speed" in out
    _wait_for(lambda: len(_events(run_dir, "pace")) == 2, "the pace events")
    first, second = _events(run_dir, "pace")
    assert (first["old"], first["new"], first["source"]) == (None, 1000, "remote")
    assert (second["old"], second["new"], second["source"]) == (1000, None, "remote")
    assert _control(capsys, run_dir, "stop")[0] == 0
    assert process.wait(TIMEOUT) == 0
