"""Scaling, clipping, momentum, weight decay, chain and apply_updates.

Parity with optax over 50 jitted steps on random trees, a numpy transcription
of ``tf.clip_by_norm`` for Keras' per-variable ``clipnorm``, dtype keeping,
``None`` leaves and errors.
"""

from __future__ import annotations

from collections import OrderedDict

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


def make_params(seed, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 4)
    return {
        "w": jax.random.normal(k[0], (4, 3), dtype),
        "b": jax.random.normal(k[1], (3,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
        "nested": {"c": jax.random.normal(k[3], (2, 2, 2), dtype)},
    }


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

    (p, _), _ = jax.lax.scan(step, (params, tx.init(params)), noise)
    return p


def run(tx, params, noise, apply):
    """Runs ``len(noise)`` jitted steps on ``|p|^2/2`` with noisy gradients."""
    return jax.jit(lambda p, n: _scan(tx, apply, p, n))(params, noise)


@jax.jit(static_argnums=(0, 1, 2))
def _run_cached(make_tx, apply, static, params, noise, h):
    # Hyperparameters `h` are traced float32 scalars, so one compilation serves
    # every hypothesis example (booleans and the factories stay static).
    return _scan(make_tx(h, **dict(static)), apply, params, noise)


def assert_parity(name, seed, static=(), **h):
    """Compares CASES[name] (ours, optax) over STEPS steps from a random tree."""
    ours, theirs = CASES[name]
    params = make_params(seed)
    noise = make_noise(seed, params)
    h = {k: jnp.float32(v) for k, v in h.items()}
    static = tuple(sorted(static.items())) if static else ()
    got = _run_cached(ours, ox.apply_updates, static, params, noise, h)
    want = _run_cached(theirs, optax.apply_updates, static, params, noise, h)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want
    )


def _lr_schedule(h):
    return lambda c: h["lr"] / (1.0 + 0.1 * c)


def _chain_case(lib):
    def make(h):
        return lib.chain(
            lib.clip_by_global_norm(2.0),
            lib.add_decayed_weights(1e-2),
            lib.trace(h["momentum"]),
            lib.scale_by_learning_rate(lambda c: h["lr"] * 0.98**c),
        )

    return make


def _both(build):
    return (lambda h, **s: build(ox, h, **s), lambda h, **s: build(optax, h, **s))


CASES = {
    "scale": _both(lambda lib, h: lib.scale(h["step"])),
    "scale_by_schedule": _both(
        lambda lib, h: lib.scale_by_schedule(lambda c: -h["lr"] * h["decay"] ** c)
    ),
    "scale_by_learning_rate": _both(
        lambda lib, h, scheduled: lib.scale_by_learning_rate(
            _lr_schedule(h) if scheduled else h["lr"]
        )
    ),
    "clip": _both(lambda lib, h: lib.chain(lib.clip(h["t"]), lib.scale(-h["lr"]))),
    "clip_by_global_norm": _both(
        lambda lib, h: lib.chain(lib.clip_by_global_norm(h["t"]), lib.scale(-h["lr"]))
    ),
    "clip_by_block_rms": _both(
        lambda lib, h: lib.chain(lib.clip_by_block_rms(h["t"]), lib.scale(-h["lr"]))
    ),
    "trace": _both(
        lambda lib, h, nesterov: lib.chain(
            lib.trace(h["decay"], nesterov), lib.scale(-h["lr"])
        )
    ),
    "ema": _both(
        lambda lib, h, debias: lib.chain(lib.ema(h["decay"], debias), lib.scale(-0.1))
    ),
    "add_decayed_weights": _both(
        lambda lib, h, scheduled: lib.chain(
            lib.add_decayed_weights(
                (lambda c: h["wd"] * 0.95**c) if scheduled else h["wd"]
            ),
            lib.scale(-0.1),
        )
    ),
    "chain": (lambda h: _chain_case(ox)(h), lambda h: _chain_case(optax)(h)),
}


# ----------------------------------------------------------------------------
# Parity with optax


@SETTINGS
@given(seed=seeds, step=st.floats(-0.5, 0.0))
def test_scale_parity(seed, step):
    assert_parity("scale", seed, step=step)


@SETTINGS
@given(seed=seeds, lr=st.floats(1e-3, 0.5), decay=st.floats(0.9, 1.0))
def test_scale_by_schedule_parity(seed, lr, decay):
    assert_parity("scale_by_schedule", seed, lr=lr, decay=decay)


@SETTINGS
@given(seed=seeds, lr=st.floats(1e-3, 0.5), scheduled=st.booleans())
def test_scale_by_learning_rate_parity(seed, lr, scheduled):
    assert_parity("scale_by_learning_rate", seed, {"scheduled": scheduled}, lr=lr)


def test_python_float_hyperparameters_parity():
    # The traced-hyperparameter runs above compile once; this covers the
    # Python-float paths (including add_decayed_weights' zero shortcut).
    params = make_params(5)
    noise = make_noise(5, params)
    for lib_ours, lib_theirs in [
        (
            ox.chain(ox.clip(0.5), ox.trace(0.9, True), ox.scale_by_learning_rate(0.1)),
            optax.chain(
                optax.clip(0.5),
                optax.trace(0.9, True),
                optax.scale_by_learning_rate(0.1),
            ),
        ),
        (
            ox.chain(ox.add_decayed_weights(0.0), ox.ema(0.5), ox.scale(-0.2)),
            optax.chain(
                optax.add_decayed_weights(0.0), optax.ema(0.5), optax.scale(-0.2)
            ),
        ),
    ]:
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            run(lib_ours, params, noise, ox.apply_updates),
            run(lib_theirs, params, noise, optax.apply_updates),
        )


