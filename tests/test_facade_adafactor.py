"""Keras 3 parity of the Keras-style ``Adafactor`` (golden fixtures + equations).

The fixtures (``adafactor.json``) were made with tf-keras' new-style
``Adafactor``, whose update equals Keras 3's. Options the fixtures do not
cover (rank-3 variables, ``weight_decay``, a schedule) are checked against
``keras3_reference``, a NumPy transcription of Keras 3's ``update_step`` and
base-class weight decay (checked against Keras 3 itself when it was written).
"""

from __future__ import annotations

import numpy as np
import pytest

from optaxish import Variable
from optaxish.optimizers import Adafactor, schedules
from tests.keras_fixtures import list_cases, load_case, replay_and_compare

CASES = list_cases("adafactor")
TF_KERAS_ONLY = ("jit_compile", "is_legacy_optimizer")
KERAS3_ONLY = {"loss_scale_factor": None, "gradient_accumulation_steps": None}


def make(case):
    return Adafactor(**case.optimizer["kwargs"])


def make_variables(case):
    return [Variable(init, name=name) for init, name in zip(case.init, case.names)]


def run_case(case, steps=None):
    opt, variables = make(case), make_variables(case)
    for t in range(case.num_steps if steps is None else steps):
        opt.apply_gradients(zip(case.step_grads(t), variables))
    return opt, variables


def test_every_case_is_covered():
    assert len(CASES) == 3
    assert {load_case(c).optimizer["api"] for c in CASES} == {"new"}


