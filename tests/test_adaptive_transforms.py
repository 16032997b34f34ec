"""Adaptive-scaling transforms: optax parity, tf-keras variants, dtypes, errors."""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish

STEPS = 60
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def _log_uniform(lo: float, hi: float):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


B1 = st.floats(0.0, 0.99)
B2 = st.floats(0.9, 0.9999)
DECAY = st.floats(0.5, 0.99)
EPS = _log_uniform(1e-8, 1e-2)


class Case(NamedTuple):
    name: str
    ours: Any  # factory
    theirs: Any  # optax factory
    hparams: dict  # name -> strategy (drawn, passed traced)
    static: dict = {}  # static keyword arguments for both
    ours_only: dict = {}  # static keyword arguments for ours only
    needs_params: bool = False
    # Relative tolerance of the parity checks. NovoGrad divides by per-leaf
    # gradient norms plus a small eps over many steps: the two libraries'
    # float32 operation orders drift apart by up to ~1.3e-5 (seen once).
    rtol: float = 1e-5


CASES = [
    Case(
        "adam",
        optaxish.scale_by_adam,
        optax.scale_by_adam,
        {"b1": B1, "b2": B2, "eps": EPS, "eps_root": _log_uniform(1e-12, 1e-6)},
    ),
    Case(
        "adam_nesterov",
        optaxish.scale_by_adam,
        optax.scale_by_adam,
        {"b1": B1, "b2": B2, "eps": EPS},
        {"nesterov": True},
    ),
    Case(
        "amsgrad",
        optaxish.scale_by_amsgrad,
        optax.scale_by_amsgrad,
        {"b1": B1, "b2": B2, "eps": EPS},
    ),
    Case(
        "amsgrad_raw",
        optaxish.scale_by_amsgrad,
        optax.scale_by_amsgrad,
        {"b1": B1, "b2": B2, "eps": EPS},
        {"bias_correction_mu": False, "bias_correction_nu": False},
    ),
    Case(
        "adam_amsgrad_flag",
        optaxish.scale_by_adam,
        optax.scale_by_amsgrad,
        {"b1": B1, "b2": B2, "eps": EPS},
        ours_only={"amsgrad": True},
    ),
    Case(
        "adamax",
        optaxish.scale_by_adamax,
        optax.scale_by_adamax,
        {"b1": B1, "b2": B2, "eps": EPS},
    ),
    Case(
        "rms", optaxish.scale_by_rms, optax.scale_by_rms, {"decay": DECAY, "eps": EPS}
    ),
    Case(
        "rms_outside_biased",
        optaxish.scale_by_rms,
        optax.scale_by_rms,
        {"decay": DECAY, "eps": EPS, "initial_scale": st.floats(0.0, 1.0)},
        {"eps_in_sqrt": False, "bias_correction": True},
    ),
    Case(
        "stddev",
        optaxish.scale_by_stddev,
        optax.scale_by_stddev,
        {"decay": DECAY, "eps": EPS, "initial_scale": st.floats(0.5, 2.0)},
    ),
    Case(
        "stddev_outside_biased",
        optaxish.scale_by_stddev,
        optax.scale_by_stddev,
        {"decay": DECAY, "eps": EPS, "initial_scale": st.floats(0.5, 2.0)},
        {"eps_in_sqrt": False, "bias_correction": True},
    ),
    Case(
        "rss",
        optaxish.scale_by_rss,
        optax.scale_by_rss,
        {"initial_accumulator_value": st.floats(0.0, 1.0), "eps": EPS},
    ),
    Case(
        "adadelta",
        optaxish.scale_by_adadelta,
        optax.scale_by_adadelta,
        {"rho": DECAY, "eps": EPS},
    ),
    Case(
        "radam",
        optaxish.scale_by_radam,
        optax.scale_by_radam,
        {
            "b1": B1,
            "b2": st.floats(0.9, 0.999),
            "eps": EPS,
            "threshold": st.floats(3, 8),
        },
    ),
    Case(
        "radam_nesterov",
        optaxish.scale_by_radam,
        optax.scale_by_radam,
        {"b1": B1, "b2": st.floats(0.9, 0.999)},
        {"nesterov": True},
    ),
    Case(
        "yogi",
        optaxish.scale_by_yogi,
        optax.scale_by_yogi,
        {"b1": B1, "b2": B2, "eps": EPS, "initial_accumulator_value": EPS},
    ),
    Case(
        "belief",
        optaxish.scale_by_belief,
        optax.scale_by_belief,
        {"b1": B1, "b2": B2, "eps": EPS, "eps_root": EPS},
    ),
    Case(
        "belief_nesterov",
        optaxish.scale_by_belief,
        optax.scale_by_belief,
        {"b1": B1, "b2": B2, "eps": EPS},
        {"nesterov": True},
    ),
    Case(
        "novograd",
        optaxish.scale_by_novograd,
        optax.scale_by_novograd,
        {"b1": B1, "b2": st.floats(0.1, 0.99), "eps": EPS, "weight_decay": EPS},
        needs_params=True,
        rtol=3e-5,
    ),
    Case("lion", optaxish.scale_by_lion, optax.scale_by_lion, {"b1": B1, "b2": B2}),
    Case(
        "lion_smooth",
        optaxish.scale_by_lion,
        optax.scale_by_lion,
        {"b1": B1, "b2": B2, "smooth_beta": st.floats(0.5, 3.0)},
        {"mode": "smooth"},
    ),
    Case(
        "lion_refined",
        optaxish.scale_by_lion,
        optax.scale_by_lion,
        {"b1": B1, "b2": B2},
        {"mode": "refined"},
    ),
]
CASE_IDS = [c.name for c in CASES]
CASES_BY_NAME = {c.name: c for c in CASES}


