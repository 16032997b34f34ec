"""tf-keras parity of the Keras-style ``Adamax``, ``Nadam`` and ``Ftrl``.

Every Adamax/Nadam/Ftrl case of ``tests/fixtures/keras`` is replayed through
``apply_gradients`` with the stored gradients: each step's variables,
``iterations``, the final slots, weights (with Nadam's ``momentum_cache`` and
Ftrl's variable-major order), weight names, slot names and config must match.
Plus the spec's 3-step goldens, configs, argument errors and compile counts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optaxish import Variable
from optaxish.optimizers import schedules
from optaxish.optimizers._adamax import Adamax
from optaxish.optimizers._ftrl import Ftrl
from optaxish.optimizers._nadam import Nadam
from tests.keras_fixtures import list_cases, load_case, replay_and_compare, spec_checks

CLASSES = {"Adamax": Adamax, "Nadam": Nadam, "Ftrl": Ftrl}
CASES = [
    c
    for c in list_cases()
    if load_case(c).optimizer["class_name"] in CLASSES
    and load_case(c).optimizer["api"] == "legacy"
    and load_case(c).loss_scale is None
]
G3 = spec_checks()["golden_3_step"]


def make_optimizer(case):
    kwargs = dict(case.optimizer["kwargs"])
    return CLASSES[case.optimizer["class_name"]](**kwargs)


def make_variables(case):
    return [Variable(init, name=name) for init, name in zip(case.init, case.names)]


def run_case(case, opt=None):
    opt = opt or make_optimizer(case)
    variables = make_variables(case)
    for t in range(case.num_steps):
        opt.apply_gradients(zip(case.step_grads(t), variables))
    return opt, variables


def test_every_case_is_covered():
    counts = {k: sum(c.startswith(k.lower() + "/") for c in CASES) for k in CLASSES}
    assert counts == {"Adamax": 2, "Nadam": 3, "Ftrl": 3}


@pytest.mark.parametrize("case_id", CASES)
def test_trajectory_matches_tf_keras(case_id):
    case = load_case(case_id)
    opt = make_optimizer(case)
    variables = make_variables(case)
    replay_and_compare(case, opt, variables)
    assert [w.name for w in opt.weights] == case.weight_names
    assert opt.get_slot_names() == case.slot_names
    ours = opt.get_weights()
    assert [w.shape for w in ours] == [w.shape for w in case.weights]
    assert ours[0].dtype == np.int64
    for a, b in zip(ours, case.weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert opt.get_config() == case.config
    json.dumps(opt.get_config())


@pytest.mark.parametrize(
    "case_id", ["adamax/adamax_custom", "nadam/nadam_custom", "ftrl/ftrl_shrinkage"]
)
def test_set_weights_loads_tf_keras_list_and_continues(case_id):
    """tf-keras' final ``get_weights()`` list (with Nadam's cache), loaded into
    a fresh optimizer, continues like the optimizer that ran the trajectory."""
    case = load_case(case_id)
    ran, ran_vars = run_case(case)
    opt = make_optimizer(case)
    variables = [Variable(case.params[i][-1], name=n) for i, n in enumerate(case.names)]
    opt.build(variables)
    opt.set_weights(case.weights)
    assert int(opt.iterations) == case.num_steps
    for a, b in zip(opt.get_weights(), case.weights):
        np.testing.assert_array_equal(a, b)
    for t in range(5):
        grads = case.step_grads(t)
        ran.apply_gradients(zip(grads, ran_vars))
        opt.apply_gradients(zip(grads, variables))
        for a, b in zip(variables, ran_vars):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == case.num_steps + 5


def test_set_weights_errors_change_nothing():
    case = load_case("nadam/nadam_default")
    opt, _ = run_case(case)
    before = opt.get_weights()
    with pytest.raises(ValueError, match="with a  weight list of length 1, but the"):
        opt.set_weights(before[:1])
    bad = list(before)
    bad[1] = np.ones([2], np.float32)  # the momentum cache is a scalar
    with pytest.raises(ValueError, match=r"weight shape \(\) not compatible"):
        opt.set_weights(bad)
    for a, b in zip(opt.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "case",
    [c for c in G3["cases"] if c["class_name"] in CLASSES],
    ids=lambda c: c["name"],
)
def test_spec_three_step_goldens(case):
    opt = CLASSES[case["class_name"]](**case["kwargs"])
    x = Variable(G3["x0"])
    for g in G3["grads"]:
        opt.apply_gradients([(g, x)])
    np.testing.assert_allclose(x.numpy(), case["tf_keras_step3"], rtol=1e-5)


@pytest.mark.parametrize("case_id", CASES)
def test_from_config_round_trip(case_id):
    case = load_case(case_id)
    opt = make_optimizer(case)
    clone = type(opt).from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    _, a = run_case(case, opt)
    _, b = run_case(case, clone)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_default_configs_and_names():
    assert Adamax().get_config() == {
        "name": "Adamax",
        "learning_rate": pytest.approx(0.001),
        "decay": 0.0,
        "beta_1": pytest.approx(0.9),
        "beta_2": pytest.approx(0.999),
        "epsilon": 1e-7,
    }
    assert Nadam().get_config()["decay"] == 0.004
    assert Ftrl().get_config()["initial_accumulator_value"] == 0.1
    assert Adamax(clipnorm=1.0).get_config()["clipnorm"] == 1.0
    assert Adamax(epsilon=None).epsilon == 1e-7
    assert Nadam(epsilon=0).epsilon == 1e-7
    assert Ftrl(name="F").get_config()["name"] == "F"


def test_nadam_decay_is_the_schedule_decay():
    # keras-behaviour.md §2.7: `decay` is overwritten by `schedule_decay`.
    assert Nadam(decay=0.5).get_config()["decay"] == 0.004
    assert Nadam(schedule_decay=0.1).get_config()["decay"] == 0.1
    assert float(Nadam(schedule_decay=0.1).decay) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="Expected decay >= 0, received: -1.0"):
        Nadam(schedule_decay=-1.0)


def test_nadam_rejects_schedules():
    schedule = schedules.ExponentialDecay(0.1, 1, 0.5)
    with pytest.raises(ValueError, match="does not support tf.keras.optimizers"):
        Nadam(schedule)


def _nadam_reference(x, grads_per_step, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    """keras-behaviour.md §2.7 in numpy, one shared momentum cache; each step
    is ``{variable index: gradient}`` (a subset of the variables); ``lr`` is a
    float or one rate per step."""
    lrs = lr if isinstance(lr, list) else [lr] * len(grads_per_step)
    x = [np.asarray(v, np.float64) for v in x]
    m = [np.zeros_like(v) for v in x]
    v2 = [np.zeros_like(v) for v in x]
    cache = 1.0
    for it, (lr, grads) in enumerate(zip(lrs, grads_per_step)):
        t = it + 1
        mu_t = b1 * (1 - 0.5 * 0.96 ** (0.004 * t))
        mu_t1 = b1 * (1 - 0.5 * 0.96 ** (0.004 * (t + 1)))
        cache = cache * mu_t
        for i, g in grads.items():
            g = np.asarray(g, np.float64)
            m[i] = b1 * m[i] + (1 - b1) * g
            v2[i] = b2 * v2[i] + (1 - b2) * g * g
            m_bar = (1 - mu_t) * g / (1 - cache) + mu_t1 * m[i] / (1 - cache * mu_t1)
            v_hat = v2[i] / (1 - b2**t)
            x[i] = x[i] - lr * m_bar / (np.sqrt(v_hat) + eps)
    return x, cache


def test_nadam_cache_is_shared_and_advances_once_per_step():
    """A step on a subset still advances the cache; a variable first seen
    later starts from the shared cache (tf-keras' single weight)."""
    steps = [{0: [1.0, -2.0]}, {0: [0.5, 0.5], 1: [3.0]}, {1: [-1.0]}]
    expected, cache = _nadam_reference([[1.0, 2.0], [3.0]], steps, lr=0.1)
    opt = Nadam(0.1)
    a, b = Variable([1.0, 2.0], name="a"), Variable([3.0], name="b")
    for grads in steps:
        opt.apply_gradients([(g, (a, b)[i]) for i, g in grads.items()])
    np.testing.assert_allclose(a.numpy(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(b.numpy(), expected[1], rtol=1e-5)
    np.testing.assert_allclose(opt.get_weights()[1], cache, rtol=1e-6)
    assert [w.name for w in opt.weights] == [
        "Nadam/iter:0",
        "Nadam/momentum_cache:0",
        "Nadam/a/m:0",
        "Nadam/a/v:0",  # `b` got its slots at a later step
        "Nadam/b/m:0",
        "Nadam/b/v:0",
    ]


def test_nadam_callable_learning_rate_is_raw():
    """A callable learning rate is called each step and used undecayed."""
    rates = [0.1, 0.2, 0.05]
    it = iter(rates)
    opt = Nadam(lambda: next(it))
    x = Variable([1.0, -2.0])
    steps = [{0: [0.5, -1.0]}, {0: [-0.3, 0.2]}, {0: [1.0, 0.0]}]
    for grads in steps:
        opt.apply_gradients([(grads[0], x)])
    expected, _ = _nadam_reference([[1.0, -2.0]], steps, lr=rates)
    np.testing.assert_allclose(x.numpy(), expected[0], rtol=1e-5)
    assert opt._traces == 1


def test_ftrl_weights_are_variable_major():
    opt = Ftrl()
    a, b = Variable([1.0], name="a"), Variable([2.0, 3.0], name="b")
    opt.apply_gradients([([1.0], a), ([1.0, 1.0], b)])
    # keras-behaviour.md §5.34
    assert [w.name for w in opt.weights] == [
        "Ftrl/iter:0",
        "Ftrl/a/accumulator:0",
        "Ftrl/a/linear:0",
        "Ftrl/b/accumulator:0",
        "Ftrl/b/linear:0",
    ]
    assert [w.shape for w in opt.get_weights()] == [(), (1,), (1,), (2,), (2,)]
    np.testing.assert_allclose(opt.get_slot(b, "accumulator"), [1.1, 1.1], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"initial_accumulator_value": -0.1},
            "`initial_accumulator_value` needs to be positive or zero. "
            "Received: initial_accumulator_value=-0.1.",
        ),
        (
            {"learning_rate_power": 0.5},
            "`learning_rate_power` needs to be negative or zero. "
            "Received: learning_rate_power=0.5.",
        ),
        (
            {"l1_regularization_strength": -1.0},
            "`l1_regularization_strength` needs to be positive or zero. "
            "Received: l1_regularization_strength=-1.0.",
        ),
        (
            {"l2_regularization_strength": -1.0},
            "`l2_regularization_strength` needs to be positive or zero. "
            "Received: l2_regularization_strength=-1.0.",
        ),
        (
            {"l2_shrinkage_regularization_strength": -0.2},
            "`l2_shrinkage_regularization_strength` needs to be positive or zero. "
            "Received: l2_shrinkage_regularization_strength=-0.2.",
        ),
    ],
)
def test_ftrl_argument_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        Ftrl(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("cls", [Adamax, Nadam])
def test_beta_and_epsilon_errors(cls):
    with pytest.raises(
        ValueError, match=r"`beta_1` must be in \[0, 1\)\. Received: beta_1=1.5"
    ):
        cls(beta_1=1.5)
    with pytest.raises(
        ValueError, match="`epsilon` must be >= 0. Received: epsilon=-1.0"
    ):
        cls(epsilon=-1.0)
    with pytest.raises(ValueError, match="Received: beta_2=-0.1"):
        cls(beta_2=-0.1)


@pytest.mark.parametrize("cls", [Adamax, Nadam, Ftrl])
def test_unknown_and_negative_kwargs(cls):
    with pytest.raises(
        TypeError, match="Unexpected keyword argument passed to optimizer: foo."
    ):
        cls(foo=1.0)
    with pytest.raises(ValueError, match="Expected clipnorm >= 0, received: -1.0"):
        cls(clipnorm=-1.0)


def test_lr_alias():
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        opt = Adamax(learning_rate=0.5, lr=0.9)
    assert float(opt.learning_rate) == pytest.approx(0.9)
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        opt = Ftrl(lr=3.0)  # deviation: tf-keras ignores `lr` for Ftrl
    assert float(opt.learning_rate) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("cls", "hypers"),
    [
        (Adamax, {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.9}),
        (Nadam, {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.95}),
        (
            Ftrl,
            {
                "learning_rate": 0.05,
                "learning_rate_power": -0.3,
                "l1_regularization_strength": 0.01,
                "l2_regularization_strength": 0.1,
                "beta": 0.2,
            },
        ),
    ],
)
def test_setting_hyperparameters_never_retraces(cls, hypers):
    """Hyperparameters set between steps take effect (same numbers as an
    optimizer built with them, given the same state) without a retrace."""
    grads = [np.float32([0.5, -1.0]), np.float32(2.0)]
    opt = cls()
    x, y = Variable([1.0, -2.0]), Variable(0.5)
    opt.apply_gradients(zip(grads, [x, y]))
    other = cls(**hypers)
    x2, y2 = Variable(x.numpy()), Variable(y.numpy())
    other.build([x2, y2])
    other.set_weights(opt.get_weights())
    for name, value in hypers.items():
        setattr(opt, name, value)
        assert float(getattr(opt, name)) == pytest.approx(value)
    for _ in range(3):
        opt.apply_gradients(zip(grads, [x, y]))
        other.apply_gradients(zip(grads, [x2, y2]))
    assert opt._traces == 1
    np.testing.assert_allclose(x.numpy(), x2.numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.numpy(), y2.numpy(), rtol=1e-6)


