"""The loss-scaling wrapper: skipping, bit-identity, fuzzing, float16 training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from optaxish import loss_scale as lsm

PARAMS = {
    "a": jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32),
    "b": jnp.linspace(-1.0, 1.0, 5),
    "c": jnp.float32(0.5),
}


def _bits_equal(x, y):
    """Bitwise equality of two trees (NaN == NaN, 0.0 != -0.0)."""

    def leaf(a, b):
        a, b = jnp.asarray(a), jnp.asarray(b)
        if jnp.issubdtype(a.dtype, jnp.floating):
            width = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[a.dtype.itemsize]
            a = jax.lax.bitcast_convert_type(a, width)
            b = jax.lax.bitcast_convert_type(b, width)
        return jnp.all(a == b)

    flags = jax.tree.leaves(jax.tree.map(leaf, x, y))
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


# ----------------------------------------------------------------- basics


def test_finite_step_matches_inner_on_unscaled_grads():
    tx = lsm.loss_scaling(ox.adam(0.1), lsm.DynamicLossScale(1024.0))
    ref = ox.adam(0.1)
    grads = jax.tree.map(lambda p: 0.3 * p + 0.1, PARAMS)
    scaled = jax.tree.map(lambda g: g * 1024.0, grads)
    u, s = jax.jit(tx.update)(scaled, tx.init(PARAMS), PARAMS)
    u_ref, s_ref = jax.jit(ref.update)(grads, ref.init(PARAMS), PARAMS)
    for a, b in zip(
        jax.tree.leaves((u, s.inner_state)), jax.tree.leaves((u_ref, s_ref))
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(s.loss_scale.counter) == 1 and int(s.skipped_steps) == 0


def test_skipped_step_zero_updates_and_counts():
    tx = lsm.loss_scaling(ox.adam(0.1), lsm.DynamicLossScale(8.0))
    state = tx.init(PARAMS)
    bad = jax.tree.map(jnp.ones_like, PARAMS)
    bad["b"] = bad["b"].at[2].set(jnp.nan)
    update = jax.jit(tx.update)
    for k in (1, 2, 3):
        u, new = update(bad, state, PARAMS)
        assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
        assert bool(_bits_equal(new.inner_state, state.inner_state))
        assert int(new.skipped_steps) == k and int(new.consecutive_skipped_steps) == k
        state = new
    assert float(lsm.get_loss_scale(state)) == 1.0  # 8 -> 4 -> 2 -> 1
    u, state = update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
    assert int(state.skipped_steps) == 3 and int(state.consecutive_skipped_steps) == 0
    assert int(state.inner_state[0].count) == 1


def test_skip_does_not_run_the_inner_update():
    # The inner update raises (via a host callback) if it ever runs on a
    # skipped step; lax.cond must not execute it.
    calls = []

    def spy(updates, state, params=None, **extra):
        jax.debug.callback(lambda: calls.append(1))
        return updates, state

    inner = ox.GradientTransformationExtraArgs(lambda p: ox.EmptyState(), spy)
    tx = lsm.loss_scaling(inner, lsm.DynamicLossScale(4.0))
    step = jax.jit(tx.update)
    state = tx.init(PARAMS)
    bad = jax.tree.map(lambda p: jnp.full_like(p, jnp.inf), PARAMS)
    step(bad, state, PARAMS)[0]["a"].block_until_ready()
    jax.effects_barrier()
    assert calls == []
    step(PARAMS, state, PARAMS)[0]["a"].block_until_ready()
    jax.effects_barrier()
    assert calls == [1]


def test_static_scale_unscales_and_applies_nonfinite():
    # §5 item 53: tf-keras applies non-finite gradients with dynamic=False.
    tx = lsm.loss_scaling(ox.sgd(0.5), 128.0)
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    u, state = tx.update(jnp.array([128.0, 256.0]), state, params)
    np.testing.assert_array_equal(u, [-0.5, -1.0])
    u, state = tx.update(jnp.array([jnp.inf, 128.0]), state, params)
    assert float(u[0]) == -jnp.inf and int(state.skipped_steps) == 0
    assert float(lsm.get_loss_scale(state)) == 128.0


def test_noop_scale_is_the_inner_transform():
    tx = lsm.loss_scaling(ox.sgd(0.1), lsm.NoOpLossScale())
    u, s = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
    np.testing.assert_allclose(u, [-0.1, -0.1])
    assert float(lsm.get_loss_scale(s)) == 1.0


def test_unscale_false_only_checks():
    tx = lsm.loss_scaling(ox.sgd(1.0), lsm.DynamicLossScale(64.0), unscale=False)
    state = tx.init(jnp.zeros(1))
    u, state = tx.update(jnp.array([2.0]), state)
    np.testing.assert_array_equal(u, [-2.0])


def test_dtypes_none_leaves_and_empty_trees():
    tx = lsm.loss_scaling(ox.sgd(0.5), lsm.DynamicLossScale(4.0))
    params = {"h": jnp.ones(3, jnp.float16), "f": jnp.ones(2), "n": None}
    grads = {"h": jnp.full(3, 4.0, jnp.float16), "f": jnp.full(2, 4.0), "n": None}
    u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert u["h"].dtype == jnp.float16 and u["n"] is None
    np.testing.assert_array_equal(u["h"], -0.5)
    grads["h"] = grads["h"].at[0].set(jnp.inf)
    u, s = jax.jit(tx.update)(grads, tx.init(params), params)
    assert u["h"].dtype == jnp.float16 and int(s.skipped_steps) == 1
    u, s = tx.update({}, tx.init({}), {})
    assert u == {} and int(s.loss_scale.counter) == 1


def test_argument_errors():
    with pytest.raises(ValueError, match="loss_scale"):
        lsm.loss_scaling(ox.sgd(0.1), "static")
    with pytest.raises(TypeError, match="loss_scale"):
        lsm.loss_scaling(ox.sgd(0.1), [1.0])
    with pytest.raises(TypeError, match="unscale"):
        lsm.loss_scaling(ox.sgd(0.1), unscale=1)
    with pytest.raises(TypeError, match="gradient transformation"):
        lsm.loss_scaling(object())
    tx = lsm.loss_scaling(ox.sgd(0.1))
    with pytest.raises(ValueError, match="LossScalingState"):
        tx.update(jnp.ones(1), ox.EmptyState())


def test_init_can_run_again_after_donation():
    tx = lsm.loss_scaling(ox.sgd(0.1))
    step = jax.jit(tx.update, donate_argnums=1)
    params = jnp.ones(3)
    step(params, tx.init(params), params)
    assert float(lsm.get_loss_scale(tx.init(params))) == 2.0**15


def test_dynamic_loss_scaling_builds_the_value():
    tx = lsm.dynamic_loss_scaling(
        ox.sgd(0.1), 8.0, 3, min_loss_scale=2.0, max_loss_scale=16.0
    )
    v = tx.init(jnp.zeros(1)).loss_scale
    assert isinstance(v, lsm.DynamicLossScale)
    assert (float(v.loss_scale), int(v.period), float(v.min_loss_scale)) == (8, 3, 2)
    assert float(v.max_loss_scale) == 16.0


def test_vmap_over_states_with_different_scales():
    tx = lsm.loss_scaling(ox.adam(0.1))
    states = jax.vmap(
        lambda s: tx.init(PARAMS)._replace(loss_scale=lsm.DynamicLossScale(s, period=1))
    )(jnp.array([2.0, 4.0]))
    grads = jax.tree.map(
        lambda p: jnp.stack([jnp.ones_like(p), jnp.full_like(p, jnp.nan)]), PARAMS
    )
    u, new = jax.jit(jax.vmap(tx.update, in_axes=(0, 0, None)))(grads, states, PARAMS)
    np.testing.assert_array_equal(lsm.get_loss_scale(new), [4.0, 2.0])
    np.testing.assert_array_equal(new.skipped_steps, [0, 1])
    assert bool(jnp.all(u["a"][1] == 0))
    assert bool(
        _bits_equal(
            jax.tree.map(lambda x: x[1], new.inner_state),
            jax.tree.map(lambda x: x[1], states.inner_state),
        )
    )


# ------------------------------------------------------------------- fuzz


def _python_rule(init, period, factor, lo, hi, finite_flags):
    """A plain-Python transcription of tf-keras' rule, in float32."""
    f32 = np.float32
    scale, counter, out = f32(init), 0, []
    for finite in finite_flags:
        if finite:
            if counter + 1 >= period:
                with np.errstate(over="ignore"):
                    grown = min(f32(scale * f32(factor)), f32(hi))
                if np.isfinite(grown):
                    scale = grown
                counter = 0
            else:
                counter += 1
        else:
            scale, counter = max(f32(scale * (f32(1) / f32(factor))), f32(lo)), 0
        out.append((scale, counter))
    return out