def _tree(rng, lead=(), dtype=jnp.float32):
    return {k: jnp.asarray(rng.normal(size=lead + s), dtype) for k, s in SHAPES.items()}


def _trajectory(tx, params, grads):
    """Applies ``tx`` once per step of ``grads`` (leading axis) inside a scan."""

    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(step, (params, tx.init(params)), grads)
    return params, state


@functools.cache
def _compiled(name: str):
    """One compiled function per case: traced-hyperparameter runs of ours and
    optax's, plus runs with Python-number defaults (closure constants)."""
    case = CASES_BY_NAME[name]
    ours_default = case.ours(**case.static, **case.ours_only)
    theirs_default = case.theirs(**case.static)

    def run(hp, params, grads):
        ours = case.ours(**hp, **case.static, **case.ours_only)
        theirs = case.theirs(**hp, **case.static)
        return {
            "traced": (
                _trajectory(ours, params, grads)[0],
                _trajectory(theirs, params, grads)[0],
            ),
            "default": (
                _trajectory(ours_default, params, grads),
                _trajectory(theirs_default, params, grads),
            ),
        }

    return jax.jit(run)


def _default_hparams(case: Case) -> dict:
    sig = inspect.signature(case.ours).parameters
    return {k: jnp.asarray(sig[k].default, jnp.float32) for k in case.hparams}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_parity_with_optax_traced_hyperparameters(case, data):
    hp = {k: data.draw(s, label=k) for k, s in case.hparams.items()}
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    params, grads = _tree(rng), _tree(rng, (STEPS,))
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
    ours, theirs = _compiled(case.name)(hp, params, grads)["traced"]
    for k in SHAPES:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=case.rtol, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parity_with_optax_python_defaults_and_state_layout(case):
    rng = np.random.default_rng(0)
    params, grads = _tree(rng), _tree(rng, (STEPS,))
    out = _compiled(case.name)(_default_hparams(case), params, grads)["default"]
    (p_ours, s_ours), (p_theirs, s_theirs) = out
    for k in SHAPES:
        np.testing.assert_allclose(p_ours[k], p_theirs[k], rtol=case.rtol, atol=1e-6)
    assert type(s_ours).__name__ == type(s_theirs).__name__
    assert s_ours._fields == s_theirs._fields
    assert s_ours.__class__ is getattr(optaxish, type(s_ours).__name__)
    for a, b in zip(jax.tree.leaves(s_ours), jax.tree.leaves(s_theirs), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_eager_matches_jit():
    rng = np.random.default_rng(1)
    params, grads = _tree(rng), _tree(rng, (3,))
    for tx in (optaxish.scale_by_adam(nesterov=True), optaxish.scale_by_rss()):
        p, s = params, tx.init(params)
        for i in range(3):
            u, s = tx.update(jax.tree.map(lambda g, i=i: g[i], grads), s, p)
            p = optax.apply_updates(p, u)
        p_jit, s_jit = jax.jit(lambda p, g, tx=tx: _trajectory(tx, p, g))(params, grads)
        for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves((p_jit, s_jit))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# --- tf-keras variants vs NumPy transcriptions of keras-behaviour.md §2 ---------


def _np_keras_adam(x, grads, lr, b1, b2, eps, amsgrad=False):
    m = v = vhat = np.zeros_like(x)
    for t, g in enumerate(grads, 1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        vhat = np.maximum(vhat, v)
        x = x - alpha * m / (np.sqrt(vhat if amsgrad else v) + eps)
    return x


def _np_keras_nadam(x, grads, lr, b1, b2, eps, schedule_decay):
    m = v = np.zeros_like(x)
    cache = 1.0
    for t, g in enumerate(grads, 1):
        mu_t = b1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))
        mu_t1 = b1 * (1 - 0.5 * 0.96 ** (schedule_decay * (t + 1)))
        cache = cache * mu_t
        s_next = cache * mu_t1
        g_prime = g / (1 - cache)
        m = b1 * m + (1 - b1) * g
        m_prime = m / (1 - s_next)
        v = b2 * v + (1 - b2) * g * g
        v_prime = v / (1 - b2**t)
        m_bar = (1 - mu_t) * g_prime + mu_t1 * m_prime
        x = x - lr * m_bar / (np.sqrt(v_prime) + eps)
    return x


