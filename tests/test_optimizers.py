"""Optimizer update formulas against hand-computed values, live hyperparameter changes,
validation, and float32 preservation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dtype_guard import StrictFloat32

import nnlib as nl
from nnlib.optimizers import make_optimizer


def _param(value, grad=0.0, name="w", regularize=True, dtype=np.float64) -> nl.Param:
    param = nl.Param.of(name, np.atleast_1d(np.array(value, dtype=dtype)), regularize)
    param.grad[...] = grad
    return param


def _steps(optimizer: nl.Optimizer, param: nl.Param, grads) -> list[float]:
    """Apply one step per gradient; return the (scalar) value after each."""
    values = []
    for grad in grads:
        param.grad[...] = grad
        optimizer.step([param])
        values.append(float(param.value[0]))
    return values


# -- SGD ----------------------------------------------------------------------------------------


def test_sgd_plain():
    param = _param([1.0, -2.0, 3.0])
    optimizer = nl.SGD(lr=0.1)
    param.grad[...] = [0.5, -1.0, 0.25]
    optimizer.step([param])
    np.testing.assert_allclose(param.value, [0.95, -1.9, 2.975], rtol=1e-15)
    param.grad[...] = [1.0, 1.0, 1.0]
    optimizer.step([param])
    np.testing.assert_allclose(param.value, [0.85, -2.0, 2.875], rtol=1e-15)


def test_sgd_momentum_two_steps():
    # v1 = -0.1*0.5 = -0.05, w1 = 0.95; v2 = 0.9*-0.05 - 0.1*0.25 = -0.07, w2 = 0.88
    values = _steps(nl.SGD(lr=0.1, momentum=0.9), _param(1.0), [0.5, 0.25])
    np.testing.assert_allclose(values, [0.95, 0.88], rtol=1e-14)


def test_sgd_nesterov_two_steps():
    # Keras: v = m*v - lr*g; w += m*v - lr*g
    # v1 = -0.05, w1 = 1 + 0.9*-0.05 - 0.05 = 0.905
    # v2 = -0.07, w2 = 0.905 + 0.9*-0.07 - 0.025 = 0.817
    values = _steps(nl.SGD(lr=0.1, momentum=0.9, nesterov=True), _param(1.0), [0.5, 0.25])
    np.testing.assert_allclose(values, [0.905, 0.817], rtol=1e-14)


def test_sgd_nesterov_without_momentum_is_plain_sgd():
    values = _steps(nl.SGD(lr=0.1, nesterov=True), _param(1.0), [0.5, 0.25])
    np.testing.assert_allclose(values, [0.95, 0.925], rtol=1e-14)


def test_time_based_decay():
    # lr_t = lr / (1 + t * decay), t = number of steps already taken
    optimizer = nl.SGD(lr=0.1, decay=0.5)
    assert optimizer.current_lr == pytest.approx(0.1)
    values = _steps(optimizer, _param(1.0), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(values, [0.9, 0.9 - 0.1 / 1.5, 0.9 - 0.1 / 1.5 - 0.05], rtol=1e-14)
    assert optimizer.iterations == 3
    assert optimizer.current_lr == pytest.approx(0.1 / 2.5)


def test_weight_decay_applies_to_weights_not_biases():
    weight, bias = _param(2.0, 0.5, "d.W"), _param(2.0, 0.5, "d.b", regularize=False)
    nl.SGD(lr=0.1, weight_decay=0.1).step([weight, bias])
    assert weight.value[0] == pytest.approx(2.0 - 0.1 * (0.5 + 0.1 * 2.0), rel=1e-14)
    assert bias.value[0] == pytest.approx(2.0 - 0.1 * 0.5, rel=1e-14)
    assert weight.grad[0] == 0.5  # the stored gradient is not modified


def test_weight_decay_on_a_dense_layer_skips_its_bias():
    model = nl.Sequential([nl.Dense(3)], input_shape=(2,))
    for param in model.parameters():
        param.value[...] = 1.0
        param.grad[...] = 0.0
    nl.SGD(lr=0.5, weight_decay=0.2).step(model.parameters())
    np.testing.assert_allclose(model["dense_1"].params["W"].value, 0.9, rtol=1e-6)
    np.testing.assert_array_equal(model["dense_1"].params["b"].value, 1.0)


def test_l1_adds_l1_times_the_sign_of_each_weight_to_its_gradient():
    # w -= lr * (g + weight_decay * w + l1 * sign(w)); sign(0) = 0; biases are left alone
    weight = _param([2.0, -0.5, 0.0], [0.5, 0.5, 0.5], "d.W")
    bias = _param([2.0, -0.5], [0.5, 0.5], "d.b", regularize=False)
    nl.SGD(lr=0.1, l1=0.3).step([weight, bias])
    np.testing.assert_allclose(
        weight.value, [2.0 - 0.1 * 0.8, -0.5 - 0.1 * 0.2, -0.1 * 0.5], rtol=1e-14
    )
    np.testing.assert_allclose(bias.value, [2.0 - 0.05, -0.5 - 0.05], rtol=1e-14)
    np.testing.assert_array_equal(weight.grad, 0.5)  # the stored gradient is not modified
    both = _param([2.0, -0.5], [0.5, 0.5], "d.W")
    nl.SGD(lr=0.1, weight_decay=0.1, l1=0.3).step([both])
    np.testing.assert_allclose(
        both.value, [2.0 - 0.1 * (0.5 + 0.2 + 0.3), -0.5 - 0.1 * (0.5 - 0.05 - 0.3)], rtol=1e-14
    )


def test_l1_goes_into_the_moments_like_weight_decay():
    # Adam's first step moves by lr * sign(g + l1 * sign(w)), whatever the sizes.
    param = _param([1.0, 1.0, -1.0], [0.5, -0.1, 0.0])
    nl.Adam(lr=0.1, l1=0.2).step([param])
    np.testing.assert_allclose(param.value, [0.9, 0.9, -0.9], rtol=1e-6)


def test_changing_l1_takes_effect_on_the_next_step():
    optimizer = nl.SGD(lr=0.1)
    values = _steps(optimizer, _param(1.0, name="d.W"), [0.0])
    optimizer.l1 = 0.5
    values += _steps(optimizer, _param(values[-1], name="d.W"), [0.0])
    np.testing.assert_allclose(values, [1.0, 0.95], rtol=1e-14)


# -- Adam and RMSProp ---------------------------------------------------------------------------


def _adam_textbook(grads, w=1.0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8):
    m = v = 0.0
    values = []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        w -= lr * m_hat / (math.sqrt(v_hat) + eps)
        values.append(w)
    return values


def test_adam_first_step_is_lr_times_sign():
    # m_hat = g and v_hat = g^2 after one step, so the update is lr * g/|g|.
    param = _param([1.0, 1.0], [0.5, -3.0])
    nl.Adam(lr=0.1, eps=0.0).step([param])
    np.testing.assert_allclose(param.value, [0.9, 1.1], rtol=1e-14)


def test_adam_two_steps_hand_computed():
    # m2 = 0.9*0.05 + 0.1*-0.25 = 0.02, v2 = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
    # w2 = 0.9 - 0.1 * (0.02/0.19) / sqrt(0.00031225/0.001999)
    expected_w2 = 0.9 - 0.1 * (0.02 / 0.19) / math.sqrt(0.00031225 / 0.001999)
    values = _steps(nl.Adam(lr=0.1, eps=0.0), _param(1.0), [0.5, -0.25])
    np.testing.assert_allclose(values, [0.9, expected_w2], rtol=1e-13)
    np.testing.assert_allclose(values, _adam_textbook([0.5, -0.25], eps=0.0), rtol=1e-13)


def test_adam_matches_textbook_with_eps_and_custom_betas():
    grads = [0.3, -0.7, 0.2, 0.05]
    values = _steps(nl.Adam(lr=0.01, beta1=0.8, beta2=0.99), _param(1.0), grads)
    # Adam puts eps outside the bias correction (Kingma & Ba section 2); with eps=1e-8 and
    # gradients ~0.1 the two forms differ by ~1e-9 relative at most.
    np.testing.assert_allclose(
        values, _adam_textbook(grads, lr=0.01, beta1=0.8, beta2=0.99), rtol=1e-7
    )


def test_rmsprop_two_steps_hand_computed():
    # ms1 = 0.1*0.25 = 0.025,  w1 = 1 - 0.01*0.5/sqrt(0.025)
    # ms2 = 0.9*0.025 + 0.1*0.25 = 0.0475,  w2 = w1 - 0.01*0.5/sqrt(0.0475)
    w1 = 1 - 0.01 * 0.5 / math.sqrt(0.025)
    w2 = w1 - 0.01 * 0.5 / math.sqrt(0.0475)
    values = _steps(nl.RMSProp(lr=0.01, rho=0.9, eps=0.0), _param(1.0), [0.5, 0.5])
    np.testing.assert_allclose(values, [w1, w2], rtol=1e-14)
    assert w1 == pytest.approx(0.96837722, abs=1e-8)


def test_rmsprop_eps_is_added_to_the_root():
    param = _param(1.0, 0.5)
    nl.RMSProp(lr=0.01, rho=0.9, eps=0.1).step([param])
    assert param.value[0] == pytest.approx(1 - 0.01 * 0.5 / (math.sqrt(0.025) + 0.1), rel=1e-14)


def test_state_is_kept_per_parameter():
    a, b = _param(1.0, 0.5, "a"), _param(1.0, -0.5, "b")
    optimizer = nl.SGD(lr=0.1, momentum=0.9)
    optimizer.step([a, b])
    optimizer.step([a, b])
    assert a.value[0] == pytest.approx(1 - 0.05 - 0.095)
    assert b.value[0] == pytest.approx(1 + 0.05 + 0.095)


# -- hyperparameters are live -------------------------------------------------------------------


def test_changing_lr_takes_effect_on_the_next_step():
    param = _param(1.0, 1.0)
    optimizer = nl.SGD(lr=0.1)
    optimizer.step([param])
    optimizer.lr = 0.5
    optimizer.step([param])
    assert param.value[0] == pytest.approx(1.0 - 0.1 - 0.5, rel=1e-14)


def test_changing_adam_lr_takes_effect_on_the_next_step():
    param = _param(1.0)
    optimizer = nl.Adam(lr=0.1, eps=0.0)
    _steps(optimizer, param, [0.5])
    optimizer.lr = 0.01
    value = _steps(optimizer, param, [0.5])[0]
    # With equal gradients m_hat = 0.5 and v_hat = 0.25, so the second step is exactly lr.
    assert value == pytest.approx(0.9 - 0.01, rel=1e-13)


def test_changing_momentum_and_weight_decay_takes_effect():
    param = _param(1.0, 1.0)
    optimizer = nl.SGD(lr=0.1, momentum=0.9)
    optimizer.step([param])  # v1 = -0.1, w = 0.9
    optimizer.momentum = 0.5
    optimizer.step([param])  # v2 = 0.5*-0.1 - 0.1 = -0.15
    assert param.value[0] == pytest.approx(0.75, rel=1e-14)
    optimizer.momentum = 0.0
    optimizer.step([param])  # v3 = -0.1
    assert param.value[0] == pytest.approx(0.65, rel=1e-14)
    optimizer.weight_decay = 1.0
    optimizer.step([param])  # g = 1 + 0.65
    assert param.value[0] == pytest.approx(0.65 - 0.1 * 1.65, rel=1e-14)


def test_turning_momentum_on_mid_run_starts_from_zero_velocity():
    # Like PyTorch: no velocity is kept while momentum is 0.
    param = _param(1.0, 1.0)
    optimizer = nl.SGD(lr=0.1)
    optimizer.step([param])
    optimizer.momentum = 0.9
    values = _steps(optimizer, param, [1.0, 1.0])  # v = -0.1, then 0.9*-0.1 - 0.1 = -0.19
    np.testing.assert_allclose(values, [0.8, 0.61], rtol=1e-14)


def test_changing_rmsprop_rho_takes_effect():
    param = _param(1.0, 0.5)
    optimizer = nl.RMSProp(lr=0.01, rho=0.9, eps=0.0)
    optimizer.step([param])
    optimizer.rho = 0.5
    before = param.value[0]
    optimizer.step([param])
    mean_square = 0.5 * 0.025 + 0.5 * 0.25
    assert param.value[0] == pytest.approx(before - 0.01 * 0.5 / math.sqrt(mean_square), rel=1e-14)


@pytest.mark.parametrize(
    "optimizer",
    [nl.SGD(lr=0.1, momentum=0.5), nl.Adam(), nl.RMSProp()],
    ids=lambda o: type(o).__name__,
)
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lr", -0.1, "learning rate (lr) must be > 0, got -0.1"),
        ("lr", 0, "learning rate (lr) must be > 0, got 0"),
        ("lr", float("nan"), "learning rate (lr) must be finite, got nan"),
        ("lr", float("inf"), "learning rate (lr) must be finite, got inf"),
        ("lr", "fast", "learning rate (lr) must be a number, got 'fast'"),
        ("lr", None, "learning rate (lr) must be a number, got None"),
        ("lr", True, "learning rate (lr) must be a number, got True"),
        ("weight_decay", -1e-4, "weight_decay must be >= 0, got -0.0001"),
        ("l1", -0.5, "l1 must be >= 0, got -0.5"),
        ("l1", "none", "l1 must be a number, got 'none'"),
        ("decay", float("nan"), "decay must be finite, got nan"),
    ],
)
def test_invalid_common_values_raise_and_keep_the_old_value(optimizer, key, value, message):
    old = getattr(optimizer, key)
    with pytest.raises(ValueError) as error:
        setattr(optimizer, key, value)
    assert str(error.value) == f"{type(optimizer).__name__}: {message}"
    assert getattr(optimizer, key) == old


@pytest.mark.parametrize(
    "make, key, value, message",
    [
        (lambda: nl.SGD(momentum=0.5), "momentum", 1.5, r"SGD: momentum must be in \[0.0, 1.0\)"),
        (lambda: nl.SGD(momentum=0.5), "momentum", 1.0, r"SGD: momentum must be in \[0.0, 1.0\)"),
        (lambda: nl.SGD(momentum=0.5), "momentum", -0.1, r"SGD: momentum must be in"),
        (lambda: nl.SGD(momentum=0.5), "momentum", float("nan"), r"SGD: momentum must be finite"),
        (lambda: nl.Adam(), "beta1", 1.0, r"Adam: beta1 must be in \[0.0, 1.0\), got 1.0"),
        (lambda: nl.Adam(), "beta2", -0.5, r"Adam: beta2 must be in"),
        (lambda: nl.Adam(), "eps", -1e-8, r"Adam: eps must be >= 0"),
        (lambda: nl.RMSProp(), "rho", 1.2, r"RMSProp: rho must be in \[0.0, 1.0\), got 1.2"),
        (lambda: nl.RMSProp(), "eps", float("inf"), r"RMSProp: eps must be finite"),
    ],
)
def test_invalid_specific_values_raise_and_keep_the_old_value(make, key, value, message):
    optimizer = make()
    old = getattr(optimizer, key)
    with pytest.raises(ValueError, match=message):
        setattr(optimizer, key, value)
    assert getattr(optimizer, key) == old


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nl.SGD(lr=-1), r"SGD: learning rate \(lr\) must be > 0, got -1"),
        (lambda: nl.SGD(lr=0.1, momentum=1.5), r"SGD: momentum must be in \[0.0, 1.0\), got 1.5"),
        (lambda: nl.Adam(lr=0), r"Adam: learning rate \(lr\) must be > 0, got 0"),
        (lambda: nl.RMSProp(decay=-1), r"RMSProp: decay must be >= 0, got -1"),
    ],
)
def test_invalid_constructor_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_scalars_are_stored_as_python_floats():
    optimizer = nl.SGD(lr=np.float64(0.1), momentum=np.float32(0.5))
    optimizer.lr = np.float64(0.2)
    assert type(optimizer.lr) is float and type(optimizer.momentum) is float


def test_make_optimizer():
    optimizer = make_optimizer("ADAM", lr=0.01, beta1=None, weight_decay=0.1)
    assert isinstance(optimizer, nl.Adam)
    assert (optimizer.lr, optimizer.beta1, optimizer.weight_decay) == (0.01, 0.9, 0.1)
    assert make_optimizer("sgd", momentum=0.9, nesterov=True).nesterov is True
    with pytest.raises(
        ValueError,
        match=r"unknown optimizer 'adagrad'; expected one of sgd, "
        r"adam, rmsprop",
    ):
        make_optimizer("adagrad")
    with pytest.raises(ValueError, match=r"SGD has no hyperparameter 'beta1'"):
        make_optimizer("sgd", beta1=0.9)
    with pytest.raises(ValueError, match=r"RMSProp: learning rate"):
        make_optimizer("rmsprop", lr=-1.0)


def test_config_lists_the_live_hyperparameters():
    assert nl.SGD(lr=0.1, momentum=0.9, nesterov=True).config() == {
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "l1": 0.0,
        "decay": 0.0,
        "nesterov": True,
    }
    assert set(nl.Adam().config()) == {"lr", "beta1", "beta2", "eps", "weight_decay", "l1", "decay"}


# -- float32 stays float32 ----------------------------------------------------------------------

OPTIMIZERS = [
    lambda: nl.SGD(lr=0.1),
    lambda: nl.SGD(lr=0.1, momentum=0.9, decay=0.01, weight_decay=1e-3, l1=1e-3),
    lambda: nl.SGD(lr=0.1, momentum=0.9, nesterov=True, decay=0.01, weight_decay=1e-3, l1=1e-3),
    lambda: nl.Adam(lr=0.01, decay=0.01, weight_decay=1e-3, l1=1e-3),
    lambda: nl.RMSProp(lr=0.01, decay=0.01, weight_decay=1e-3, l1=1e-3),
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["sgd", "momentum", "nesterov", "adam", "rmsprop"])
def test_float32_parameters_and_state_stay_float32(make):
    optimizer = make()
    weight = nl.Param.of("d.W", StrictFloat32.wrap(np.full((3, 2), 0.5, np.float32)))
    bias = nl.Param.of("d.b", StrictFloat32.wrap(np.zeros(2, np.float32)), regularize=False)
    StrictFloat32.events.clear()
    for step in range(3):
        for param in (weight, bias):
            param.grad = StrictFloat32.wrap(
                np.full(param.value.shape, 0.1 * (step + 1), np.float32)
            )
        optimizer.step([weight, bias])
        # A hyperparameter set mid-run from a numpy scalar must not promote either.
        optimizer.lr = np.float64(optimizer.lr * 0.9)
    assert StrictFloat32.events == []
    for param in (weight, bias):
        assert param.value.dtype == np.float32
        assert all(
            state.dtype == np.float32
            for state in optimizer.state[param.name].values()
            if isinstance(state, np.ndarray)
        )
    assert not np.allclose(weight.value, 0.5)


# -- L1 while training --------------------------------------------------------------------------


class _Steer(nl.Callback):
    """After batch 1, sends `requests` through the run control's command door (the one the app
    and `nnlib control` use); records the l1 of every batch and the 'hparam' events."""

    def __init__(self, *requests: tuple) -> None:
        self.requests, self.l1, self.hparams, self.refused = requests, [], [], []

    def on_batch_end(self, trainer, batch, logs):
        self.l1.append(logs["l1"])
        if batch == 1:
            for request in self.requests:
                try:
                    trainer.control.command(*request, source="remote")
                except ValueError as error:
                    self.refused.append(str(error))

    def on_event(self, trainer, event, data):
        if event == "hparam":
            self.hparams.append(data)


def test_l1_is_steered_while_training_and_a_bad_value_is_refused():
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    y = np.arange(16) % 2
    steer = _Steer(("set", "l1", -1.0), ("set", "l1", "much"), ("set", "l1", 0.25))
    model = nl.build("2-4-2", (2,), seed=0)
    trainer = nl.Trainer(model, nl.SoftmaxCrossEntropy(), nl.SGD(lr=0.1), callbacks=[steer])
    trainer.fit(x, y, epochs=1, batch_size=4)
    assert steer.refused == [
        "SGD: l1 must be >= 0, got -1.0",
        "SGD: l1 must be a number, got 'much'",
    ]
    assert steer.l1 == [0.0, 0.0, 0.25, 0.25]  # applied before the next batch
    assert [(h["name"], h["old"], h["new"], h["source"]) for h in steer.hparams] == [
        ("l1", 0.0, 0.25, "remote")
    ]
    assert trainer.optimizer.l1 == 0.25
