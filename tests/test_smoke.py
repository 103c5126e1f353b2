import numpy as np

import nnlib as nl


def test_lenet_forward_is_float32():
    model = nl.build(
        "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu "
        "dense(84) relu dense(10)",
        (28, 28, 1),
    )
    out = model.forward(np.zeros((2, 28, 28, 1), np.float32))
    assert out.shape == (2, 10) and out.dtype == np.float32
