"""The complete checkpoint format: every optimizer's and schedule's state round-trips, old model
files still load, a checkpoint loads as a model, and bad files are refused by name."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlib import checkpointing
from nnlib.callbacks import CosineDecay, ExponentialDecay, StepDecay, TimeBasedDecay
from nnlib.losses import SoftmaxCrossEntropy
from nnlib.model import load as load_model
from nnlib.optimizers import OPTIMIZERS, make_optimizer
from nnlib.spec import build
from nnlib.trainer import Trainer

SPEC = "dense(6) batchnorm relu dropout(0.3) dense(3)"
SCHEDULES = {
    "step": lambda: StepDecay(step_size=2, gamma=0.5, per="batch"),
    "exponential": lambda: ExponentialDecay(gamma=0.9),
    "cosine": lambda: CosineDecay(total=7, min_factor=0.1, per="batch"),
    "time": lambda: TimeBasedDecay(decay=0.3),
}


def momentum(optimizer: str) -> dict[str, float]:
    """SGD with momentum, so that it has state to keep."""
    return {"momentum": 0.9} if optimizer == "sgd" else {}


def trained(optimizer: str, schedule: str) -> Trainer:
    """A trainer after 15 steps (3 epochs of 5 batches)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    trainer = Trainer(
        build(SPEC, (4,), seed=0),
        SoftmaxCrossEntropy(),
        make_optimizer(optimizer, lr=0.03, decay=0.01, **momentum(optimizer)),
        callbacks=[SCHEDULES[schedule]()],
    )
    trainer.fit(x, y, epochs=3, batch_size=8, seed=5, threads=1)
    return trainer


def fresh(optimizer: str, schedule: str) -> Trainer:
    return Trainer(
        build(SPEC, (4,), seed=9),
        SoftmaxCrossEntropy(),
        make_optimizer(optimizer, lr=1.0, **momentum(optimizer)),
        callbacks=[SCHEDULES[schedule]()],
    )


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_round_trip_of_every_optimizer_and_schedule(
    tmp_path: Path, optimizer: str, schedule: str
) -> None:
    source = trained(optimizer, schedule)
    path = checkpointing.save(source, tmp_path / "c")
    assert path.name == "c.npz"
    target = fresh(optimizer, schedule)
    checkpointing.restore(target, checkpointing.load(path))
    for name, value in source.model.get_weights().items():  # BatchNorm's moving stats too
        np.testing.assert_array_equal(target.model.get_weights()[name], value)
    a, b = source.optimizer.state_dict(), target.optimizer.state_dict()
    assert a["hyperparameters"] == b["hyperparameters"] and a["iterations"] == b["iterations"]
    assert a["slots"].keys() == b["slots"].keys() and a["slots"]
    for name, slots in a["slots"].items():
        assert slots.keys() == b["slots"][name].keys()
        for key, value in slots.items():
            np.testing.assert_array_equal(b["slots"][name][key], value)
    assert target.callbacks[1].state_dict() == source.callbacks[1].state_dict()
    dropout = target.model["dropout_1"].rng.bit_generator.state
    assert dropout == source.model["dropout_1"].rng.bit_generator.state
    assert target.global_step == source.global_step == 15
    assert target.resume_from is not None and target.resume_from.epoch == 3


def test_an_old_model_file_still_loads_and_is_no_checkpoint(tmp_path: Path) -> None:
    model = build(SPEC, (4,), seed=0)
    path = tmp_path / "old.npz"
    # What Sequential.save wrote before checkpoints existed: the architecture and the params.
    arrays = {f"param/{k}": v for k, v in model.get_weights().items()}
    np.savez(path, architecture=np.array(json.dumps(model.architecture())), **arrays)
    loaded = load_model(path)
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[name], value)
    with pytest.raises(checkpointing.CheckpointError, match="without training state"):
        checkpointing.load(path)


def test_a_checkpoint_loads_as_a_model_for_inference(tmp_path: Path) -> None:
    source = trained("adam", "step")
    loaded = load_model(checkpointing.save(source, tmp_path / "c.npz"))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), source.model.predict(x))