@pytest.mark.parametrize("case_id", CASES)
def test_trajectory_slots_weights_and_config_match_keras(case_id):
    case = load_case(case_id)
    opt, variables = make(case), make_variables(case)
    replay_and_compare(case, opt, variables)  # every step, then the slots
    assert opt._traces == 1
    assert opt.get_slot_names() == ["r", "c", "v"]
    # Weights: Keras' order (per variable: r, c for rank >= 2, then v) under
    # the facade's names "<opt>/<var>/<slot>" (tf-keras: "<opt>/<slot>/<var>").
    ours = [w.name for w in opt.weights]
    theirs = [n.split("/") for n in case.weight_names[1:]]
    assert ours == ["Adafactor/iter:0"] + [f"{o}/{v[:-2]}/{s}:0" for o, s, v in theirs]
    got = opt.get_weights()
    assert got[0].dtype == np.int64 and got[0] == case.num_steps
    for a, b in zip(got[1:], case.weights[1:], strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    config = opt.get_config()
    expected = {k: v for k, v in case.config.items() if k not in TF_KERAS_ONLY}
    assert config == {**expected, **KERAS3_ONLY}
    assert Adafactor.from_config(config).get_config() == config
    assert Adafactor.from_config(case.config).get_config() == config


def test_slots_of_factored_and_unfactored_variables():
    case = load_case("adafactor/adafactor_default")
    opt, (a, b, c) = run_case(case, steps=3)
    r, col, v = (opt.get_slot(b, n) for n in ("r", "c", "v"))
    assert (r.shape, col.shape, v.shape) == ((2,), (2,), (2, 2))
    np.testing.assert_allclose(v, (r / r.mean())[:, None] * col[None, :], rtol=1e-6)
    assert opt.get_slot(a, "v").shape == (3,) and opt.get_slot(c, "v").shape == ()
    for var, name in ((a, "r"), (c, "c"), (b, "m")):
        with pytest.raises(KeyError):
            opt.get_slot(var, name)
    with pytest.raises(KeyError):
        opt.get_slot(Variable([1.0]), "v")


def test_set_weights_continues_the_trajectory_and_takes_tf_keras_lists():
    case = load_case("adafactor/adafactor_custom")
    ran, ran_vars = run_case(case, steps=10)
    opt = make(case)
    variables = [Variable(v.numpy(), name=v.name[:-2]) for v in ran_vars]
    opt.build(variables)
    opt.set_weights(ran.get_weights())
    for t in range(10, case.num_steps):
        ran.apply_gradients(zip(case.step_grads(t), ran_vars))
        opt.apply_gradients(zip(case.step_grads(t), variables))
    for x, y in zip(variables, ran_vars):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert opt._traces == 1
    # tf-keras' final weight list loads as is.
    opt.set_weights(case.weights)
    for x, y in zip(opt.get_weights(), case.weights, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_bad_set_weights_changes_nothing():
    case = load_case("adafactor/adafactor_default")
    opt, _ = run_case(case, steps=2)
    before = opt.get_weights()
    with pytest.raises(ValueError, match="expecting 6 weights"):
        opt.set_weights(before[:-1])
    bad = [w.copy() + 1 for w in before]
    bad[4] = np.zeros((2, 3), np.float32)  # v of the 2x2 variable
    with pytest.raises(ValueError, match=r"shape \(2, 2\) not compatible"):
        opt.set_weights(bad)
    for x, y in zip(opt.get_weights(), before, strict=True):
        np.testing.assert_array_equal(x, y)


# -- options the fixtures do not cover -----------------------------------------


def keras3_reference(init, grads, lr_fn, wd, beta_2_decay, eps1, eps2, clip):
    xs = [np.asarray(x, np.float64) for x in init]
    r = [np.zeros(x.shape[:-1]) for x in xs]
    c = [np.zeros(x.shape[:-2] + x.shape[-1:]) for x in xs]
    v = [np.zeros_like(x) for x in xs]
    rms = lambda a: np.sqrt(np.mean(np.square(a)))  # noqa: E731
    for step, gs in enumerate(grads):
        t, lr = step + 1.0, lr_fn(step)
        beta = 1.0 - t**beta_2_decay
        for i, g in enumerate(gs):
            x = xs[i] - xs[i] * wd * lr  # the base class decays first
            s = np.square(g) + eps1
            if x.ndim >= 2:
                r[i] = beta * r[i] + (1 - beta) * s.mean(-1)
                c[i] = beta * c[i] + (1 - beta) * s.mean(-2)
                row = r[i] / r[i].mean(-1, keepdims=True)
                v[i] = row[..., :, None] * c[i][..., None, :]
            else:
                v[i] = beta * v[i] + (1 - beta) * s
            u = g / np.sqrt(v[i])
            u = u / max(1.0, rms(u) / clip)
            xs[i] = x - max(eps2, rms(x)) * min(lr, 1 / np.sqrt(t)) * u
    return xs


@pytest.mark.parametrize(
    "kwargs, lr_fn",
    [
        (
            dict(learning_rate=0.3, weight_decay=0.4, clip_threshold=0.7),
            lambda step: 0.3,
        ),
        (
            dict(
                learning_rate=schedules.ExponentialDecay(0.5, 3, 0.5),
                beta_2_decay=-0.6,
                epsilon_2=0.05,
                relative_step=False,
            ),
            lambda step: 0.5 * 0.5 ** (step / 3),
        ),
    ],
)
def test_rank_3_weight_decay_and_schedule_follow_keras3(kwargs, lr_fn):
    rng = np.random.default_rng(7)
    shapes = [(2, 3, 4), (3,), ()]
    init = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(12)]
    opt = Adafactor(**kwargs)
    variables = [Variable(x) for x in init]
    for gs in grads:
        opt.apply_gradients(zip(gs, variables))
    hyper = dict(beta_2_decay=-0.8, epsilon_2=1e-3, clip_threshold=1.0)
    hyper.update({k: v for k, v in kwargs.items() if k in hyper})
    want = keras3_reference(
        init,
        grads,
        lr_fn,
        kwargs.get("weight_decay", 0.0),
        hyper["beta_2_decay"],
        1e-30,
        hyper["epsilon_2"],
        hyper["clip_threshold"],
    )
    for var, x in zip(variables, want):
        np.testing.assert_allclose(var.numpy(), x, rtol=1e-5, atol=1e-6)
    assert opt.get_slot(variables[0], "r").shape == (2, 3)
    assert opt.get_slot(variables[0], "c").shape == (2, 4)


# -- hyperparameters, compile count, validation ----------------------------------


def test_setting_hyperparameters_never_retraces():
    opt = Adafactor(0.1, weight_decay=0.01)
    v = Variable([[1.0, -2.0], [0.5, 3.0]])
    g = np.float32([[0.5, 1.0], [-1.0, 0.2]])
    opt.apply_gradients([(g, v)])
    before = v.numpy()
    for value in (0.05, 0.2):
        opt.learning_rate = value
        opt.weight_decay = value
        opt.epsilon_2 = value
        opt.clip_threshold = value
        opt.beta_2_decay = -value
        opt.apply_gradients([(g, v)])
    assert opt._traces == 1
    assert float(opt.learning_rate) == pytest.approx(0.2)
    assert not np.allclose(v.numpy(), before)
    config = opt.get_config()
    assert (config["beta_2_decay"], config["clip_threshold"]) == (-0.2, 0.2)


def test_learning_rate_change_takes_effect():
    opt = Adafactor(0.1)
    v = Variable([1.0, -1.0])
    opt.apply_gradients([(np.float32([1.0, 1.0]), v)])
    np.testing.assert_allclose(v.numpy(), [0.9, -1.1], rtol=1e-6)
    opt.learning_rate = 0.01
    opt.apply_gradients([(np.float32([1.0, 1.0]), v)])
    rms = np.sqrt(np.mean(np.square([0.9, -1.1])))
    np.testing.assert_allclose(v.numpy(), [0.9, -1.1] - 0.01 * rms, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta_2_decay=0.5), r"`beta_2_decay` must be <= 0. Received: .*=0.5"),
        (dict(epsilon_1=-1e-30), r"`epsilon_1` must be >= 0. Received: .*=-1e-30"),
        (dict(epsilon_2=-0.1), r"`epsilon_2` must be >= 0. Received: .*=-0.1"),
        (dict(clip_threshold=0.0), r"`clip_threshold` must be > 0. Received: .*=0.0"),
        (dict(learning_rate=1), r"should be float.*learning_rate=1$"),
        (dict(lr=0.1), r"Argument\(s\) not recognized: \{'lr': 0.1\}"),
        (dict(clipnorm=1.0, clipvalue=1.0), "Only one of `clipnorm`, `clipvalue`"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Adafactor(**kwargs)
