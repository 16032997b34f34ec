"""MultiSteps: parity with optax, skipping, no inner update on mini-steps."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish as ox

STEPS = 60


def random_params(seed, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(k[0], (3, 4), dtype),
        "b": jax.random.normal(k[1], (4,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
    }


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b
    )


def same_leaves(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def make_multisteps(lib, hp, k, mean, skip):
    if skip == "skip_large_updates":
        skip_fn = functools.partial(lib.skip_large_updates, max_squared_norm=200.0)
    else:
        skip_fn = getattr(lib, skip) if skip else None
    return lib.MultiSteps(
        lib.adam(hp["lr"]),
        every_k_schedule=k,
        use_grad_mean=mean,
        should_skip_update_fn=skip_fn,
    )


def wobble(x, t):
    """Deterministic noise that does not depend on the parameter values."""
    idx = jnp.arange(1, x.size + 1, dtype=x.dtype).reshape(x.shape)
    return 0.3 * jnp.cos(0.37 * t * idx)


@functools.partial(jax.jit, static_argnames=("k", "mean", "skip", "lib_name", "fused"))
def run(params, target, hp, bad, *, k, mean, skip, lib_name, fused=False):
    """STEPS steps; the gradients at the ``bad`` steps are multiplied by NaN
    (for skip_not_finite) or by 100 (otherwise). ``fused``: ``MultiSteps.step``
    instead of ``update`` + ``apply_updates``."""
    lib = ox if lib_name == "ox" else optax
    spike = jnp.nan if skip == "skip_not_finite" else 100.0
    opt = make_multisteps(lib, hp, k, mean, skip)

    def step(carry, t):
        p, s = carry
        g = jax.tree.map(lambda x, y: x - y + wobble(x, t), p, target)
        g = jax.tree.map(lambda x: jnp.where(bad[t], spike * x, x), g)
        if fused:
            p, s = opt.step(g, s, p)
            return (p, s), (opt.has_updated(s), s)
        u, s = opt.update(g, s, p)
        return (lib.apply_updates(p, u), s), (opt.has_updated(s), s)

    init = (params, opt.init(params))
    return jax.lax.scan(step, init, jnp.arange(STEPS))


@pytest.mark.parametrize("fused", [False, True], ids=["update", "step"])
@pytest.mark.parametrize(
    "k, mean, skip",
    [
        (1, True, None),
        (3, True, None),
        (3, True, "skip_not_finite"),
        (2, False, "skip_large_updates"),
    ],
)
@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 1000),
    lr=st.floats(1e-3, 0.1),
    bad=st.lists(st.integers(0, STEPS - 1), max_size=6, unique=True),
)
def test_multisteps_matches_optax(k, mean, skip, fused, seed, lr, bad):
    bad_mask = np.zeros(STEPS, bool)
    if skip is not None:
        bad_mask[bad] = True
    args = (random_params(seed), random_params(seed + 1), {"lr": jnp.float32(lr)})
    kw = dict(k=k, mean=mean, skip=skip)
    (p1, s1), (emitted1, states1) = run(
        *args, bad_mask, lib_name="ox", fused=fused, **kw
    )
    (p2, s2), (emitted2, _) = run(*args, bad_mask, lib_name="optax", **kw)
    assert_close(p1, p2)
    assert_close(jax.tree.leaves(s1), jax.tree.leaves(s2))
    np.testing.assert_array_equal(emitted1, emitted2)
    if skip is not None:
        skipped = np.asarray(states1.skip_state["should_skip"])
        np.testing.assert_array_equal(skipped, bad_mask)
        # A skipped mini-step leaves everything but skip_state bit-identical.
        for t in np.flatnonzero(bad_mask[1:]) + 1:
            before = jax.tree.map(lambda x, t=t: x[t - 1], states1)
            after = jax.tree.map(lambda x, t=t: x[t], states1)
            same_leaves(before._replace(skip_state=()), after._replace(skip_state=()))
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(p1))


def test_schedule_for_k_matches_optax():
    def every_k(step):
        return jnp.where(step < 3, 2, 5)

    params, target = random_params(3), random_params(4)
    outs = []
    for lib in (ox, optax):
        opt = lib.MultiSteps(lib.sgd(0.1, momentum=0.9), every_k)

        def step(carry, t, opt=opt, lib=lib):
            p, s = carry
            u, s = opt.update(jax.tree.map(lambda x, y: x - y, p, target), s, p)
            return (lib.apply_updates(p, u), s), opt.has_updated(s)

        outs.append(
            jax.jit(lambda c, step=step: jax.lax.scan(step, c, jnp.arange(50)))(
                (params, opt.init(params))
            )
        )
    assert_close(outs[0][0][0], outs[1][0][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert int(outs[0][0][1].gradient_step) == int(outs[1][0][1].gradient_step)


def counting_adam(calls):
    inner = ox.adam(0.1)

    def update_fn(updates, state, params=None, **extra):
        jax.debug.callback(lambda: calls.append(1))
        return inner.update(updates, state, params, **extra)

    return ox.GradientTransformationExtraArgs(inner.init, update_fn)


@pytest.mark.parametrize("skip_fn", [None, ox.skip_not_finite])
def test_mini_steps_do_not_run_the_inner_optimizer(skip_fn):
    calls = []
    opt = ox.MultiSteps(counting_adam(calls), 4, should_skip_update_fn=skip_fn)
    params = random_params(5)
    update = jax.jit(opt.update)
    state = opt.init(params)
    for _ in range(8):
        _, state = update(params, state, params)
    jax.effects_barrier()
    assert len(calls) == 2  # optax's MultiSteps would run it 8 times
    assert int(state.gradient_step) == 2
    step = jax.jit(opt.step)
    for _ in range(4):
        params, state = step(params, state, params)
    jax.effects_barrier()
    assert len(calls) == 3 and int(state.gradient_step) == 3
    # A zero-or-one-trip while loop: its carried buffers are updated in place.
    for fn in (opt.update, opt.step):
        jaxpr = jax.make_jaxpr(fn)(params, state, params)
        assert "while" in {eqn.primitive.name for eqn in jaxpr.jaxpr.eqns}


@pytest.mark.parametrize("k", [1, 3])
def test_step_is_update_then_apply_updates(k):
    """Same parameters (to the rounding of the fused add) and the same state."""
    opt = ox.MultiSteps(ox.adamw(0.05, weight_decay=0.1), k)
    params, target = random_params(8), random_params(9)
    update = jax.jit(opt.update)
    step = jax.jit(opt.step, donate_argnums=(1, 2))
    p1, s1 = params, opt.init(params)
    p2, s2 = jax.tree.map(jnp.copy, params), opt.init(params)
    for t in range(7):
        g = jax.tree.map(lambda x, y, t=t: x - y + wobble(x, t), p1, target)
        u, s1 = update(g, s1, p1)
        p1 = ox.apply_updates(p1, u)
        p2, s2 = step(g, s2, p2)
        assert_close(p2, p1, rtol=1e-6, atol=1e-7)
        assert_close(jax.tree.leaves(s2), jax.tree.leaves(s1), rtol=1e-6, atol=1e-7)
        assert bool(opt.has_updated(s2)) == ((t + 1) % k == 0)


def test_step_mini_steps_leave_params_bit_identical():
    opt = ox.MultiSteps(ox.adam(0.1), 3, should_skip_update_fn=ox.skip_not_finite)
    params = random_params(10)
    state = opt.init(params)
    new_params, state = jax.jit(opt.step)(params, state, params)
    same_leaves(new_params, params)
    assert int(state.mini_step) == 1
    bad = jax.tree.map(lambda x: x.at[...].set(jnp.inf), params)
    new_params, new_state = jax.jit(opt.step)(bad, state, params)
    same_leaves(new_params, params)
    same_leaves(new_state._replace(skip_state=()), state._replace(skip_state=()))


def test_update_is_forward_differentiable():
    """The zero-or-one-trip loop supports jvp (reverse mode: see the docstring)."""
    opt = ox.MultiSteps(ox.sgd(0.5), 1)
    state = opt.init(jnp.zeros(2))
    f = lambda g: opt.update(g, state)[0]  # noqa: E731
    _, tangent = jax.jvp(f, (jnp.ones(2),), (jnp.full(2, 2.0),))
    np.testing.assert_allclose(tangent, jnp.full(2, -1.0))


def test_skipped_step_keeps_state_bit_identical_and_returns_zeros():
    opt = ox.MultiSteps(ox.adam(0.1), 2, should_skip_update_fn=ox.skip_not_finite)
    params = random_params(6)
    update = jax.jit(opt.update)
    state = opt.init(params)
    _, state = update(params, state, params)
    bad = jax.tree.map(lambda x: x.at[...].set(jnp.nan), params)
    updates, new_state = update(bad, state, params)
    same_leaves(new_state._replace(skip_state=()), state._replace(skip_state=()))
    assert int(new_state.skip_state["num_not_finite"]) == 12 + 4 + 1
    for u in jax.tree.leaves(updates):
        assert not np.any(np.asarray(u))


@pytest.mark.parametrize("acc_dtype", [jnp.float32, None, jnp.bfloat16])
def test_bf16_params_and_accumulator_dtypes(acc_dtype):
    params = random_params(7, jnp.bfloat16)
    opt = ox.MultiSteps(
        ox.adam(0.1),
        2,
        should_skip_update_fn=ox.skip_not_finite,
        accumulator_dtype=acc_dtype,
    )
    state = opt.init(params)
    expected = jnp.dtype(acc_dtype or jnp.bfloat16)
    assert {x.dtype for x in jax.tree.leaves(state.acc_grads)} == {expected}
    update = jax.jit(opt.update)
    for _ in range(3):
        updates, new_state = update(params, state, params)
        for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
            assert old.dtype == new.dtype
        state = new_state
        assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}


def test_extra_args_reach_the_inner_optimizer():
    seen = []

    def spy(updates, state, params=None, **extra):
        seen.append(sorted(extra))
        return updates, state

    opt = ox.MultiSteps(ox.GradientTransformationExtraArgs(ox.init_empty_state, spy), 1)
    u, _ = jax.jit(lambda g, s: opt.update(g, s, value=jnp.asarray(1.0), tag="x"))(
        jnp.ones(2), opt.init(jnp.zeros(2))
    )
    assert ["tag", "value"] in seen
    np.testing.assert_array_equal(u, jnp.ones(2))


def test_api_surface_and_errors():
    inner = ox.sgd(0.1)
    opt = ox.MultiSteps(inner, 2)
    assert opt.inner_opt is inner
    tx = opt.gradient_transformation()
    assert isinstance(tx, ox.GradientTransformation)
    state = tx.init(jnp.zeros(2))
    assert isinstance(state, ox.MultiStepsState) and not bool(opt.has_updated(state))
    _, state = tx.update(jnp.ones(2), state)
    _, state = tx.update(jnp.ones(2), state)
    assert bool(opt.has_updated(state))
    with pytest.raises(ValueError, match="every_k_schedule"):
        ox.MultiSteps(inner, 0)
    bad = ox.MultiSteps(inner, 2, should_skip_update_fn=lambda u, s, p: (1, ()))
    with pytest.raises(ValueError, match="bool scalar"):
        bad.update(jnp.ones(2), bad.init(jnp.zeros(2)))
    with pytest.raises(ValueError, match="params"):
        opt.step(jnp.ones(2), opt.init(jnp.zeros(2)), None)


@pytest.mark.parametrize("fused", [False, True], ids=["update", "step"])
def test_vmapped_states_match_one_by_one(fused):
    """Under vmap the 0-or-1-trip loop gets a batched predicate; each member of
    the batch must still follow its own schedule (here: different mini_step)."""
    opt = ox.MultiSteps(ox.adam(0.1), 3)
    params = random_params(11)
    states = [opt.init(params)]
    for _ in range(2):  # members at mini_step 0, 1 and 2
        _, s = opt.update(params, states[-1], params)
        states.append(s)
    batched = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    stacked_params = jax.tree.map(lambda x: jnp.stack([x] * 3), params)

    def one(g, s, p):
        if fused:
            return opt.step(g, s, p)
        u, s = opt.update(g, s, p)
        return ox.apply_updates(p, u), s

    out_p, out_s = jax.jit(jax.vmap(one))(stacked_params, batched, stacked_params)
    for i, s in enumerate(states):
        p_i, s_i = jax.jit(one)(params, s, params)
        # Batched and unbatched kernels may round differently (1 ulp).
        assert_close(jax.tree.map(lambda x, i=i: x[i], out_p), p_i, 1e-6, 1e-7)
        assert_close(
            jax.tree.leaves(jax.tree.map(lambda x, i=i: x[i], out_s)),
            jax.tree.leaves(s_i),
            1e-6,
            1e-7,
        )
    assert list(np.asarray(out_s.gradient_step)) == [0, 0, 1]
