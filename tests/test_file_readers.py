"""Issue 17, items 7, 8 and 10: every file the project reads is opened one way
(`nnlib._files.open_regular`: regular files only, never through a symlinked file name, a FIFO
refused without waiting) and every .npy member of every archive (dataset .npz, model.npz,
best.npz and step checkpoints, samples.npz) is parsed by one strict header reader
(`nnlib._npy`): each failure is the reader's own error type naming the file and the member,
never tokenize's TokenError, a MemoryError or a hang. A bad samples.npz leaves the rest of a
recorded run on screen."""

from __future__ import annotations

import io
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import TIMEOUT, mutated, pilot_test, run_cli, until, usage_error, writer_env
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
import nnlib.datasets as nds
from nnlib import checkpointing
from nnlib.callbacks.samples import SamplesError, read_samples
from nnlib.config import ConfigError, ExperimentConfig
from nnlib.datasets import cifar
from nnlib.experiment import setup
from nntui.app import NNTui
from nntui.replay import open_run
from nntui.screens.dashboard import DashboardScreen
from nntui.widgets.status import StatusPanel

#: The issue's header: a version 1.0 header of four bytes, an unclosed parenthesis.
BAD_HEADER = b"\x93NUMPY\x01\x00\x04\x00(  \n"
TINY = "conv(2,3) relu maxpool(2) dense(10)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny glyphs run with checkpoints: model.npz, best.npz, step-N.npz and samples.npz."""
    path = tmp_path_factory.mktemp("readers") / "run"
    config = ExperimentConfig(
        dataset="glyphs", arch=TINY, epochs=2, subset=400, batch_size=50, run_dir=str(path)
    )
    setup(config, checkpoints=True).fit()
    return path


def dataset_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.normal(size=(20, 3)), y_train=np.arange(20) % 2)
    return path


def step_checkpoint(run_dir: Path) -> Path:
    return checkpointing.find(run_dir, "last")


def load_dataset(path: Path) -> object:
    return nds.load(path)


#: Every archive kind: (a valid file in a run directory or made here, its reader, the error
#: type the reader may raise, the members to damage).
ARCHIVES: dict[str, tuple[Callable[[Path], Path], Callable[[Path], object], type, list[str]]] = {
    "dataset .npz": (
        lambda run: dataset_npz(run.parent / "data.npz"),
        load_dataset,
        nds.DatasetError,
        ["x_train.npy", "y_train.npy"],
    ),
    "model.npz": (
        lambda run: run / "model.npz",
        nl.load,
        ValueError,
        ["architecture.npy", "param/conv_1.W.npy"],
    ),
    "best.npz": (
        lambda run: run / "checkpoints" / "best.npz",
        checkpointing.load,
        checkpointing.CheckpointError,
        ["architecture.npy", "param/dense_1.b.npy", "training/state.npy"],
    ),
    "step checkpoint": (
        step_checkpoint,
        checkpointing.load,
        checkpointing.CheckpointError,
        ["training/state.npy", "training/optimizer/dense_1.W/velocity.npy"],
    ),
    "samples.npz": (
        lambda run: run / "samples.npz",
        read_samples,
        SamplesError,
        ["images.npy", "labels.npy", "class_names.npy"],
    ),
}


