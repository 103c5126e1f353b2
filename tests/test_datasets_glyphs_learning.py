"""The glyph set is what it claims: a small CNN learns it well and clearly beats an MLP of the
same size, because the digits move, turn and bend from sample to sample (a pixel template
model cannot keep up). Uses the nnlib engine with a plain training loop; fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib
import nnlib.datasets as nds

CNN = "conv(8,3) relu maxpool(2) conv(16,3) relu maxpool(2) dense(10)"
MLP = "784-7-10"  # about as many parameters as the CNN


@pytest.fixture(scope="module")
def glyphs() -> nds.Prepared:
    return nds.prepare(nds.load("glyphs", n_train=2000, n_test=1000, seed=0))


def train_and_score(
    spec: str, data: nds.Prepared, epochs: int = 2, seed: int = 0
) -> tuple[float, int]:
    model = nnlib.build(spec, data.input_shape, seed=seed)
    loss, optimizer = nnlib.SoftmaxCrossEntropy(), nnlib.Adam(lr=3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(data.x_train))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss.forward(model.forward(data.x_train[batch]), data.y_train[batch])
            model.backward_params(loss.backward())
            optimizer.step(model.parameters())
    accuracy = float(np.mean(model.predict(data.x_test).argmax(axis=1) == data.y_test))
    return accuracy, sum(p.value.size for p in model.parameters())


def test_small_cnn_clearly_beats_a_same_size_mlp(glyphs):
    cnn_accuracy, cnn_params = train_and_score(CNN, glyphs)
    mlp_accuracy, mlp_params = train_and_score(MLP, glyphs)
    assert abs(cnn_params - mlp_params) / cnn_params < 0.1  # 5258 vs 5575
    # measured with these seeds at the default distortion 1.5: CNN 0.617, MLP 0.239 (after
    # 4 epochs 0.759 and 0.286); at the earlier default 1.0 they were 0.925 and 0.529
    assert cnn_accuracy > 0.55
    assert cnn_accuracy - mlp_accuracy > 0.3
