"""Peak memory of a training step (issue 21): what a step keeps alive, and for how long.
Measured with weak references and tracemalloc (numpy reports its allocations to it), never
with the clock."""

from __future__ import annotations

import tracemalloc
import weakref

import numpy as np
import pytest

import nnlib as nl
from nnlib.layers import _windows as windows
from nnlib.layers.activations import Identity
from nnlib.layers.conv import INPUT_GRAD_KERNELS, Kernels

#: A model with every layer that caches something for backward: padded convolutions, a
#: plain and a fused ReLU, a max-pool, BatchNorm, Dropout, dense layers.
SPEC = (
    "conv(4,3,pad=same) relu conv(4,3,pad=same) relu maxpool(2) batchnorm dropout(0.5) "
    "dense(8) relu dense(3)"
)


def _step(model: nl.Sequential, x: np.ndarray, y: np.ndarray) -> None:
    """Forward and Sequential.backward, which keeps every cache (backward_params does not)."""
    loss = nl.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())


class _Probe(Identity):
    """Runs first in a model's forward: records which of `watched` were still alive then."""

    watched: dict[str, weakref.ref] = {}
    alive: list[str] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.alive = [name for name, ref in self.watched.items() if ref() is not None]
        return super().forward(x)


def _arrays(model: nl.Sequential) -> dict[str, np.ndarray]:
    """Every array a layer holds in its attributes (parameters are in `params`)."""
    return {
        f"{layer.name}.{key}": value
        for layer in model.layers
        for key, value in vars(layer).items()
        if isinstance(value, np.ndarray)
    }


def test_a_forward_drops_the_last_steps_caches_before_any_layer_runs():
    """The padded copies, masks and pooling maxima a step kept for its backward are gone
    when the next forward starts: kept, each layer's old cache was alive beside the new
    ones of the layers before it (VGG-style at batch 256: 100 MiB more at the peak)."""
    rng = np.random.default_rng(0)
    probe = _Probe()
    layers = [probe, *nl.build(SPEC, (8, 8, 3), seed=0).layers]
    model = nl.Sequential(layers, input_shape=(8, 8, 3))
    x = rng.standard_normal((6, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    _step(model, x, y)
    before = _arrays(model)
    probe.watched = {name: weakref.ref(array) for name, array in before.items()}
    del before
    _step(model, x, y)
    # The arrays each forward makes anew (kept ones, like the pool's window origins, stay).
    made = {name for name, array in _arrays(model).items() if name in probe.watched}
    made -= {name for name in made if probe.watched[name]() is _arrays(model)[name]}
    assert {"conv_2._whole", "relu_1._mask", "maxpool_1._max"} <= made
    assert [name for name in probe.alive if name in made] == []


def test_a_training_step_lets_go_of_what_only_backward_reads():
    """backward_params (a training step) drops each layer's backward-only cache as soon as
    its backward is done: the padded inputs, the dense inputs, the pooling maxima, the
    BatchNorm and Dropout state are gone before the layers below make their gradients;
    what monitors read after the step (a ReLU's active mask) stays, and Sequential.backward
    (gradcheck's, which may run twice) keeps everything."""
    rng = np.random.default_rng(2)
    model = nl.build(SPEC, (8, 8, 3), seed=0)
    x = rng.standard_normal((6, 8, 8, 3)).astype(np.float32)
    loss = nl.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), rng.integers(0, 3, 6))
    upstream = loss.backward()
    model.backward(upstream)
    kept = ["conv_2._whole", "dense_1._x", "maxpool_1._max", "batchnorm_1._normalized"]
    assert all(name in _arrays(model) for name in kept)
    refs = {name: weakref.ref(_arrays(model)[name]) for name in kept}
    model.backward_params(upstream)
    assert [name for name, ref in refs.items() if ref() is not None] == []
    assert all(model.layers[k].active_mask is not None for k in (1, 3, 9))  # the ReLUs


def _backward_growth(layer: nl.Conv2D, x: np.ndarray, grad: np.ndarray) -> int:
    """Bytes a backward of `layer` allocated at its peak (after a first step made the
    slots' buffers), and check that it gave dL/dx."""
    layer.forward(x)
    layer.backward(grad)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        dx = layer.backward(grad)
        grown = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert dx is not None and dx.shape == x.shape
    return grown


@pytest.mark.parametrize("input_grad", INPUT_GRAD_KERNELS)
def test_backward_in_parts_keeps_no_copy_of_each_parts_input_gradient(input_grad, monkeypatch):
    """With a batch in parts, each part's dL/dx goes into the batch's and is not kept
    beside it until the last part is done (VGG-style conv_2 at batch 256: 24 MiB)."""
    monkeypatch.setattr(windows, "PART_SAMPLES", 2)
    rng = np.random.default_rng(1)
    layer = nl.Conv2D(8, 3, padding="same", name="conv")
    layer.kernels = Kernels(input_grad=input_grad)
    layer.build((32, 32, 8), rng)
    x = rng.standard_normal((8, 32, 32, 8)).astype(np.float32)
    grad = rng.standard_normal((8, 32, 32, 8)).astype(np.float32)
    one_part = _backward_growth(layer, x[:2], grad[:2])  # a part's dL/dx and temporaries
    four_parts = _backward_growth(layer, x, grad)
    # The batch's dL/dx (4 parts' worth) in place of one part's, the same temporaries;
    # with each part's kept as well, 3 more parts' worth (1.75x) on top.
    assert four_parts - one_part < 1.25 * x.nbytes