def copy_with(source: Path, target: Path, member: str, data: bytes) -> Path:
    """`source` copied to `target` with `member` replaced by `data`."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert member in members, sorted(members)
    members[member] = data
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return target


CASES = [(kind, member) for kind, (_, _, _, members) in ARCHIVES.items() for member in members]


@pytest.mark.parametrize(("kind", "member"), CASES)
def test_the_issues_malformed_header_is_one_clear_error_in_every_archive(
    run_dir, tmp_path, kind, member
):
    make, read, error, _ = ARCHIVES[kind]
    path = copy_with(make(run_dir), tmp_path / make(run_dir).name, member, BAD_HEADER)
    with pytest.raises(error) as raised:
        read(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert member.removesuffix(".npy") in message and "damaged .npy header" in message


# -- fuzzing the header of every archive kind --------------------------------------------------


def npy_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value)
    return buffer.getvalue()


#: Fragments a header is made of, right and wrong.
FRAGMENTS = [
    "{",
    "}",
    "(",
    ")",
    ",",
    ":",
    " ",
    "\n",
    "'descr'",
    "'<f4'",
    "'|u1'",
    "'<U5'",
    "'|O'",
    "'<M8[ns]'",
    "'|V4'",
    "[('a', '<f4')]",
    "'fortran_order'",
    "False",
    "True",
    "'shape'",
    "(3,)",
    "(2, 3)",
    "()",
    "(100000000000,)",
    "(600, 0, 0, 1)",
    "'x'",
    "10**11",
    "1e9",
    "-1",
    "None",
    "'",
    '"',
    "\\",
    "#",
    "\x00",
    "é",
]
VALID_HEADERS = [
    npy_bytes(np.zeros((3, 2), np.float32)),
    npy_bytes(np.arange(4, dtype=np.int64)),
    npy_bytes(np.array("text")),
    npy_bytes(np.zeros((2, 4, 4, 1), np.uint8)),
]


@st.composite
def npy_members(draw) -> bytes:
    """A .npy member: a real one with a few damaged bytes, or a header made of fragments
    (with its length field right or wrong, any version) and a few bytes of data."""
    if draw(st.booleans()):
        return draw(mutated(VALID_HEADERS))
    text = "".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=30)))
    header = text.encode("utf-8")
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x00\x00"]))
    width = 2 if version == b"\x01\x00" else 4
    length = draw(st.one_of(st.just(len(header)), st.integers(0, 2 ** (8 * width) - 1)))
    data = draw(st.binary(max_size=64))
    return b"\x93NUMPY" + version + length.to_bytes(width, "little") + header + data


@pytest.mark.parametrize("kind", ARCHIVES)
def test_any_npy_header_in_any_archive_is_the_readers_error_or_a_valid_read(
    run_dir, tmp_path, kind
):
    make, read, error, members = ARCHIVES[kind]
    source = make(run_dir)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(member=st.sampled_from(members), data=npy_members())
    def fuzz(member: str, data: bytes) -> None:
        path = copy_with(source, tmp_path / source.name, member, data)
        try:
            read(path)
        except error as raised:
            assert str(raised).startswith(f"{path}: "), raised

    fuzz()


def test_the_header_reader_takes_what_numpy_writes():
    """Every dtype kind the readers take, both orders, any number of dimensions."""
    from nnlib._npy import read_header

    values = [
        np.zeros((2, 3), np.float32),
        np.asfortranarray(np.ones((2, 3), ">f8")),
        np.array(True),
        np.arange(5, dtype=np.uint8),
        np.zeros((1,) * 10, np.int16),
        np.array(["a", "bcd"]),
        np.array([b"xy"]),
        np.zeros(0, np.complex64),
    ]
    for value in values:
        handle = io.BytesIO(npy_bytes(value))
        shape, fortran, dtype = read_header(handle, "x")
        assert (shape, dtype) == (value.shape, value.dtype)
        data = np.frombuffer(handle.read(), dtype).reshape(shape, order="F" if fortran else "C")
        assert np.array_equal(data, value)


def header(text: str, version: bytes = b"\x01\x00") -> bytes:
    return b"\x93NUMPY" + version + len(text).to_bytes(2, "little") + text.encode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (npy_bytes(np.zeros(2, [("a", "<f4")])), "a structured dtype (named fields) is not"),
        (npy_bytes(np.zeros(2, "M8[s]")), "dtype datetime64[s] is not supported"),
        (header("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }"), "written (n,)"),
        (header("{'descr': '<f4', 'shape': (3,), }"), "damaged .npy header (no 'fortran_order')"),
        (header("{'descr': '<f4', 'descr': '<f4'}"), "unexpected key 'descr'"),
        (header("{'descr': '<l', 'fortran_order': False, 'shape': ()}"), "not one numpy writes"),
        (header("{'descr': '<f3', 'fortran_order': False, 'shape': ()}"), "'<f3' is not valid"),
        (header("{}", b"\x09\x09"), ".npy format version 9.9 is not supported"),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{", "claims 4,294,967,295 bytes, more than"),
        (header("{'descr': '<f4'")[:-3], "truncated .npy header (15 bytes declared, 12 there)"),
        (b"PK\x03\x04", "not a .npy array (its first bytes are b'PK\\x03\\x04')"),
    ],
)
def test_a_header_numpy_would_not_write_is_refused_by_name(data, problem):
    from nnlib._npy import read_header

    with pytest.raises(ValueError) as raised:
        read_header(io.BytesIO(data), "file.npz: x.npy")
    assert str(raised.value).startswith("file.npz: x.npy: ") and problem in str(raised.value)


def test_a_csv_file_is_sized_against_the_free_memory_before_it_is_read(tmp_path, monkeypatch):
    from nnlib import _memory as memory_module

    path = tmp_path / "data.csv"
    path.write_text("label,a\n" + "0,1\n" * 100)
    monkeypatch.setattr(memory_module, "available_memory", lambda: (100, "test"))
    with pytest.raises(nds.DatasetError, match=r"data.csv: the CSV file would take 408 B, more"):
        nds.load(path)


# -- files that are not regular files ------------------------------------------------------------


def bounded(call: Callable[[], object], fifo: Path | None = None) -> BaseException | None:
    """What `call()` raises (None if it returns), run in a thread bounded by TIMEOUT: a
    call still blocked on `fifo` then is released (a writer opens and closes the FIFO) and
    the test fails."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
            thread.join(TIMEOUT)
        pytest.fail(f"still blocked after {TIMEOUT} s")
    return outcome[0] if outcome else None


