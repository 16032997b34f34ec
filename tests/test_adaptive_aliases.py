"""Adaptive optimizer aliases: optax parity, state layout, dtypes, masks."""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

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


LR = _log_uniform(1e-3, 0.3)
B1 = st.floats(0.0, 0.99)
B2 = st.floats(0.9, 0.9999)
EPS = _log_uniform(1e-8, 1e-2)
WD = _log_uniform(1e-4, 0.1)


class Case(NamedTuple):
    name: str
    alias: str  # the same name in optaxish and optax
    hparams: dict  # drawn, passed traced
    static: dict = {}


CASES = [
    Case("adam", "adam", {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS}),
    Case(
        "adamw",
        "adamw",
        {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS, "weight_decay": WD},
    ),
    Case("nadam", "nadam", {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS}),
    Case("nadamw", "nadamw", {"learning_rate": LR, "b1": B1, "weight_decay": WD}),
    Case("amsgrad", "amsgrad", {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS}),
    Case("adamax", "adamax", {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS}),
    Case("adamaxw", "adamaxw", {"learning_rate": LR, "b1": B1, "weight_decay": WD}),
    Case(
        "rmsprop",
        "rmsprop",
        {"learning_rate": LR, "decay": st.floats(0.5, 0.99), "eps": EPS},
    ),
    Case(
        "rmsprop_centered_nesterov",
        "rmsprop",
        {"learning_rate": LR, "decay": st.floats(0.5, 0.99), "momentum": B1},
        {"centered": True, "nesterov": True, "eps_in_sqrt": False},
    ),
    Case(
        "adagrad",
        "adagrad",
        {"learning_rate": LR, "initial_accumulator_value": st.floats(0, 1), "eps": EPS},
    ),
    Case(
        "adadelta",
        "adadelta",
        {
            "learning_rate": st.floats(0.1, 2.0),
            "rho": st.floats(0.5, 0.99),
            "eps": EPS,
            "weight_decay": WD,
        },
    ),
    Case("adabelief", "adabelief", {"learning_rate": LR, "b1": B1, "b2": B2}),
    Case(
        "lion",
        "lion",
        {"learning_rate": LR, "b1": B1, "b2": B2, "weight_decay": WD},
    ),
    Case(
        "radam",
        "radam",
        {"learning_rate": LR, "b1": B1, "b2": st.floats(0.9, 0.999)},
    ),
    Case("yogi", "yogi", {"learning_rate": LR, "b1": B1, "b2": B2, "eps": EPS}),
    Case(
        "novograd",
        "novograd",
        {
            "learning_rate": LR,
            "b1": B1,
            "b2": st.floats(0.1, 0.99),
            "weight_decay": WD,
        },
    ),
]
CASE_IDS = [c.name for c in CASES]
CASES_BY_NAME = {c.name: c for c in CASES}
ALIAS_NAMES = sorted({c.alias for c in CASES})


def _tree(rng, lead=(), dtype=jnp.float32):
    return {k: jnp.asarray(rng.normal(size=lead + s), dtype) for k, s in SHAPES.items()}


def _trajectory(tx, params, noise):
    """Trains on ``g = 0.5 * params + noise_t`` (a noisy quadratic) in a scan."""

    def step(carry, n):
        p, s = carry
        g = jax.tree.map(lambda p, n: 0.5 * p + n, p, n)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(step, (params, tx.init(params)), noise)
    return params, state


def _default_args(alias: str) -> dict:
    # adadelta: optax's default (None) ascends; see the test below.
    return {"learning_rate": 1.0 if alias == "adadelta" else 0.05}


@functools.cache
def _compiled(name: str):
    """Per case: traced-hyperparameter runs of ours and optax's, plus runs with
    Python-number defaults (for the case named after the alias)."""
    case = CASES_BY_NAME[name]
    ours_fn, theirs_fn = getattr(optaxish, case.alias), getattr(optax, case.alias)
    ours_default = ours_fn(**_default_args(case.alias))
    theirs_default = theirs_fn(**_default_args(case.alias))

    def run(hp, params, noise):
        ours = ours_fn(**hp, **case.static)
        theirs = theirs_fn(**hp, **case.static)
        out = {
            "traced": (
                _trajectory(ours, params, noise)[0],
                _trajectory(theirs, params, noise)[0],
            )
        }
        if name == case.alias:
            out["default"] = (
                _trajectory(ours_default, params, noise),
                _trajectory(theirs_default, params, noise),
            )
        return out

    return jax.jit(run)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_parity_with_optax(case, data):
    hp = {k: data.draw(s, label=k) for k, s in case.hparams.items()}
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    params, noise = _tree(rng), _tree(rng, (STEPS,))
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
    ours, theirs = _compiled(case.name)(hp, params, noise)["traced"]
    for k in SHAPES:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-5, atol=1e-6)


