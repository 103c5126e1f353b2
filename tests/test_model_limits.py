"""Sizes are checked before anything is allocated (issue 8, item 10): every shape, and the
memory to train (weights, gradients, optimizer state, a batch's activations) against what
the machine has free; the spec parser is linear; bad input is a SpecError, never a
MemoryError, OverflowError or TypeError. Also the spec warnings of item 8."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import nnlib as nl
from nnlib import _memory as memory_module
from nnlib import checkpointing
from nnlib._memory import available_memory, human_bytes, human_count
from nnlib.cli import main
from nnlib.datasets import available
from nnlib.model import check_fits
from nnlib.spec import plan, warnings_for
from nntui.architectures import check_spec

MiB = 2**20


@pytest.fixture
def free(monkeypatch):
    """Pretend the machine has `free(bytes)` available."""

    def set_free(count: int) -> None:
        monkeypatch.setattr(memory_module, "available_memory", lambda: (count, "test"))

    return set_free


def _peak(function, *args, **kwargs):
    """The exception `function` raised and the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the caller asserts on it
        raised = error
    else:
        raised = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


def test_a_window_larger_than_its_input_is_refused_before_the_weights_are_drawn():
    # Before: the 99x99x1x1000 kernel (78 MB in float64) was drawn, then the shape refused.
    error, peak = _peak(nl.build, "conv(1000,99)", (28, 28, 1))
    assert isinstance(error, nl.SpecError)
    assert str(error) == (
        "spec token 1 'conv(1000,99)': conv_1: window 99x99 is larger than its input 28x28"
    )
    assert peak < MiB


def test_a_model_larger_than_the_free_memory_is_refused_saying_how_much_it_needs(free):
    free(10 * MiB)
    # 1,001,000 parameters x 4 bytes x (value, gradient, 2 optimizer slots) = 15.3 MiB, and
    # 64 samples x 1000 outputs x 4 bytes x (output, gradient) = 500 KiB
    error, peak = _peak(nl.build, "dense(1000)", (1000,))
    assert isinstance(error, nl.SpecError) and error.token is None
    message = str(error)
    assert message.startswith("too big to train here: the model needs about 15.8 MiB")
    assert "1,001,000 parameters: 15.3 MiB with their gradients" in message
    assert "activations 500.0 KiB" in message
    assert "but only 10.0 MiB is available (test)" in message
    assert peak < MiB
    free(20 * MiB)
    assert nl.build("dense(1000)", (1000,)).summary().total_params == 1_001_000


def test_sequential_and_architecture_records_take_the_same_check(free):
    free(10 * MiB)
    with pytest.raises(nl.model.ModelTooLarge, match="needs about 15.8 MiB"):
        nl.Sequential([nl.Dense(1000)], input_shape=(1000,))
    record = nl.build("4-3", (4,)).architecture()
    record["layers"][0]["config"]["units"] = 10**12
    error, peak = _peak(nl.model.from_architecture, record, source="record")
    assert isinstance(error, ValueError) and not isinstance(error, MemoryError)
    assert str(error).startswith("record: invalid architecture record (too big to train here")
    assert peak < MiB


def test_the_batch_size_counts_activations_and_caches(free):
    summary = plan("conv(2,3) relu dense(3)", (5, 5, 1))
    # conv_1: output 3x3x2, im2col 9 rows of 3*3*1 + 1 values; relu: 3x3x2; flatten: 18;
    # dense: 3. Training keeps each output and its gradient, plus the caches.
    per_sample = 4 * (2 * (18 + 18 + 18 + 3) + 9 * 10)
    assert summary.training_activation_bytes(1) == per_sample
    params = 3 * 3 * 1 * 2 + 2 + 18 * 3 + 3
    assert summary.weight_bytes() == params * 4 * 4
    assert summary.memory_bytes(100) == params * 16 + 100 * per_sample
    free(summary.memory_bytes(100))
    check_fits(summary, 100)
    with pytest.raises(ValueError, match="batch size 101"):
        check_fits(summary, 101)