def refused_promptly(read: Callable[[], object], fifo: Path | None = None) -> BaseException:
    raised = bounded(read, fifo)
    assert raised is not None, "the reader returned"
    return raised


#: A reader per file name, and the error type it must raise.
READERS: dict[str, tuple[Callable[[Path], object], type]] = {
    "data.csv": (load_dataset, nds.DatasetError),
    "data.npz": (load_dataset, nds.DatasetError),
    "experiment.toml": (ExperimentConfig.load, ConfigError),
    "model.npz": (nl.load, ValueError),
    "best.npz": (checkpointing.load, checkpointing.CheckpointError),
    "samples.npz": (read_samples, SamplesError),
    "t10k-images-idx3-ubyte": (nds.read_idx, nds.DatasetError),
    "data_batch_1.bin": (cifar._read_batch_file, nds.DatasetError),
}


@pytest.mark.parametrize("name", READERS)
def test_every_reader_refuses_a_fifo_at_once(tmp_path, name):
    read, error = READERS[name]
    fifo = tmp_path / name
    os.mkfifo(fifo)
    raised = refused_promptly(lambda: read(fifo), fifo)
    assert isinstance(raised, error), repr(raised)
    assert str(raised).startswith(f"{fifo}: is a FIFO (named pipe), not a regular file (")
    assert "\n" not in str(raised)


@pytest.mark.parametrize(
    ("name", "target"), [("data.npz", "/dev/zero"), ("data.csv", "/dev/urandom")]
)
def test_a_symlink_to_a_device_is_refused_unread(tmp_path, name, target):
    link = tmp_path / name
    link.symlink_to(target)
    raised = refused_promptly(lambda: nds.load(link))
    assert isinstance(raised, nds.DatasetError), repr(raised)
    assert str(raised).startswith(f"{link}: is a symbolic link, not a regular file")