def test_scale_by_learning_rate_flip_sign_and_none():
    g = {"a": jnp.array([1.0, -2.0])}
    tx = ox.scale_by_learning_rate(0.5, flip_sign=False)
    np.testing.assert_array_equal(tx.update(g, tx.init(g))[0]["a"], [0.5, -1.0])
    # Deviation from optax (identity there): None is a unit *descent* step.
    tx = ox.scale_by_learning_rate(None)
    np.testing.assert_array_equal(tx.update(g, tx.init(g))[0]["a"], [-1.0, 2.0])


@SETTINGS
@given(seed=seeds, t=st.floats(0.05, 3.0), lr=st.floats(0.01, 0.5))
def test_clip_parity(seed, t, lr):
    assert_parity("clip", seed, t=t, lr=lr)


@SETTINGS
@given(seed=seeds, t=st.floats(0.05, 5.0), lr=st.floats(0.01, 0.5))
def test_clip_by_global_norm_parity(seed, t, lr):
    assert_parity("clip_by_global_norm", seed, t=t, lr=lr)


@SETTINGS
@given(seed=seeds, t=st.floats(0.05, 3.0), lr=st.floats(0.01, 0.5))
def test_clip_by_block_rms_parity(seed, t, lr):
    assert_parity("clip_by_block_rms", seed, t=t, lr=lr)


@SETTINGS
@given(
    seed=seeds,
    decay=st.floats(0.0, 0.99),
    nesterov=st.booleans(),
    lr=st.floats(0.01, 0.1),
)
def test_trace_parity(seed, decay, nesterov, lr):
    assert_parity("trace", seed, {"nesterov": nesterov}, decay=decay, lr=lr)


@SETTINGS
@given(seed=seeds, decay=st.floats(0.0, 0.99), debias=st.booleans())
def test_ema_parity(seed, decay, debias):
    assert_parity("ema", seed, {"debias": debias}, decay=decay)


@SETTINGS
@given(seed=seeds, wd=st.floats(0.0, 0.5), scheduled=st.booleans())
def test_add_decayed_weights_parity(seed, wd, scheduled):
    assert_parity("add_decayed_weights", seed, {"scheduled": scheduled}, wd=wd)


