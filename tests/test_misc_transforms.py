"""Trust ratio, Adafactor pieces, sign, noise, constraints and FTRL.

optax parity over 50 jitted steps on random trees; FTRL against a numpy
transcription of the tf-keras (``ResourceApplyFtrl[V2]``) equations and the
reference numbers of ``keras-behaviour.md`` §2.8.
"""

from __future__ import annotations

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


def make_params(seed, dtype=jnp.float32, small=False):
    k = jax.random.split(jax.random.key(seed), 5)
    tree = {
        "w": jax.random.normal(k[0], (4, 3), dtype),
        "b": jax.random.normal(k[1], (3,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
        "nested": {
            "c": jax.random.normal(k[3], (2, 5, 3), dtype),
            "z": jnp.zeros((3, 2), dtype),  # zero norm at the start
        },
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


def _scan(tx, apply, params, noise, nan_every=0):
    def step(carry, n):
        p, s = carry
        g = jax.tree.map(lambda x, e: x + e, p, n)
        if nan_every:
            g = jax.tree.map(lambda x: jnp.where(x > 1.5, jnp.nan, x), g)
        u, s = tx.update(g, s, p)
        return (apply(p, u), s), None

    (p, s), _ = jax.lax.scan(step, (params, tx.init(params)), noise)
    return p, s


@jax.jit(static_argnums=(0, 1, 2))
def _run_cached(make_tx, apply, static, params, noise, h):
    # Traced float32 hyperparameters: one compilation for all examples.
    return _scan(make_tx(h, **dict(static)), apply, params, noise)[0]


def assert_trees_close(got, want, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol
        ),
        got,
        want,
    )


def assert_parity(name, seed, static=(), small=False, **h):
    ours, theirs = CASES[name]
    params = make_params(seed, small=small)
    noise = make_noise(seed, params)
    h = {
        k: jnp.int32(v) if isinstance(v, int) else jnp.float32(v) for k, v in h.items()
    }
    static = tuple(sorted(static.items())) if static else ()
    got = _run_cached(ours, ox.apply_updates, static, params, noise, h)
    want = _run_cached(theirs, optax.apply_updates, static, params, noise, h)
    assert_trees_close(got, want)


def _both(build):
    return (lambda h, **s: build(ox, h, **s), lambda h, **s: build(optax, h, **s))


CASES = {
    "trust_ratio": _both(
        lambda lib, h: lib.chain(
            lib.scale_by_trust_ratio(h["min_norm"], h["coef"], h["eps"]),
            lib.scale(-h["lr"]),
        )
    ),
    "param_block_norm": _both(
        lambda lib, h: lib.chain(
            lib.scale_by_param_block_norm(h["min_scale"]), lib.scale(-h["lr"])
        )
    ),
    "param_block_rms": _both(
        lambda lib, h: lib.chain(
            lib.scale_by_param_block_rms(h["min_scale"]), lib.scale(-h["lr"])
        )
    ),
    "factored_rms": _both(
        lambda lib, h, factored, min_dim: lib.chain(
            lib.scale_by_factored_rms(
                factored=factored,
                decay_rate=h["decay_rate"],
                step_offset=h["offset"],
                min_dim_size_to_factor=min_dim,
                epsilon=h["eps"],
            ),
            lib.scale(-h["lr"]),
        )
    ),
    "sign": _both(lambda lib, h: lib.chain(lib.scale_by_sign(), lib.scale(-h["lr"]))),
    "noise": _both(
        lambda lib, h: lib.chain(
            lib.add_noise(h["eta"], h["gamma"], key=jax.random.key(h["key_seed"])),
            lib.scale(-h["lr"]),
        )
    ),
    "nonnegative": _both(
        lambda lib, h: lib.chain(lib.scale(-h["lr"]), lib.keep_params_nonnegative())
    ),
}


# ----------------------------------------------------------------------------
# Parity with optax


@SETTINGS
@given(
    seed=seeds,
    min_norm=st.floats(0.0, 0.5),
    coef=st.floats(1e-3, 2.0),
    eps=st.floats(0.0, 0.1),
    lr=st.floats(0.01, 0.3),
)
def test_scale_by_trust_ratio_parity(seed, min_norm, coef, eps, lr):
    assert_parity("trust_ratio", seed, min_norm=min_norm, coef=coef, eps=eps, lr=lr)


@SETTINGS
@given(seed=seeds, min_scale=st.floats(0.0, 1.0), lr=st.floats(0.01, 0.3))
def test_scale_by_param_block_norm_and_rms_parity(seed, min_scale, lr):
    assert_parity("param_block_norm", seed, min_scale=min_scale, lr=lr / 4)
    assert_parity("param_block_rms", seed, min_scale=min_scale, lr=lr)


@SETTINGS
@given(
    seed=seeds,
    layout=st.sampled_from([(True, 1), (True, 3), (False, 3)]),
    offset=st.sampled_from([0, 5]),
    decay_rate=st.floats(0.3, 1.0),
    eps=st.sampled_from([1e-30, 1e-8, 1e-3]),
    lr=st.floats(0.01, 0.2),
)
def test_scale_by_factored_rms_parity(seed, layout, offset, decay_rate, eps, lr):
    static = {"factored": layout[0], "min_dim": layout[1]}
    h = dict(decay_rate=decay_rate, eps=eps, lr=lr, offset=offset)
    assert_parity("factored_rms", seed, static, **h)


@pytest.mark.parametrize("factored", [True, False])
def test_factored_state_layout_matches_optax(factored):
    params = make_params(0)
    ours = ox.scale_by_factored_rms(factored=factored, min_dim_size_to_factor=3)
    theirs = optax.scale_by_factored_rms(factored=factored, min_dim_size_to_factor=3)
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    assert isinstance(s_ours, ox.FactoredState) and s_ours._fields == s_theirs._fields
    shapes = lambda s: jax.tree.map(lambda x: (x.shape, x.dtype), tuple(s))  # noqa: E731
    assert shapes(s_ours) == shapes(s_theirs)
    g = jax.tree.map(lambda x: x + 1.0, params)
    _, s_ours = jax.jit(ours.update)(g, s_ours, params)
    _, s_theirs = jax.jit(theirs.update)(g, s_theirs, params)
    assert_trees_close(tuple(s_ours), tuple(s_theirs))
    if factored:
        assert s_ours.v_row["nested"]["c"].shape == (2, 3)  # largest axis dropped
        assert s_ours.v_col["nested"]["c"].shape == (2, 5)


def test_factored_rms_python_float_defaults_parity():
    params = make_params(4)
    noise = make_noise(4, params)
    got, _ = _scan(
        ox.chain(ox.scale_by_factored_rms(min_dim_size_to_factor=2), ox.scale(-0.05)),
        ox.apply_updates,
        params,
        noise,
    )
    want, _ = _scan(
        optax.chain(
            optax.scale_by_factored_rms(min_dim_size_to_factor=2), optax.scale(-0.05)
        ),
        optax.apply_updates,
        params,
        noise,
    )
    assert_trees_close(got, want)


@SETTINGS
@given(seed=seeds, lr=st.floats(0.001, 0.1))
def test_scale_by_sign_parity(seed, lr):
    assert_parity("sign", seed, lr=lr)


@SETTINGS
@given(
    seed=seeds,
    key_seed=st.integers(0, 100),
    eta=st.floats(0.0, 0.5),
    gamma=st.floats(0.0, 1.0),
    lr=st.floats(0.01, 0.2),
)
def test_add_noise_parity(seed, key_seed, eta, gamma, lr):
    assert_parity(
        "noise", seed, small=True, key_seed=key_seed, eta=eta, gamma=gamma, lr=lr
    )


def test_add_noise_key_forms_give_the_same_noise():
    g = make_params(0, small=True)
    outs = []
    for key in (
        3,
        jax.random.key(3),
        jax.random.PRNGKey(3),  # raw uint32 key
        jnp.asarray(3, jnp.int32),
    ):
        tx = ox.add_noise(0.1, 0.55, key)
        outs.append(tx.update(g, tx.init(g))[0])
    want = optax.add_noise(0.1, 0.55, 3)
    outs.append(want.update(g, want.init(g))[0])
    for out in outs[1:]:
        jax.tree.map(np.testing.assert_array_equal, out, outs[0])


def test_add_noise_state_and_variance():
    tx = ox.add_noise(eta=4.0, gamma=1.0, key=jax.random.key(1))
    zeros = jnp.zeros((20000,))
    state = tx.init(zeros)
    assert isinstance(state, ox.AddNoiseState) and state.count.dtype == jnp.int32
    first, state = tx.update(zeros, state)
    second, state = tx.update(zeros, state)
    assert int(state.count) == 2
    # variance eta / t**gamma: 4 at t=1, 2 at t=2; fresh noise every step.
    np.testing.assert_allclose(np.var(first), 4.0, rtol=0.05)
    np.testing.assert_allclose(np.var(second), 2.0, rtol=0.05)
    assert not np.allclose(first / 2.0, second / np.sqrt(2.0))


def test_add_noise_seed_is_deprecated():
    with pytest.warns(DeprecationWarning, match="seed"):
        tx = ox.add_noise(0.1, 0.5, seed=3)
    ref = ox.add_noise(0.1, 0.5, key=3)
    g = jnp.zeros(4)
    np.testing.assert_array_equal(
        tx.update(g, tx.init(g))[0], ref.update(g, ref.init(g))[0]
    )
    with pytest.raises(ValueError, match="only one of `key` and `seed`"):
        with pytest.warns(DeprecationWarning):
            ox.add_noise(0.1, 0.5, key=1, seed=3)
    with pytest.raises(TypeError, match="key"):
        ox.add_noise(0.1, 0.5, key="abc")


@SETTINGS
@given(seed=seeds, lr=st.floats(0.01, 2.0))
def test_keep_params_nonnegative_parity(seed, lr):
    assert_parity("nonnegative", seed, lr=lr)


def test_keep_params_nonnegative_keeps_params_nonnegative():
    params = jax.tree.map(jnp.abs, make_params(2))
    noise = make_noise(2, params)
    tx = ox.chain(ox.scale(-1.5), ox.keep_params_nonnegative())
    final, _ = _scan(tx, ox.apply_updates, params, noise)
    assert all(bool(jnp.all(x >= 0)) for x in jax.tree.leaves(final))


def test_zero_nans_parity():
    params = make_params(6)
    noise = make_noise(6, params)
    tx_o = ox.chain(ox.zero_nans(), ox.scale(-0.1))
    tx_t = optax.chain(optax.zero_nans(), optax.scale(-0.1))
    got, s_o = _scan(tx_o, ox.apply_updates, params, noise, nan_every=1)
    want, s_t = _scan(tx_t, optax.apply_updates, params, noise, nan_every=1)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(got))
    assert_trees_close(got, want)
    assert isinstance(s_o[0], ox.ZeroNansState)
    jax.tree.map(np.testing.assert_array_equal, s_o[0].found_nan, s_t[0].found_nan)


def test_zero_nans_reports_per_leaf():
    tx = ox.zero_nans()
    p = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    state = tx.init(p)
    assert state.found_nan == {"a": False, "b": False}
    u, state = tx.update({"a": jnp.array([1.0, jnp.nan]), "b": jnp.ones(2)}, state)
    np.testing.assert_array_equal(u["a"], [1.0, 0.0])
    assert bool(state.found_nan["a"]) and not bool(state.found_nan["b"])


# ----------------------------------------------------------------------------
# FTRL (tf-keras legacy semantics)


def np_ftrl(
    x,
    grads,
    lr,
    lr_power=-0.5,
    init_acc=0.1,
    l1=0.0,
    l2=0.0,
    shrinkage=0.0,
    beta=0.0,
):
    """numpy transcription of tf-keras Ftrl (ResourceApplyFtrl / FtrlV2)."""
    x = np.asarray(x, np.float64)
    n = np.full_like(x, init_acc)
    z = np.zeros_like(x)
    p = -lr_power
    for t, g in enumerate(grads):
        g = np.asarray(g, np.float64)
        a = lr(t) if callable(lr) else lr
        l2_adj = l2 + beta / (2.0 * a)
        g_shrink = g + 2.0 * shrinkage * x
        n_new = n + g * g
        z = z + g_shrink - (n_new**p - n**p) / a * x
        quad = n_new**p / a + 2.0 * l2_adj
        x = np.where(np.abs(z) > l1, (np.sign(z) * l1 - z) / quad, 0.0)
        n = n_new
    return x, n, z


X0 = [1.0, -2.0, 0.5]
GRADS3 = [[0.5, -1.0, 2.0], [-0.3, 0.2, 1.5], [1.0, 0.0, -2.0]]


@pytest.mark.parametrize(
    "kwargs, want",
    [
        ({}, [0.3428555, -1.3203628, 0.3257815]),
        (
            dict(
                l1_regularization_strength=0.05,
                l2_regularization_strength=0.1,
                beta=0.3,
            ),
            [0.2064681, -1.0080953, 0.2806335],
        ),
        (
            dict(
                learning_rate_power=-0.3,
                l2_shrinkage_regularization_strength=0.2,
                l1_regularization_strength=0.05,
            ),
            [0.1148773, -0.8007578, 0.1953214],
        ),
    ],
)
def test_ftrl_tf_keras_golden_step3(kwargs, want):
    tx = ox.ftrl(learning_rate=0.1, **kwargs)
    x = jnp.array(X0)
    state = tx.init(x)
    for g in GRADS3:
        u, state = tx.update(jnp.array(g), state, x)
        x = ox.apply_updates(x, u)
    np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-7)


