"""The conformance battery every alias and stateful transformation passes.

Entries come from `tests/conformance.py`.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from tests.conformance import ALIASES, ALL, STATELESS, TRANSFORMS, Entry

IDS = [e.id for e in ALL]


class Pair(NamedTuple):
    first: Any
    second: Any


def nested_params(dtype=jnp.float32, seed=0):
    """Params mixing dict, list, tuple, NamedTuple and a scalar leaf."""
    k = iter(jax.random.split(jax.random.key(seed), 8))
    normal = lambda shape: jax.random.normal(next(k), shape, dtype)  # noqa: E731
    return {
        "dense": {"kernel": normal((3, 4)), "bias": normal((4,))},
        "blocks": [normal((2,)), (normal((2, 2)), normal(()))],
        "pair": Pair(first=normal((5,)), second=normal((1, 3))),
    }


def quadratic_grads(params, target):
    return jax.tree.map(lambda p, t: p - t, params, target)


def run(tx, params, target, steps, jit=True):
    """Runs `steps` of descent on 0.5 * |params - target|^2; returns params, state."""
    state = tx.init(params)

    def step(carry, _):
        p, s = carry
        u, s = tx.update(quadratic_grads(p, target), s, p)
        return (ox.apply_updates(p, u), s), None

    if jit:
        (params, state), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, steps))(
            (params, state)
        )
        return params, state
    for _ in range(steps):
        (params, state), _ = step((params, state), None)
    return params, state


def loss(params, target):
    return float(
        sum(
            0.5 * jnp.sum(jnp.square((p - t).astype(jnp.float32)))
            for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(target))
        )
    )


def assert_trees_close(a, b, rtol=1e-6, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol
        )


def signature(tree):
    """Structure, shapes and dtypes of a tree."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_converges_on_a_quadratic(entry: Entry):
    params = nested_params()
    target = nested_params(seed=1)
    final, _ = run(entry.make(), params, target, entry.steps)
    assert loss(final, target) < entry.tol * loss(params, target)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(final))


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_eager_equals_jit(entry: Entry):
    params, target = nested_params(), nested_params(seed=1)
    tx = entry.make()
    eager_p, eager_s = run(tx, params, target, 3, jit=False)
    jit_p, jit_s = run(tx, params, target, 3, jit=True)
    assert_trees_close(eager_p, jit_p, rtol=1e-5, atol=1e-6)
    assert signature(eager_s) == signature(jit_s)


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_traced_once_and_state_stable(entry: Entry):
    tx = entry.make()
    params, target = nested_params(), nested_params(seed=1)
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(1)
        u, s = tx.update(quadratic_grads(p, target), s, p)
        return ox.apply_updates(p, u), s

    state = tx.init(params)
    first = signature(state)
    for _ in range(4):
        params, state = step(params, state)
        assert signature(state) == first
    assert len(traces) == 1