def test_add_decayed_weights_mask_parity():
    mask = {"w": True, "b": False, "s": True, "nested": {"c": False}}
    params = make_params(3)
    noise = make_noise(3, params)
    for m in (mask, lambda p: mask):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            run(
                ox.chain(ox.add_decayed_weights(0.3, mask=m), ox.scale(-0.1)),
                params,
                noise,
                ox.apply_updates,
            ),
            run(
                optax.chain(optax.add_decayed_weights(0.3, mask=m), optax.scale(-0.1)),
                params,
                noise,
                optax.apply_updates,
            ),
        )


def test_add_decayed_weights_schedule_uses_count_before_increment():
    seen = []
    tx = ox.add_decayed_weights(lambda c: 0.1 * (c + 1))
    p = {"a": jnp.array([2.0])}
    state = tx.init(p)
    for _ in range(3):
        u, state = tx.update({"a": jnp.zeros(1)}, state, p)
        seen.append(float(u["a"][0]))
    np.testing.assert_allclose(seen, [0.2, 0.4, 0.6], rtol=1e-6)
    assert int(state.count) == 3 and state.count.dtype == jnp.int32


def test_add_decayed_weights_needs_params():
    tx = ox.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="params"):
        tx.update({"a": jnp.ones(1)}, tx.init({"a": jnp.ones(1)}))


@SETTINGS
@given(seed=seeds, lr=st.floats(0.01, 0.3), momentum=st.floats(0.0, 0.95))
def test_chain_parity(seed, lr, momentum):
    assert_parity("chain", seed, lr=lr, momentum=momentum)


# ----------------------------------------------------------------------------
# clip_by_norm: Keras `clipnorm`, tf.clip_by_norm per variable


def np_clip_by_norm(t, clip_norm):
    """numpy transcription of ``tf.clip_by_norm(t, clip_norm)``."""
    t = np.asarray(t, np.float64)
    l2sum = np.sum(t * t)
    pred = l2sum > 0
    l2sum_safe = np.where(pred, l2sum, 1.0)
    l2norm = np.where(pred, np.sqrt(l2sum_safe), l2sum)
    return t * clip_norm / np.maximum(l2norm, clip_norm)


@jax.jit
def _clip_by_norm_once(g, max_norm):
    tx = ox.clip_by_norm(max_norm)
    return tx.update(g, tx.init(g))[0]


@SETTINGS
@given(seed=seeds, max_norm=st.floats(0.05, 5.0), magnitude=st.floats(0.01, 10.0))
def test_clip_by_norm_matches_tf_per_leaf(seed, max_norm, magnitude):
    g = jax.tree.map(lambda x: magnitude * x, make_params(seed))
    g["zero"] = jnp.zeros((3,))
    got = _clip_by_norm_once(g, jnp.float32(max_norm))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(
            a, np_clip_by_norm(b, max_norm), rtol=1e-5, atol=1e-6
        ),
        got,
        g,
    )
    np.testing.assert_array_equal(got["zero"], np.zeros(3))


def test_clip_by_norm_50_steps_matches_numpy():
    seed, max_norm, lr = 11, 0.7, 0.2
    params = make_params(seed)
    noise = make_noise(seed, params)
    tx = ox.chain(ox.clip_by_norm(max_norm), ox.scale(-lr))
    got = run(tx, params, noise, ox.apply_updates)
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    for i in range(STEPS):
        noise_i = jax.tree.map(lambda n: np.asarray(n[i]), noise)  # noqa: B023
        p = jax.tree.map(
            lambda x, n: x - lr * np_clip_by_norm(x + n, max_norm), p, noise_i
        )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, p
    )