def _ftrl_from(h, **static):
    return ox.scale_by_ftrl(
        learning_rate=h["lr"],
        learning_rate_power=h["lr_power"],
        initial_accumulator_value=h["init_acc"],
        l1_regularization_strength=h["l1"],
        l2_regularization_strength=h["l2"],
        l2_shrinkage_regularization_strength=h["shrinkage"],
        beta=h["beta"],
    )


ftrl_hparams = dict(
    lr=st.floats(0.01, 0.5),
    lr_power=st.sampled_from([-0.5, -0.5, -1.0, -0.3, 0.0]),
    init_acc=st.floats(0.01, 1.0),
    l1=st.floats(0.0, 0.2),
    l2=st.floats(0.0, 0.5),
    shrinkage=st.floats(0.0, 0.3),
    beta=st.floats(0.0, 1.0),
)


def _np_ftrl_tree(params, noise, **h):
    """Runs np_ftrl on each leaf with the gradients of _scan (p + noise)."""
    out = []
    for x0, n in zip(jax.tree.leaves(params), jax.tree.leaves(noise)):
        x = np.asarray(x0, np.float64)
        acc = np.full_like(x, h["init_acc"])
        z = np.zeros_like(x)
        for t in range(n.shape[0]):
            g = x + np.asarray(n[t], np.float64)
            x, acc, z = _np_ftrl_step(x, g, acc, z, t, **h)
        out.append(x)
    return out