@pytest.mark.parametrize("cls", [Adamax, Ftrl])
def test_schedule_and_decay(cls):
    """The learning rate of Adamax and Ftrl follows schedules and ``decay``."""
    sched = schedules.ExponentialDecay(0.1, 1, 0.5)
    a = cls(sched, decay=0.5)
    rates = iter([0.1, 0.05 / 1.5, 0.025 / 2.0])
    b = cls(lambda: next(rates))
    xa, xb = Variable([1.0, -2.0]), Variable([1.0, -2.0])
    for g in ([0.5, -1.0], [-0.3, 0.2], [1.0, 0.0]):
        a.apply_gradients([(g, xa)])
        b.apply_gradients([(g, xb)])
    np.testing.assert_allclose(xa.numpy(), xb.numpy(), rtol=1e-5)
    assert a._traces == 1


@pytest.mark.parametrize("cls", [Adamax, Nadam, Ftrl])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_variables_keep_their_dtype(cls, dtype):
    import jax.numpy as jnp

    opt = cls(0.1)
    v = Variable(jnp.array([1.0, -2.0], dtype))
    ref = Variable([1.0, -2.0])
    ref_opt = cls(0.1)
    for _ in range(3):
        opt.apply_gradients([(jnp.array([0.5, -1.0], dtype), v)])
        ref_opt.apply_gradients([(np.float32([0.5, -1.0]), ref)])
    assert v.dtype == jnp.dtype(dtype)
    assert all(w.dtype == jnp.dtype(dtype) for w in opt.get_weights()[-2:])
    np.testing.assert_allclose(
        v.numpy().astype(np.float32), ref.numpy(), rtol=2e-2, atol=2e-2
    )


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(1e-3, 0.3),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.5, 0.999),
    eps=st.floats(1e-7, 0.5),
    seed=st.integers(0, 2**16),
)
def test_nadam_matches_the_spec_equations(lr, b1, b2, eps, seed):
    """Random hyperparameters and gradients, 50 steps, against §2.7 in numpy."""
    rng = np.random.default_rng(seed)
    shapes = [(3,), (2, 2), ()]
    init = [rng.normal(size=s).astype(np.float32) for s in shapes]
    steps = [
        {i: rng.normal(size=s).astype(np.float32) for i, s in enumerate(shapes)}
        for _ in range(50)
    ]
    b1, b2, lr = float(np.float32(b1)), float(np.float32(b2)), float(np.float32(lr))
    expected, cache = _nadam_reference(init, steps, lr=lr, b1=b1, b2=b2, eps=eps)
    opt = Nadam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
    variables = [Variable(x) for x in init]
    for grads in steps:
        opt.apply_gradients([(grads[i], variables[i]) for i in grads])
    for v, e in zip(variables, expected):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(opt.get_weights()[1], cache, rtol=1e-5, atol=1e-30)