def test_clip_by_norm_is_per_leaf_not_global():
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
    tx = ox.clip_by_norm(1.0)
    u = tx.update(g, tx.init(g))[0]
    np.testing.assert_allclose(u["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(u["b"], g["b"])


# ----------------------------------------------------------------------------
# dtype, None leaves, empty trees, validation

STATELESS = {
    "scale": lambda h: ox.scale(h),
    "scale_by_schedule": lambda h: ox.scale_by_schedule(lambda c: h),
    "scale_by_learning_rate": lambda h: ox.scale_by_learning_rate(h),
    "clip": lambda h: ox.clip(h),
    "clip_by_norm": lambda h: ox.clip_by_norm(h),
    "clip_by_global_norm": lambda h: ox.clip_by_global_norm(h),
    "clip_by_block_rms": lambda h: ox.clip_by_block_rms(h),
    "trace": lambda h: ox.trace(h),
    "trace_nesterov": lambda h: ox.trace(h, nesterov=True),
    "ema": lambda h: ox.ema(h),
    "ema_no_debias": lambda h: ox.ema(h, debias=False),
    "add_decayed_weights": lambda h: ox.add_decayed_weights(h),
}


@pytest.mark.parametrize("name", sorted(STATELESS))
def test_low_precision_kept_with_float32_traced_hyperparameter(name):
    params = {
        "a": jnp.full((3,), 2.0, jnp.bfloat16),
        "b": jnp.full((2, 2), -1.0, jnp.float16),
    }
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 5.0, p.dtype), params)

    @jax.jit
    def two_steps(h):
        tx = STATELESS[name](h)  # h is a float32 tracer
        state = tx.init(params)
        u, state2 = tx.update(grads, state, params)
        u, state3 = tx.update(grads, state2, params)
        return u, state, state3

    u, s0, s2 = two_steps(jnp.float32(0.5))
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, grads)
    # The state keeps its structure and dtypes across steps.
    assert jax.tree.map(lambda x: x.dtype, s0) == jax.tree.map(lambda x: x.dtype, s2)


@pytest.mark.parametrize("name", sorted(STATELESS))
def test_none_leaves_and_empty_trees(name):
    tx = STATELESS[name](0.5)
    params = {"a": jnp.ones(2), "frozen": None}
    grads = {"a": jnp.full(2, 3.0), "frozen": None}
    u, _ = tx.update(grads, tx.init(params), params)
    assert u["frozen"] is None and u["a"].shape == (2,)
    u, _ = tx.update({}, tx.init({}), {})
    assert u == {}


@pytest.mark.parametrize(
    "factory, arg",
    [
        (ox.clip, "max_delta"),
        (ox.clip_by_norm, "max_norm"),
        (ox.clip_by_global_norm, "max_norm"),
        (ox.clip_by_block_rms, "threshold"),
    ],
)
def test_clipping_rejects_negative_thresholds(factory, arg):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}=-1.0"):
        factory(-1.0)


def test_trace_state_and_structure_error():
    tx = ox.trace(0.9)
    state = tx.init({"a": jnp.zeros(2)})
    assert isinstance(state, ox.TraceState)
    with pytest.raises(ValueError, match="state.trace"):
        tx.update({"b": jnp.zeros(2)}, state)


def test_ema_state_counts():
    tx = ox.ema(0.5)
    state = tx.init(jnp.zeros(1))
    for _ in range(3):
        _, state = tx.update(jnp.ones(1), state)
    assert isinstance(state, ox.EmaState) and int(state.count) == 3


# ----------------------------------------------------------------------------
# chain / named_chain


def test_chain_state_layout_and_optax_members():
    tx = ox.chain(ox.trace(0.9), optax.scale(-0.1), ox.identity())
    state = tx.init({"a": jnp.zeros(2)})
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[0], ox.TraceState)
    u, _ = tx.update({"a": jnp.ones(2)}, state, value=1.0)  # extras are dropped
    np.testing.assert_allclose(u["a"], [-0.1, -0.1], rtol=1e-6)


def test_empty_chain_is_identity():
    tx = ox.chain()
    u, state = tx.update({"a": jnp.ones(2)}, tx.init({"a": jnp.ones(2)}))
    assert state == () and np.all(u["a"] == 1.0)


def test_chain_passes_extra_args_to_members():
    seen = {}

    def update_fn(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    inner = ox.GradientTransformationExtraArgs(ox.init_empty_state, update_fn)
    tx = ox.chain(ox.scale(1.0), inner)
    tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value=3.0)
    assert seen == {"value": 3.0}


