"""masked, partition, freeze, selective_transform, apply_if_finite and the
conditional wrappers: parity with optax, NaN handling, errors."""

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


def random_params(seed, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 4)
    return {
        "dense": {
            "kernel": jax.random.normal(k[0], (3, 4), dtype),
            "bias": jax.random.normal(k[1], (4,), dtype),
        },
        "emb": jax.random.normal(k[2], (5, 2), dtype),
        "scale": jax.random.normal(k[3], (), dtype),
    }


_COMPILED = {}


def noisy_grads(params, target, t):
    """Gradient of 0.5|p - target|^2 plus a cheap deterministic wobble."""

    def leaf(p, y):
        idx = jnp.arange(1, p.size + 1, dtype=p.dtype).reshape(p.shape)
        return p - y + 0.1 * jnp.sin(0.37 * t * idx)

    return jax.tree.map(leaf, params, target)


def run(key, make, params, hp=None, *, lib=ox, steps=STEPS, bad_steps=(), seed=0):
    """Jitted scan of noisy descent with ``make(lib, hp)``.

    ``hp`` (a dict of floats) is traced, so one compilation per ``key`` serves
    every hypothesis example. Gradients are NaN at ``bad_steps``. Returns the
    final params, the final state and the stacked per-step updates.
    """
    cache_key = (key, lib.__name__, steps)
    if cache_key not in _COMPILED:

        def scan(params, target, hp, bad):
            tx = make(lib, hp)

            def step(carry, t):
                p, s = carry
                g = noisy_grads(p, target, t)
                g = jax.tree.map(lambda x: jnp.where(bad[t], jnp.nan, x), g)
                u, s = tx.update(g, s, p)
                return (lib.apply_updates(p, u), s), u

            init = (params, tx.init(params))
            return jax.lax.scan(step, init, jnp.arange(steps))

        _COMPILED[cache_key] = jax.jit(scan)
    bad = np.zeros(steps, bool)
    bad[list(bad_steps)] = True
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in (hp or {}).items()}
    target = random_params(seed + 100)
    (params, state), updates = _COMPILED[cache_key](params, target, hp, bad)
    return params, state, updates


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b
    )


def same_leaves(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


MASKS = {
    "leafwise": {"dense": {"kernel": True, "bias": False}, "emb": False, "scale": True},
    "prefix": {"dense": True, "emb": False, "scale": False},
    "all_false": {"dense": False, "emb": False, "scale": False},
}


def make_masked(mask):
    def make(lib, hp):
        by_rank = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
        return lib.chain(
            lib.masked(lib.trace(hp["decay"]), mask),
            lib.masked(lib.ema(hp["decay"]), by_rank),
            lib.scale(-0.1),
        )

    return make


@pytest.mark.parametrize("mask_name", list(MASKS))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), decay=st.floats(0.5, 0.99))
def test_masked_matches_optax(mask_name, seed, decay):
    params, mask = random_params(seed), MASKS[mask_name]
    make, hp, key = make_masked(mask), {"decay": decay}, ("masked", mask_name)
    ours, state, _ = run(key, make, params, hp, seed=seed)
    theirs, _, _ = run(key, make, params, hp, seed=seed, lib=optax)
    assert_close(ours, theirs)
    assert isinstance(state[0], ox.MaskedState)
    # Masked-out leaves hold no state.
    selected = jax.tree.map(lambda m, p: len(jax.tree.leaves(p)) * m, mask, params)
    assert len(jax.tree.leaves(state[0].inner_state)) == sum(jax.tree.leaves(selected))


def test_masked_passes_unmasked_updates_through_and_keeps_structure():
    params = random_params(0)
    tx = ox.masked(ox.scale(-2.0), {"dense": True, "emb": False, "scale": False})
    updates, state = tx.update(params, tx.init(params))
    same_leaves(updates["emb"], params["emb"])
    assert_close(updates["dense"]["kernel"], -2 * params["dense"]["kernel"])
    mom = ox.masked(ox.trace(0.9), {"dense": False, "emb": True, "scale": False})
    inner = mom.init(params).inner_state.trace
    assert isinstance(inner["dense"], ox.MaskedNode)
    assert inner["emb"].shape == (5, 2)