DTYPES = [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_dtype_kept(entry: Entry, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        params = nested_params(dtype)
        target = nested_params(dtype, seed=1)
        tx = entry.make()
        state = tx.init(params)
        first = signature(state)

        @jax.jit
        def step(p, s):
            u, s = tx.update(quadratic_grads(p, target), s, p)
            return ox.apply_updates(p, u), u, s

        for _ in range(3):
            params, updates, state = step(params, state)
            assert signature(state) == first
        for u in jax.tree.leaves(updates):
            assert u.dtype == jnp.dtype(dtype), (entry.name, u.dtype)
        for p in jax.tree.leaves(params):
            assert p.dtype == jnp.dtype(dtype)
        if dtype != jnp.float16:  # float16 eps underflows for some entries
            assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_inside_chain(entry: Entry):
    params, target = nested_params(), nested_params(seed=1)
    alone, _ = run(entry.make(), params, target, 5)
    chained, state = run(ox.chain(ox.identity(), entry.make()), params, target, 5)
    assert_trees_close(alone, chained)
    assert isinstance(state, tuple) and len(state) == 2


def _numeric_kwargs(entry: Entry) -> dict[str, Any]:
    """The entry's arguments plus defaulted float hyperparameters, to inject."""
    params = inspect.signature(entry.factory).parameters
    out = dict(entry.kwargs)
    for name, p in params.items():
        if (
            name not in out
            and isinstance(p.default, float)
            and name not in (entry.static_args)
        ):
            out[name] = p.default
    return out


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_inside_inject_hyperparams(entry: Entry):
    params, target = nested_params(), nested_params(seed=1)
    kwargs = _numeric_kwargs(entry)
    injected = ox.inject_hyperparams(entry.factory, static_args=entry.static_args)(
        **kwargs
    )
    if entry.lr is not None:
        lr = ox.scale(-entry.lr)
        injected = ox.chain(lr, injected) if entry.lr_first else ox.chain(injected, lr)
    plain, _ = run(entry.make(), params, target, 5)
    hyper, state = run(injected, params, target, 5)
    if entry.deterministic:
        assert_trees_close(plain, hyper, rtol=1e-5, atol=1e-5)
    if entry.lr is None:
        hp = state.hyperparams
    else:
        hp = state[1 if entry.lr_first else 0].hyperparams
    for name, value in hp.items():
        if isinstance(kwargs.get(name), float):
            assert value.dtype == jnp.float32, name


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_float32_hyperparameters_keep_bf16_updates(entry: Entry):
    """Hyperparameters given as float32 arrays (as inject_hyperparams passes them)
    must not promote bfloat16 updates."""
    params = nested_params(jnp.bfloat16)
    target = nested_params(jnp.bfloat16, seed=1)
    kwargs = {
        k: jnp.asarray(v, jnp.float32) if isinstance(v, float) else v
        for k, v in _numeric_kwargs(entry).items()
    }
    tx = entry.factory(**kwargs)
    state = tx.init(params)
    updates, _ = jax.jit(tx.update)(quadratic_grads(params, target), state, params)
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16, entry.name


TREES = {
    "empty_dict": ({}, {}),
    "empty_list": ([], []),
    "none_leaf": (
        {"w": jnp.ones((2, 3)), "frozen": None},
        {"w": jnp.zeros((2, 3)), "frozen": None},
    ),
    "scalar": (jnp.asarray(2.0), jnp.asarray(-1.0)),
    "tuple_of_scalars": ((jnp.asarray(1.0), jnp.asarray(3.0)), (0.0, 0.5)),
}


@pytest.mark.parametrize("tree", list(TREES), ids=list(TREES))
@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_tree_shapes(entry: Entry, tree: str):
    params, target = TREES[tree]
    target = jax.tree.map(jnp.asarray, target)
    tx = entry.make()
    state = tx.init(params)
    grads = jax.tree.map(
        lambda p, t: None if p is None else p - t,
        params,
        target,
        is_leaf=lambda x: x is None,
    )
    updates, state = jax.jit(tx.update)(grads, state, params)
    new = ox.apply_updates(params, updates)
    assert jax.tree.structure(new, is_leaf=lambda x: x is None) == jax.tree.structure(
        params, is_leaf=lambda x: x is None
    )


@pytest.mark.parametrize("entry", ALL, ids=IDS)
def test_state_roundtrips_through_flatten(entry: Entry):
    state = entry.make().init(nested_params())
    leaves, treedef = jax.tree.flatten(state)
    again = jax.tree.unflatten(treedef, leaves)
    assert jax.tree.structure(again) == treedef
    assert type(again) is type(state)
    for a, b in zip(leaves, jax.tree.leaves(again)):
        if jnp.issubdtype(jnp.result_type(a), jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert jnp.result_type(a) == jnp.result_type(b)


def test_registry_is_complete():
    """Every public alias and stateful transform is in the conformance registry."""
    listed = {e.name for e in ALL}
    aliases = set(ox.aliases.__dict__) - {"annotations"}
    aliases = {n for n in aliases if not n.startswith("_") and callable(getattr(ox, n))}
    missing = sorted(aliases - listed)
    assert not missing, f"aliases missing from tests/conformance.py: {missing}"
    # optaxish.transforms also forwards the combinators (as optax.transforms
    # does; the wrappers are registered by their own names) and gives two
    # array helpers of adaptive_grad_clip, which are not transformations.
    not_transforms = ox.transforms._COMBINATORS | {"unitwise_norm", "unitwise_clip"}
    transforms = {
        n
        for n in dir(ox.transforms)
        if not n.startswith("_")
        and n not in not_transforms
        and inspect.isfunction(getattr(ox.transforms, n))
    }
    missing = sorted(transforms - listed - STATELESS)
    assert not missing, f"transforms missing from tests/conformance.py: {missing}"
    assert {e.name for e in ALIASES} <= set(dir(ox))
    assert {e.name for e in TRANSFORMS} <= set(dir(ox))