def _injections(rng, n, p_start, p_stay):
    bad = np.zeros(n, bool)
    for t in range(1, n):
        bad[t] = rng.random() < (p_stay if bad[t - 1] else p_start)
    leaf = rng.integers(0, 3, n)
    pos = rng.integers(0, 1 << 30, n)
    value = rng.choice(np.float32([np.nan, np.inf, -np.inf]), n)
    return bad, leaf, pos, value


FUZZ_STEPS = 3000
FUZZ_CONFIGS = [
    # (initial, period, factor, min, max, p_start, p_stay)
    (2.0**15, 7, 2.0, 1.0, np.inf, 0.05, 0.6),
    (4.0, 3, 2.0, 2.0, 64.0, 0.2, 0.5),
    (1.5, 1, 3.0, 1.0, 2.0**20, 0.3, 0.3),
    (3e38, 2, 2.0, 1.0, np.inf, 0.02, 0.9),  # also overflows on its own
]
_FUZZ_TX = lsm.loss_scaling(
    ox.chain(ox.clip_by_global_norm(10.0), ox.adam(1e-2)), lsm.DynamicLossScale()
)
_NAMES = sorted(PARAMS)


def _fuzz_step(carry, xs):
    params, state, key = carry
    t_bad, t_leaf, t_pos, t_val = xs
    key, sub = jax.random.split(key)
    scale = lsm.get_loss_scale(state)
    grads = {}
    for i, (k, name) in enumerate(zip(jax.random.split(sub, len(_NAMES)), _NAMES)):
        p = params[name]
        g = (p - 0.2 + 0.1 * jax.random.normal(k, p.shape)) * scale
        flat_index = jnp.arange(p.size).reshape(p.shape)
        hit = t_bad & (t_leaf == i) & (flat_index == t_pos % p.size)
        grads[name] = jnp.where(hit, t_val, g)
    # An independent reference for "finite": plain isfinite on g / scale.
    finite_ref = jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(g / scale)) for g in grads.values()])
    )
    updates, new_state = _FUZZ_TX.update(grads, state, params)
    new_params = ox.apply_updates(params, updates)
    zero = [jnp.all(u == 0) for u in jax.tree.leaves(updates)]
    out = dict(
        finite_ref=finite_ref,
        scale=lsm.get_loss_scale(new_state),
        counter=new_state.loss_scale.counter,
        skipped=new_state.skipped_steps,
        consecutive=new_state.consecutive_skipped_steps,
        params_finite=lsm.all_finite(new_params),
        params_same=_bits_equal(new_params, params),
        inner_same=_bits_equal(new_state.inner_state, state.inner_state),
        zero_updates=jnp.all(jnp.stack(zero)),
    )
    return (new_params, new_state, key), out