def test_replicas_count_their_gradients_and_processes_their_interpreters(free):
    summary = plan("conv(2,3) relu dense(3)", (5, 5, 1))
    gradients = summary.total_params * 4
    alone = summary.memory_bytes(100)
    assert summary.memory_bytes(100, replicas=3) == alone + 2 * gradients
    in_processes = summary.memory_bytes(100, replicas=3, processes=True)
    assert in_processes == alone + 2 * (gradients + nl.model.REPLICA_PROCESS_BYTES)
    free(in_processes)
    check_fits(summary, 100, replicas=3, processes=True)
    free(in_processes - 1)
    with pytest.raises(ValueError, match="with batch size 100 on 3 replicas in processes"):
        check_fits(summary, 100, replicas=3, processes=True)


def _trainer() -> nl.Trainer:
    model = nl.build("conv(4,3) relu dense(3)", (8, 8, 1), seed=0)
    return nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1))


def test_fit_refuses_a_batch_that_would_not_fit_before_it_trains(free):
    trainer = _trainer()
    before = [p.value.copy() for p in trainer.model.parameters()]
    x, y = np.zeros((500, 8, 8, 1), np.float32), np.arange(500) % 3
    summary = trainer.model.summary()
    free(summary.memory_bytes(400))
    with pytest.raises(nl.model.ModelTooLarge, match="with batch size 500 \\("):
        trainer.fit(x, y, batch_size=500)
    assert trainer.history.batches == [] and trainer.global_step == 0
    for param, value in zip(trainer.model.parameters(), before, strict=True):
        np.testing.assert_array_equal(param.value, value)
    # A batch size beyond the data steps on all of it: only those samples count.
    trainer.fit(x[:400], y[:400], batch_size=10**6)
    assert trainer.global_step == 1


def test_a_batch_size_steered_beyond_the_free_memory_is_refused_by_name(free):
    """Only what a larger batch adds counts: the run holds its current batch already (counted
    whole, a batch steered down was refused on a machine with little free memory)."""
    trainer = _trainer()
    x, y = np.zeros((500, 8, 8, 1), np.float32), np.arange(500) % 3
    trainer.fit(x, y, batch_size=100)
    summary = trainer.model.summary()
    room = summary.memory_bytes(200) - summary.memory_bytes(100)
    free(room)
    with pytest.raises(ValueError) as refused:
        trainer.set("batch_size", 201)
    more = summary.memory_bytes(201) - summary.memory_bytes(100)
    assert str(refused.value) == (
        f"Trainer: batch_size 201 needs about {human_bytes(more)} more than 100 to train, "
        f"only {human_bytes(room)} is available (test)"
    )
    assert trainer.batch_size == 100
    trainer.set("batch_size", 200)
    assert trainer.batch_size == 200
    free(0)
    trainer.set("batch_size", 20)  # smaller: never refused
    assert trainer.batch_size == 20
    free(summary.memory_bytes(500) - summary.memory_bytes(20))
    trainer.set("batch_size", 10**6)  # beyond the fit's 500 samples: a step holds 500
    assert trainer.batch_size == 10**6


def test_a_checkpoint_with_a_steered_batch_size_pending_loads_whatever_the_free_memory(
    tmp_path, free
):
    """The request was taken in the run (a batch beyond the data is the data); restored on a
    fresh trainer, nothing is known of the data yet and the next fit checks."""
    trainer = _trainer()
    x, y = np.zeros((50, 8, 8, 1), np.float32), np.arange(50) % 3
    trainer.fit(x, y, batch_size=10)
    trainer.control.restore_requests([("batch_size", 10**9, "app")])
    checkpointing.save(trainer, tmp_path / "ckpt.npz")
    free(MiB)
    fresh = _trainer()
    checkpointing.restore(fresh, checkpointing.load(tmp_path / "ckpt.npz"))
    assert fresh.pending()["batch_size"] == 10**9