def _np_keras_adamax(x, grads, lr, b1, b2, eps):
    m = u = np.zeros_like(x)
    for t, g in enumerate(grads, 1):
        m = m + (g - m) * (1 - b1)
        u = np.maximum(b2 * u, np.abs(g))
        x = x - lr / (1 - b1**t) * m / (u + eps)
    return x


def _np_keras_rmsprop(x, grads, lr, rho, eps, momentum, centered):
    ms = mg = mom = np.zeros_like(x)
    for g in grads:
        ms = rho * ms + (1 - rho) * g * g
        mg = rho * mg + (1 - rho) * g
        den = ms - mg * mg if centered else ms
        if momentum:
            mom = momentum * mom + lr * g / np.sqrt(den + eps)
            x = x - mom
        else:
            x = x - lr * g / (np.sqrt(den) + eps)
    return x


def _np_keras_adagrad(x, grads, lr, initial_accumulator_value, eps):
    acc = np.full_like(x, initial_accumulator_value)
    for g in grads:
        acc = acc + g * g
        x = x - lr * g / (np.sqrt(acc) + eps)
    return x


def _np_keras_adadelta(x, grads, lr, rho, eps):
    eg = edx = np.zeros_like(x)
    for g in grads:
        eg = rho * eg + (1 - rho) * g * g
        delta = np.sqrt(edx + eps) / np.sqrt(eg + eps) * g
        edx = rho * edx + (1 - rho) * delta * delta
        x = x - lr * delta
    return x


def _sgd_chain(first, hp, momentum=None):
    steps = [first, optaxish.scale_by_learning_rate(hp["lr"])]
    if momentum is not None:
        steps.append(optaxish.trace(momentum))
    return optaxish.chain(*steps)


