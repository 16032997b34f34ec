"""sgd, sign_sgd, noisy_sgd, lars, lamb, adafactor (vs optax) and ftrl."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish as ox

STEPS = 50
SETTINGS = settings(max_examples=8, deadline=None)
seeds = st.integers(0, 2**16)
OPTAX_ALIASES = ["sgd", "sign_sgd", "noisy_sgd", "lars", "lamb", "adafactor"]


def make_params(seed, dtype=jnp.float32, small=False):
    k = jax.random.split(jax.random.key(seed), 4)
    tree = {
        "w": jax.random.normal(k[0], (4, 3), dtype),
        "b": jax.random.normal(k[1], (3,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
        "nested": {"c": jax.random.normal(k[3], (2, 5, 3), dtype)},
    }
    if small:  # fewer leaves for the costly-to-compile random-noise tests
        del tree["nested"]
    return tree


def make_noise(seed, params, steps=STEPS):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 7919), len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, (steps, *x.shape), x.dtype) for k, x in zip(keys, leaves)]
    )


def _scan(tx, apply, params, noise):
    def step(carry, n):
        p, s = carry
        g = jax.tree.map(lambda x, e: x + e, p, n)
        u, s = tx.update(g, s, p)
        return (apply(p, u), s), None

    (p, s), _ = jax.lax.scan(step, (params, tx.init(params)), noise)
    return p, s


@jax.jit(static_argnums=(0, 1, 2))
def _run_cached(make_tx, apply, static, params, noise, h):
    # Traced hyperparameters: one compilation serves every example.
    return _scan(make_tx(h, **dict(static)), apply, params, noise)[0]


def assert_trees_close(got, want, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol), got, want
    )


def assert_parity(name, seed, static=(), small=False, **h):
    params = make_params(seed, small=small)
    noise = make_noise(seed, params)
    h = {
        k: jnp.int32(v) if isinstance(v, int) else jnp.float32(v) for k, v in h.items()
    }
    static = tuple(sorted(static.items())) if static else ()
    ours, theirs = CASES[name]
    got = _run_cached(ours, ox.apply_updates, static, params, noise, h)
    want = _run_cached(theirs, optax.apply_updates, static, params, noise, h)
    assert_trees_close(got, want)


def _both(build):
    return (lambda h, **s: build(ox, h, **s), lambda h, **s: build(optax, h, **s))


MASK = {"w": True, "b": False, "s": False, "nested": {"c": True}}


def _lr(h, scheduled):
    return (lambda c: h["lr"] * 0.97**c) if scheduled else h["lr"]


CASES = {
    "sgd": _both(
        lambda lib, h, momentum, nesterov, scheduled: lib.sgd(
            _lr(h, scheduled),
            momentum=h["momentum"] if momentum else None,
            nesterov=nesterov,
        )
    ),
    "sign_sgd": _both(lambda lib, h, scheduled: lib.sign_sgd(_lr(h, scheduled))),
    "noisy_sgd": _both(
        lambda lib, h: lib.noisy_sgd(
            h["lr"], h["eta"], h["gamma"], key=jax.random.key(h["key"])
        )
    ),
    "lars": _both(
        lambda lib, h, nesterov, masked: lib.lars(
            h["lr"],
            weight_decay=h["wd"],
            weight_decay_mask=MASK if masked else True,
            trust_coefficient=h["coef"],
            eps=h["eps"],
            trust_ratio_mask=(lambda p: MASK) if masked else True,
            momentum=h["momentum"],
            nesterov=nesterov,
        )
    ),
    "lamb": _both(
        lambda lib, h, masked: lib.lamb(
            h["lr"],
            b1=h["b1"],
            b2=h["b2"],
            eps=h["eps"],
            eps_root=h["eps_root"],
            weight_decay=h["wd"],
            mask=MASK if masked else None,
        )
    ),
    "adafactor": _both(
        lambda lib, h, lr, scale, clip, momentum, wd, factored: lib.adafactor(
            learning_rate=_lr(h, lr == "schedule") if lr else None,
            min_dim_size_to_factor=3,
            decay_rate=h["decay_rate"],
            decay_offset=h["offset"],
            multiply_by_parameter_scale=scale,
            clipping_threshold=h["clip"] if clip else None,
            momentum=h["momentum"] if momentum else None,
            weight_decay_rate=h["wd"] if wd else None,
            weight_decay_mask=MASK if wd == "masked" else None,
            factored=factored,
        )
    ),
}


@SETTINGS
@given(
    seed=seeds,
    lr=st.floats(0.01, 0.3),
    momentum=st.floats(0.0, 0.95),
    # Plain momentum is trace parity (test_basic_transforms); Python floats
    # are covered by the doctests.
    flags=st.sampled_from([(False, False, False), (True, True, True)]),
)
def test_sgd_parity(seed, lr, momentum, flags):
    static = dict(zip(("momentum", "nesterov", "scheduled"), flags))
    assert_parity("sgd", seed, static, lr=lr, momentum=momentum)


@SETTINGS
@given(seed=seeds, lr=st.floats(0.001, 0.1), scheduled=st.booleans())
def test_sign_sgd_parity(seed, lr, scheduled):
    assert_parity("sign_sgd", seed, {"scheduled": scheduled}, lr=lr)


@SETTINGS
@given(
    seed=seeds,
    lr=st.floats(0.01, 0.3),
    eta=st.floats(0.0, 0.5),
    gamma=st.floats(0.0, 1.0),
    key=st.integers(0, 1000),
)
def test_noisy_sgd_parity(seed, lr, eta, gamma, key):
    assert_parity("noisy_sgd", seed, small=True, lr=lr, eta=eta, gamma=gamma, key=key)


@SETTINGS
@given(
    seed=seeds,
    lr=st.floats(0.01, 1.0),
    wd=st.floats(0.0, 0.1),
    coef=st.floats(1e-3, 0.1),
    eps=st.floats(0.0, 1e-3),
    momentum=st.floats(0.0, 0.95),
)
def test_lars_parity(seed, lr, wd, coef, eps, momentum):
    # Nesterov and masks here; the defaults run in test_python_float_defaults.
    static = {"nesterov": True, "masked": True}
    h = dict(lr=lr, wd=wd, coef=coef, eps=eps, momentum=momentum)
    assert_parity("lars", seed, static, **h)


@SETTINGS
@given(
    seed=seeds,
    lr=st.floats(0.001, 0.05),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.9, 0.9999),
    eps=st.floats(1e-8, 1e-3),
    eps_root=st.sampled_from([0.0, 1e-8]),
    wd=st.floats(0.0, 0.1),
)
def test_lamb_parity(seed, lr, b1, b2, eps, eps_root, wd):
    # With a mask; the unmasked default runs in test_python_float_defaults.
    h = dict(lr=lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root, wd=wd)
    assert_parity("lamb", seed, {"masked": True}, **h)


ADAFACTOR_LAYOUTS = [
    # learning rate, parameter scale, clipping, momentum, weight decay, factored
    # (the default layout runs in test_python_float_defaults_parity)
    (None, False, False, True, "plain", False),
    ("schedule", True, True, True, "masked", True),
]


@SETTINGS
@given(
    seed=seeds,
    layout=st.sampled_from(ADAFACTOR_LAYOUTS),
    lr=st.floats(0.001, 0.1),
    decay_rate=st.floats(0.5, 1.0),
    offset=st.sampled_from([0, 3]),
    clip=st.floats(0.5, 2.0),
    momentum=st.floats(0.0, 0.95),
    wd=st.floats(0.0, 0.1),
)
def test_adafactor_parity(seed, layout, lr, decay_rate, offset, clip, momentum, wd):
    static = dict(zip(("lr", "scale", "clip", "momentum", "wd", "factored"), layout))
    h = dict(
        lr=lr,
        decay_rate=decay_rate,
        offset=offset,
        clip=clip,
        momentum=momentum,
        wd=wd,
    )
    if layout[0] is None:  # no learning rate: keep steps small through the params
        h["lr"] = 0.0
    assert_parity("adafactor", seed, static, **h)


def test_python_float_defaults_parity():
    params = make_params(8)
    noise = make_noise(8, params)
    # Python-float defaults take other paths (e.g. the zero weight decay
    # shortcut in lars and lamb) than the traced runs above.
    for name, args in [("lars", (0.5,)), ("lamb", (0.01,)), ("adafactor", (0.01,))]:
        ours = getattr(ox, name)(*args)
        theirs = getattr(optax, name)(*args)
        got, s_ours = jax.jit(lambda p, n, t=ours: _scan(t, ox.apply_updates, p, n))(
            params, noise
        )
        want, s_theirs = jax.jit(
            lambda p, n, t=theirs: _scan(t, optax.apply_updates, p, n)
        )(params, noise)
        assert_trees_close(got, want)
        # Same chain layout as optax: one state per transformation.
        assert len(s_ours) == len(s_theirs), name


@pytest.mark.parametrize("name", OPTAX_ALIASES)
def test_signature_and_defaults_match_optax(name):
    ours = inspect.signature(getattr(ox, name)).parameters
    theirs = inspect.signature(getattr(optax, name)).parameters
    assert list(ours) == list(theirs)
    for arg, p in theirs.items():
        assert ours[arg].default == p.default, arg
        assert ours[arg].kind == p.kind, arg


def test_sgd_momentum_validation_and_dtype():
    with pytest.raises(ValueError, match=r"`momentum`.*Received: momentum=1.5"):
        ox.sgd(0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"`momentum`.*Received: momentum=-0.1"):
        ox.lars(0.1, momentum=-0.1)
    tx = ox.sgd(0.1, momentum=0.9, accumulator_dtype=jnp.bfloat16)
    state = tx.init({"a": jnp.ones(2)})
    assert state[0].trace["a"].dtype == jnp.bfloat16


def test_adafactor_layout_and_momentum_dtype():
    tx = ox.adafactor(0.1, momentum=0.9, weight_decay_rate=0.01)
    state = tx.init({"a": jnp.ones((2, 3), jnp.bfloat16)})
    assert len(state) == 7 and isinstance(state[0], ox.FactoredState)
    ema_state = state[4]
    assert ema_state.ema["a"].dtype == jnp.float32  # dtype_momentum
    assert len(ox.adafactor().init({"a": jnp.ones(2)})) == 4


@pytest.mark.parametrize("name", [*OPTAX_ALIASES, "ftrl"])
def test_bf16_params_keep_dtype_under_jit(name):
    args = {"sgd": (0.1, 0.9), "noisy_sgd": (0.1,)}.get(name, (0.1,))
    tx = getattr(ox, name)(*args)
    params = {"w": jnp.ones((3, 4), jnp.bfloat16), "b": jnp.ones(4, jnp.bfloat16)}
    grads = jax.tree.map(lambda x: 0.5 * x, params)

    @jax.jit
    def step(params, state):
        u, state = tx.update(grads, state, params)
        return ox.apply_updates(params, u), u, state

    state0 = tx.init(params)
    new, u, state1 = step(params, state0)
    assert {x.dtype for x in jax.tree.leaves([new, u])} == {jnp.dtype(jnp.bfloat16)}
    same = lambda s: jax.tree.map(lambda x: (x.shape, x.dtype), s)  # noqa: E731
    assert same(state0) == same(state1)


def test_ftrl_defaults_are_tf_keras():
    defaults = {k: p.default for k, p in inspect.signature(ox.ftrl).parameters.items()}
    assert defaults == {
        "learning_rate": 0.001,
        "learning_rate_power": -0.5,
        "initial_accumulator_value": 0.1,
        "l1_regularization_strength": 0.0,
        "l2_regularization_strength": 0.0,
        "l2_shrinkage_regularization_strength": 0.0,
        "beta": 0.0,
    }
    state = ox.ftrl().init({"a": jnp.ones(2)})
    assert len(state) == 1 and isinstance(state[0], ox.ScaleByFtrlState)


def test_ftrl_alias_equals_transform():
    kwargs = dict(
        learning_rate=0.05,
        learning_rate_power=-0.7,
        initial_accumulator_value=0.2,
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        l2_shrinkage_regularization_strength=0.03,
        beta=0.5,
    )
    params = make_params(1)
    noise = make_noise(1, params)
    run = jax.jit(
        lambda p, n, tx: _scan(tx, ox.apply_updates, p, n)[0], static_argnums=2
    )
    assert_trees_close(
        run(params, noise, ox.ftrl(**kwargs)),
        run(params, noise, ox.scale_by_ftrl(**kwargs)),
        rtol=0,
        atol=0,
    )


def test_ftrl_converges_on_a_quadratic():
    tx = ox.ftrl(learning_rate=0.5)

    def loss(x):
        return jnp.sum((x - 1.0) ** 2)

    @jax.jit
    def train(x):
        def body(_, carry):
            x, state = carry
            u, state = tx.update(jax.grad(loss)(x), state, x)
            return ox.apply_updates(x, u), state

        return jax.lax.fori_loop(0, 300, body, (x, tx.init(x)))[0]

    assert float(loss(train(jnp.array([3.0, -2.0])))) < 1e-3
