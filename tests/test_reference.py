"""The fast conv and pooling kernels against the plain-loop textbook formulas in reference.py.

Everything runs in float64, so the only differences allowed are summation-order rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref

import nnlib as nl

RTOL, ATOL = 1e-10, 1e-12

# (input shape N,H,W,C; filters; kernel; stride; padding)
CONV_CASES = [
    ((2, 5, 5, 2), 3, 3, 1, 0),
    ((2, 6, 7, 2), 2, 3, 2, 1),
    ((1, 7, 6, 3), 2, (3, 2), 3, 2),
    ((2, 5, 7, 2), 3, 3, 1, "same"),
    ((2, 6, 5, 1), 2, 2, 1, "same"),
    ((2, 7, 6, 2), 2, 4, 2, "same"),
    ((1, 7, 8, 2), 2, 3, 3, "same"),
    ((2, 6, 5, 2), 2, (2, 3), (2, 1), "valid"),
    ((1, 5, 5, 2), 2, 5, 1, 0),
    ((2, 4, 5, 1), 3, 1, 2, 0),
    ((1, 3, 3, 1), 2, 3, 1, 2),
    ((1, 6, 7, 2), 2, (3, 2), 2, "same"),
]

# (input shape; pool; stride)
POOL_CASES = [
    ((2, 7, 7, 2), 3, 2),  # overlapping 3x3 stride 2
    ((2, 5, 6, 2), 3, 1),  # overlapping 3x3 stride 1
    ((2, 5, 5, 1), 2, 1),  # overlapping 2x2 stride 1
    ((2, 6, 6, 2), 2, None),  # non-overlapping 2x2
    ((1, 6, 9, 2), 3, None),  # non-overlapping 3x3, non-square input
    ((1, 5, 7, 2), (2, 3), None),  # non-square window
    ((2, 7, 5, 1), 2, 3),  # stride larger than the window: some inputs unused
    ((1, 6, 6, 1), (3, 2), (1, 2)),
]


def _case_id(case) -> str:
    return "-".join(str(part).replace(" ", "") for part in case)


def _conv_layer(shape, filters, kernel, stride, padding, rng):
    layer = nl.Conv2D(filters, kernel, stride=stride, padding=padding, name="conv")
    layer.to(np.float64)
    layer.build(shape[1:], rng)
    layer.params["W"].value[...] = rng.standard_normal(layer.params["W"].value.shape)
    layer.params["b"].value[...] = rng.standard_normal(filters)
    return layer


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_matches_reference(case):
    shape, filters, kernel, stride, padding = case
    rng = np.random.default_rng(1)
    layer = _conv_layer(shape, filters, kernel, stride, padding, rng)
    x = rng.standard_normal(shape)
    kernel_hw, stride_hw = ref.pair(kernel), ref.pair(stride)
    pads = ref.conv_pads(padding, shape[1:3], kernel_hw, stride_hw)
    out = ref.check_conv(layer, x, stride_hw, pads, rng, rtol=RTOL, atol=ATOL)
    assert out.dtype == np.float64
    assert out.shape == (shape[0], *layer.output_shape)
    if padding == "same":
        assert layer.output_shape[:2] == (
            math.ceil(shape[1] / stride_hw[0]),
            math.ceil(shape[2] / stride_hw[1]),
        )


def test_conv_gradients_are_overwritten_not_accumulated():
    rng = np.random.default_rng(2)
    layer = _conv_layer((2, 5, 5, 2), 2, 3, 1, 1, rng)
    x = rng.standard_normal((2, 5, 5, 2))
    dout = rng.standard_normal((2, 5, 5, 2))
    for _ in range(2):
        layer.forward(x)
        layer.backward(dout)
    _, dw_ref, db_ref = ref.conv2d_backward(x, layer.params["W"].value, (1, 1), (1, 1, 1, 1), dout)
    np.testing.assert_allclose(layer.params["W"].grad, dw_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.params["b"].grad, db_ref, rtol=RTOL, atol=ATOL)


def _pool(cls, shape, pool, stride):
    layer = cls(pool, stride, name="pool").to(np.float64)
    layer.build(shape[1:], np.random.default_rng(0))
    pool_hw = ref.pair(pool)
    return layer, pool_hw, pool_hw if stride is None else ref.pair(stride)


@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_maxpool_matches_reference(case):
    shape, pool, stride = case
    rng = np.random.default_rng(3)
    layer, pool_hw, stride_hw = _pool(nl.MaxPool2D, shape, pool, stride)
    x = rng.standard_normal(shape)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, pool_hw, stride_hw))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        layer.backward(dout),
        ref.maxpool_backward(x, pool_hw, stride_hw, dout),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_avgpool_matches_reference(case):
    shape, pool, stride = case
    rng = np.random.default_rng(4)
    layer, pool_hw, stride_hw = _pool(nl.AvgPool2D, shape, pool, stride)
    x = rng.standard_normal(shape)
    out = layer.forward(x)
    np.testing.assert_allclose(
        out, ref.avgpool_forward(x, pool_hw, stride_hw), rtol=RTOL, atol=ATOL
    )
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(
        layer.backward(dout),
        ref.avgpool_backward(x, pool_hw, stride_hw, dout),
        rtol=RTOL,
        atol=ATOL,
    )


# -- max-pool ties: the gradient goes to the FIRST maximum (row-major) only ------------------


@pytest.mark.parametrize(
    "case",
    [((1, 4, 4, 2), 2, None), ((1, 5, 5, 1), 3, 1), ((2, 7, 7, 1), 3, 2), ((1, 4, 5, 1), 2, 1)],
    ids=_case_id,
)
def test_maxpool_all_zero_windows_route_to_first_element(case):
    shape, pool, stride = case
    layer, pool_hw, stride_hw = _pool(nl.MaxPool2D, shape, pool, stride)
    x = np.zeros(shape)
    out = layer.forward(x)
    dout = np.arange(1.0, out.size + 1).reshape(out.shape)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, ref.maxpool_backward(x, pool_hw, stride_hw, dout))
    # Only each window's top-left element receives anything.
    expected = np.zeros(shape)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            expected[:, i * stride_hw[0], j * stride_hw[1], :] += dout[:, i, j, :]
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_tie_inside_window_goes_to_first_in_row_major_order():
    layer, _, _ = _pool(nl.MaxPool2D, (1, 3, 3, 1), 3, None)
    x = np.array([[0.0, 3.0, 3.0], [1.0, 3.0, 0.0], [3.0, 3.0, 3.0]]).reshape(1, 3, 3, 1)
    layer.forward(x)
    dx = layer.backward(np.full((1, 1, 1, 1), 7.0))
    expected = np.zeros((1, 3, 3, 1))
    expected[0, 0, 1, 0] = 7.0
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_after_relu_matches_reference():
    # ReLU output has many all-zero windows and many zero ties next to a positive value.
    rng = np.random.default_rng(5)
    relu = nl.ReLU()
    pool, _, _ = _pool(nl.MaxPool2D, (3, 6, 6, 2), 3, 1)
    x = relu.forward(rng.standard_normal((3, 6, 6, 2)) - 0.8)
    assert (x == 0).mean() > 0.6
    out = pool.forward(x)
    np.testing.assert_array_equal(out, ref.maxpool_forward(x, (3, 3), (1, 1)))
    dout = rng.standard_normal(out.shape)
    dx = pool.backward(dout)
    np.testing.assert_allclose(
        dx, ref.maxpool_backward(x, (3, 3), (1, 1), dout), rtol=RTOL, atol=ATOL
    )
    # Every window routes its gradient to exactly one input: the totals are preserved.
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-12)