@jax.jit
def _fuzz_run(value, xs):
    # The loss-scale value is data: every config shares this one compilation.
    state = _FUZZ_TX.init(PARAMS)._replace(loss_scale=value)
    carry, out = jax.lax.scan(_fuzz_step, (PARAMS, state, jax.random.key(0)), xs)
    return carry[0], out


@pytest.mark.parametrize("config", FUZZ_CONFIGS, ids=lambda c: f"init{c[0]:g}")
def test_fuzz_nonfinite_never_reaches_params(config):
    init, period, factor, lo, hi, p_start, p_stay = config
    rng = np.random.default_rng(period * 1000 + int(10 * factor))
    bad, leaf, pos, value = _injections(rng, FUZZ_STEPS, p_start, p_stay)
    value_ls = lsm.DynamicLossScale(
        init,
        period=period,
        factor=factor,
        min_loss_scale=lo,
        max_loss_scale=None if np.isinf(hi) else hi,
    )
    final_params, out = _fuzz_run(
        value_ls, tuple(map(jnp.asarray, (bad, leaf, pos, value)))
    )
    out = jax.tree.map(np.asarray, out)
    skip = ~out["finite_ref"]

    assert bad.sum() >= 50 and (skip[bad]).all()  # every injection was seen
    assert out["params_finite"].all() and bool(lsm.all_finite(final_params))
    assert out["params_same"][skip].all() and out["inner_same"][skip].all()
    assert out["zero_updates"][skip].all()
    assert not out["inner_same"][~skip].any()  # adam's count moves when applied
    expected = _python_rule(init, period, factor, lo, hi, ~skip)
    np.testing.assert_array_equal(out["scale"], np.float32([s for s, _ in expected]))
    np.testing.assert_array_equal(out["counter"], [c for _, c in expected])
    np.testing.assert_array_equal(out["skipped"], np.cumsum(skip))
    runs = np.zeros(FUZZ_STEPS, int)
    for t in range(FUZZ_STEPS):
        runs[t] = (runs[t - 1] + 1 if t else 1) if skip[t] else 0
    np.testing.assert_array_equal(out["consecutive"], runs)
    if init == 3e38:
        # 3e38 * g overflows without any injection: the scale backs off alone.
        assert skip[0] and not bad[0] and out["scale"][0] < np.float32(3e38)