def test_masked_extra_args_and_none_leaves():
    seen = {}

    def spy():
        def update_fn(updates, state, params=None, **extra):
            seen.update(extra)
            return updates, state

        return ox.GradientTransformationExtraArgs(ox.init_empty_state, update_fn)

    params = {"a": jnp.ones(2), "b": jnp.ones(1), "frozen": None}
    mask = {"a": True, "b": False, "frozen": None}
    tx = ox.masked(spy(), mask, mask_compatible_extra_args=True)
    tags = {"a": 1, "b": 2, "frozen": None}
    u, _ = tx.update(params, tx.init(params), params, tags=tags, loss=3.0)
    assert seen["loss"] == 3.0
    assert seen["tags"]["a"] == 1 and isinstance(seen["tags"]["b"], ox.MaskedNode)
    assert u["frozen"] is None


def test_masked_bad_mask_names_the_mask():
    tx = ox.masked(ox.trace(0.9), {"a": True, "zzz": False})
    with pytest.raises(ValueError, match="mask"):
        tx.init({"a": jnp.ones(1), "b": jnp.ones(1)})


LABELS = {
    "three_groups": {"dense": "x", "emb": "y", "scale": "z"},
    "unused_group": {"dense": {"kernel": "x", "bias": "y"}, "emb": "x", "scale": "y"},
}


def make_partition(labels):
    def make(lib, hp):
        return lib.partition(
            {
                "x": lib.adam(hp["lr"], b1=hp["b1"]),
                "y": lib.adam(2 * hp["lr"], b2=0.99),
                "z": lib.chain(lib.trace(hp["b1"]), lib.scale(-hp["lr"])),
            },
            labels,
        )

    return make


@pytest.mark.parametrize("labels_name", list(LABELS))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), lr=st.floats(1e-3, 0.1), b1=st.floats(0.5, 0.95))
def test_partition_two_adams_matches_optax(labels_name, seed, lr, b1):
    params, labels = random_params(seed), LABELS[labels_name]
    make, hp = make_partition(labels), {"lr": lr, "b1": b1}
    key = ("partition", labels_name)
    ours, state, _ = run(key, make, params, hp, seed=seed)
    theirs, ostate, _ = run(key, make, params, hp, seed=seed, lib=optax)
    assert_close(ours, theirs)
    assert_close(jax.tree.leaves(state), jax.tree.leaves(ostate))
    assert isinstance(state, ox.PartitionState)
    assert set(state.inner_states) == {"x", "y", "z"}


def test_multi_transform_alias_and_label_fn():
    assert ox.multi_transform is ox.partition
    assert ox.MultiTransformState is ox.PartitionState
    params = random_params(1)

    def label_fn(p):
        return jax.tree.map(lambda x: "vec" if x.ndim <= 1 else "mat", p)

    def make(lib, hp):
        return lib.multi_transform(
            {"vec": lib.sgd(0.1), "mat": lib.adam(0.05)}, label_fn
        )

    ours, _, _ = run("multi_transform", make, params)
    theirs, _, _ = run("multi_transform", make, params, lib=optax)
    assert_close(ours, theirs)


def test_partition_unknown_label_is_an_error():
    tx = ox.partition({"a": ox.sgd(0.1)}, {"w": "a", "b": "nope"})
    with pytest.raises(ValueError, match="nope"):
        tx.init({"w": jnp.ones(1), "b": jnp.ones(1)})


@pytest.mark.parametrize("mask", [True, {"dense": True, "emb": False, "scale": True}])
def test_freeze_and_selective_transform_match_optax(mask):
    params = random_params(2)
    makers = {
        "freeze": lambda lib, hp: lib.chain(lib.adam(0.05), lib.freeze(mask)),
        "selective": lambda lib, hp: lib.selective_transform(
            lib.adam(0.05), freeze_mask=mask
        ),
    }
    for name, make in makers.items():
        ours, _, _ = run((name, str(mask)), make, params, steps=10)
        theirs, _, _ = run((name, str(mask)), make, params, steps=10, lib=optax)
        assert_close(ours, theirs)
        # Frozen leaves did not move.
        kept = jax.tree.map(lambda m, p: p if m else None, mask, params)
        same_leaves(jax.tree.map(lambda m, p: p if m else None, mask, ours), kept)


