"""The wrapper composes: chain + clipping, MultiSteps, inject_hyperparams,
partition, optax chains, flax TrainState; the helpers find its state anywhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import optaxish as ox
from optaxish import loss_scale as lsm

PARAMS = {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([0.1, -0.2])}
GRADS = {"w": jnp.array([[3.0, -4.0], [1.0, 2.0]]), "b": jnp.array([0.5, 6.0])}
SCALE = 1024.0


def _scaled(tree, s=SCALE):
    return jax.tree.map(lambda g: g * s, tree)


def _nan(tree):
    return {**tree, "b": tree["b"].at[1].set(jnp.nan)}


def _close(a, b, rtol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-7)


def _identical(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_clipping_inside_sees_unscaled_gradients():
    # ||GRADS|| ~ 8.5: clipping at 5 acts on the true gradients; on scaled ones
    # it would clip to the same direction but the wrong length.
    inner = ox.chain(ox.clip_by_global_norm(5.0), ox.sgd(1.0))
    tx = lsm.loss_scaling(inner, lsm.DynamicLossScale(SCALE))
    u, _ = jax.jit(tx.update)(_scaled(GRADS), tx.init(PARAMS), PARAMS)
    u_ref, _ = inner.update(GRADS, inner.init(PARAMS), PARAMS)
    _close(u, u_ref)
    assert float(ox.global_norm(u)) == pytest.approx(5.0, rel=1e-6)


def test_inside_chain_and_named_chain():
    tx = ox.named_chain(
        ("noop", ox.identity()),
        ("scaled", lsm.loss_scaling(ox.adam(0.1), lsm.DynamicLossScale(SCALE))),
    )
    state = tx.init(PARAMS)
    assert float(lsm.get_loss_scale(state)) == SCALE
    u, state = jax.jit(tx.update)(_nan(_scaled(GRADS)), state, PARAMS)
    assert float(lsm.get_loss_scale(state)) == SCALE / 2
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    assert lsm.find_loss_scaling_state(state) is state["scaled"]


def test_under_multisteps():
    k = 3
    inner = lsm.loss_scaling(ox.adam(0.1), lsm.DynamicLossScale(SCALE, period=1))
    ms = ox.MultiSteps(inner, every_k_schedule=k)
    ref = ox.MultiSteps(ox.adam(0.1), every_k_schedule=k)
    state, ref_state = ms.init(PARAMS), ref.init(PARAMS)
    update, ref_update = jax.jit(ms.update), jax.jit(ref.update)
    # Three finite mini-steps: the same numbers as MultiSteps(adam) on
    # unscaled gradients; the scale grows once (period 1) at the emit.
    for i in range(k):
        g = jax.tree.map(lambda x, i=i: x * (i + 1), GRADS)
        u, state = update(_scaled(g), state, PARAMS)
        u_ref, ref_state = ref_update(g, ref_state, PARAMS)
        _close(u, u_ref)
    assert float(lsm.get_loss_scale(state)) == 2 * SCALE
    # A NaN in one mini-step poisons the accumulated gradient: the emit step is
    # skipped, adam's state is bit-identical and the scale backs off.
    before = lsm.find_loss_scaling_state(state).inner_state
    for i in range(k):
        g = _scaled(_nan(GRADS) if i == 1 else GRADS, 2 * SCALE)
        u, state = update(g, state, PARAMS)
        assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    ls_state = lsm.find_loss_scaling_state(state)
    _identical(ls_state.inner_state, before)
    assert float(lsm.get_loss_scale(state)) == SCALE
    assert int(ls_state.skipped_steps) == 1


def test_with_inject_hyperparams_inside_and_outside():
    inside = lsm.loss_scaling(
        ox.inject_hyperparams(ox.sgd)(learning_rate=0.5),
        lsm.DynamicLossScale(SCALE),
    )
    state = inside.init(PARAMS)
    state.inner_state.hyperparams["learning_rate"] = jnp.float32(0.25)
    u, state = jax.jit(inside.update)(_scaled(GRADS), state, PARAMS)
    _close(u, jax.tree.map(lambda g: -0.25 * g, GRADS))

    outside = ox.inject_hyperparams(
        lambda learning_rate: lsm.loss_scaling(
            ox.sgd(learning_rate), lsm.DynamicLossScale(SCALE)
        )
    )(learning_rate=0.5)
    state = outside.init(PARAMS)
    assert float(lsm.get_loss_scale(state)) == SCALE
    update = jax.jit(outside.update)
    u, state = update(_scaled(GRADS), state, PARAMS)
    _close(u, jax.tree.map(lambda g: -0.5 * g, GRADS))
    before = lsm.find_loss_scaling_state(state).inner_state
    u, state = update(_nan(_scaled(GRADS)), state, PARAMS)
    _identical(lsm.find_loss_scaling_state(state).inner_state, before)
    assert float(lsm.get_loss_scale(state)) == SCALE / 2


def test_partition_inside_and_found_inside_partition():
    labels = {"w": "adam", "b": "sgd"}
    tx = lsm.loss_scaling(
        ox.partition({"adam": ox.adam(0.1), "sgd": ox.sgd(0.1)}, labels),
        lsm.DynamicLossScale(SCALE),
    )
    ref = ox.partition({"adam": ox.adam(0.1), "sgd": ox.sgd(0.1)}, labels)
    u, _ = jax.jit(tx.update)(_scaled(GRADS), tx.init(PARAMS), PARAMS)
    _close(u, ref.update(GRADS, ref.init(PARAMS), PARAMS)[0])

    outer = ox.partition(
        {"scaled": lsm.loss_scaling(ox.adam(0.1)), "plain": ox.sgd(0.1)},
        {"w": "scaled", "b": "plain"},
    )
    assert float(lsm.get_loss_scale(outer.init(PARAMS))) == 2.0**15


def test_in_an_optax_chain_and_around_optax_transforms():
    inner = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(0.1))
    tx = optax.chain(
        optax.identity(), lsm.loss_scaling(inner, lsm.DynamicLossScale(SCALE))
    )
    state = tx.init(PARAMS)
    update = jax.jit(tx.update)
    u, state = update(_scaled(GRADS), state, PARAMS)
    u_ref, ref_state = inner.update(GRADS, inner.init(PARAMS), PARAMS)
    _close(u, u_ref)
    u, state = update(_nan(_scaled(GRADS)), state, PARAMS)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))
    _identical(lsm.find_loss_scaling_state(state).inner_state, ref_state)
    # optax's own helpers see our state as an ordinary pytree.
    assert float(lsm.get_loss_scale(state)) == SCALE / 2
    assert int(optax.tree.get(state, "skipped_steps")) == 1


def test_flax_train_state():
    def apply_fn(params, x):
        return x @ params["w"] + params["b"]

    tx = lsm.loss_scaling(ox.adam(0.05), lsm.DynamicLossScale(SCALE))
    ts = train_state.TrainState.create(apply_fn=apply_fn, params=PARAMS, tx=tx)
    x = jnp.array([[1.0, 2.0], [0.5, -1.0]])

    @jax.jit
    def train_step(ts, poison):
        def loss_fn(p):
            return jnp.mean(ts.apply_fn(p, x) ** 2)

        loss, g = jax.value_and_grad(lambda p: lsm.scale_loss(loss_fn(p), ts))(
            ts.params
        )
        g = jax.tree.map(lambda v: jnp.where(poison, jnp.inf, v), g)
        return ts.apply_gradients(grads=g), loss

    new, scaled_loss = train_step(ts, False)
    assert float(scaled_loss) > 1.0 and int(new.step) == 1
    assert not np.allclose(new.params["w"], ts.params["w"])
    skipped, _ = train_step(new, True)
    _identical(skipped.params, new.params)
    _identical(
        lsm.find_loss_scaling_state(skipped.opt_state).inner_state,
        lsm.find_loss_scaling_state(new.opt_state).inner_state,
    )
    assert float(lsm.get_loss_scale(skipped)) == SCALE / 2


def test_finder_errors():
    with pytest.raises(ValueError, match="found 0"):
        lsm.get_loss_scale(ox.adam(0.1).init(PARAMS))
    two = ox.chain(lsm.loss_scaling(ox.sgd(0.1)), lsm.loss_scaling(ox.sgd(0.1)))
    with pytest.raises(ValueError, match="found 2"):
        lsm.scale_loss(1.0, two.init(PARAMS))
    # A sub-state disambiguates.
    assert float(lsm.get_loss_scale(two.init(PARAMS)[1])) == 2.0**15


def test_unscale_gradients_helper_round_trip():
    tx = lsm.loss_scaling(ox.sgd(0.1), lsm.DynamicLossScale(SCALE), unscale=False)
    state = tx.init(PARAMS)
    grads = lsm.unscale_gradients(_scaled(GRADS), state)
    _close(grads, GRADS)
    assert bool(lsm.all_finite(grads))
    u, _ = tx.update(grads, state, PARAMS)
    _close(u, jax.tree.map(lambda g: -0.1 * g, GRADS))