# -------------------------------------------------------- float16 training


def _f16_problem():
    policy = lsm.Policy.from_name("mixed_float16")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1024, 16)), jnp.float32)
    y = x @ jnp.asarray(rng.standard_normal((16, 16)) * 2e-5, jnp.float32)

    def loss_fn(params):
        # float32 master params, float16 compute, float32 output and loss.
        p = policy.cast_to_compute(params)
        pred = policy.cast_to_compute(x) @ p["w"] + p["b"]
        return jnp.mean((policy.cast_to_output(pred) - y) ** 2)

    params = {"w": jnp.zeros((16, 16)), "b": jnp.zeros(16)}
    return loss_fn, params


def _train(loss_fn, params, tx, grad_fn, steps=300):
    def step(carry, _):
        p, s = carry
        loss, g = grad_fn(s, p)
        u, s = tx.update(g, s, p)
        zero = jnp.all(jnp.stack([jnp.all(x == 0) for x in jax.tree.leaves(g)]))
        return (ox.apply_updates(p, u), s), (loss, zero)

    (p, s), (losses, zero) = jax.jit(
        lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
    )(params)
    assert jax.tree.map(lambda x: x.dtype, p) == {"w": jnp.float32, "b": jnp.float32}
    return np.asarray(losses), np.asarray(zero), s