def make_apply_if_finite(max_errors):
    def make(lib, hp):
        return lib.apply_if_finite(lib.adam(hp["lr"]), max_errors)

    return make


@pytest.mark.parametrize("max_errors", [0, 2])
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 1000),
    bad=st.lists(st.integers(0, STEPS - 1), max_size=8, unique=True),
    lr=st.floats(1e-3, 0.1),
)
def test_apply_if_finite_matches_optax(max_errors, seed, bad, lr):
    params, make = random_params(seed), make_apply_if_finite(max_errors)
    hp, key = {"lr": lr}, ("apply_if_finite", max_errors)
    ours, state, _ = run(key, make, params, hp, seed=seed, bad_steps=bad)
    theirs, ostate, _ = run(key, make, params, hp, seed=seed, bad_steps=bad, lib=optax)
    assert_close(jax.tree.leaves(ours), jax.tree.leaves(theirs))
    assert_close(jax.tree.leaves(state), jax.tree.leaves(ostate))
    if all(np.isfinite(x).all() for x in jax.tree.leaves(ours)):
        assert int(state.total_notfinite) == len(bad)


def test_apply_if_finite_skipped_step_is_bit_identical_and_does_not_run_inner():
    calls = []

    def counting(inner):
        def update_fn(updates, state, params=None, **extra):
            jax.debug.callback(lambda: calls.append(1))
            return inner.update(updates, state, params, **extra)

        return ox.GradientTransformationExtraArgs(inner.init, update_fn)

    params = random_params(3)
    tx = ox.apply_if_finite(counting(ox.adam(0.1)), max_consecutive_errors=5)
    update = jax.jit(tx.update)
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = update(grads, state, params)
    jax.effects_barrier()
    assert len(calls) == 1
    bad = jax.tree.map(lambda g: g.at[...].set(jnp.inf), grads)
    updates, new_state = update(bad, state, params)
    jax.effects_barrier()
    assert len(calls) == 1  # the inner update did not run
    same_leaves(new_state.inner_state, state.inner_state)
    for u in jax.tree.leaves(updates):
        assert not np.any(np.asarray(u))
    assert not bool(new_state.last_finite)
    assert int(new_state.notfinite_count) == 1


def test_apply_if_finite_keeps_bf16():
    params = random_params(4, jnp.bfloat16)
    tx = ox.apply_if_finite(ox.adam(0.1), 2)
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize("name", ["conditionally_transform", "conditionally_mask"])
def test_conditional_wrappers_match_optax(name):
    params = random_params(5)

    def make(lib, hp):
        wrapper = getattr(lib, name)
        return lib.chain(
            wrapper(lib.adam(0.05), lambda step: step % 3 != 1), lib.scale(0.5)
        )

    ours, state, _ = run(name, make, params)
    theirs, ostate, _ = run(name, make, params, lib=optax)
    assert_close(ours, theirs)
    assert_close(jax.tree.leaves(state), jax.tree.leaves(ostate))


def test_conditional_wrappers_forward_extra_args():
    tx = ox.conditionally_mask(
        ox.scale(2.0), lambda step, loss: loss < 1.0, forward_extra_args=True
    )
    state = tx.init(jnp.zeros(1))
    u, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(5.0))
    assert float(u[0]) == 0.0
    u, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(0.5))
    assert float(u[0]) == 2.0 and int(state.step) == 2


def test_combinators_accept_optax_inner_and_work_inside_optax_chain():
    params = random_params(6)

    def make(lib, hp):
        other = optax if lib is ox else ox
        return lib.chain(
            lib.masked(other.trace(0.9), {"dense": True, "emb": False, "scale": True}),
            lib.apply_if_finite(other.scale(-0.1), 3),
        )

    ours, _, _ = run("mixed", make, params)
    theirs, _, _ = run("mixed", make, params, lib=optax)
    assert_close(ours, theirs)