def test_nothing_is_allocated_for_a_plan():
    error, peak = _peak(plan, "784-512-512-512-10", (784,))
    assert error is None and peak < 256 * 1024  # the weights alone would be 5 MB
    summary = plan("784-512-512-512-10", (784,))
    assert summary.total_params == nl.build("784-512-512-512-10", (784,)).summary().total_params
    assert summary.param_shapes()["dense_1.W"] == (784, 512)


def test_available_memory_reads_meminfo_and_falls_back(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemAvailable:  2048 kB\n")
    monkeypatch.setattr(memory_module, "MEMINFO", str(meminfo))
    assert available_memory() == (2048 * 1024, f"MemAvailable in {meminfo}")
    monkeypatch.setattr(memory_module, "MEMINFO", str(tmp_path / "missing"))

    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name!r}")

    monkeypatch.setattr(memory_module.os, "sysconf", no_sysconf)
    count, source = available_memory()
    assert count == 4 * 2**30 and "assumed" in source


def test_huge_sizes_print_without_overflow():
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 2**40) == "3.0 TiB"
    assert human_bytes(10**400) == "more than 1 EiB"
    assert human_count(1_234_567) == "1,234,567"
    assert human_count(10**400) == "about 10^400"


@pytest.mark.parametrize(
    "spec, shape",
    [
        ("dense(" + "9" * 400 + ")", (4,)),  # float(10**400) overflowed in the check
        ("4-" + "9" * 5000 + "-3", (4,)),  # longer than Python converts to int
        ("conv(" + "9" * 300 + ",3)", (8, 8, 1)),
        ("dense(1e400)", (4,)),
        ("conv(2,3x" + "9" * 400 + ")", (8, 8, 1)),
        ("dense(3)", "abc"),
        ("dense(3)", 5),
        ("dense(3)", (2.5,)),
        ("dense(3)", (float("inf"),)),
        ("dense(3)", None),
        (None, (4,)),
        ("dense(3)", (10**30, 10**30)),
    ],
)
def test_absurd_sizes_are_spec_errors(spec, shape):
    error, peak = _peak(nl.build, spec, shape)
    assert isinstance(error, nl.SpecError), repr(error)
    assert peak < MiB


def test_a_long_spec_is_tokenized_in_one_pass():
    """40,000 relu tokens took 27 s: after each token the tokenizer copied the rest of the
    spec (spec[position:]) to see whether only spaces were left. Count those copies."""

    class CountingStr(str):
        slices = 0

        def __getitem__(self, key):
            CountingStr.slices += isinstance(key, slice)
            return str.__getitem__(self, key)

    text = CountingStr(" ".join(["relu"] * 2000) + " dense(3)  ")
    layers = nl.spec.parse(text)
    assert len(layers) == 2001 and isinstance(layers[-1], nl.Dense)
    assert CountingStr.slices == 0
    model = nl.build(" ".join(["relu"] * 40_000) + " dense(3)", (4,))
    assert len(model.layers) == 40_001 and model.layers[-2].name == "relu_40000"


def test_layer_names_are_checked_for_duplicates_in_one_pass():
    """Building 40,000 layers took 27 s: each name was compared with every other
    (names.count). Count the comparisons."""

    class CountingName(str):
        comparisons = 0

        def __eq__(self, other):
            CountingName.comparisons += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    layers = [nl.ReLU(name=CountingName(f"r{i}")) for i in range(2000)]
    nl.Sequential(layers, input_shape=(4,))
    assert CountingName.comparisons < 10 * len(layers)
    with pytest.raises(ValueError, match="layer name 'r1' is used twice"):
        nl.Sequential([nl.ReLU(name="r1"), nl.ReLU(name="r1")])