@pytest.mark.parametrize("bad_state", [(), (ox.EmptyState(),) * 3, {"a": 1}, None])
def test_chain_rejects_foreign_state(bad_state):
    tx = ox.chain(ox.scale(1.0), ox.scale(2.0))
    with pytest.raises(ValueError, match="state"):
        tx.update(jnp.ones(1), bad_state)


def test_chain_rejects_non_transforms():
    with pytest.raises(TypeError, match="gradient transformation"):
        ox.chain(ox.scale(1.0), 3.0)


def test_named_chain_state_and_numbers():
    named = ox.named_chain(("momentum", ox.trace(0.9)), ("lr", ox.scale(-0.1)))
    plain = ox.chain(ox.trace(0.9), ox.scale(-0.1))
    params = make_params(1)
    noise = make_noise(1, params)
    state = named.init(params)
    assert isinstance(state, OrderedDict) and list(state) == ["momentum", "lr"]
    assert isinstance(state["momentum"], ox.TraceState)
    jax.tree.map(
        np.testing.assert_array_equal,
        run(named, params, noise, ox.apply_updates),
        run(plain, params, noise, ox.apply_updates),
    )


def test_named_chain_rejects_duplicates_and_non_pairs():
    with pytest.raises(ValueError, match=r"unique.*\['a'\]"):
        ox.named_chain(("a", ox.scale(1.0)), ("b", ox.scale(1.0)), ("a", ox.clip(1.0)))
    with pytest.raises(ValueError, match="pairs"):
        ox.named_chain(ox.scale(1.0))
    with pytest.raises(ValueError, match="pairs"):
        ox.named_chain((1, ox.scale(1.0)))


def test_named_chain_rejects_foreign_state():
    tx = ox.named_chain(("a", ox.scale(1.0)), ("b", ox.scale(2.0)))
    other = ox.named_chain(("b", ox.scale(1.0)), ("a", ox.scale(2.0)))
    with pytest.raises(ValueError, match=r"expected keys \['a', 'b'\]"):
        tx.update(jnp.ones(1), other.init(jnp.ones(1)))
    with pytest.raises(ValueError, match="named_chain"):
        tx.update(jnp.ones(1), (ox.EmptyState(), ox.EmptyState()))


# ----------------------------------------------------------------------------
# apply_updates and friends


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_apply_updates_keeps_param_dtype(dtype):
    p = {"a": jnp.ones(3, dtype), "b": jnp.zeros((), dtype)}
    u = {"a": jnp.full(3, 0.5, jnp.float32), "b": jnp.float32(-0.25)}
    out = ox.apply_updates(p, u)
    assert out["a"].dtype == dtype and out["b"].dtype == dtype
    np.testing.assert_array_equal(np.asarray(out["a"], np.float32), [1.5] * 3)
    np.testing.assert_array_equal(np.asarray(out["b"], np.float32), -0.25)


def test_apply_updates_none_leaves_and_parity():
    p = {"a": jnp.ones(2), "frozen": None, "n": [jnp.zeros(1)]}
    u = {"a": jnp.full(2, 0.5), "frozen": None, "n": [jnp.ones(1)]}
    out = ox.apply_updates(p, u)
    assert out["frozen"] is None
    want = optax.apply_updates(p, u)
    jax.tree.map(np.testing.assert_array_equal, out, want)


def test_apply_updates_structure_mismatch_names_key_path():
    with pytest.raises(ValueError, match=r"\['b'\]"):
        ox.apply_updates({"a": jnp.ones(1), "b": jnp.ones(1)}, {"a": jnp.ones(1)})


def test_incremental_and_periodic_update_parity():
    new, old = make_params(1), make_params(2)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
        ox.incremental_update(new, old, 0.3),
        optax.incremental_update(new, old, 0.3),
    )
    for step in (jnp.array(4), jnp.array(5)):
        jax.tree.map(
            np.testing.assert_array_equal,
            ox.periodic_update(new, old, step, 2),
            optax.periodic_update(new, old, step, 2),
        )
