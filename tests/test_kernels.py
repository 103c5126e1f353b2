"""Every convolution kernel on every path against the plain-loop reference and gradcheck,
the kernel rule, and the buffers the kernels reuse (issue 13)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib as nl
from nnlib import threads
from nnlib.callbacks.monitor import PERCENTILE_SAMPLE, PERCENTILES, histogram
from nnlib.gradcheck import gradcheck
from nnlib.layers import _windows as windows
from nnlib.layers.conv import (
    FORWARD_KERNELS,
    INPUT_GRAD_KERNELS,
    WEIGHT_GRAD_KERNELS,
    Kernels,
)

RTOL, ATOL = 1e-10, 1e-12

ALL_KERNELS = [
    Kernels(f, i, w)
    for f, i, w in itertools.product(FORWARD_KERNELS, INPUT_GRAD_KERNELS, WEIGHT_GRAD_KERNELS)
]
#: The kernels that also take strides: im2col forward and weight gradient, with each input
#: gradient that does.
STRIDED_KERNELS = [Kernels(), Kernels(input_grad="toeplitz")]

# Stride-1 cases (the shift kernel's domain): (input shape, filters, kernel, padding)
STRIDE1_CASES = [
    ((2, 5, 5, 2), 3, 3, 0),
    ((2, 5, 7, 3), 3, 3, "same"),
    ((2, 6, 5, 1), 2, 2, "same"),
    ((1, 7, 6, 2), 2, (3, 2), 2),
    ((1, 5, 5, 2), 2, 5, 1),
    ((2, 4, 5, 4), 3, 1, 0),
    ((1, 3, 3, 1), 2, 3, 2),
    ((1, 6, 7, 2), 2, (2, 3), "same"),
]


def _ids(value) -> str:
    if isinstance(value, Kernels):
        return f"{value.forward}-{value.input_grad}-{value.weight_grad}"
    return "-".join(str(part).replace(" ", "") for part in value)


def _conv(case, kernels: Kernels | None, rng: np.random.Generator) -> nl.Conv2D:
    shape, filters, kernel, padding = case
    layer = nl.Conv2D(filters, kernel, padding=padding, name="conv")
    layer.kernels = kernels
    layer.to(np.float64)
    layer.build(shape[1:], rng)
    layer.params["W"].value[...] = rng.standard_normal(layer.params["W"].value.shape)
    layer.params["b"].value[...] = rng.standard_normal(filters)
    return layer


@pytest.mark.parametrize("kernels", ALL_KERNELS, ids=_ids)
@pytest.mark.parametrize("case", STRIDE1_CASES, ids=_ids)
def test_every_kernel_matches_reference(case, kernels):
    _check_two_batches(case, kernels, seed=11)


def _check_two_batches(case, kernels, seed):
    """A stride-1 conv with `kernels` against the plain-loop reference on two batches: the
    second reuses every buffer (grid margins must still be zero)."""
    shape, _, kernel, padding = case
    rng = np.random.default_rng(seed)
    layer = _conv(case, kernels, rng)
    pads = ref.conv_pads(padding, shape[1:3], ref.pair(kernel), (1, 1))
    for _ in range(2):
        ref.check_conv(layer, rng.standard_normal(shape), (1, 1), pads, rng)


@pytest.mark.parametrize("kernels", ALL_KERNELS, ids=_ids)
@pytest.mark.parametrize("case", STRIDE1_CASES[:4], ids=_ids)
def test_every_kernel_passes_gradcheck(case, kernels):
    shape, filters, kernel, padding = case
    layer = nl.Conv2D(filters, kernel, padding=padding, name="conv")
    layer.kernels = kernels
    x = np.random.default_rng(12).standard_normal(shape)
    result = gradcheck(layer, x)
    assert {"input", "conv.W", "conv.b"} == set(result.errors)
    assert result.max_error < 1e-6, str(result)


#: Every kernel on two stride-1 shapes; im2col/col2im (the only ones for strides) on a
#: stride-2 shape.
PART_CASES = [
    (case, (1, 1), kernels)
    for case in (STRIDE1_CASES[1], STRIDE1_CASES[3])
    for kernels in ALL_KERNELS
] + [(((5, 7, 6, 2), 3, 3, 1), (2, 2), kernels) for kernels in STRIDED_KERNELS]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("case", "stride", "kernels"), PART_CASES, ids=_ids)
def test_batch_in_parts_matches_reference(case, stride, kernels, workers, monkeypatch):
    """A batch larger than PART_SAMPLES runs through every pass in parts (here 2 + 2 + 1,
    then 2 + 1, then 2 + 2 + 1 again: parts of two sizes, and buffers of an earlier shape
    dropped and made again); outputs and gradients are still those of the whole batch. With
    2 batch workers the parts run two at a time, each pair on its own buffers."""
    monkeypatch.setattr(windows, "PART_SAMPLES", 2)
    (shape, filters, kernel, padding) = case
    rng = np.random.default_rng(14)
    layer = nl.Conv2D(filters, kernel, stride=stride[0], padding=padding, name="conv")
    layer.kernels = kernels
    layer.to(np.float64)
    layer.build(shape[1:], rng)
    layer.params["b"].value[...] = rng.standard_normal(filters)
    pads = ref.conv_pads(padding, shape[1:3], ref.pair(kernel), stride)
    with threads.batch_workers(workers):
        for batch in (5, 3, 5):
            ref.check_conv(layer, rng.standard_normal((batch, *shape[1:])), stride, pads, rng)
    assert len(layer._slots) == workers


def test_batch_in_parts_passes_gradcheck(monkeypatch):
    monkeypatch.setattr(windows, "PART_SAMPLES", 2)
    layer = nl.Conv2D(3, 3, padding="same", name="conv")
    result = gradcheck(layer, np.random.default_rng(17).standard_normal((5, 5, 6, 2)))
    assert result.max_error < 1e-6, str(result)


@pytest.mark.parametrize("kernels", ALL_KERNELS, ids=_ids)
def test_weight_gradient_without_input_gradient(kernels):
    """backward_params asks the first layer for no dL/dx: the weight gradient must not
    depend on the input-gradient path having run."""
    case = STRIDE1_CASES[1]
    rng = np.random.default_rng(13)
    layer = _conv(case, kernels, rng)
    x = rng.standard_normal(case[0])
    dout = rng.standard_normal(layer.forward(x).shape)
    assert layer.backward(dout, need_input_grad=False) is None
    pads = ref.conv_pads("same", case[0][1:3], (3, 3), (1, 1))
    _, dw_ref, db_ref = ref.conv2d_backward(x, layer.params["W"].value, (1, 1), pads, dout)
    np.testing.assert_allclose(layer.params["W"].grad, dw_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.params["b"].grad, db_ref, rtol=RTOL, atol=ATOL)


#: What float32 may differ from the float64 plain loops, relative to the largest magnitude
#: of the result: sums of at most 3*3*4 = 36 products of unit-scale values round by about
#: sqrt(36) * 6e-8 = 4e-7 of it; 1e-5 leaves room and still fails any wrong term.
FLOAT32_BOUND = 1e-5


@pytest.mark.parametrize("kernels", ALL_KERNELS, ids=_ids)
def test_float32_error_against_float64_stays_within_the_bound(kernels):
    rng = np.random.default_rng(23)
    shape, pads = (3, 6, 7, 4), ref.conv_pads("same", (6, 7), (3, 3), (1, 1))
    layer = nl.Conv2D(5, 3, padding="same", name="conv")
    layer.kernels = kernels
    layer.build(shape[1:], rng)
    layer.params["b"].value[...] = rng.standard_normal(5)
    x = rng.standard_normal(shape).astype(np.float32)
    weights = layer.params["W"].value.astype(np.float64)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    expected = ref.conv2d_forward(x, weights, layer.params["b"].value, (1, 1), pads)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(x, weights, (1, 1), pads, dout)
    pairs = [(out, expected), (dx, dx_ref), (layer.params["W"].grad, dw_ref)]
    pairs.append((layer.params["b"].grad, db_ref))
    for got, want in pairs:
        assert np.abs(got - want).max() <= FLOAT32_BOUND * np.abs(want).max()


def test_float32_stays_float32_on_every_kernel():
    rng = np.random.default_rng(14)
    for kernels in ALL_KERNELS:
        layer = nl.Conv2D(4, 3, padding="same", name="conv")
        layer.kernels = kernels
        layer.build((6, 6, 3), rng)
        out = layer.forward(rng.standard_normal((2, 6, 6, 3)).astype(np.float32))
        dx = layer.backward(np.ones_like(out))
        assert out.dtype == dx.dtype == layer.params["W"].grad.dtype == np.float32


@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (1, 3)], ids=_ids)
def test_toeplitz_input_gradient_with_strides_matches_reference(stride):
    rng = np.random.default_rng(20)
    layer = nl.Conv2D(3, (3, 2), stride=stride, padding=1, name="conv")
    layer.kernels = Kernels(input_grad="toeplitz")
    layer.to(np.float64)
    layer.build((7, 8, 2), rng)
    layer.params["b"].value[...] = rng.standard_normal(3)
    pads = ref.conv_pads(1, (7, 8), (3, 2), stride)
    for _ in range(2):  # the second reuses the band buffer
        ref.check_conv(layer, rng.standard_normal((2, 7, 8, 2)), stride, pads, rng)


def test_shift_kernel_refuses_a_stride_with_a_clear_message():
    layer = nl.Conv2D(2, 3, stride=2, name="conv_3")
    layer.kernels = Kernels(forward="shift")
    with pytest.raises(
        ValueError,
        match=r"conv_3: the shift and chunked kernels need stride 1, got stride \(2, 2\)",
    ):
        layer.build((8, 8, 2), np.random.default_rng(0))


def test_unknown_kernel_name_is_refused():
    with pytest.raises(
        ValueError, match=r"forward must be one of im2col, shift, chunked, got 'winograd'"
    ):
        Kernels(forward="winograd")


@pytest.mark.parametrize(
    ("spec", "shape", "expected"),
    [
        # LeNet-5: conv_1 has one channel (input gradient only), conv_2's 5x5 on 14x14 wastes
        # 1.96 grid rows per output row: im2col throughout.
        ("conv(6,5,pad=2)", (28, 28, 1), Kernels("im2col", "shift", "im2col")),
        # ... and takes the toeplitz input gradient: 14 columns are 2.8 kernels wide.
        ("conv(16,5)", (14, 14, 6), Kernels(input_grad="toeplitz")),
        ("conv(16,5,stride=2)", (14, 14, 6), Kernels(input_grad="toeplitz")),
        # Each pass takes chunked once its GEMM is wide enough: the forward from 64 filters,
        # the input gradient from 64 channels, the weight gradient from 64x64 weights.
        ("conv(32,3,pad=same)", (32, 32, 32), Kernels("shift", "shift", "shift")),
        ("conv(64,3,pad=same)", (16, 16, 32), Kernels("chunked", "shift", "shift")),
        ("conv(32,3,pad=same)", (32, 32, 64), Kernels("shift", "chunked", "shift")),
        ("conv(64,3,pad=same)", (16, 16, 64), Kernels("chunked", "chunked", "chunked")),
        ("conv(16,3,pad=same)", (16, 16, 31), Kernels("shift", "shift", "shift")),
        ("conv(16,3)", (26, 26, 16), Kernels("shift", "shift", "shift")),
        ("conv(16,3,stride=2)", (26, 26, 16), Kernels()),
    ],
)
def test_rule_picks_kernels_by_shape(spec, shape, expected):
    model = nl.build(spec, shape, seed=0)
    assert model.layers[0].selected_kernels(shape) == expected


def test_cache_size_counts_what_the_kernels_keep():
    """The memory planner's per-sample cache: the shift and chunked kernels keep no im2col
    matrix, so a 32-channel 3x3 conv plans less than half of what it plans with im2col
    forced; shift keeps the padded input and the grid-sized input gradient, chunked the
    padded input and the padded output gradient."""
    shape = (32, 32, 32)
    layer = nl.Conv2D(32, 3, padding="same")
    by_rule = layer.cache_size(shape)
    layer.kernels = Kernels()
    forced_im2col = layer.cache_size(shape)
    grid = 34 * 34
    assert forced_im2col == grid * 32 + 32 * 32 * (9 * 32 + 1)
    # The padded input and the grid-sized dL/dx (shift); the output and its gradient go
    # through the grid in pieces.
    assert by_rule == grid * 32 * 2
    assert forced_im2col > 2 * by_rule
    layer.kernels = Kernels("chunked", "chunked", "chunked")
    assert layer.cache_size(shape) == grid * 32 * 2  # padded input, padded output gradient


# -- ReLU fused into the max-pool that follows ---------------------------------------------

FUSED_SPECS = [
    "conv(4,3) relu maxpool(2) dense(3)",
    "conv(4,3) relu maxpool(3,stride=2) dense(3)",  # overlapping windows
    # stride > window: some inputs are never looked at
    "conv(3,3) relu maxpool(2,stride=3) relu maxpool(1) dense(3)",
]


def _pair(spec: str) -> tuple[nl.Sequential, nl.Sequential]:
    """The same model (same weights) fused, as built, and unfused."""
    fused = nl.build(spec, (9, 9, 2), seed=3)
    plain = nl.build(spec, (9, 9, 2), seed=3)
    nl.layers.pooling.fuse_relu_pool(plain.layers, enabled=False)
    return fused, plain


@pytest.mark.parametrize("spec", FUSED_SPECS)
def test_fused_relu_pool_matches_unfused_exactly(spec):
    fused, plain = _pair(spec)
    assert any(getattr(layer, "fused", False) for layer in fused.layers)
    assert not any(getattr(layer, "fused", False) for layer in plain.layers)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((5, 9, 9, 2)).astype(np.float32)
    out = fused.forward(x)
    np.testing.assert_array_equal(out, plain.forward(x))
    grad = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(fused.backward(grad), plain.backward(grad))
    for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
        np.testing.assert_array_equal(a.grad, b.grad)
    for a, b in zip(fused.layers, plain.layers, strict=True):
        if isinstance(a, nl.ReLU):
            np.testing.assert_array_equal(a.active_mask, b.active_mask)


@pytest.mark.parametrize("spec", FUSED_SPECS)
def test_fused_model_passes_gradcheck(spec):
    fused, _ = _pair(spec)
    x = np.random.default_rng(22).standard_normal((2, 9, 9, 2))
    result = gradcheck(fused, x, y=np.array([0, 2]), loss=nl.SoftmaxCrossEntropy())
    assert result.max_error < 1e-6, str(result)


def test_monitor_dead_fraction_is_unchanged_by_fusion():
    """A channel that is positive only where the pool never looks (the row a 2x2 pool drops
    from a 5-row map) is alive: the Monitor reads the full pre-pool activation."""
    from nnlib.callbacks.monitor import dead_fraction

    fused = nl.build("relu maxpool(2)", (5, 4, 2), seed=0)
    assert fused.layers[0].fused
    x = -np.ones((1, 5, 4, 2), np.float32)
    x[0, 4, 0, 1] = 1.0  # channel 1 is positive only in the dropped last row
    assert fused.forward(x).max() == 0
    assert dead_fraction(fused.layers[0]) == 0.5


# -- Monitor histograms in the array's dtype ---------------------------------------------------


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    size=st.integers(1, 3000),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
    bins=st.integers(1, 40),
)
def test_histogram_matches_numpy(size, scale, seed, bins):
    values = (np.random.default_rng(seed).standard_normal(size) * scale).astype(np.float32)
    summary = histogram(values, bins)
    assert sum(summary["counts"]) == size and len(summary["counts"]) == bins
    if summary["hi"] > summary["lo"] + 1e-9:
        counts, _ = np.histogram(values, bins=bins, range=(summary["lo"], summary["hi"]))
        # float32 bin arithmetic may move a value lying on a bin edge by one bin
        assert np.abs(np.array(summary["counts"]) - counts).sum() <= 2
    np.testing.assert_allclose(
        summary["percentiles"], np.percentile(values, PERCENTILES), rtol=1e-5, atol=1e-6 * scale
    )


def test_histogram_of_a_large_layer_equals_numpy_on_its_sample():
    weights = (np.random.default_rng(0).standard_normal((784, 512)) * 0.05).astype(np.float32)
    summary = histogram(weights, 30)
    counts, _ = np.histogram(weights, bins=30, range=(summary["lo"], summary["hi"]))
    assert summary["counts"] == counts.tolist()
    sample = weights.ravel()[:: weights.size // PERCENTILE_SAMPLE]
    expected = np.percentile(sample, PERCENTILES)
    np.testing.assert_allclose(summary["percentiles"][1:-1], expected[1:-1], rtol=1e-6)
    assert (
        summary["percentiles"][0] == weights.min() and summary["percentiles"][-1] == weights.max()
    )
    # The sample's percentiles stand for the layer's, well within a drawn bin (~20% of the
    # standard deviation here): the standard error of a 4,096-value sample's 7th
    # percentile is ~3% of it.
    exact = np.percentile(weights, PERCENTILES)
    np.testing.assert_allclose(summary["percentiles"], exact, atol=0.06 * weights.std())


def test_validation_predicts_in_batches_of_the_fastest_size():
    """Trainer validation goes through model.predict's default batch (64, measured fastest)."""
    from nnlib.model import PREDICT_BATCH

    model = nl.build("4-8-3", (4,), seed=0)
    sizes: list[int] = []
    forward = model.forward

    def spy(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return forward(x)

    model.forward = spy  # type: ignore[method-assign]
    x = np.random.default_rng(0).standard_normal((150, 4)).astype(np.float32)
    out = model.predict(x)
    assert PREDICT_BATCH == 64 and sizes == [64, 64, 22]
    np.testing.assert_array_equal(out, forward(x))


# -- the chunked kernel in several blocks (issue 13, perfconv) ------------------------------


@pytest.mark.parametrize("case", STRIDE1_CASES, ids=_ids)
def test_chunked_kernel_in_many_blocks_matches_reference(case, monkeypatch):
    """With a tiny block budget every pass runs over one output line per block (the
    floor), so block boundaries across lines and images are checked; two batches check
    the reused block and the zero margins of the padded gradient."""
    import nnlib.layers.conv as conv

    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    shape, _, kernel, padding = case
    rng = np.random.default_rng(15)
    layer = _conv(case, Kernels("chunked", "chunked", "chunked"), rng)
    pads = ref.conv_pads(padding, shape[1:3], ref.pair(kernel), (1, 1))
    for _ in range(2):
        out = ref.check_conv(layer, rng.standard_normal(shape), (1, 1), pads, rng)
    blocks = [
        b for slot in layer._slots for key, b in slot.buffers.items() if key[0].startswith("block_")
    ]
    assert blocks and all(b.shape[0] in (out.shape[2], shape[2]) for b in blocks)  # a line


SHIFT_KERNELS = [k for k in ALL_KERNELS if "shift" in (k.forward, k.input_grad, k.weight_grad)]


@pytest.mark.parametrize("rows", [1, 9, 40], ids=lambda r: f"{r}-rows")
@pytest.mark.parametrize("kernels", SHIFT_KERNELS, ids=_ids)
@pytest.mark.parametrize("case", STRIDE1_CASES, ids=_ids)
def test_shift_in_small_pieces_matches_reference(case, kernels, rows, monkeypatch):
    """The shift kernel goes over the padded grid in pieces of whole images or, when an
    image's grid is more than a piece, of lines of one image (a line at a time with 1
    row), and its backward over groups of whole images (here one image a group: the
    gradient's buffer is reused, its margins and the rows before an image stay zero); the
    valid outputs and gradients are the whole batch's, twice."""
    import nnlib.layers.conv as conv

    monkeypatch.setattr(conv, "gemm_rows", lambda inner, columns: rows)
    monkeypatch.setattr(conv, "batched_rows", lambda inner, columns, offsets: rows)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    _check_two_batches(case, kernels, seed=19)


def test_chunked_gradcheck_in_many_blocks(monkeypatch):
    import nnlib.layers.conv as conv

    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    layer = nl.Conv2D(3, 3, padding="same", name="conv")
    layer.kernels = Kernels("chunked", "chunked", "chunked")
    result = gradcheck(layer, np.random.default_rng(16).standard_normal((2, 5, 6, 2)))
    assert result.max_error < 1e-6, str(result)


def test_max_pool_drops_its_planes_after_backward_and_a_second_backward_agrees():
    """The planes (4x the output) are not held through the backward of the layers below
    (VGG-style peak memory); a second backward after one forward reuses the first-max
    index and returns the same gradient."""
    rng = np.random.default_rng(18)
    layer = nl.MaxPool2D(2)
    layer.build((6, 6, 3), rng)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = 5.0  # a tie: the first maximum gets the gradient
    grad = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    first = layer.backward(grad)
    assert layer._planes is None
    np.testing.assert_array_equal(layer.backward(grad), first)
    assert first[0, 0, 0, 0] == grad[0, 0, 0, 0] and first[0, 0, 1, 0] == 0


@pytest.mark.parametrize(
    ("pool", "stride", "relu_first"),
    [(2, 2, False), (2, 2, True), (3, 2, False), (3, 2, True), (2, 3, False)],
    ids=["2x2", "2x2-relu", "3x3-overlapping", "3x3-overlapping-relu", "2x2-stride-3"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_max_pool_in_parts_matches_reference(pool, stride, relu_first, workers, monkeypatch):
    """Batches of 5 and then 3 in parts of 2 (parts of two sizes, the window origins kept
    from the larger), with ties, against the plain-loop textbook pool; the fused ReLU is
    max(., 0) after the pool and its gradient mask. 2 batch workers run two parts at once."""
    monkeypatch.setattr(windows, "PART_SAMPLES", 2)
    rng = np.random.default_rng(19)
    layer = nl.MaxPool2D(pool, stride=stride)
    layer.build((7, 8, 3), rng)
    layer.relu_first = relu_first
    with threads.batch_workers(workers):
        for batch in (5, 3):
            x = np.round(rng.standard_normal((batch, 7, 8, 3)), 1)  # rounding makes ties
            out = layer.forward(x)
            expected = ref.maxpool_forward(x, (pool, pool), (stride, stride))
            np.testing.assert_array_equal(out, np.maximum(expected, 0) if relu_first else expected)
            dout = rng.standard_normal(out.shape)
            upstream = dout * (expected > 0) if relu_first else dout
            np.testing.assert_allclose(
                layer.backward(dout),
                ref.maxpool_backward(x, (pool, pool), (stride, stride), upstream),
                rtol=RTOL,
                atol=ATOL,
            )


# -- the shift kernel's GEMMs in OpenBLAS's small-matrix sizes (issue 21) -------------------


class _MatmulSpy:
    """Stands for numpy in the conv module and records every np.matmul's operands."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...], bool]] = []

    def __getattr__(self, name: str):
        return getattr(np, name)

    def matmul(self, a: np.ndarray, b: np.ndarray, *args, **kwargs):
        self.calls.append((a.shape, b.shape, b.flags.c_contiguous))
        return np.matmul(a, b, *args, **kwargs)


@pytest.mark.parametrize(
    ("spec", "shape", "batch", "need_input_grad"),
    [
        ("conv(16,3)", (26, 26, 16), 8, True),  # shift, every pass
        ("conv(6,5,pad=2)", (28, 28, 1), 16, False),  # im2col forward and weight gradient
        ("conv(16,5)", (14, 14, 6), 8, False),
    ],
)
def test_thin_gemms_stay_within_openblas_small_matrix_kernels(
    spec, shape, batch, need_input_grad, monkeypatch
):
    """Every GEMM of the shift passes and of the im2col forward and weight gradient is at
    most SMALL_GEMM multiply-adds with a contiguous, untransposed B: what OpenBLAS takes
    through its small-matrix kernels (about 1.5-2x faster on these shapes)."""
    import nnlib.layers.conv as conv

    layer = nl.build(spec, shape, seed=0).layers[0]
    x = np.random.default_rng(1).standard_normal((batch, *shape)).astype(np.float32)
    spy = _MatmulSpy()
    monkeypatch.setattr(conv, "np", spy)
    layer.backward(np.ones_like(layer.forward(x)), need_input_grad=need_input_grad)
    # A batched matmul (the shift kernel's offsets in one call) is one GEMM per offset.
    gemms = [(a[-2:], b[-2:], contiguous) for a, b, contiguous in spy.calls if len(a) >= 2]
    assert len(gemms) >= 4  # the batch takes more than one piece in each pass
    for a, b, contiguous in gemms:
        assert a[0] * a[1] * b[1] <= conv.SMALL_GEMM and contiguous, (a, b, contiguous)


@pytest.mark.parametrize("kernels", [Kernels("shift", "shift", "shift"), Kernels()], ids=_ids)
@pytest.mark.parametrize(
    "case",
    [((3, 12, 12, 2), 3, 3, 0), ((2, 11, 12, 3), 2, 3, "same"), ((2, 13, 12, 1), 2, 3, "same")],
    ids=_ids,
)
def test_thin_gemms_in_many_pieces_match_reference(case, kernels, monkeypatch):
    """A SMALL_GEMM of 1 leaves pieces of the 256-row floor, so the 264-432 rows of the
    grid or of the im2col matrix (one channel: its transposed layout) run in two pieces in
    every pass; two batches reuse the piece buffers."""
    import nnlib.layers.conv as conv

    monkeypatch.setattr(conv, "SMALL_GEMM", 1)
    shape, _, kernel, padding = case
    rng = np.random.default_rng(24)
    layer = _conv(case, kernels, rng)
    pads = ref.conv_pads(padding, shape[1:3], ref.pair(kernel), (1, 1))
    for _ in range(2):
        ref.check_conv(layer, rng.standard_normal(shape), (1, 1), pads, rng)
