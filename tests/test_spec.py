"""The architecture spec: parsing, building, writing back, and errors that point at the token."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl
from nnlib.spec import parse

MLP = "784-512-128-10"
LENET5 = (
    "conv(6,5,pad=2) relu maxpool(2) conv(16,5) relu maxpool(2) dense(120) relu dense(84) "
    "relu dense(10)"
)
TUTORIAL_CNN = "conv(3,5) relu maxpool(3,stride=2) dense(84) relu dense(10)"

ROUND_TRIPS = [
    # (spec, input shape, canonical spec written back)
    (MLP, (784,), MLP),
    (MLP, (28, 28, 1), MLP),
    (LENET5, (28, 28, 1), LENET5),
    (TUTORIAL_CNN, (28, 28, 1), TUTORIAL_CNN),
    ("8-16-16-3:tanh", (8,), "8-16-16-3:tanh"),
    ("8-16-3:sigmoid", (8,), "8-16-3:sigmoid"),
    ("8-16-3:leakyrelu", (8,), "8-16-3:leakyrelu"),
    ("8-4", (8,), "8-4"),
    ("dense(16) leakyrelu(0.2) dense(3)", (8,), "dense(16) leakyrelu(alpha=0.2) dense(3)"),
    ("dense(16) leakyrelu(alpha=0.01) dense(3)", (8,), "8-16-3:leakyrelu"),
    ("dense(16) relu dense(3)", (8,), "8-16-3"),
    ("dense(10)->relu->dense(3)", (5,), "5-10-3"),
    ("dense(10) -> relu -> dense(3)", (5,), "5-10-3"),
    ("dense(10), relu, dense(3)", (5,), "5-10-3"),
    ("dense(10) relu dense(5) tanh dense(3)", (5,), "dense(10) relu dense(5) tanh dense(3)"),
    ("dense(10) softmax", (5,), "dense(10) softmax"),
    (
        "dense(10,init=glorot) tanh dense(3, init=normal)",
        (5,),
        "dense(10,init=glorot) tanh dense(3,init=normal)",
    ),
    (
        "conv(4,3,pad=same) relu conv(4,2,pad=same) maxpool(2)",
        (8, 8, 1),
        "conv(4,3,pad=same) relu conv(4,2,pad=same) maxpool(2)",
    ),
    (
        "conv(4,3x2) relu avgpool(2x1) flatten dropout(0.5) dense(10)",
        (8, 7, 2),
        "conv(4,3x2) relu avgpool(2x1) flatten dropout(0.5) dense(10)",
    ),
    ("conv(4,3,stride=2,pad=valid) tanh", (9, 9, 3), "conv(4,3,stride=2,pad=valid) tanh"),
    ("conv(2, 3, stride=1x2, pad=1) sigmoid", (5, 5, 1), "conv(2,3,stride=1x2,pad=1) sigmoid"),
    ("conv(2,3,2,1)", (5, 5, 1), "conv(2,3,stride=2,pad=1)"),
    ("maxpool(2,stride=1) avgpool(3,2)", (7, 7, 1), "maxpool(2,stride=1) avgpool(3,stride=2)"),
    ("flatten dense(10)", (4, 4, 1), "flatten dense(10)"),
    ("dropout(0.25) dense(4) identity", (5,), "dropout(0.25) dense(4) identity"),
    ("conv2d(4,3) lrelu fc(2) linear", (5, 5, 1), "conv(4,3) leakyrelu dense(2) identity"),
    ("CONV(4,3) ReLU Dense(2)", (5, 5, 1), "conv(4,3) relu dense(2)"),
    ("relu", (3,), "relu"),
]


@pytest.mark.parametrize("spec, shape, canonical", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip(spec, shape, canonical):
    model = nl.build(spec, shape)
    assert model.spec == canonical
    again = nl.build(model.spec, shape)
    assert again.spec == model.spec
    assert [type(layer) for layer in again] == [type(layer) for layer in model]
    assert [layer.output_shape for layer in again] == [layer.output_shape for layer in model]
    # Same seed, same architecture: the rebuilt model is the same model.
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    np.testing.assert_array_equal(again.eval().forward(x), model.eval().forward(x))


def test_lenet5_layers():
    model = nl.build(LENET5, (28, 28, 1))
    assert [layer.name for layer in model] == [
        "conv_1",
        "relu_1",
        "maxpool_1",
        "conv_2",
        "relu_2",
        "maxpool_2",
        "flatten_1",
        "dense_1",
        "relu_3",
        "dense_2",
        "relu_4",
        "dense_3",
    ]
    assert model["flatten_1"].implicit
    assert model["maxpool_2"].output_shape == (5, 5, 16)
    assert model.summary().total_params == 61_706


def test_tutorial_cnn_shapes():
    model = nl.build(TUTORIAL_CNN, (28, 28, 1))
    assert model["conv_1"].output_shape == (24, 24, 3)
    assert model["maxpool_1"].output_shape == (11, 11, 3)  # (24 - 3) // 2 + 1
    assert model["dense_1"].input_shape == (363,)


def test_mlp_hidden_activation_and_linear_output():
    model = nl.build("6-5-4-3:tanh", (6,))
    assert [type(layer).__name__ for layer in model] == ["Dense", "Tanh", "Dense", "Tanh", "Dense"]
    assert [layer.units for layer in model if isinstance(layer, nl.Dense)] == [5, 4, 3]


def test_an_mlp_on_images_gets_an_implicit_flatten():
    model = nl.build("16-8-2", (4, 4, 1))
    assert isinstance(model.layers[0], nl.Flatten) and model.layers[0].implicit
    assert model.spec == "16-8-2"


def test_explicit_and_implicit_flatten_are_distinguished():
    explicit = nl.build("conv(2,3) flatten dense(3)", (5, 5, 1))
    implicit = nl.build("conv(2,3) dense(3)", (5, 5, 1))
    assert sum(isinstance(layer, nl.Flatten) for layer in explicit) == 1
    assert sum(isinstance(layer, nl.Flatten) for layer in implicit) == 1
    assert explicit.spec == "conv(2,3) flatten dense(3)"
    assert implicit.spec == "conv(2,3) dense(3)"


def test_parse_returns_fresh_unbuilt_layers():
    layers = parse("conv(8,3x2,stride=2,pad=same) dropout(0.3) leakyrelu(0.1)")
    conv, dropout, leaky = layers
    assert (conv.filters, conv.kernel_size, conv.stride, conv.padding) == (8, (3, 2), 2, "same")
    assert dropout.rate == 0.3 and leaky.alpha == 0.1
    assert all(layer.input_shape is None for layer in layers)


def test_spec_of_a_hand_built_model():
    model = nl.Sequential(
        [
            nl.Conv2D(4, (3, 2), padding="same"),
            nl.ReLU(),
            nl.MaxPool2D(2),
            nl.Flatten(),
            nl.Dense(5),
        ],
        input_shape=(6, 6, 1),
    )
    assert model.spec == "conv(4,3x2,pad=same) relu maxpool(2) flatten dense(5)"
    assert nl.build(model.spec, (6, 6, 1)).spec == model.spec


# -- errors -------------------------------------------------------------------------------------

ERRORS = [
    # (spec, input shape, substrings the message must contain, culprit token)
    (
        "conv(8,3) relu pool(2) dense(10)",
        (8, 8, 1),
        [
            "spec token 3 'pool(2)'",
            "unknown layer 'pool'",
            "expected one of avgpool, ",
            ", maxpool, ",
        ],
        "pool(2)",
    ),
    (
        "conv(8)",
        (8, 8, 1),
        ["spec token 1 'conv(8)'", "missing kernel", "expected conv(filters, kernel"],
        "conv(8)",
    ),
    ("dense", (4,), ["spec token 1 'dense'", "missing units", "expected dense(units)"], "dense"),
    ("dense(0)", (4,), ["'dense(0)'", "units must be a positive integer, got 0"], "dense(0)"),
    ("dense(-3)", (4,), ["'dense(-3)'", "units must be a positive integer, got -3;"], "dense(-3)"),
    (
        "dense(abc)",
        (4,),
        ["'dense(abc)'", "units must be a positive integer, got 'abc'"],
        "dense(abc)",
    ),
    ("dense(2.5)", (4,), ["'dense(2.5)'", "got 2.5"], "dense(2.5)"),
    (
        "dense(10) dropout(1.5)",
        (4,),
        [
            "spec token 2 'dropout(1.5)'",
            "rate must be in [0.0, 1.0), got 1.5",
            "expected dropout(rate)",
        ],
        "dropout(1.5)",
    ),
    (
        "conv(8,3,pad=full)",
        (8, 8, 1),
        ["'conv(8,3,pad=full)'", "padding must be", "got 'full'"],
        "conv(8,3,pad=full)",
    ),
    (
        "conv(8,3,stride=0)",
        (8, 8, 1),
        ["'conv(8,3,stride=0)'", "stride must be", "got 0"],
        "conv(8,3,stride=0)",
    ),
    (
        "conv(8,3,size=2)",
        (8, 8, 1),
        ["'conv(8,3,size=2)'", "unknown argument 'size'"],
        "conv(8,3,size=2)",
    ),
    ("dense(units=)", (4,), ["'dense(units=)'", "cannot read the value ''"], "dense(units=)"),
    (
        "dense(10,10)",
        (4,),
        ["'dense(10,10)'", "init must be one of he, glorot, normal, got 10"],
        "dense(10,10)",
    ),
    (
        "conv(8,3,1,0,he,5)",
        (8, 8, 1),
        ["'conv(8,3,1,0,he,5)'", "too many arguments (6)"],
        "conv(8,3,1,0,he,5)",
    ),
    ("relu(3)", (4,), ["'relu(3)'", "too many arguments (1)", "expected relu"], "relu(3)"),
    ("dense(10,units=5)", (4,), ["argument 'units' given twice"], "dense(10,units=5)"),
    (
        "conv(6,stride=2,5)",
        (8, 8, 1),
        ["positional argument after a keyword argument"],
        "conv(6,stride=2,5)",
    ),
    (
        "conv(6,kernel=5,1)",
        (8, 8, 1),
        ["positional argument after a keyword argument"],
        "conv(6,kernel=5,1)",
    ),
    ("dense(10", (4,), ["'(' is never closed"], "("),
    ("conv(8,3 relu", (8, 8, 1), ["'(' is never closed"], "("),
    ("dense(10))", (4,), ["unbalanced parenthesis at character 10"], ")"),
    ("dense((10))", (4,), ["unbalanced parenthesis at character 7"], "("),
    (
        "100-10",
        (784,),
        ["MLP 100-10", "the first number is the input size, 100", "784 features per sample"],
        "100",
    ),
    ("784-128-10", (28, 28, 3), ["784", "2352 features per sample", "(28, 28, 3)"], "784"),
    ("4-0-2", (4,), ["MLP 4-0-2", "every layer size must be a positive integer"], None),
    ("4-8-2:softmax", (4,), ["MLP activation 'softmax' is not one of relu, tanh"], "softmax"),
    (
        "conv(8,7)",
        (5, 5, 1),
        ["spec token 1 'conv(8,7)'", "window 7x7 is larger than its input 5x5"],
        "conv(8,7)",
    ),
    (
        "conv(4,3) relu maxpool(2) conv(8,3) relu maxpool(2)",
        (7, 7, 1),
        ["spec token 4 'conv(8,3)'", "conv_2: window 3x3 is larger than its input 2x2"],
        "conv(8,3)",
    ),
    (
        "conv(4,3) maxpool(4x1)",
        (5, 5, 1),
        ["spec token 2 'maxpool(4x1)'", "window 4x1 is larger than its input 3x3"],
        "maxpool(4x1)",
    ),
    ("conv(8,9,pad=1)", (5, 5, 1), ["'conv(8,9,pad=1)'", "(padded from 5x5)"], "conv(8,9,pad=1)"),
    ("conv(8,3)", (16,), ["'conv(8,3)'", "Conv2D needs an image input"], "conv(8,3)"),
    (
        "dense(10) 5",
        (4,),
        ["spec token 2 '5'", "a bare number is only valid in an MLP", "write dense(5)"],
        "5",
    ),
    ("conv(8,3) relu 10", (8, 8, 1), ["spec token 3 '10'", "write dense(10)"], "10"),
    ("dense(10) 784-10", (4,), ["spec token 2 '784-10'", "expected a layer"], "784-10"),
    ("", (4,), ["empty architecture spec", "expected e.g."], None),
    ("conv(2,3) dense(2)", (8, 0, 1), ["input shape must be positive sizes, got (8, 0, 1)"], None),
    ("0-2", (0,), ["input shape must be positive sizes, got (0,)"], None),
    ("dense(2)", (), ["input shape must be positive sizes, got ()"], None),
    ("   ", (4,), ["empty architecture spec"], None),
]


@pytest.mark.parametrize(
    "spec, shape, fragments, token", ERRORS, ids=[e[0] or "empty" for e in ERRORS]
)
def test_invalid_specs(spec, shape, fragments, token):
    with pytest.raises(nl.SpecError) as error:
        nl.build(spec, shape)
    assert isinstance(error.value, ValueError)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert error.value.token == token
    assert "Traceback" not in message and "\n" not in message


def test_spec_error_locates_the_token():
    spec = "conv(8,3) relu   nope(1) dense(2)"
    with pytest.raises(nl.SpecError) as error:
        nl.build(spec, (6, 6, 1))
    assert error.value.token == "nope(1)"
    assert spec[error.value.index :].startswith("nope(1)")


def test_the_kernel_error_locates_its_token():
    spec = "conv(4,3) relu conv(8,5)"
    with pytest.raises(nl.SpecError) as error:
        nl.build(spec, (6, 6, 1))
    assert error.value.token == "conv(8,5)"
    assert spec[error.value.index :] == "conv(8,5)"


def test_spec_error_is_a_value_error():
    assert issubclass(nl.SpecError, ValueError)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "conv(3)",
            "spec token 1 'conv(3)': missing kernel; expected conv(filters, kernel, "
            "[stride=1], [pad=0|same|valid])",
        ),
        (
            "conv(6,5) relu maxpool(30)",
            "spec token 3 'maxpool(30)': maxpool_1: window 30x30 is larger than its input 24x24",
        ),
    ],
)
def test_the_readme_error_examples_are_exact(spec, message):
    with pytest.raises(nl.SpecError) as error:
        nl.build(spec, (28, 28, 1))
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("spec", "shape", "suggestion"),
    [
        (
            "conv(8,3) relu maxpol(2) dense(10)",
            (28, 28, 1),
            "unknown layer 'maxpol' (did you mean 'maxpool'?)",
        ),
        ("desne(10)", (4,), "(did you mean 'dense'?)"),
        ("conv(8,3) batchnrom", (28, 28, 1), "(did you mean 'batchnorm'?)"),
        ("dense(4) lrelu(alpha=0.1) dens(2)", (4,), "(did you mean 'dense'?)"),
        ("conv(8,3,strid=2)", (28, 28, 1), "unknown argument 'strid' (did you mean 'stride'?)"),
        ("2-16-3:tahn", (2,), "MLP activation 'tahn' (did you mean 'tanh'?) is not one of"),
    ],
)
def test_a_near_miss_names_what_was_meant(spec, shape, suggestion):
    with pytest.raises(nl.SpecError) as caught:
        nl.build(spec, input_shape=shape)
    assert suggestion in str(caught.value)


@pytest.mark.parametrize("spec", ["foo(1)", "conv(8,3,zzz=1)", "2-16-3:abc"])
def test_no_suggestion_without_a_near_name(spec):
    with pytest.raises(nl.SpecError) as caught:
        nl.build(spec, input_shape=(2,) if "-" in spec else (28, 28, 1))
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize("name", ["lenet", "LeNet-5", "lenet5", " LENET "])
def test_a_preset_is_named_by_its_key_or_label_in_any_case(name):
    assert nl.presets.named(name).key == "lenet"
    assert nl.presets.resolve(name, (28, 28, 1), 10, "classification") == nl.presets.lenet5(10)


def test_a_spec_is_no_preset_and_a_preset_that_does_not_apply_is_refused():
    assert nl.presets.named("conv(8,3) relu") is None and nl.presets.named("2-8-3") is None
    assert nl.presets.resolve("2-8-3", (2,), 3, "classification") == "2-8-3"
    assert nl.presets.resolve("small mlp", (1,), 1, "regression") == "1-16-16-1:tanh"
    with pytest.raises(nl.SpecError, match=r"VGG needs images \(.*\); spirals has 2 features"):
        nl.presets.resolve("vgg", (2,), 3, "classification", "spirals")
