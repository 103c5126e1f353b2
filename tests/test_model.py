"""Sequential: whole-model gradient checks, learning, float32 end to end, save/load, and the
model API (names, parameters, summary, predict, modes, seeds)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from dtype_guard import StrictFloat32

import nnlib as nl
from nnlib.metrics import accuracy

TOL = 1e-6
LENET5 = (
    "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu dense(84) "
    "relu dense(10)"
)
# Every layer kind, overlapping and non-overlapping windows, 'same' padding, a 3x2 kernel.
EVERY_LAYER_CNN = (
    "conv(3,3,pad=1) leakyrelu(0.1) maxpool(3,stride=2) conv(4,3x2,pad=same) "
    "sigmoid batchnorm avgpool(2,stride=1) dropout(0.25) flatten dense(6) tanh batchnorm dense(5) "
    "relu dense(4) identity"
)
CNN_SHAPE = (7, 7, 2)


def _data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- whole-model gradient checks ------------------------------------------------------------------


def _assert_gradcheck(model, x, y, loss):
    result = nl.gradcheck(model, x, y, loss)
    trainable = {name for name, p in model.named_parameters().items() if p.trainable}
    assert set(result.errors) == {"input", *trainable}
    assert result.max_error < TOL, str(result)


def test_gradcheck_mlp():
    model = nl.build("6-8-7-3:tanh", (6,), seed=1)
    _assert_gradcheck(model, _data((5, 6)), np.array([0, 1, 2, 1, 0]), nl.SoftmaxCrossEntropy())


def test_gradcheck_relu_mlp_with_mse():
    model = nl.build("6-8-7-2", (6,), seed=2)
    _assert_gradcheck(model, _data((5, 6)), _data((5, 2), seed=3), nl.MSE())


def test_gradcheck_cnn_with_every_layer_kind():
    model = nl.build(EVERY_LAYER_CNN, CNN_SHAPE, seed=3)
    kinds = {type(layer) for layer in model}
    # InputFeatures takes a 2-D point, not an image: tests/test_input_features.py checks it.
    assert kinds == set(nl.layers.LAYER_TYPES.values()) - {nl.Softmax, nl.InputFeatures}
    _assert_gradcheck(model, _data((3, *CNN_SHAPE)), np.array([0, 3, 1]), nl.SoftmaxCrossEntropy())


def test_gradcheck_cnn_with_softmax_output_and_mse():
    model = nl.build(EVERY_LAYER_CNN + " softmax", CNN_SHAPE, seed=4)
    targets = np.eye(4)[[2, 0, 1]]
    _assert_gradcheck(model, _data((3, *CNN_SHAPE), seed=5), targets, nl.MSE())


def test_gradcheck_lenet_style_cnn_with_strides():
    model = nl.build(
        "conv(2,3,stride=2,pad=1) relu conv(3,2,stride=3,pad=same) tanh avgpool(2) dense(3)",
        (9, 8, 1),
        seed=6,
    )
    _assert_gradcheck(
        model, _data((2, 9, 8, 1), seed=7), np.array([2, 0]), nl.SoftmaxCrossEntropy()
    )


# -- learning -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: nl.SGD(lr=0.05),
        lambda: nl.SGD(lr=0.01, momentum=0.9),
        lambda: nl.Adam(lr=1e-3),
    ],
    ids=["sgd", "momentum", "adam"],
)
def test_two_layer_relu_network_fits_random_targets(make_optimizer):
    # 64 samples x 1000 inputs -> 10 outputs: overparameterised, so MSE can go to ~0.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    y = rng.standard_normal((64, 10)).astype(np.float32)
    model = nl.build("1000-100-10", (1000,), seed=0)
    loss, optimizer = nl.MSE(), make_optimizer()
    history = []
    for _ in range(200):
        history.append(loss(model.forward(x), y))
        model.backward_params(loss.backward())
        optimizer.step(model.parameters())
    final = loss(model.forward(x), y)
    # Measured: initial ~2.7, after 200 steps 4e-7 (sgd), 6e-10 (momentum), 4e-10 (adam).
    assert history[0] > 1.0
    assert final < 0.01 * history[0]
    assert final < 1e-4
    assert final < history[100] < history[0]


def _fit(model, x, y, optimizer, epochs, batch_size=None, seed=0):
    loss = nl.SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x)) if batch_size else np.arange(len(x))
        for start in range(0, len(x), batch_size or len(x)):
            batch = order[start : start + (batch_size or len(x))]
            loss(model.forward(x[batch]), y[batch])
            model.backward_params(loss.backward())
            optimizer.step(model.parameters())
    return loss


def test_mlp_overfits_100_random_samples_to_full_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 20)).astype(np.float32)
    y = rng.integers(0, 10, 100)  # random labels: only memorisation can fit them
    model = nl.build("20-64-10", (20,), seed=0)
    assert accuracy(model.predict(x), y) < 0.5
    _fit(model, x, y, nl.Adam(lr=0.01), epochs=150)  # measured: 100% from step ~30
    assert accuracy(model.predict(x), y) == 1.0
    assert model.evaluate(x, y, nl.SoftmaxCrossEntropy())["accuracy"] == 1.0


def test_mlp_with_dropout_overfits_with_minibatch_sgd():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 20)).astype(np.float32)
    y = rng.integers(0, 5, 100)
    model = nl.build("dense(128) relu dropout(0.1) dense(5)", (20,), seed=1)
    _fit(model, x, y, nl.SGD(lr=0.05, momentum=0.9), epochs=60, batch_size=20)
    assert accuracy(model.predict(x), y) == 1.0


def test_small_cnn_learns_bar_orientation():
    # A generated pattern: a horizontal or a vertical bar at a random place in 8x8 noise.
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (60, 8, 8, 1)).astype(np.float32)
    y = np.arange(60) % 2
    for k in range(60):
        where = rng.integers(0, 8)
        if y[k]:
            x[k, :, where, 0] += 1.0
        else:
            x[k, where, :, 0] += 1.0
    model = nl.build("conv(4,3,pad=same) relu maxpool(2) conv(4,3) relu dense(2)", (8, 8, 1))
    _fit(model, x, y, nl.Adam(lr=0.01), epochs=150)  # measured: 100% by step 21-72
    assert accuracy(model.predict(x), y) == 1.0


# -- float32 stays float32 ------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd-momentum": lambda: nl.SGD(lr=0.01, momentum=0.9, decay=0.01, weight_decay=1e-3),
    "sgd-nesterov": lambda: nl.SGD(
        lr=0.01, momentum=0.9, nesterov=True, decay=0.01, weight_decay=1e-3
    ),
    "adam": lambda: nl.Adam(lr=1e-3, decay=0.01, weight_decay=1e-3),
    "rmsprop": lambda: nl.RMSProp(lr=1e-3, decay=0.01, weight_decay=1e-3),
}


@pytest.mark.parametrize(
    "loss, targets",
    [
        (nl.SoftmaxCrossEntropy(), np.array([0, 3, 1, 2])),
        (nl.MSE(), np.random.default_rng(9).standard_normal((4, 4))),  # float64 targets
    ],
    ids=["cross-entropy", "mse"],
)
def test_float32_layer_by_layer(loss, targets):
    model = nl.build(EVERY_LAYER_CNN + " softmax", CNN_SHAPE)
    out = _data((4, *CNN_SHAPE), dtype=np.float32)
    for layer in model:
        out = layer.forward(out)
        assert out.dtype == np.float32, f"{layer.name} forward gave {out.dtype}"
    loss(out, targets)
    grad = loss.backward()
    assert grad.dtype == np.float32
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
        assert grad.dtype == np.float32, f"{layer.name} backward gave {grad.dtype}"
        for key, param in layer.params.items():
            assert param.grad.dtype == np.float32, f"{layer.name}.{key}"


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_float32_end_to_end_without_float64_temporaries(make_optimizer):
    model = nl.build(EVERY_LAYER_CNN, CNN_SHAPE)
    for param in model.parameters():
        param.value = StrictFloat32.wrap(param.value)
        param.grad = StrictFloat32.wrap(param.grad)
    x = StrictFloat32.wrap(_data((4, *CNN_SHAPE), dtype=np.float32))
    loss, optimizer = nl.SoftmaxCrossEntropy(), make_optimizer()
    StrictFloat32.events.clear()
    for _ in range(2):
        out = model.forward(x)
        loss(out, np.array([0, 1, 2, 3]))
        input_grad = model.backward(loss.backward())
        optimizer.step(model.parameters())
    assert StrictFloat32.events == []
    assert out.dtype == input_grad.dtype == np.float32
    for name, param in model.named_parameters().items():
        assert param.value.dtype == param.grad.dtype == np.float32, name


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int64])
def test_model_casts_any_input_to_float32(dtype):
    model = nl.build("conv(2,3) relu dense(3)", (5, 5, 1))
    x = (np.arange(50) % 7).reshape(2, 5, 5, 1).astype(dtype)
    out = model.forward(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, model.forward(x.astype(np.float32)), rtol=1e-6)


# -- save and load --------------------------------------------------------------------------------


def _trained(spec, shape, seed=0):
    model = nl.build(spec, shape, seed=seed)
    x = _data((8, *shape), seed=seed, dtype=np.float32)
    _fit(model, x, np.arange(8) % 3, nl.Adam(lr=0.01), epochs=3)
    return model, x


@pytest.mark.parametrize(
    "spec, shape",
    [
        ("12-16-8-3", (12,)),
        (
            "conv(4,3,pad=same) relu maxpool(2) dropout(0.5) conv(4,3x2) tanh dense(6) relu "
            "dropout(0.3) dense(3)",
            (8, 7, 2),
        ),
    ],
)
def test_save_load_round_trip_is_bit_identical(tmp_path, spec, shape):
    model, x = _trained(spec, shape)
    path = model.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    loaded = nl.load(path)
    assert loaded.spec == model.spec
    assert [layer.name for layer in loaded] == [layer.name for layer in model]
    assert loaded.input_shape == model.input_shape and loaded.dtype == np.float32
    for name, value in model.get_weights().items():
        assert np.array_equal(loaded.named_parameters()[name].value, value), name
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert np.array_equal(loaded.eval().forward(x), model.eval().forward(x))


def test_save_adds_the_npz_suffix(tmp_path):
    model = nl.build("4-3", (4,))
    assert model.save(tmp_path / "run" / "best") == tmp_path / "run" / "best.npz"
    assert model.save(tmp_path / "best.v2") == tmp_path / "best.v2.npz"
    assert nl.load(tmp_path / "run" / "best.npz").spec == "4-3"


@pytest.fixture
def saved(tmp_path) -> Path:
    return nl.build("6-5-3", (6,)).save(tmp_path / "model.npz")


def _raises_naming(path: Path, *fragments: str) -> str:
    with pytest.raises(ValueError) as error:
        nl.load(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_load_missing_file(tmp_path):
    _raises_naming(tmp_path / "nope.npz", "no such model file")


def test_load_garbage_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a model\n" * 20)
    _raises_naming(path, "not an nnlib model")


def test_load_truncated_file(saved):
    raw = saved.read_bytes()
    saved.write_bytes(raw[: len(raw) // 2])
    _raises_naming(saved, "truncated")


def test_load_empty_file(saved):
    saved.write_bytes(b"")
    _raises_naming(saved, "not an nnlib model")


def test_load_a_non_nnlib_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    _raises_naming(path, "not an nnlib model (no architecture record)")


def _rewrite(path: Path, architecture=None, **changes) -> None:
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    if architecture is not None:
        arrays["architecture"] = np.array(json.dumps(architecture))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_load_weights_of_the_wrong_shape(saved):
    _rewrite(saved, **{"param/dense_1.W": np.zeros((6, 4), np.float32)})
    _raises_naming(saved, "dense_1.W has shape (6, 4), the architecture needs (6, 5)")


def test_load_weights_of_another_architecture(saved, tmp_path):
    other = nl.build("6-9-3", (6,)).save(tmp_path / "other.npz")
    with np.load(other) as archive:
        architecture = json.loads(str(archive["architecture"]))
    _rewrite(saved, architecture)
    _raises_naming(saved, "dense_1.W has shape (6, 5), the architecture needs (6, 9)")


def test_load_a_missing_weight(saved):
    _rewrite(saved, **{"param/dense_2.b": None})
    _raises_naming(saved, "weights do not match the architecture (missing dense_2.b)")


def test_load_an_extra_weight(saved):
    _rewrite(saved, **{"param/dense_9.W": np.zeros(3)})
    _raises_naming(saved, "weights do not match the architecture (unexpected dense_9.W)")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda a: a.pop("layers"), "invalid architecture record (missing 'layers')"),
        (lambda a: a["layers"][0]["config"].update(bogus=1), "unexpected keyword argument 'bogus'"),
        (lambda a: a["layers"][0]["config"].update(units=0), "units must be a positive integer"),
        (lambda a: a["layers"][0].update(type="Quantum"), "unknown layer type 'Quantum'"),
        (lambda a: a.update(version=99), "written by a newer nnlib (format version 99"),
        (lambda a: a.update(format="keras"), "not an nnlib model architecture"),
    ],
)
def test_load_a_damaged_architecture_record(saved, edit, fragment):
    with np.load(saved) as archive:
        architecture = json.loads(str(archive["architecture"]))
    edit(architecture)
    _rewrite(saved, architecture)
    _raises_naming(saved, fragment)


def test_load_an_architecture_record_that_is_not_json(saved):
    with np.load(saved) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["architecture"] = np.array("{not json")
    np.savez(saved, **arrays)
    _raises_naming(saved, "corrupt")


def _central_directory(raw: bytes) -> int:
    end = raw.rfind(b"PK\x05\x06")
    return int.from_bytes(raw[end + 16 : end + 20], "little")


@pytest.mark.parametrize(
    "field, offset", [("version needed", 6), ("flags", 8), ("compression method", 10)]
)
def test_load_a_corrupt_zip_header(saved, field, offset):
    raw = bytearray(saved.read_bytes())
    raw[_central_directory(raw) + offset] ^= 0xFF
    saved.write_bytes(bytes(raw))
    _raises_naming(saved, "corrupt")


def test_load_never_raises_anything_but_value_error_on_corrupt_bytes(saved):
    raw = saved.read_bytes()
    for position in range(0, len(raw), 11):
        corrupt = bytearray(raw)
        corrupt[position] ^= 0xFF
        saved.write_bytes(bytes(corrupt))
        try:
            nl.load(saved)  # some bytes (timestamps, padding) do not matter
        except ValueError as error:
            assert str(error).startswith(str(saved)), (position, str(error))


@pytest.mark.parametrize("fail_in", ["savez", "replace"])
def test_save_is_atomic(tmp_path, monkeypatch, fail_in):
    path = tmp_path / "model.npz"
    old_model = nl.build("4-3", (4,), seed=0)
    old_model.save(path)
    before = path.read_bytes()
    new_model = nl.build("4-8-3", (4,), seed=1)

    def half_written_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 partial archive")
        raise OSError(28, "No space left on device")

    def failing_replace(src, dst):
        raise OSError(18, "Invalid cross-device link")

    if fail_in == "savez":
        monkeypatch.setattr(np, "savez", half_written_savez)
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        new_model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert nl.load(path).spec == "4-3"


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "model.npz"
    nl.build("4-3", (4,)).save(path)
    nl.build("4-8-3", (4,)).save(path)
    assert nl.load(path).spec == "4-8-3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# -- model API ------------------------------------------------------------------------------------


def test_layer_names_are_readable_and_unique():
    model = nl.build(
        "conv(2,3) relu conv(2,3) relu maxpool(2) dense(5) relu dropout(0.5) dense(3)", (10, 10, 1)
    )
    names = [layer.name for layer in model]
    assert names == [
        "conv_1",
        "relu_1",
        "conv_2",
        "relu_2",
        "maxpool_1",
        "flatten_1",
        "dense_1",
        "relu_3",
        "dropout_1",
        "dense_2",
    ]
    assert len(set(names)) == len(names)


def test_explicit_names_are_kept_and_auto_names_avoid_them():
    model = nl.Sequential(
        [nl.Dense(4), nl.Dense(4, name="dense_1"), nl.Dense(2, name="head")], input_shape=(3,)
    )
    assert [layer.name for layer in model] == ["dense_2", "dense_1", "head"]
    with pytest.raises(ValueError, match="Sequential: layer name 'x' is used twice"):
        nl.Sequential([nl.Dense(2, name="x"), nl.Dense(2, name="x")])


def test_a_layer_is_called_by_its_class_until_a_model_names_it():
    layer = nl.Dense(4)
    assert (layer.name, layer.has_name) == ("Dense", False)
    nl.Sequential([layer])
    assert (layer.name, layer.has_name) == ("dense_1", True)


def test_a_layer_whose_backward_gives_no_input_gradient_is_named():
    class NoGrad(nl.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
            return None

    model = nl.Sequential([nl.Dense(3), NoGrad(name="silent")], input_shape=(2,))
    model.forward(np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match=r"^silent: backward returned None, expected dL/d\(input\)"):
        model.backward(np.ones((1, 3), np.float32))


def test_parameters_are_reachable_by_layer_name():
    model = nl.build("5-4-3", (5,))
    x = _data((2, 5), dtype=np.float32)
    loss = nl.MSE()
    loss(model.forward(x), np.zeros((2, 3)))
    model.backward(loss.backward())
    grad = model["dense_1"].params["W"].grad
    assert grad.shape == (5, 4) and np.abs(grad).sum() > 0
    assert model["dense_2"].params["b"].regularize is False
    with pytest.raises(
        KeyError,
        match=r"no layer named 'dense_9'; layers are dense_1, relu_1, "
        r"dense_2",
    ):
        model["dense_9"]


def test_parameters_and_named_parameters():
    model = nl.build("conv(2,3) relu dense(3)", (5, 5, 1))
    params = model.parameters()
    named = model.named_parameters()
    assert list(named) == ["conv_1.W", "conv_1.b", "dense_1.W", "dense_1.b"]
    assert [p.name for p in params] == list(named)
    assert all(named[p.name] is p for p in params)
    assert named["conv_1.W"] is model["conv_1"].params["W"]
    assert [p.value.shape for p in params] == [(3, 3, 1, 2), (2,), (18, 3), (3,)]
    assert sum(p.value.size for p in params) == model.summary().total_params == 20 + 57


def test_summary_of_lenet5():
    model = nl.build(LENET5, (28, 28, 1))
    summary = model.summary()
    assert summary.total_params == 61_706
    rows = [(layer.name, layer.output_shape, layer.params) for layer in summary.layers]
    assert rows == [
        ("conv_1", (28, 28, 6), 156),
        ("relu_1", (28, 28, 6), 0),
        ("maxpool_1", (14, 14, 6), 0),
        ("conv_2", (10, 10, 16), 2416),
        ("relu_2", (10, 10, 16), 0),
        ("maxpool_2", (5, 5, 16), 0),
        ("flatten_1", (400,), 0),
        ("dense_1", (120,), 48120),
        ("relu_3", (120,), 0),
        ("dense_2", (84,), 10164),
        ("relu_4", (84,), 0),
        ("dense_3", (10,), 850),
    ]
    assert [layer.activation_bytes for layer in summary.layers][:3] == [
        28 * 28 * 6 * 4,
        28 * 28 * 6 * 4,
        14 * 14 * 6 * 4,
    ]
    per_sample = sum(int(np.prod(layer.output_shape)) * 4 for layer in summary.layers)
    assert summary.activation_bytes(64) == 64 * per_sample
    text = summary.format(batch_size=64)
    assert "total params: 61,706" in text
    assert "(None, 28, 28, 6)" in text and "48,120" in text and "dense_3" in text


@pytest.mark.parametrize(
    "dtype, param_text, act_text",
    [
        (np.float32, "total params: 468,874 (1.8 MiB)", "activations per batch of 64: 322.5 KiB"),
        (np.float64, "total params: 468,874 (3.6 MiB)", "activations per batch of 64: 645.0 KiB"),
    ],
)
def test_summary_memory_follows_the_dtype(dtype, param_text, act_text):
    model = nl.build("784-512-128-10", (784,)).to(dtype)
    summary = model.summary()
    assert summary.total_params == 784 * 512 + 512 + 512 * 128 + 128 + 128 * 10 + 10
    itemsize = np.dtype(dtype).itemsize
    assert summary.layers[0].activation_bytes == 512 * itemsize
    assert summary.activation_bytes(64) == 64 * (512 * 2 + 128 * 2 + 10) * itemsize
    text = str(summary)
    assert param_text in text and act_text in text
    assert "dense_1  (None, 512)" in text


def test_predict_in_batches_equals_one_forward():
    model = nl.build("conv(3,3) relu maxpool(2) dropout(0.5) dense(4)", (8, 8, 1))
    x = _data((23, 8, 8, 1), dtype=np.float32)
    whole = model.eval().forward(x)
    model.train()
    for batch_size in (1, 5, 23, 256):
        np.testing.assert_allclose(
            model.predict(x, batch_size=batch_size), whole, rtol=1e-5, atol=1e-6
        )
    assert model.training  # predict restores the mode it found
    assert model.predict(x[:0]).shape == (0, 4)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_predict_rejects_a_bad_batch_size(batch_size):
    model = nl.build("4-3", (4,))
    with pytest.raises(ValueError, match=r"predict: batch_size must be a positive integer"):
        model.predict(np.zeros((3, 4)), batch_size=batch_size)


def test_dropout_is_active_only_in_train_mode():
    model = nl.build("dense(50) dropout(0.5) dense(3)", (6,))
    x = _data((10, 6), dtype=np.float32)
    assert model.training
    first, second = model.forward(x), model.forward(x)
    assert not np.array_equal(first, second)  # a new mask every forward
    model.eval()
    assert not model["dropout_1"].training
    hidden = model["dense_1"].forward(x)
    np.testing.assert_array_equal(model["dropout_1"].forward(hidden), hidden)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))
    model.train()
    assert all(layer.training for layer in model)


def test_same_seed_same_weights_different_seed_different_weights():
    a = nl.build(LENET5, (28, 28, 1), seed=7).get_weights()
    b = nl.build(LENET5, (28, 28, 1), seed=7).get_weights()
    c = nl.build(LENET5, (28, 28, 1), seed=8).get_weights()
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert all(not np.array_equal(a[name], c[name]) for name in a if name.endswith(".W"))


def test_same_seed_same_dropout_masks():
    def run(seed):
        model = nl.build("dense(20) dropout(0.5)", (4,), seed=seed)
        return model.forward(np.ones((3, 4), np.float32))

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_wrong_input_shape_to_the_model():
    model = nl.build(LENET5, (28, 28, 1))
    for shape in [(2, 28, 28), (2, 28, 28, 3), (2, 784), (28, 28, 1)]:
        with pytest.raises(ValueError) as error:
            model.forward(np.zeros(shape, np.float32))
        assert str(error.value) == (f"model input: expected shape (batch, 28, 28, 1), got {shape}")


def test_unbuilt_and_empty_models():
    model = nl.Sequential([nl.Dense(3)])
    with pytest.raises(ValueError, match="the model is not built; pass input_shape"):
        model.forward(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    assert model.build((4,)).forward(np.zeros((1, 4))).shape == (1, 3)
    with pytest.raises(ValueError, match="Sequential: a model needs at least one layer"):
        nl.Sequential([])
    with pytest.raises(ValueError, match=r"Sequential: item 1 is 'relu', not a layer"):
        nl.Sequential([nl.Dense(3), "relu"])
    with pytest.raises(ValueError, match=r"input_shape must be positive sizes, got \(0, 3\)"):
        nl.Sequential([nl.Dense(3)], input_shape=(0, 3))


def test_get_and_set_weights():
    model = nl.build("4-3", (4,))
    weights = model.get_weights()
    weights["dense_1.W"][...] = 0  # a copy
    assert np.abs(model["dense_1"].params["W"].value).sum() > 0
    model.set_weights(weights)
    assert np.abs(model["dense_1"].params["W"].value).sum() == 0
    with pytest.raises(ValueError, match="set_weights: the model has no parameter 'dense_2.W'"):
        model.set_weights({"dense_2.W": np.zeros((4, 3))})
    with pytest.raises(
        ValueError,
        match=r"set_weights: dense_1.W has shape \(4, 3\), got "
        r"\(3, 4\)",
    ):
        model.set_weights({"dense_1.W": np.zeros((3, 4))})


def test_gradients_are_overwritten_and_backward_params_matches_backward():
    model = nl.build("conv(2,3) relu dense(3)", (5, 5, 1))
    x = _data((2, 5, 5, 1), dtype=np.float32)
    loss = nl.SoftmaxCrossEntropy()
    loss(model.forward(x), np.array([0, 2]))
    upstream = loss.backward()
    model.backward(upstream)
    first = {name: p.grad.copy() for name, p in model.named_parameters().items()}
    model.backward(upstream)
    model.backward_params(upstream)
    for name, param in model.named_parameters().items():
        np.testing.assert_array_equal(param.grad, first[name])


def test_to_float64():
    model = nl.build("4-3", (4,)).to(np.float64)
    assert model.forward(np.zeros((1, 4), np.float32)).dtype == np.float64
    assert all(p.value.dtype == p.grad.dtype == np.float64 for p in model.parameters())


def test_evaluate_rejects_nan_input():
    model = nl.build("4-3", (4,))
    x = np.zeros((5, 4), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"evaluate x holds NaN or inf \(first at sample 2\)"):
        model.evaluate(x, np.zeros(5, np.int64), nl.SoftmaxCrossEntropy())