def _first_steps(tx, params, steps=3):
    state = tx.init(params)
    for _ in range(steps):
        grads = jax.tree.map(lambda p: 0.5 * p + 0.25, params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", ALIAS_NAMES)
def test_defaults_match_optax_and_state_layout(name):
    ours_fn, theirs_fn = getattr(optaxish, name), getattr(optax, name)
    # Same argument names and defaults as optax (ours may add `nu_dtype`).
    ours_sig = inspect.signature(ours_fn).parameters
    theirs_sig = inspect.signature(theirs_fn).parameters
    assert [p for p in ours_sig if p != "nu_dtype"] == list(theirs_sig)
    for p, spec in theirs_sig.items():
        assert ours_sig[p].default == spec.default, p
    case = CASES_BY_NAME[name]
    hp = {k: jnp.float32(0.5) for k in case.hparams}  # only the shapes matter here
    rng = np.random.default_rng(3)
    params, noise = _tree(rng), _tree(rng, (STEPS,))
    (p_ours, s_ours), (p_theirs, s_theirs) = _compiled(name)(hp, params, noise)[
        "default"
    ]
    for k in SHAPES:
        np.testing.assert_allclose(p_ours[k], p_theirs[k], rtol=1e-5, atol=1e-6)
    assert isinstance(s_ours, tuple) and len(s_ours) == len(s_theirs)
    for a, b in zip(s_ours, s_theirs, strict=True):
        assert type(a).__name__ == type(b).__name__
        assert getattr(a, "_fields", None) == getattr(b, "_fields", None)
    leaves_ours, leaves_theirs = jax.tree.leaves(s_ours), jax.tree.leaves(s_theirs)
    assert len(leaves_ours) == len(leaves_theirs)
    for a, b in zip(leaves_ours, leaves_theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_first_element_exposes_the_moments():
    params = {"w": jnp.ones(3)}
    for name in ("adam", "adamw", "nadam", "nadamw", "amsgrad", "adamax", "radam"):
        state = getattr(optaxish, name)(0.1).init(params)
        assert state[0].mu["w"].shape == (3,) and state[0].nu["w"].shape == (3,)


def test_adadelta_without_learning_rate_descends():
    # Deviation from optax: optax.adadelta() (learning_rate=None) ascends.
    target = jnp.array([1.0, -2.0, 3.0])

    def loss(p):
        return jnp.sum((p - target) ** 2)

    def train(tx, steps=50):
        p = jnp.zeros(3)
        s = tx.init(p)
        for _ in range(steps):
            u, s = tx.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, u)
        return p

    start = float(loss(jnp.zeros(3)))
    ours = train(optaxish.adadelta())
    assert float(loss(ours)) < start
    # Same numbers as optax with an explicit unit learning rate ...
    np.testing.assert_allclose(ours, train(optax.adadelta(1.0)), rtol=1e-5, atol=1e-6)
    # ... whereas optax's default climbs.
    assert float(loss(train(optax.adadelta()))) > start


def test_learning_rate_and_weight_decay_schedules_match_optax():
    lr = optax.linear_schedule(0.1, 0.01, 30)
    wd = optax.exponential_decay(1e-2, 10, 0.5)
    rng = np.random.default_rng(7)
    params, noise = _tree(rng), _tree(rng, (STEPS,))

    @jax.jit
    def run(params, noise):
        ours = optaxish.adamw(lr, weight_decay=wd, mu_dtype=jnp.float32)
        theirs = optax.adamw(lr, weight_decay=wd, mu_dtype=jnp.float32)
        return _trajectory(ours, params, noise), _trajectory(theirs, params, noise)

    (p_ours, s_ours), (p_theirs, s_theirs) = run(params, noise)
    for k in SHAPES:
        np.testing.assert_allclose(p_ours[k], p_theirs[k], rtol=1e-5, atol=1e-6)
    assert int(s_ours[-1].count) == STEPS and int(s_ours[1].count) == STEPS


@pytest.mark.parametrize("name", ["adamw", "lion", "adamaxw"])
def test_weight_decay_masks_match_optax(name):
    rng = np.random.default_rng(11)
    params, noise = _tree(rng), _tree(rng, (STEPS,))
    mask_tree = {"w": True, "b": False, "s": True}

    def mask_fn(p):
        return jax.tree.map(lambda x: x.ndim > 1, p)

    @jax.jit
    def run(params, noise):
        out = []
        for mask in (mask_tree, mask_fn):
            ours = getattr(optaxish, name)(0.05, weight_decay=0.3, mask=mask)
            theirs = getattr(optax, name)(0.05, weight_decay=0.3, mask=mask)
            out.append(
                (
                    _trajectory(ours, params, noise)[0],
                    _trajectory(theirs, params, noise)[0],
                )
            )
        return out

    for p_ours, p_theirs in run(params, noise):
        for k in SHAPES:
            np.testing.assert_allclose(p_ours[k], p_theirs[k], rtol=1e-5, atol=1e-6)


def test_adadelta_weight_decay_mask():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    grads = {"w": jnp.zeros(2), "b": jnp.zeros(2)}
    tx = optaxish.adadelta(
        1.0, weight_decay=0.5, weight_decay_mask={"w": True, "b": False}
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    assert jnp.all(updates["w"] < 0) and jnp.all(updates["b"] == 0)


DTYPE_ALIASES = ["adam", "adamw", "nadam", "nadamw", "amsgrad"]


@pytest.mark.parametrize("name", DTYPE_ALIASES)
def test_mu_dtype_and_nu_dtype(name):
    params = {"w": jnp.ones((2, 3)), "s": jnp.ones(())}
    tx = getattr(optaxish, name)(0.1, mu_dtype=jnp.bfloat16, nu_dtype=jnp.float16)
    _, state = _first_steps(tx, params, steps=2)
    fields = {"mu": jnp.bfloat16, "nu": jnp.float16, "nu_max": jnp.float16}
    for field, dtype in fields.items():
        if field in state[0]._fields:
            for leaf in jax.tree.leaves(getattr(state[0], field)):
                assert leaf.dtype == dtype, field
    updates, _ = tx.update(params, state, params)
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))