def _np_ftrl_step(x, g, n, z, t, lr, lr_power, init_acc, l1, l2, shrinkage, beta):
    a = lr(t) if callable(lr) else lr
    p = -lr_power
    n_new = n + g * g
    z = z + g + 2.0 * shrinkage * x - (n_new**p - n**p) / a * x
    quad = n_new**p / a + 2.0 * (l2 + beta / (2.0 * a))
    x = np.where(np.abs(z) > l1, (np.sign(z) * l1 - z) / quad, 0.0)
    return x, n_new, z


@SETTINGS
@given(seed=seeds, **ftrl_hparams)
def test_ftrl_matches_numpy_transcription(seed, **h):
    params = make_params(seed)
    noise = make_noise(seed, params)
    h32 = {k: np.float32(v) for k, v in h.items()}  # the values jax sees
    hf = {k: float(v) for k, v in h32.items()}
    got = _run_cached(
        _ftrl_from,
        ox.apply_updates,
        (),
        params,
        noise,
        {k: jnp.float32(v) for k, v in h32.items()},
    )
    want = _np_ftrl_tree(params, noise, **hf)
    for a, b in zip(jax.tree.leaves(got), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_ftrl_python_float_path_and_schedule_match_numpy():
    params = make_params(9)
    noise = make_noise(9, params)

    def sched(count):
        return 0.2 / (1.0 + 0.05 * count)

    for lr in (0.1, sched):
        h = dict(
            lr=lr,
            lr_power=-0.5,
            init_acc=0.1,
            l1=0.01,
            l2=0.1,
            shrinkage=0.05,
            beta=0.2,
        )
        tx = ox.ftrl(
            lr,
            l1_regularization_strength=0.01,
            l2_regularization_strength=0.1,
            l2_shrinkage_regularization_strength=0.05,
            beta=0.2,
        )
        got, state = jax.jit(lambda p, n, tx=tx: _scan(tx, ox.apply_updates, p, n))(
            params, noise
        )
        want = _np_ftrl_tree(params, noise, **h)
        for a, b in zip(jax.tree.leaves(got), want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        assert int(state[0].count) == STEPS


def test_ftrl_state_slots():
    params = {"w": jnp.ones((2, 3)), "frozen": None}
    tx = ox.scale_by_ftrl(initial_accumulator_value=0.3)
    state = tx.init(params)
    assert isinstance(state, ox.ScaleByFtrlState)
    assert state._fields == ("count", "accumulator", "linear")
    np.testing.assert_array_equal(
        state.accumulator["w"], np.full((2, 3), 0.3, np.float32)
    )
    np.testing.assert_array_equal(state.linear["w"], np.zeros((2, 3)))
    assert state.accumulator["frozen"] is None and state.linear["frozen"] is None
    u, state = tx.update({"w": jnp.ones((2, 3)), "frozen": None}, state, params)
    assert u["frozen"] is None and int(state.count) == 1
    np.testing.assert_allclose(state.accumulator["w"], np.full((2, 3), 1.3))


@pytest.mark.parametrize(
    "arg, value, needs",
    [
        ("initial_accumulator_value", -0.1, "positive or zero"),
        ("learning_rate_power", 0.5, "negative or zero"),
        ("l1_regularization_strength", -1.0, "positive or zero"),
        ("l2_regularization_strength", -1.0, "positive or zero"),
        ("l2_shrinkage_regularization_strength", -1.0, "positive or zero"),
    ],
)
def test_ftrl_validation_uses_keras_messages(arg, value, needs):
    message = f"`{arg}` needs to be {needs}. Received: {arg}={value}."
    for factory in (ox.ftrl, ox.scale_by_ftrl):
        with pytest.raises(ValueError) as info:
            factory(**{arg: value})
        assert str(info.value) == message


def test_ftrl_needs_params_and_matching_structure():
    tx = ox.scale_by_ftrl()
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="params"):
        tx.update({"a": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match="state.accumulator"):
        tx.update({"b": jnp.ones(2)}, state, {"b": jnp.ones(2)})


# ----------------------------------------------------------------------------
# dtype, None leaves, empty trees, params, validation

FACTORIES = {
    "scale_by_trust_ratio": lambda h: ox.scale_by_trust_ratio(0.0, h, 1e-3),
    "scale_by_param_block_norm": lambda h: ox.scale_by_param_block_norm(h),
    "scale_by_param_block_rms": lambda h: ox.scale_by_param_block_rms(h),
    "scale_by_factored_rms": lambda h: ox.scale_by_factored_rms(
        decay_rate=h, min_dim_size_to_factor=2
    ),
    "scale_by_sign": lambda h: ox.scale_by_sign(),
    "add_noise": lambda h: ox.add_noise(h, h, key=0),
    "keep_params_nonnegative": lambda h: ox.keep_params_nonnegative(),
    "zero_nans": lambda h: ox.zero_nans(),
    "scale_by_ftrl": lambda h: ox.scale_by_ftrl(h, -h, h, h, h, h, h),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_low_precision_kept_with_float32_traced_hyperparameter(name):
    params = {
        "a": jnp.full((3,), 2.0, jnp.bfloat16),
        "b": jnp.full((2, 3), -1.0, jnp.float16),
    }
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)

    @jax.jit
    def two_steps(h):
        tx = FACTORIES[name](h)
        state = tx.init(params)
        u, state2 = tx.update(grads, state, params)
        u, state3 = tx.update(grads, state2, params)
        return u, state, state3

    u, s0, s2 = two_steps(jnp.float32(0.5))
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, grads)
    assert jax.tree.map(lambda x: x.dtype, s0) == jax.tree.map(lambda x: x.dtype, s2)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_none_leaves_and_empty_trees(name):
    tx = FACTORIES[name](0.5)
    params = {"a": jnp.ones((2, 3)), "frozen": None}
    grads = {"a": jnp.full((2, 3), 3.0), "frozen": None}
    u, _ = tx.update(grads, tx.init(params), params)
    assert u["frozen"] is None and u["a"].shape == (2, 3)
    u, _ = tx.update({}, tx.init({}), {})
    assert u == {}


@pytest.mark.parametrize(
    "name",
    [
        "scale_by_trust_ratio",
        "scale_by_param_block_norm",
        "scale_by_param_block_rms",
        "keep_params_nonnegative",
        "scale_by_ftrl",
    ],
)
def test_transforms_that_need_params_say_so(name):
    tx = FACTORIES[name](0.5)
    with pytest.raises(ValueError, match="params"):
        tx.update({"a": jnp.ones(2)}, tx.init({"a": jnp.ones(2)}))


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: ox.scale_by_trust_ratio(min_norm=-1.0), "min_norm"),
        (lambda: ox.scale_by_trust_ratio(eps=-1.0), "eps"),
        (lambda: ox.scale_by_param_block_norm(-1.0), "min_scale"),
        (lambda: ox.scale_by_param_block_rms(-1.0), "min_scale"),
        (lambda: ox.scale_by_factored_rms(epsilon=-1.0), "epsilon"),
        (lambda: ox.add_noise(-1.0, 0.5, key=0), "eta"),
        (lambda: ox.add_noise(0.1, -1.0, key=0), "gamma"),
    ],
)
def test_validation_names_argument_and_value(call, arg):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}=-1.0"):
        call()


def test_trust_ratio_numbers():
    tx = ox.scale_by_trust_ratio(trust_coefficient=0.5)
    p = {"a": jnp.array([3.0, 4.0]), "zero_p": jnp.zeros(2), "zero_u": jnp.ones(2)}
    u = {"a": jnp.array([0.0, 2.0]), "zero_p": jnp.ones(2), "zero_u": jnp.zeros(2)}
    out = tx.update(u, tx.init(p), p)[0]
    np.testing.assert_allclose(out["a"], [0.0, 2.0 * 0.5 * 5.0 / 2.0], rtol=1e-6)
    np.testing.assert_array_equal(out["zero_p"], np.ones(2))  # ratio 1
    np.testing.assert_array_equal(out["zero_u"], np.zeros(2))