# name -> (our chain from traced hyperparameters, numpy reference, strategies)
KERAS = {
    "adam": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_adam(hp["b1"], hp["b2"], hp["eps"], epsilon_hat=True), hp
        ),
        lambda x, g, hp: _np_keras_adam(x, g, hp["lr"], hp["b1"], hp["b2"], hp["eps"]),
    ),
    "adam_amsgrad": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_adam(
                hp["b1"], hp["b2"], hp["eps"], epsilon_hat=True, amsgrad=True
            ),
            hp,
        ),
        lambda x, g, hp: _np_keras_adam(
            x, g, hp["lr"], hp["b1"], hp["b2"], hp["eps"], amsgrad=True
        ),
    ),
    "nadam_legacy": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_adam(
                hp["b1"],
                hp["b2"],
                hp["eps"],
                nesterov=True,
                momentum_schedule_decay=0.004,
            ),
            hp,
        ),
        lambda x, g, hp: _np_keras_nadam(
            x, g, hp["lr"], hp["b1"], hp["b2"], hp["eps"], 0.004
        ),
    ),
    "nadam_keras3": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_adam(
                hp["b1"],
                hp["b2"],
                hp["eps"],
                nesterov=True,
                momentum_schedule_decay=1.0,
            ),
            hp,
        ),
        lambda x, g, hp: _np_keras_nadam(
            x, g, hp["lr"], hp["b1"], hp["b2"], hp["eps"], 1.0
        ),
    ),
    "adamax": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_adamax(hp["b1"], hp["b2"], hp["eps"], eps_in_max=False),
            hp,
        ),
        lambda x, g, hp: _np_keras_adamax(
            x, g, hp["lr"], hp["b1"], hp["b2"], hp["eps"]
        ),
    ),
    "rmsprop": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_rms(hp["rho"], hp["eps"], eps_in_sqrt=False), hp
        ),
        lambda x, g, hp: _np_keras_rmsprop(
            x, g, hp["lr"], hp["rho"], hp["eps"], None, False
        ),
    ),
    "rmsprop_centered": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_stddev(hp["rho"], hp["eps"], eps_in_sqrt=False), hp
        ),
        lambda x, g, hp: _np_keras_rmsprop(
            x, g, hp["lr"], hp["rho"], hp["eps"], None, True
        ),
    ),
    "rmsprop_momentum": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_rms(hp["rho"], hp["eps"]), hp, momentum=hp["momentum"]
        ),
        lambda x, g, hp: _np_keras_rmsprop(
            x, g, hp["lr"], hp["rho"], hp["eps"], hp["momentum"], False
        ),
    ),
    "rmsprop_momentum_centered": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_stddev(hp["rho"], hp["eps"]), hp, momentum=hp["momentum"]
        ),
        lambda x, g, hp: _np_keras_rmsprop(
            x, g, hp["lr"], hp["rho"], hp["eps"], hp["momentum"], True
        ),
    ),
    "adagrad": (
        lambda hp: _sgd_chain(
            optaxish.scale_by_rss(hp["acc0"], hp["eps"], eps_in_sqrt=False), hp
        ),
        lambda x, g, hp: _np_keras_adagrad(x, g, hp["lr"], hp["acc0"], hp["eps"]),
    ),
    "adadelta": (
        lambda hp: _sgd_chain(optaxish.scale_by_adadelta(hp["rho"], hp["eps"]), hp),
        lambda x, g, hp: _np_keras_adadelta(x, g, hp["lr"], hp["rho"], hp["eps"]),
    ),
}
KERAS_HPARAMS = {
    "lr": st.floats(1e-3, 0.1),
    "b1": st.floats(0.5, 0.99),
    "b2": st.floats(0.9, 0.9999),
    "eps": _log_uniform(1e-4, 0.5),
    "rho": st.floats(0.5, 0.99),
    "momentum": st.floats(0.05, 0.9),  # tf-keras uses momentum > 0
    "acc0": st.floats(0.0, 1.0),
}


@functools.cache
def _keras_compiled(name: str):
    def run(hp, x, grads):
        tx = KERAS[name][0](hp)

        def step(carry, g):
            x, s = carry
            u, s = tx.update(g, s, x)
            return (x + u, s), None

        return jax.lax.scan(step, (x, tx.init(x)), grads)[0][0]

    return jax.jit(run)