def test_lion_mu_dtype():
    state = optaxish.lion(0.1, mu_dtype=jnp.bfloat16).init({"w": jnp.ones(2)})
    assert state[0].mu["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize("name", ALIAS_NAMES)
def test_bf16_params_keep_bf16_updates_and_state(name):
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "s": jnp.ones((), jnp.bfloat16)}
    tx = getattr(optaxish, name)(0.1)
    state = tx.init(params)
    updates, new_state = tx.update(params, state, params, loss=jnp.float32(1.0))
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert a.dtype == b.dtype
        if jnp.issubdtype(a.dtype, jnp.floating):
            assert a.dtype == jnp.bfloat16


def test_inject_hyperparams_keeps_numbers_and_bf16():
    params = {"w": jnp.ones((2, 3)), "s": jnp.ones(())}
    injected = optaxish.inject_hyperparams(optaxish.adamw)(
        learning_rate=0.05, b1=0.8, weight_decay=0.1
    )
    plain = optaxish.adamw(0.05, b1=0.8, weight_decay=0.1)
    p_inj, _ = _first_steps(injected, params)
    p_plain, _ = _first_steps(plain, params)
    for k in params:
        np.testing.assert_allclose(p_inj[k], p_plain[k], rtol=1e-5)
    bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    updates, _ = injected.update(bf16, injected.init(bf16), bf16)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: optaxish.adam(0.1, b1=1.5), r"`b1` must be in \[0.0, 1.0\). Received: b1=1.5"),
        (lambda: optaxish.adamw(0.1, b2=-1.0), r"Received: b2=-1.0"),
        (lambda: optaxish.amsgrad(0.1, eps=-1.0), r"Received: eps=-1.0"),
        (lambda: optaxish.rmsprop(0.1, decay=2.0), r"Received: decay=2.0"),
        (lambda: optaxish.adagrad(0.1, initial_accumulator_value=-1.0),
         r"Received: initial_accumulator_value=-1.0"),
        (lambda: optaxish.adadelta(rho=-0.5), r"Received: rho=-0.5"),
        (lambda: optaxish.lion(0.1, b2=1.5), r"Received: b2=1.5"),
        (lambda: optaxish.novograd(0.1, b1=-1.0), r"Received: b1=-1.0"),
        (lambda: optaxish.yogi(0.1, b1=1.0), r"Received: b1=1.0"),
    ],
)  # fmt: skip
def test_invalid_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()
