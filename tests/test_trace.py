"""`nnlib.trace` and `nnlib trace`: one sample through the network in float64, checked against
a reference written here from the textbook formulas (and reference.py's plain loops for
convolution and pooling), layer by layer: inputs, outputs, both gradients, parameter gradients
and the loss."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import reference as ref
from helpers import run_cli, usage_error

import nnlib as nl
from nnlib.config import ExperimentConfig
from nnlib.experiment import build_model, load_data
from nnlib.layers import REGISTRY
from nnlib.losses import loss_for
from nnlib.trace import SUMMARY_WIDTH, Trace, trace

RTOL, ATOL = 1e-12, 1e-14

# -- the reference: per layer kind, forward and backward from the formulas -------------------
# Each takes (layer, float64 params, x) and returns (output, backward), backward taking
# dL/d(output) to (dL/d(input), {param: dL/d(param)}). Layer objects are read only for their
# configuration (stride, alpha, ...). Evaluation mode: BatchNorm uses its moving statistics.


def dense(layer, p, x):
    # y[n, o] = sum_i x[n, i] W[i, o] + b[o]
    out = np.einsum("ni,io->no", x, p["W"]) + p["b"]

    def backward(g):
        grads = {"W": np.einsum("ni,no->io", x, g), "b": g.sum(axis=0)}
        return np.einsum("no,io->ni", g, p["W"]), grads

    return out, backward


def conv(layer, p, x):
    config = layer.config()
    kernel, stride = ref.pair(config["kernel_size"]), ref.pair(config["stride"])
    pads = ref.conv_pads(config["padding"], x.shape[1:3], kernel, stride)
    out = ref.conv2d_forward(x, p["W"], p["b"], stride, pads)

    def backward(g):
        dx, dw, db = ref.conv2d_backward(x, p["W"], stride, pads, g)
        return dx, {"W": dw, "b": db}

    return out, backward


def pool_geometry(layer):
    config = layer.config()
    pool = ref.pair(config["pool_size"])
    return pool, pool if config["stride"] is None else ref.pair(config["stride"])


def maxpool(layer, p, x):
    pool, stride = pool_geometry(layer)
    return ref.maxpool_forward(x, pool, stride), lambda g: (
        ref.maxpool_backward(x, pool, stride, g),
        {},
    )


def avgpool(layer, p, x):
    pool, stride = pool_geometry(layer)
    return ref.avgpool_forward(x, pool, stride), lambda g: (
        ref.avgpool_backward(x, pool, stride, g),
        {},
    )


def batchnorm(layer, p, x):
    # Evaluation: y = gamma (x - moving_mean) / sqrt(moving_variance + eps) + beta, with the
    # moving statistics constants, so dy/dx = gamma / sqrt(moving_variance + eps).
    std = np.sqrt(p["moving_variance"] + layer.epsilon)
    x_hat = (x - p["moving_mean"]) / std
    axes = tuple(range(x.ndim - 1))

    def backward(g):
        grads = {"gamma": (g * x_hat).sum(axis=axes), "beta": g.sum(axis=axes)}
        return g * p["gamma"] / std, grads

    return p["gamma"] * x_hat + p["beta"], backward


def elementwise(function, derivative):
    """An activation from f and f' (f' of the input x and the output y)."""

    def layer_reference(layer, p, x):
        y = function(layer, x)
        return y, lambda g: (g * derivative(layer, x, y), {})

    return layer_reference


relu = elementwise(lambda _, x: np.where(x > 0, x, 0.0), lambda _, x, y: (x > 0) * 1.0)
leakyrelu = elementwise(
    lambda layer, x: np.where(x > 0, x, layer.alpha * x),
    lambda layer, x, y: np.where(x > 0, 1.0, layer.alpha),
)
sigmoid = elementwise(lambda _, x: 1.0 / (1.0 + np.exp(-x)), lambda _, x, y: y * (1.0 - y))
tanh = elementwise(lambda _, x: np.sinh(x) / np.cosh(x), lambda _, x, y: 1.0 - y**2)
identity = elementwise(lambda _, x: x, lambda _, x, y: np.ones_like(x))
dropout = identity  # evaluation mode: no mask, no scaling


def softmax(layer, p, x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    # The Jacobian ds_i/dx_j = s_i (delta_ij - s_j), per sample.
    jacobian = np.einsum("ni,ij->nij", s, np.eye(x.shape[1])) - np.einsum("ni,nj->nij", s, s)
    return s, lambda g: (np.einsum("nij,ni->nj", jacobian, g), {})


#: Each input feature of (x1, x2) and its partial derivatives by x1 and x2, by hand.
FEATURE_FORMULAS = {
    "x1": (lambda a, b: a, lambda a, b: (1.0 + 0 * a, 0 * a)),
    "x2": (lambda a, b: b, lambda a, b: (0 * a, 1.0 + 0 * a)),
    "x1sq": (lambda a, b: a * a, lambda a, b: (2 * a, 0 * a)),
    "x2sq": (lambda a, b: b * b, lambda a, b: (0 * a, 2 * b)),
    "x1x2": (lambda a, b: a * b, lambda a, b: (b, a)),
    "sinx1": (lambda a, b: np.sin(a), lambda a, b: (np.cos(a), 0 * a)),
    "sinx2": (lambda a, b: np.sin(b), lambda a, b: (0 * a, np.cos(b))),
}


def features(layer, p, x):
    a, b = x[:, 0], x[:, 1]
    out = np.stack([FEATURE_FORMULAS[name][0](a, b) for name in layer.names], axis=1)

    def backward(g):
        dx = np.zeros_like(x)
        for column, name in enumerate(layer.names):
            da, db = FEATURE_FORMULAS[name][1](a, b)
            dx[:, 0] += g[:, column] * da
            dx[:, 1] += g[:, column] * db
        return dx, {}

    return out, backward


def flatten(layer, p, x):
    return x.reshape(len(x), -1), lambda g: (g.reshape(x.shape), {})


REFERENCE = {
    "avgpool": avgpool,
    "batchnorm": batchnorm,
    "conv": conv,
    "dense": dense,
    "dropout": dropout,
    "features": features,
    "flatten": flatten,
    "identity": identity,
    "leakyrelu": leakyrelu,
    "maxpool": maxpool,
    "relu": relu,
    "sigmoid": sigmoid,
    "softmax": softmax,
    "tanh": tanh,
}


def reference_loss(task, out, y):
    """(loss, dL/d(out)): mean softmax cross-entropy of logits, or mean squared error."""
    if task == "classification":
        shifted = out - out.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        loss = np.mean(log_sum - shifted[np.arange(len(y)), y])
        probabilities = np.exp(shifted - log_sum[:, None])
        onehot = np.eye(out.shape[1])[y]
        return loss, (probabilities - onehot) / len(y)
    diff = out - y
    return np.mean(diff**2), 2.0 * diff / diff.size


def reference_trace(model, x, y, task):
    """Per layer (input, output, grad_output, grad_input, grads), and the loss."""
    records, activation = [], np.asarray(x, np.float64)
    for layer in model.layers:
        params = {key: p.value.astype(np.float64) for key, p in layer.params.items()}
        output, backward = REFERENCE[layer.kind](layer, params, activation)
        records.append([activation, output, backward])
        activation = output
    loss, grad = reference_loss(task, activation, y)
    for record in reversed(records):
        backward = record.pop()
        grad_input, grads = backward(grad)
        record += [grad, grad_input, grads]
        grad = grad_input
    return loss, records


# -- the library against the reference -------------------------------------------------------

# (spec, per-sample input shape, task, outputs): together every layer kind, convolution with
# padding (integer and same), strides and a non-square kernel, pooling overlapping or not, a
# ReLU that the model fuses into the max-pool after it, BatchNorm after conv and after dense.
MODELS = [
    (
        "conv(3,3,pad=1) batchnorm relu maxpool(3,stride=2) conv(4,2,stride=2,pad=same) "
        "leakyrelu(0.2) avgpool(2,stride=1) flatten dropout(0.5) dense(5) sigmoid dense(3)",
        (9, 9, 2),
        "classification",
        3,
    ),
    (
        "conv(2,3x2,pad=valid) tanh avgpool(2) batchnorm maxpool(2,stride=1) dense(4)",
        (9, 8, 1),
        "classification",
        4,
    ),
    (
        "dense(6) batchnorm tanh dense(5) leakyrelu dense(5) identity relu dense(3) softmax",
        (4,),
        "classification",
        3,
    ),
    ("dense(5) sigmoid dense(4) relu dense(2) identity", (3,), "regression", 2),
    (
        "features(x1x2,sinx2,x1,x2sq,sinx1,x1sq,x2) dense(4) tanh dense(2)",
        (2,),
        "classification",
        2,
    ),
]


def random_model(spec, shape, seed):
    """A float32 model with every parameter random (biases, BatchNorm's gamma, beta and
    moving statistics included), left in training mode as a trainer leaves it."""
    model = nl.build(spec, shape, seed=seed)
    rng = np.random.default_rng(seed)
    for param in model.parameters():
        if param.name.endswith("moving_variance"):
            param.value[...] = rng.uniform(0.5, 2.0, param.value.shape)
        else:
            param.value[...] = rng.normal(0.0, 0.7, param.value.shape)
    return model


def sample_batch(shape, task, outputs, batch, seed):
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    if task == "classification":
        return x, rng.integers(0, outputs, batch)
    return x, rng.normal(size=(batch, outputs)).astype(np.float32)


def test_every_layer_kind_has_a_reference():
    # A new layer kind needs its formulas here, or its trace is unchecked.
    assert set(REFERENCE) == set(REGISTRY)
    # and the models below use every one of them
    built = {layer.kind for spec, shape, *_ in MODELS for layer in nl.build(spec, shape).layers}
    assert built == set(REGISTRY)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("spec", "shape", "task", "outputs"), MODELS)
def test_trace_agrees_with_the_reference(spec, shape, task, outputs, seed, batch):
    model = random_model(spec, shape, seed)
    x, y = sample_batch(shape, task, outputs, batch, seed)
    before = model.get_weights()

    result = trace(model, x, y, loss_for(task))

    loss, records = reference_trace(model, x, y, task)
    np.testing.assert_allclose(result.loss, loss, rtol=RTOL)
    assert [(t.name, t.kind) for t in result.layers] == [(m.name, m.kind) for m in model.layers]
    for layer, traced, (inp, out, grad_out, grad_in, grads) in zip(
        model.layers, result.layers, records, strict=True
    ):
        for got, want, what in (
            (traced.input, inp, "input"),
            (traced.output, out, "output"),
            (traced.grad_output, grad_out, "grad_output"),
            (traced.grad_input, grad_in, "grad_input"),
        ):
            assert got.dtype == np.float64 and got.shape == want.shape, (layer.name, what)
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{layer.name}")
        assert traced.params.keys() == layer.params.keys()
        for key, param in layer.params.items():
            assert np.array_equal(traced.params[key], param.value.astype(np.float64))
        trainable = {key for key, param in layer.params.items() if param.trainable}
        assert traced.grads.keys() == trainable == grads.keys()
        for key in trainable:
            np.testing.assert_allclose(
                traced.grads[key], grads[key], rtol=RTOL, atol=ATOL, err_msg=f"{layer.name}.{key}"
            )
    # The caller's model is untouched: float32, its weights and BatchNorm statistics, its
    # training mode and its fused ReLU.
    after = model.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(v.dtype == np.float32 for v in after.values())
    assert model.training and all(layer.training for layer in model.layers)
    fused = [getattr(layer, "fused", None) for layer in model.layers]
    assert fused == [getattr(layer, "fused", None) for layer in nl.build(spec, shape).layers]


def test_the_trace_is_in_evaluation_mode():
    # In training mode a batch of one has zero variance: BatchNorm would output beta for any
    # input. The trace uses the moving statistics, so different inputs give different outputs.
    model = random_model("dense(3) batchnorm dense(2)", (4,), 0)
    x, y = sample_batch((4,), "classification", 2, 2, 0)
    loss = nl.SoftmaxCrossEntropy()
    first, second = (trace(model, x[i : i + 1], y[i : i + 1], loss) for i in (0, 1))
    beta = model["batchnorm_1"].params["beta"].value
    for result in (first, second):
        assert not np.allclose(result.layers[1].output[0], beta)
    assert not np.allclose(first.layers[1].output, second.layers[1].output)


def test_non_finite_values_are_null_in_json():
    model = nl.build("dense(2) relu dense(2)", (2,), seed=0)
    model["dense_1"].params["W"].value[...] = 1e38  # float32 max is 3.4e38: finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow is shown, not warned about
        result = trace(model, np.full((1, 2), 1e300), np.array([0]), nl.SoftmaxCrossEntropy())
        assert "inf" in result.summary() and "nan" in result.summary()
    record = result.to_dict()
    text = json.dumps(record, allow_nan=False)  # valid JSON: no NaN or Infinity tokens
    assert json.loads(text)["layers"][0]["output"] == [[None, None]]
    assert record["loss"] is None or np.isfinite(record["loss"])


def test_summary_stays_within_80_columns_and_one_line_per_array():
    model = random_model(MODELS[0][0], MODELS[0][1], 0)
    model.layers[0].name = "a_conv_layer_with_a_very_long_name_from_a_model_file"
    x, y = sample_batch(MODELS[0][1], "classification", 3, 1, 0)
    result = trace(model, x, y, nl.SoftmaxCrossEntropy())
    lines = result.summary().splitlines()
    assert all(len(line) <= SUMMARY_WIDTH for line in lines)
    # the loss, the titles, then per layer its output and grad_input, each parameter and its
    # gradient; the first layer's input and the last one's grad_output once
    arrays = sum(2 + len(t.params) + len(t.grads) for t in result.layers) + 2
    assert len(lines) == 2 + arrays
    assert lines[0] == f"loss {result.loss:.6g}"
    assert lines[2].split()[:3] == ["a_conv_layer_wi…", "input", "1x9x9x2"]


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path_factory):
    environment = dict(os.environ, NNLIB_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    environment.pop("NNLIB_RUNS_DIR", None)
    environment["PYTHONWARNINGS"] = "error::RuntimeWarning"
    return environment


LAYER_KEYS = ["name", "kind", "params", "input", "output", "grad_output", "grad_input", "grads"]


def library_trace(config, sample, split="train", model=None):
    data = load_data(config)
    model = model if model is not None else build_model(config, data)
    x, y = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}[split]
    return trace(model, x[sample : sample + 1], y[sample : sample + 1], loss_for(data.task))


def as_json(result: Trace):
    return json.loads(json.dumps(result.to_dict()))


def test_cli_json_is_the_documented_object(tmp_path, env):
    arch = "dense(8) batchnorm tanh dense(3)"
    done = run_cli(
        tmp_path, env, "trace", "--dataset", "spirals", "--arch", arch, "--sample", "7",
        "--seed", "3", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["loss", "layers"] and isinstance(printed["loss"], float)
    assert [layer["name"] for layer in printed["layers"]] == [
        "dense_1",
        "batchnorm_1",
        "tanh_1",
        "dense_2",
    ]
    for layer in printed["layers"]:
        assert list(layer) == LAYER_KEYS
    batchnorm = printed["layers"][1]
    assert list(batchnorm["params"]) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(batchnorm["grads"]) == ["gamma", "beta"]
    assert np.shape(printed["layers"][0]["input"]) == (1, 2)  # a batch of one
    # exactly the library's float64 trace of the model nnlib train would start from
    config = ExperimentConfig(dataset="spirals", arch=arch, seed=3)
    assert printed == as_json(library_trace(config, 7))


def test_cli_traces_a_model_file(tmp_path, env):
    config = ExperimentConfig(dataset="spirals", arch="2-8-3", seed=0, validation_split=0.0)
    data = load_data(config)
    model = random_model("dense(8) relu dense(3)", (2,), 5)
    model.save(tmp_path / "m.npz")  # alone: no config.json beside, so no validation split
    done = run_cli(
        tmp_path, env, "trace", "--dataset", "spirals", "--model", "m.npz", "--sample", "1499",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(data.x_train) == 1500  # the last sample
    assert json.loads(done.stdout) == as_json(library_trace(config, 1499, model=model))
    test = run_cli(
        tmp_path, env, "trace", "--dataset", "spirals", "--model", "m.npz", "--sample", "0",
        "--split", "test", "--json",
    )  # fmt: skip
    assert test.returncode == 0, test.stderr
    assert json.loads(test.stdout) == as_json(library_trace(config, 0, "test", model=model))


def test_cli_summary_of_lenet_fits_80_columns(tmp_path, env):
    done = run_cli(tmp_path, env, "trace", "--dataset", "glyphs", "--sample", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert lines[0].startswith("sample 3 of the train split of glyphs, label ")
    assert lines[1].startswith("model conv(6,5,pad=2) relu maxpool(2)")
    names = [line.split()[0] for line in lines[5:] if not line.startswith(" ")]
    assert names == [
        "conv_1", "relu_1", "maxpool_1", "conv_2", "relu_2", "maxpool_2", "flatten_1",
        "dense_1", "relu_3", "dense_2", "relu_4", "dense_3",
    ]  # fmt: skip
    # LeNet-5's 61,706 weights and its activations in 51 lines: 3 about the sample and the
    # model, the loss and the titles, 2 per layer, the input and the loss gradient, 4 per
    # weighted layer (W, b and their gradients)
    assert len(lines) == 3 + 2 + 12 * 2 + 2 + 5 * 4


def test_cli_bad_inputs(tmp_path, env):
    def trace_cli(*args):
        return run_cli(tmp_path, env, "trace", *args)

    spirals = ("--dataset", "spirals")
    usage_error(trace_cli(*spirals, "--sample", "1350"), "--sample: 1350", "1350 samples")
    usage_error(trace_cli(*spirals, "--sample", "-1"), "--sample", "-1")
    usage_error(trace_cli(*spirals, "--sample", "x"), "--sample", "'x'")
    usage_error(trace_cli(*spirals), "--sample")
    usage_error(trace_cli(*spirals, "--sample", "0", "--arch", "2-8-5"), "needs 3", "dense(3)")
    usage_error(trace_cli(*spirals, "--sample", "0", "--arch", "2-8-bn-3"), "--arch:")
    usage_error(trace_cli(*spirals, "--sample", "0", "--arch", "conv(2,3) dense(3)"), "--arch:")
    usage_error(trace_cli("--dataset", "nope", "--sample", "0"), "'nope'")
    nl.build("2-8-3", (2,)).save(tmp_path / "spirals.npz")
    glyphs = trace_cli("--dataset", "glyphs", "--model", "spirals.npz", "--sample", "0")
    usage_error(glyphs, "spirals.npz", "(2,)", "(28, 28, 1)")
    usage_error(trace_cli("--dataset", "xor", "--model", "spirals.npz", "--sample", "0"), "needs 2")
    both = trace_cli(*spirals, "--model", "spirals.npz", "--arch", "2-8-3", "--sample", "0")
    usage_error(both, "--arch", "--model")
    (tmp_path / "junk.npz").write_text("not a model")
    usage_error(trace_cli(*spirals, "--model", "junk.npz", "--sample", "0"), "junk.npz")
    usage_error(trace_cli(*spirals, "--model", "missing.npz", "--sample", "0"), "missing.npz")
    # a model file alone has no validation split: its val split is empty
    empty = trace_cli(*spirals, "--model", "spirals.npz", "--split", "val", "--sample", "0")
    usage_error(empty, "the val split of spirals has 0 samples")