@pytest.mark.parametrize("name", sorted(KERAS))
@settings(max_examples=8, deadline=None)
@given(hp=st.fixed_dictionaries(KERAS_HPARAMS), seed=st.integers(0, 2**16))
def test_keras_variants_match_numpy_transcriptions(name, hp, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=6)
    # Gradient magnitudes from 1e-3 to 10 so that epsilon placement matters.
    grads = rng.normal(size=(STEPS, 6)) * 10.0 ** rng.uniform(-3, 1, size=(STEPS, 6))
    hp32 = {k: np.float32(v) for k, v in hp.items()}
    expected = KERAS[name][1](x.astype(np.float32).astype(np.float64), grads, hp32)
    got = _keras_compiled(name)(
        {k: jnp.asarray(v) for k, v in hp32.items()},
        jnp.asarray(x, jnp.float32),
        jnp.asarray(grads, jnp.float32),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


_X0 = [1.0, -2.0, 0.5]
_G3 = [[0.5, -1.0, 2.0], [-0.3, 0.2, 1.5], [1.0, 0.0, -2.0]]

# keras-behaviour.md §2 "step3" reference values (tf-keras legacy unless noted).
GOLDEN = {
    "adam": (optaxish.scale_by_adam(eps=0.5, epsilon_hat=True), 0.1, None,
             [0.991981, -1.9885656, 0.4721009]),
    "rmsprop": (optaxish.scale_by_rms(0.9, 0.5, eps_in_sqrt=False), 0.1, None,
                [0.8517921, -1.9022808, 0.3415494]),
    "rmsprop_keras3": (optaxish.scale_by_rms(0.9, 0.5), 0.1, None,
                       [0.84599, -1.89685, 0.31263]),
    "rmsprop_centered_momentum": (optaxish.scale_by_stddev(0.9, 0.5), 0.1, 0.5,
                                  [0.8132211, -1.8112559, 0.0628558]),
    "rmsprop_centered": (optaxish.scale_by_stddev(0.9, 0.5, eps_in_sqrt=False), 0.1,
                         None, [0.8483249, -1.9000471, 0.3293387]),
    "adagrad": (optaxish.scale_by_rss(0.1, 0.5, eps_in_sqrt=False), 0.1, None,
                [0.9211606, -1.9481917, 0.4249218]),
    "adagrad_keras3": (optaxish.scale_by_rss(0.1, 0.5), 0.1, None,
                       [0.904914, -1.93656, 0.410155]),
    "adadelta": (optaxish.scale_by_adadelta(0.95, 0.5), 1.0, None,
                 [-0.1503105, -1.2457999, -0.8180673]),
    "adamax": (optaxish.scale_by_adamax(eps=0.5, eps_in_max=False), 0.1, None,
               [0.91418, -1.8932367, 0.3361533]),
    "nadam": (
        optaxish.scale_by_adam(eps=0.5, nesterov=True, momentum_schedule_decay=0.004),
        0.1, None, [0.9127064, -1.9353072, 0.4122426],
    ),
    "nadam_keras3": (
        optaxish.scale_by_adam(eps=0.5, nesterov=True, momentum_schedule_decay=1.0),
        0.1, None, [0.914372, -1.933624, 0.408289],
    ),
}  # fmt: skip


def _apply(tx, x, grads):
    x = jnp.asarray(x, jnp.float32)
    state = tx.init(x)
    for g in grads:
        u, state = tx.update(jnp.asarray(g, jnp.float32), state, x)
        x = optaxish.apply_updates(x, u)
    return np.asarray(x)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_keras_reference_numbers(name):
    first, lr, momentum, expected = GOLDEN[name]
    tx = _sgd_chain(first, {"lr": lr}, momentum)
    np.testing.assert_allclose(_apply(tx, _X0, _G3), expected, rtol=0, atol=2e-6)


def test_keras_docstring_numbers():
    # Adam(0.1) / Nadam(0.2) on x = 10 with loss x^2 / 2: one step.
    adam = _sgd_chain(optaxish.scale_by_adam(eps=1e-7, epsilon_hat=True), {"lr": 0.1})
    np.testing.assert_allclose(_apply(adam, 10.0, [10.0]), 9.9, rtol=1e-6)
    nadam = _sgd_chain(
        optaxish.scale_by_adam(eps=1e-7, nesterov=True, momentum_schedule_decay=0.004),
        {"lr": 0.2},
    )
    np.testing.assert_allclose(_apply(nadam, 10.0, [10.0]), 9.78871, atol=1e-5)
    # AMSGrad differs from Adam only once v decreases.
    grads = [10.0, 0.1, 0.1]
    for amsgrad, expected in ((True, -0.220674), (False, -0.220752)):
        first = optaxish.scale_by_adam(eps=1e-7, epsilon_hat=True, amsgrad=amsgrad)
        got = _apply(_sgd_chain(first, {"lr": 0.1}), 0.0, grads)
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_keras_options_change_the_numbers():
    # Each Keras option must differ from optax's form where epsilon matters.
    grads = [[1e-3, 2.0], [-2e-3, 0.1], [5e-4, -0.1]]
    pairs = [
        (optaxish.scale_by_adam(eps=0.5), optaxish.scale_by_adam(eps=0.5, epsilon_hat=True)),
        (optaxish.scale_by_adamax(b2=0.5, eps=0.5),
         optaxish.scale_by_adamax(b2=0.5, eps=0.5, eps_in_max=False)),
        (optaxish.scale_by_rss(0.0, 0.5), optaxish.scale_by_rss(0.0, 0.5, eps_in_sqrt=False)),
        (optaxish.scale_by_adam(nesterov=True),
         optaxish.scale_by_adam(nesterov=True, momentum_schedule_decay=0.004)),
    ]  # fmt: skip
    for a, b in pairs:
        xa, xb = _apply(a, [0.0, 0.0], grads), _apply(b, [0.0, 0.0], grads)
        assert np.max(np.abs(xa - xb) / (np.abs(xa) + 1e-12)) > 1e-2


def test_nadam_state_tracks_momentum_product():
    tx = optaxish.scale_by_adam(nesterov=True, momentum_schedule_decay=0.004)
    state = tx.init({"w": jnp.zeros(2)})
    assert isinstance(state, optaxish.ScaleByNadamState)
    for _ in range(4):
        _, state = tx.update({"w": jnp.ones(2)}, state)
    t = np.arange(1, 5)
    expected = np.prod(0.9 * (1 - 0.5 * 0.96 ** (0.004 * t)))
    np.testing.assert_allclose(state.mu_product, expected, rtol=1e-6)
    assert state.mu_product.dtype == jnp.float32 and int(state.count) == 4


def test_amsgrad_flag_state_and_raw_maximum():
    state = optaxish.scale_by_adam(amsgrad=True).init(jnp.zeros(2))
    assert isinstance(state, optaxish.ScaleByAmsgradState)
    tx = optaxish.scale_by_adam(b2=0.5, epsilon_hat=True, amsgrad=True)
    state = tx.init(jnp.zeros(1))
    for g in (4.0, 0.0):
        _, state = tx.update(jnp.array([g]), state)
    # raw v: 8 then 4; the maximum keeps the raw 8 (bias-corrected would be 10.67).
    np.testing.assert_allclose(state.nu_max, [8.0])


# --- dtypes ---------------------------------------------------------------------

# (factory, static kwargs, {state field: "mu" | "nu"}, dtype arguments accepted)
DTYPE_CASES = {
    "adam": (optaxish.scale_by_adam, {}, {"mu": "mu", "nu": "nu"}),
    "adam_amsgrad": (
        optaxish.scale_by_adam,
        {"amsgrad": True},
        {"mu": "mu", "nu": "nu", "nu_max": "nu"},
    ),
    "nadam_schedule": (
        optaxish.scale_by_adam,
        {"nesterov": True, "momentum_schedule_decay": 0.004},
        {"mu": "mu", "nu": "nu"},
    ),
    "amsgrad": (
        optaxish.scale_by_amsgrad,
        {},
        {"mu": "mu", "nu": "nu", "nu_max": "nu"},
    ),
    "adamax": (optaxish.scale_by_adamax, {}, {"mu": "mu", "nu": "nu"}),
    "rms": (optaxish.scale_by_rms, {"bias_correction": True}, {"nu": "nu"}),
    "stddev": (optaxish.scale_by_stddev, {}, {"mu": "mu", "nu": "nu"}),
    "rss": (optaxish.scale_by_rss, {}, {"sum_of_squares": "nu"}),
    "adadelta": (optaxish.scale_by_adadelta, {}, {"e_g": "nu", "e_x": "nu"}),
    "radam": (optaxish.scale_by_radam, {}, {"mu": "mu", "nu": "nu"}),
    "yogi": (optaxish.scale_by_yogi, {}, {"mu": "mu", "nu": "nu"}),
    "belief": (optaxish.scale_by_belief, {}, {"mu": "mu", "nu": "nu"}),
    "novograd": (optaxish.scale_by_novograd, {}, {"mu": "mu", "nu": "nu"}),
    "lion": (optaxish.scale_by_lion, {}, {"mu": "mu"}),
}


def _dtype_kwargs(fields, mu_dtype, nu_dtype):
    kinds = set(fields.values())
    out = {}
    if "mu" in kinds:
        out["mu_dtype"] = mu_dtype
    if "nu" in kinds:
        out["nu_dtype"] = nu_dtype
    return out


def _two_steps(tx, params):
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    state = tx.init(params)
    init_state = state
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
    return init_state, updates, state


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
@pytest.mark.parametrize(
    "param_dtype,mu_dtype,nu_dtype",
    [
        (jnp.float32, jnp.bfloat16, jnp.float16),
        (jnp.bfloat16, jnp.float32, jnp.float32),
    ],
)
def test_mu_and_nu_dtypes_are_respected(name, param_dtype, mu_dtype, nu_dtype):
    factory, static, fields = DTYPE_CASES[name]
    tx = factory(**static, **_dtype_kwargs(fields, mu_dtype, nu_dtype))
    params = {"a": jnp.ones((2, 3), param_dtype), "s": jnp.ones((), param_dtype)}
    init_state, updates, state = _two_steps(tx, params)
    want = {"mu": mu_dtype, "nu": nu_dtype}
    for field, kind in fields.items():
        for s in (init_state, state):
            for leaf in jax.tree.leaves(getattr(s, field)):
                assert leaf.dtype == want[kind], (field, leaf.dtype)
    if "count" in state._fields:
        assert state.count.dtype == jnp.int32
    for u in jax.tree.leaves(updates):
        assert u.dtype == param_dtype  # the gradient dtype
        assert jnp.all(jnp.isfinite(u))


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
def test_bf16_params_keep_bf16_state_and_updates(name):
    factory, static, fields = DTYPE_CASES[name]
    params = {"a": jnp.ones((2, 3), jnp.bfloat16), "s": jnp.ones((), jnp.bfloat16)}
    init_state, updates, state = _two_steps(factory(**static), params)
    for field in fields:
        for leaf in jax.tree.leaves(
            (getattr(init_state, field), getattr(state, field))
        ):
            assert leaf.dtype == jnp.bfloat16, field
    assert jax.tree.structure(init_state) == jax.tree.structure(state)
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16


TRACED_HPARAMS = {
    "adam": (optaxish.scale_by_adam, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "nadam_schedule": (
        functools.partial(optaxish.scale_by_adam, nesterov=True),
        {"b1": 0.9, "b2": 0.999, "momentum_schedule_decay": 0.004},
    ),
    "adam_eps_hat": (
        functools.partial(optaxish.scale_by_adam, epsilon_hat=True, amsgrad=True),
        {"b1": 0.9, "b2": 0.999, "eps": 1e-7},
    ),
    "adamax": (optaxish.scale_by_adamax, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "rms": (optaxish.scale_by_rms, {"decay": 0.9, "eps": 1e-8, "initial_scale": 0.1}),
    "stddev": (optaxish.scale_by_stddev, {"decay": 0.9, "eps": 1e-8}),
    "rss": (optaxish.scale_by_rss, {"initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adadelta": (optaxish.scale_by_adadelta, {"rho": 0.9, "eps": 1e-6}),
    "radam": (optaxish.scale_by_radam, {"b1": 0.9, "b2": 0.999, "threshold": 5.0}),
    "yogi": (optaxish.scale_by_yogi, {"b2": 0.999, "initial_accumulator_value": 1e-6}),
    "belief": (optaxish.scale_by_belief, {"b1": 0.9, "b2": 0.999, "eps_root": 1e-16}),
    "novograd": (optaxish.scale_by_novograd, {"b2": 0.25, "weight_decay": 0.1}),
    "lion": (optaxish.scale_by_lion, {"b1": 0.9, "b2": 0.99}),
}


@pytest.mark.parametrize("name", sorted(TRACED_HPARAMS))
def test_float32_traced_hyperparameters_do_not_promote_bf16(name):
    factory, hp = TRACED_HPARAMS[name]
    params = {"a": jnp.ones((2, 3), jnp.bfloat16), "s": jnp.ones((), jnp.bfloat16)}

    @jax.jit
    def run(hp, params):
        tx = factory(**hp)
        return _two_steps(tx, params)

    hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
    init_state, updates, state = run(hp, params)
    assert jax.tree.structure(init_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(init_state), jax.tree.leaves(state)):
        assert a.dtype == b.dtype
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16


# --- structure, None leaves, errors ----------------------------------------------

ALL_TRANSFORMS = {
    "scale_by_adam": optaxish.scale_by_adam,
    "scale_by_amsgrad": optaxish.scale_by_amsgrad,
    "scale_by_adamax": optaxish.scale_by_adamax,
    "scale_by_rms": optaxish.scale_by_rms,
    "scale_by_stddev": optaxish.scale_by_stddev,
    "scale_by_rss": optaxish.scale_by_rss,
    "scale_by_adadelta": optaxish.scale_by_adadelta,
    "scale_by_radam": optaxish.scale_by_radam,
    "scale_by_yogi": optaxish.scale_by_yogi,
    "scale_by_belief": optaxish.scale_by_belief,
    "scale_by_novograd": optaxish.scale_by_novograd,
    "scale_by_lion": optaxish.scale_by_lion,
}


@pytest.mark.parametrize("name", sorted(ALL_TRANSFORMS))
def test_none_leaves_empty_trees_and_extra_args(name):
    tx = ALL_TRANSFORMS[name]()
    params = {"a": jnp.ones(3), "frozen": None}
    grads = {"a": jnp.array([0.5, -1.0, 2.0]), "frozen": None}
    updates, _ = tx.update(grads, tx.init(params), params, value=1.0, other="x")
    assert updates["frozen"] is None
    assert updates["a"].shape == (3,) and jnp.all(jnp.isfinite(updates["a"]))
    updates, state = tx.update({}, tx.init({}), {})
    assert updates == {}


@pytest.mark.parametrize("name", sorted(ALL_TRANSFORMS))
def test_structure_mismatch_names_the_state(name):
    tx = ALL_TRANSFORMS[name]()
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(
        ValueError, match=r"`updates` does not have the structure of `state\."
    ):
        tx.update({"b": jnp.ones(2)}, state, {"b": jnp.ones(2)})


@pytest.mark.parametrize(
    "factory,kwargs,message",
    [
        (optaxish.scale_by_adam, {"b1": 1.0}, r"`b1` must be in \[0.0, 1.0\). Received: b1=1.0"),
        (optaxish.scale_by_adam, {"b2": -0.1}, r"`b2` must be in \[0.0, 1.0\). Received: b2=-0.1"),
        (optaxish.scale_by_adam, {"eps": -1e-8}, r"`eps` must be >= 0.0. Received: eps=-1e-08"),
        (optaxish.scale_by_adam, {"eps": float("nan")}, r"Received: eps=nan"),
        (optaxish.scale_by_adam, {"eps_root": -1.0}, r"Received: eps_root=-1.0"),
        (optaxish.scale_by_adam, {"momentum_schedule_decay": 0.004}, r"needs `nesterov=True`"),
        (optaxish.scale_by_adam, {"nesterov": True, "momentum_schedule_decay": -1.0},
         r"`momentum_schedule_decay` must be >= 0.0"),
        (optaxish.scale_by_adam, {"amsgrad": True, "nesterov": True}, r"`amsgrad=True` does not support"),
        (optaxish.scale_by_adam, {"amsgrad": True, "b2": 1.5}, r"Received: b2=1.5"),
        (optaxish.scale_by_amsgrad, {"epsilon_hat": True}, r"needs `bias_correction_nu=False`"),
        (optaxish.scale_by_amsgrad, {"b1": 2}, r"Received: b1=2"),
        (optaxish.scale_by_adamax, {"b1": 1.5}, r"Received: b1=1.5"),
        (optaxish.scale_by_adamax, {"eps": -1.0}, r"Received: eps=-1.0"),
        (optaxish.scale_by_rms, {"decay": 1.5}, r"`decay` must be in \[0.0, 1.0\]. Received: decay=1.5"),
        (optaxish.scale_by_rms, {"initial_scale": -1.0}, r"Received: initial_scale=-1.0"),
        (optaxish.scale_by_stddev, {"eps": -1.0}, r"Received: eps=-1.0"),
        (optaxish.scale_by_rss, {"initial_accumulator_value": -0.1},
         r"`initial_accumulator_value` must be >= 0.0"),
        (optaxish.scale_by_adadelta, {"rho": 2.0}, r"Received: rho=2.0"),
        (optaxish.scale_by_radam, {"b2": 1.0}, r"Received: b2=1.0"),
        (optaxish.scale_by_yogi, {"initial_accumulator_value": -1.0}, r"Received: initial_accumulator_value=-1.0"),
        (optaxish.scale_by_belief, {"b1": -0.1}, r"Received: b1=-0.1"),
        (optaxish.scale_by_novograd, {"weight_decay": -1.0}, r"Received: weight_decay=-1.0"),
        (optaxish.scale_by_lion, {"b2": 1.1}, r"Received: b2=1.1"),
        (optaxish.scale_by_lion, {"mode": "soft"}, r"`mode` must be one of \['hard', 'smooth', 'refined'\]. Received: mode='soft'"),
    ],
)  # fmt: skip
def test_invalid_hyperparameters_raise(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_traced_hyperparameters_are_not_validated():
    @jax.jit
    def run(b1):
        tx = optaxish.scale_by_adam(b1=b1)
        return tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))[0]

    assert run(jnp.float32(0.5)).shape == (2,)
    assert optaxish.scale_by_adam(b1=jnp.float32(1.5)) is not None


def test_novograd_needs_params_only_with_weight_decay():
    tx = optaxish.scale_by_novograd()
    updates, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
    np.testing.assert_allclose(updates, np.full(2, 1 / np.sqrt(2)), rtol=1e-6)
    tx = optaxish.scale_by_novograd(weight_decay=0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))


def test_x64_dtype_argument_is_canonicalised():
    # float64 without x64 falls back to float32, without a warning.
    tx = optaxish.scale_by_adam(mu_dtype=jnp.float64, nu_dtype=jnp.float64)
    state = tx.init(jnp.zeros(2))
    assert state.mu.dtype == jnp.float32 and state.nu.dtype == jnp.float32


def test_adam_divides_once_per_element():
    # The bias corrections are multiplications by a reciprocal computed once;
    # only `m_hat / (sqrt(v_hat) + eps)` divides per element.
    import re

    tx = optaxish.chain(optaxish.scale_by_adam(), optaxish.scale(-1e-3))
    params = {"a": jnp.ones((64, 32)), "b": jnp.ones(48)}

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return optaxish.apply_updates(p, u), s

    hlo = jax.jit(step).lower(params, params, tx.init(params)).compile().as_text()
    per_element = re.findall(r"= f32\[\d[\d,]*\][^ ]* divide\(", hlo)
    assert len(per_element) == 2  # one per leaf