def test_the_app_editor_uses_the_same_check(free):
    glyphs = next(info for info in available() if info.name == "glyphs")
    error, peak = _peak(check_spec, "conv(1000,99) dense(10)", glyphs)
    assert error is None and peak < MiB
    result = check_spec("conv(1000,99) dense(10)", glyphs)
    assert "window 99x99 is larger than its input 28x28" in result.error
    free(10 * MiB)
    result = check_spec("dense(4000) dense(10)", glyphs)
    assert result.error.startswith("too big to train here") and result.summary is None
    free(2**40)
    result = check_spec("dense(40) relu dense(10)", glyphs)
    assert result.error is None and result.summary.output_shape == (10,)


def test_cli_summary_and_train_refuse_with_one_line(free, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path))
    code = main(["summary", "--arch", "conv(100000,99)", "--input-shape", "28,28,1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "window 99x99 is larger" in err
    free(100 * MiB)
    code = main(["train", "--dataset", "spirals", "--arch", "2-100000-100000-3", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "too big to train here" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no run directory for a model that was refused
    code = main(["summary", "--arch", "2-1000-3", "--input-shape", "2", "--batch-size", "4096"])
    assert code == 0  # fits with 100 MiB at batch 4096 ...
    free(20 * MiB)
    code = main(["summary", "--arch", "2-1000-3", "--input-shape", "2", "--batch-size", "4096"])
    assert code == 2 and "batch size 4096" in capsys.readouterr().err  # ... not with 20


# -- item 8: warnings for a model paired with its loss -------------------------------------------


@pytest.mark.parametrize(
    "spec, loss, fragment",
    [
        ("dense(8) dense(3) softmax", "softmax_cross_entropy", "double softmax"),
        ("dense(8) relu dense(3) softmax", None, "double softmax"),
        ("dense(8) relu dense(3) softmax", "mse", "sum to 1"),
        ("dense(8) relu dense(3) relu", "softmax_cross_entropy", "ends in relu after the logits"),
        ("dense(3) sigmoid", nl.SoftmaxCrossEntropy(), "ends in sigmoid"),
        ("dense(3) tanh", "softmax_cross_entropy", "squashes"),
        ("dense(3) leakyrelu(alpha=0.2)", "softmax_cross_entropy", "leakyrelu(alpha=0.2)"),
        ("dense(3) dropout(0.5)", "mse", "dropout before the last dense"),
    ],
)
def test_warnings_for_a_spec_and_its_loss(spec, loss, fragment):
    texts = warnings_for(spec, loss)
    assert len(texts) == 1 and fragment in texts[0], texts
    assert warnings_for(nl.build(spec, (4,)), loss) == texts


@pytest.mark.parametrize(
    "spec, loss",
    [
        ("4-8-3", "softmax_cross_entropy"),
        ("4-8-1:tanh tanh", "mse"),  # bounded regression targets: fine
        ("dense(8) relu dense(1) relu", "mse"),
        ("dense(8) relu dense(1) relu", None),
        ("conv(3", "softmax_cross_entropy"),  # does not parse: build says why
    ],
)
def test_no_warnings_when_nothing_is_wrong(spec, loss):
    assert warnings_for(spec, loss) == []


def test_cli_prints_the_warning_on_stderr_and_goes_on(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNLIB_RUNS_DIR", str(tmp_path))
    code = main(["summary", "--arch", "dense(8) relu dense(3) softmax", "--dataset", "spirals"])
    captured = capsys.readouterr()
    assert code == 0 and "total params" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "double softmax" in warnings[0]
    argv = ["train", "--dataset", "spirals", "--arch", "dense(8) relu dense(3) softmax"]
    code = main([*argv, "--epochs", "1", "--quiet", "--subset", "60"])
    err = capsys.readouterr().err
    assert code == 0
    assert (
        sum(line.startswith("warning: ") and "double softmax" in line for line in err.splitlines())
        == 1
    )


def test_a_float64_model_counts_eight_bytes(free):
    model = nl.build("4-3", (4,)).to(np.float64)
    assert model.summary().weight_bytes() == 15 * 8 * 4