@pytest.mark.parametrize("name", READERS)
def test_a_symlinked_file_is_refused(tmp_path, name):
    read, error = READERS[name]
    (tmp_path / "real").write_bytes(b"")
    link = tmp_path / name
    link.symlink_to(tmp_path / "real")
    with pytest.raises(error, match="is a symbolic link, not a regular file"):
        read(link)


def test_a_symlinked_folder_is_followed(run_dir, tmp_path):
    """Run and data folders may live elsewhere: only the file's own name may not be a link."""
    linked = tmp_path / "linked-run"
    linked.symlink_to(run_dir, target_is_directory=True)
    assert nl.load(linked / "model.npz").summary() == nl.load(run_dir / "model.npz").summary()
    assert checkpointing.load(linked / "checkpoints" / "best.npz").step > 0
    assert len(read_samples(linked / "samples.npz").images) > 0


# -- samples.npz (item 10) ------------------------------------------------------------------------


def samples_archive(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def declaring(count: int) -> bytes:
    """A samples file whose images header declares `count` 28x28 images over 10 bytes."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({count}, 28, 28, 1), }}"
    text = header.encode().ljust(118) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(10)
    return zip_of({"images.npy": member, "labels.npy": npy_bytes(np.zeros(3, np.int64))})


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def valid_samples() -> bytes:
    images = np.zeros((6, 4, 4, 1), np.uint8)
    return samples_archive(images=images, labels=np.arange(6), class_names=np.array(["a", "b"]))


BAD_SAMPLES = {
    "empty": (b"", "not a readable samples file (BadZipFile"),
    "truncated": (valid_samples()[:200], "not a readable samples file"),
    "no pixels": (
        samples_archive(images=np.zeros((600, 0, 0, 1), np.uint8), labels=np.zeros(600, int)),
        "of at least one pixel, got uint8 (600, 0, 0, 1)",
    ),
    "10^11 images": (declaring(10**11), "the header declares 100000000000x28x28x1 uint8"),
    "malformed header": (
        zip_of({"images.npy": BAD_HEADER, "labels.npy": npy_bytes(np.arange(2))}),
        "damaged .npy header",
    ),
    "labels short": (
        samples_archive(images=np.zeros((3, 2, 2, 1), np.uint8), labels=np.arange(2)),
        "expected 3 integer labels",
    ),
}


@pytest.mark.parametrize("case", BAD_SAMPLES)
def test_a_bad_samples_file_is_one_samples_error(tmp_path, case):
    data, fragment = BAD_SAMPLES[case]
    path = tmp_path / "samples.npz"
    path.write_bytes(data)
    with pytest.raises(SamplesError) as raised:
        read_samples(path)
    assert str(raised.value).startswith(f"{path}: ") and fragment in str(raised.value)


def test_the_samples_reader_takes_only_what_it_can_show_or_says_why(tmp_path):
    path = tmp_path / "samples.npz"
    arrays = st.builds(
        lambda shape, kind: np.zeros(shape, kind),
        st.lists(st.integers(0, 3), max_size=5).map(tuple),
        st.sampled_from([np.uint8, np.int64, np.float32, np.bool_, "U2"]),
    )
    archives = st.dictionaries(
        st.sampled_from(["images", "labels", "class_names", "other"]), arrays, max_size=4
    ).map(lambda members: samples_archive(**members))

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(data=st.one_of(archives, mutated([valid_samples()]), st.binary(max_size=200)))
    def fuzz(data: bytes) -> None:
        path.write_bytes(data)
        try:
            samples = read_samples(path)
        except SamplesError as raised:
            assert str(raised).startswith(f"{path}: ")
            return
        images, labels = samples.images, samples.labels
        assert images.dtype == np.uint8 and images.ndim == 4 and 0 not in images.shape[1:]
        assert labels.shape == images.shape[:1] and labels.dtype == np.int64

    fuzz()


def recorded_with_samples(run_dir: Path, target: Path, data: bytes | None) -> Path:
    """A copy of `run_dir` whose samples.npz holds `data` (None: a FIFO)."""
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("checkpoints", "samples.npz"))
    if data is None:
        os.mkfifo(target / "samples.npz")
    else:
        (target / "samples.npz").write_bytes(data)
    return target


APP_CASES = {
    "malformed header": (BAD_SAMPLES["malformed header"][0], "damaged .npy header"),
    "10^11 images": (declaring(10**11), "the header declares 100000000000x28x28x1"),
    "no pixels": (BAD_SAMPLES["no pixels"][0], "of at least one pixel"),
    "FIFO": (None, "is a FIFO (named pipe), not a regular file"),
}


@pytest.mark.parametrize("case", APP_CASES)
def test_open_shows_a_bad_samples_file_in_its_panel_and_the_rest_of_the_run(
    run_dir, tmp_path, case
):
    data, reason = APP_CASES[case]
    target = recorded_with_samples(run_dir, tmp_path / "run[bold]", data)
    recorded = open_run(target)

    @pilot_test
    async def app_test() -> None:
        app = NNTui(recorded.experiment(), recorded=recorded)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            dashboard = app.screen
            await until(pilot, lambda: dashboard.state.end is not None, "the run's end")
            await pilot.press("6", "7")  # the Samples view, then Features (the same file)
            await pilot.press("6")
            await pilot.pause()
            shown = str(dashboard.panels["samples"].render())
            assert shown.startswith("samples.npz is unreadable: ") and reason in shown, shown
            assert "RECORDED · FINISHED" in str(dashboard.query_one(StatusPanel).render())
            assert "val" in str(dashboard.panels["curves"].render())

    # The app runs in this (the main) thread: a reader blocked on the FIFO is released by a
    # writer that opens and closes it after TIMEOUT, and the test fails.
    fifo, released = target / "samples.npz", threading.Event()

    def release() -> None:
        released.set()
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))

    watchdog = threading.Timer(TIMEOUT, release)
    watchdog.start()
    try:
        app_test()
    finally:
        watchdog.cancel()
    assert not released.is_set(), f"the app was blocked on the FIFO for {TIMEOUT} s"


# -- the command line: evaluate, fork and resume (item 7) ------------------------------------------


@pytest.mark.parametrize(
    ("args", "damaged"),
    [
        (["evaluate", "{run}/model.npz", "--dataset", "glyphs"], "model.npz"),
        (["evaluate", "{run}/checkpoints/best.npz", "--dataset", "glyphs"], "checkpoints/best.npz"),
        (["train", "--resume", "{run}"], "step"),
        (["train", "--fork", "{run}@best", "--epochs", "4"], "checkpoints/best.npz"),
        (["train", "--fork", "{run}", "--epochs", "4"], "step"),
    ],
)
def test_the_command_line_says_which_file_is_damaged_in_one_line(run_dir, tmp_path, args, damaged):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    path = step_checkpoint(run) if damaged == "step" else run / damaged
    copy_with(Path(shutil.copy(path, tmp_path / "x.npz")), path, "architecture.npy", BAD_HEADER)
    done = run_cli(tmp_path, writer_env(), *[arg.format(run=run) for arg in args])
    usage_error(done, f"{path}: architecture.npy: damaged .npy header")


def test_write_npz_writes_exactly_the_arrays_and_refuses_an_object_array():
    """Every archive the project writes goes through write_npz: np.savez took allow_pickle
    as a keyword only from numpy 2.2, and before saved it as an array 'allow_pickle', which
    the project's readers refuse (model files could not be read back)."""
    from nnlib._npy import write_npz

    handle = io.BytesIO()
    write_npz(handle, {"a": np.zeros(2, np.float32), "b": np.str_("text")})
    assert sorted(zipfile.ZipFile(handle).namelist()) == ["a.npy", "b.npy"]
    with pytest.raises(ValueError, match="^c: an object array"):
        write_npz(io.BytesIO(), {"c": np.array([{}], dtype=object)})