def test_float16_training_stalls_without_and_trains_with_loss_scaling():
    loss_fn, params = _f16_problem()
    plain = ox.adam(1e-6)
    losses, zero, _ = _train(
        loss_fn, params, plain, lambda s, p: jax.value_and_grad(loss_fn)(p)
    )
    assert zero[-50:].all()  # every gradient entry underflowed to zero
    assert losses[-1] > 0.5 * losses[0]  # so training stalled
    assert losses[-1] == losses[-50]

    tx = lsm.loss_scaling(
        ox.adam(1e-6), lsm.DynamicLossScale(2.0**15, period=100), unscale=False
    )
    losses_ls, zero_ls, state = _train(
        loss_fn, params, tx, lsm.scaled_value_and_grad(loss_fn)
    )
    assert not zero_ls.any()
    assert losses_ls[-1] < 1e-4 * losses_ls[0]
    assert float(lsm.get_loss_scale(state)) > 2.0**15  # it grew

    # The same with the Keras-3 style path: scale the loss, let update unscale.
    tx2 = lsm.loss_scaling(ox.adam(1e-6), lsm.DynamicLossScale(2.0**15, period=100))

    def scaled_grads(s, p):
        g = jax.grad(lambda q: lsm.scale_loss(loss_fn(q), s))(p)
        return loss_fn(p), g

    losses2, _, _ = _train(loss_fn, params, tx2, scaled_grads)
    # Same trajectory up to rounding (Adam amplifies last-bit differences once
    # the gradients are tiny, so compare the early steps closely).
    np.testing.assert_allclose(losses2[:50], losses_ls[:50], rtol=1e-4, atol=0)
    assert losses2[-1] < 1e-4 * losses2[0]


def test_scaled_value_and_grad_has_aux_argnums_and_overflow():
    f = lambda w, x: (jnp.sum(w * x) ** 2, {"x": x})  # noqa: E731
    ls = lsm.StaticLossScale(8.0)
    (loss, aux), g = lsm.scaled_value_and_grad(f, argnums=(0, 1), has_aux=True)(
        ls, jnp.float32(2.0), jnp.float32(3.0)
    )
    assert float(loss) == 36.0 and float(aux["x"]) == 3.0
    assert (float(g[0]), float(g[1])) == (36.0, 24.0)
    # float16 loss: the scaled loss overflows, the gradients are non-finite.
    ls = lsm.DynamicLossScale(2.0**15)
    loss, g = lsm.scaled_value_and_grad(lambda w: jnp.sum(w * w))(
        ls, jnp.full(2, 8.0, jnp.float16)
    )
    assert float(loss) == 128.0 and not bool(lsm.all_finite(g))


def test_one_compilation_whatever_the_scale_does():
    tx = lsm.loss_scaling(ox.adam(0.1), lsm.DynamicLossScale(4.0, period=2))
    step = jax.jit(tx.update)
    state = tx.init(PARAMS)
    good = jax.tree.map(jnp.ones_like, PARAMS)
    bad = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), PARAMS)
    for g in (good, good, bad, good, bad, bad):
        _, state = step(g, state, PARAMS)
    # New bounds as arrays of the same dtype: still the same executable.
    state = state._replace(
        loss_scale=state.loss_scale.replace(min_loss_scale=jnp.float32(2.0))
    )
    _, state = step(bad, state, PARAMS)
    assert float(lsm.get_loss_scale(state)) == 2.0
    assert step._cache_size() == 1


@pytest.mark.parametrize("unscale", [True, False])
def test_loss_scaling_step_is_update_plus_apply(unscale):
    inner = ox.chain(ox.clip_by_global_norm(1.0), ox.adam(0.1))
    tx = lsm.loss_scaling(inner, lsm.DynamicLossScale(16.0, period=2), unscale=unscale)

    def two_calls(g, s, p):
        u, s = tx.update(g, s, p)
        return ox.apply_updates(p, u), s

    fused = jax.jit(
        lambda g, s, p: lsm.loss_scaling_step(inner, g, s, p, unscale=unscale)
    )
    two_calls = jax.jit(two_calls)
    p1 = p2 = PARAMS
    s1 = s2 = tx.init(PARAMS)
    good = jax.tree.map(lambda p: 16.0 * (p - 0.3), PARAMS)
    bad = {**good, "c": jnp.float32(jnp.inf)}
    for g in (good, bad, good, good, bad, good):
        new_p1, s1 = fused(g, s1, p1)
        p2, s2 = two_calls(g, s2, p2)
        if g is bad:
            assert bool(_bits_equal(new_p1, p1))
        p1 = new_p1
        for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p2, s2))):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(s1.skipped_steps) == 2
    with pytest.raises(ValueError, match="LossScalingState"):
        lsm.loss_scaling_step(inner, good, inner.init(PARAMS), PARAMS)