def rewrite(path: Path, member: str, value: np.ndarray) -> None:
    """Replace one member of an .npz archive."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    out = path.with_name("bad.npz")
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            if name != member:
                archive.writestr(name, data)
        with archive.open(member, "w") as handle:
            np.lib.format.write_array(handle, value)
    out.replace(path)


def test_a_checkpoint_from_before_replicas_were_recorded_resumes_on_one(tmp_path: Path) -> None:
    path = checkpointing.save(trained("sgd", "step"), tmp_path / "c.npz")
    state = dict(checkpointing.load(path).state)
    assert state.pop("replicas") == 1
    rewrite(path, "training/state.npy", np.array(json.dumps(state)))
    resumed = fresh("sgd", "step")
    checkpointing.restore(resumed, checkpointing.load(path))
    assert resumed.resume_from is not None and resumed.resume_from.replicas == 1


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("training/state.npy", np.array("{not json"), "training state is not JSON"),
        ("training/state.npy", np.zeros(3), "should be a short text"),
        (
            "training/optimizer/dense_1.W/m.npy",
            np.zeros((5, 6), np.float32),
            r"training/optimizer/dense_1.W/m.npy is float32 \(5, 6\), the parameter is float32",
        ),
        ("training/optimizer/nope/m.npy", np.zeros(2, np.float32), "unexpected member"),
    ],
)
def test_bad_members_are_refused_by_name(
    tmp_path: Path, member: str, value: np.ndarray, message: str
) -> None:
    path = checkpointing.save(trained("adam", "step"), tmp_path / "c.npz")
    rewrite(path, member, value)
    with pytest.raises(checkpointing.CheckpointError, match=message) as error:
        checkpointing.load(path)
    assert str(error.value).startswith(str(path))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    field=st.sampled_from(
        ["step", "epoch", "offset", "batch_size", "replicas", "loss_sum", "shuffle_state"]
    ),
    value=st.one_of(st.none(), st.booleans(), st.integers(-5, -1), st.text(max_size=3)),
)
def test_bad_state_fields_are_named(field: str, value: object) -> None:
    state = json.loads(
        str(checkpointing.capture(_SMALL, "x")["training/state"].item())  # the record
    )
    if (field in ("shuffle_state", "loss_sum") and value is None) or (
        field == "loss_sum" and type(value) is int
    ):
        return  # null: no shuffling, or a NaN sum (a diverged epoch); any number is a sum
    state[field] = value
    with pytest.raises(checkpointing.CheckpointError, match=f"training state: {field} must be"):
        checkpointing._check_state(state, "file.npz")


_SMALL = trained("sgd", "time")


@pytest.mark.parametrize("value", ["missing", None, 7, "another-format"])
def test_a_state_record_of_another_or_no_format_is_refused(value: object) -> None:
    """The format's test compared with str.__eq__, whose NotImplemented for a non-string is
    true: a record with no format, or a number for it, passed."""
    state = json.loads(str(checkpointing.capture(_SMALL, "x")["training/state"].item()))
    if value == "missing":
        del state["format"]
    else:
        state["format"] = value
    with pytest.raises(checkpointing.CheckpointError, match="format must be"):
        checkpointing._check_state(state, "file.npz")


def test_a_checkpoint_for_another_model_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = checkpointing.save(trained("sgd", "step"), tmp_path / "c.npz")
    other = Trainer(
        build("dense(5) dense(3)", (4,), seed=0), SoftmaxCrossEntropy(), make_optimizer("sgd")
    )
    before = other.model.get_weights()
    with pytest.raises(checkpointing.CheckpointError, match="do not fit this model"):
        checkpointing.restore(other, checkpointing.load(path))
    for name, value in other.model.get_weights().items():
        np.testing.assert_array_equal(value, before[name])
    assert other.resume_from is None


def test_find_and_parse_source(tmp_path: Path) -> None:
    assert checkpointing.parse_source("runs/a@12") == ("runs/a", 12)
    assert checkpointing.parse_source("runs/a") == ("runs/a", "last")
    assert checkpointing.parse_source("a@b@best") == ("a@b", "best")
    with pytest.raises(checkpointing.CheckpointError, match="got 'soon' after the @"):
        checkpointing.parse_source("runs/a@soon")
    with pytest.raises(checkpointing.CheckpointError, match="no checkpoint in"):
        checkpointing.find(tmp_path)
    folder = tmp_path / checkpointing.FOLDER
    trainer = trained("sgd", "step")
    for step in (5, 10):
        trainer.global_step = step
        checkpointing.save(trainer, checkpointing.step_file(folder, step))
    assert checkpointing.find(tmp_path).name == "step-10.npz"
    assert checkpointing.find(tmp_path, 5).name == "step-5.npz"
    with pytest.raises(checkpointing.CheckpointError, match="the run has steps 5, 10"):
        checkpointing.find(tmp_path, 7)


def test_checkpointer_keeps_the_newest_and_writes_at_stop(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    keeper = checkpointing.Checkpointer(tmp_path, every=2, keep=2, monitor="loss")
    trainer = Trainer(
        build(SPEC, (4,), seed=0), SoftmaxCrossEntropy(), make_optimizer("sgd"), callbacks=[keeper]
    )
    trainer.fit(x, y, epochs=3, batch_size=8, threads=1)  # 15 steps
    assert sorted(checkpointing.step_checkpoints(tmp_path)) == [14, 15]
    assert (tmp_path / checkpointing.BEST).is_file()
    with pytest.raises(ValueError, match="every must be an integer >= 0, got -1"):
        checkpointing.Checkpointer(tmp_path, every=-1)
