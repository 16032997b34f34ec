"""``scale_by_factored_rms(factored_axes=...)``: optax's layout and Keras'.

``"largest"`` (the default) must keep optax's numbers; ``"last_two"`` must
follow Keras 3 ``Adafactor``'s ``r``/``c``/``v`` equations, checked against a
NumPy transcription of them (``keras_reference`` below).
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
from optaxish.transforms._factorized import last_two_second_moment

SETTINGS = settings(max_examples=10, deadline=None)
STEPS = 50
SHAPES = {"w": (4, 3, 5), "m": (6, 2), "b": (3,), "s": ()}


def make_tree(seed, shapes=SHAPES, steps=None):
    rng = np.random.default_rng(seed)
    lead = () if steps is None else (steps,)
    return {
        k: jnp.asarray(rng.normal(size=lead + s), jnp.float32)
        for k, s in shapes.items()
    }


def run(tx, params, grads):
    """Applies ``tx`` to ``grads[t]`` for every step ``t`` (one jitted scan)."""

    @jax.jit
    def go(params, grads):
        def body(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            return (ox.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(body, (params, tx.init(params)), grads)
        return p, s

    return go(params, grads)


def keras_reference(params, grads, beta_2_decay, eps):
    """Keras 3 ``Adafactor``'s second-moment scaling, ``x <- x - 0.05 * u``."""
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    r = {k: 0.0 for k in params}
    c = {k: 0.0 for k in params}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t in range(len(grads[next(iter(grads))])):
        beta = 1.0 - (t + 1.0) ** beta_2_decay
        for k, p in params.items():
            g = np.asarray(grads[k][t], np.float64)
            s = g**2 + eps
            if p.ndim >= 2:
                r[k] = beta * r[k] + (1 - beta) * s.mean(-1)
                c[k] = beta * c[k] + (1 - beta) * s.mean(-2)
                row = r[k] / r[k].mean(-1, keepdims=True)
                v[k] = row[..., :, None] * c[k][..., None, :]
            else:
                v[k] = beta * v[k] + (1 - beta) * s
            params[k] = p - 0.05 * g / np.sqrt(v[k])
    return params, r, c, v


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    decay_rate=st.floats(0.5, 1.0),
    eps=st.sampled_from([1e-30, 1e-8, 1e-3]),
    min_dim=st.sampled_from([0, 3, 5]),
)
def test_largest_is_optax_default(seed, decay_rate, eps, min_dim):
    params = make_tree(seed)
    grads = make_tree(seed + 1, steps=STEPS)

    def make(lib, **extra):
        return lib.chain(
            lib.scale_by_factored_rms(
                decay_rate=decay_rate,
                min_dim_size_to_factor=min_dim,
                epsilon=eps,
                **extra,
            ),
            lib.scale(-0.05),
        )

    want, s_want = run(make(optax), params, grads)
    got, s_got = run(make(ox, factored_axes="largest"), params, grads)
    np.testing.assert_allclose(
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(got)]),
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(want)]),
        rtol=1e-5,
        atol=1e-6,
    )
    shapes = lambda s: jax.tree.map(jnp.shape, tuple(s))  # noqa: E731
    assert shapes(s_got) == shapes(s_want)


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    beta_2_decay=st.floats(-1.0, -0.5),
    eps=st.sampled_from([1e-30, 1e-3]),
)
def test_last_two_follows_keras_equations(seed, beta_2_decay, eps):
    params = make_tree(seed)
    grads = make_tree(seed + 1, steps=STEPS)
    tx = ox.chain(
        ox.scale_by_factored_rms(
            decay_rate=-beta_2_decay,
            min_dim_size_to_factor=0,
            epsilon=eps,
            factored_axes="last_two",
        ),
        ox.scale(-0.05),
    )
    got, state = run(tx, params, grads)
    want, r, c, v = keras_reference(params, grads, beta_2_decay, eps)
    fs = state[0]
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
        if len(SHAPES[k]) >= 2:
            np.testing.assert_allclose(fs.v_row[k], r[k], rtol=1e-5, err_msg=k)
            np.testing.assert_allclose(fs.v_col[k], c[k], rtol=1e-5, err_msg=k)
            full = last_two_second_moment(fs.v_row[k], fs.v_col[k])
            np.testing.assert_allclose(full, v[k], rtol=1e-5, err_msg=k)
        else:
            np.testing.assert_allclose(fs.v[k], v[k], rtol=1e-5, err_msg=k)


def test_last_two_state_shapes_and_threshold():
    params = {"w": jnp.zeros((7, 2, 3)), "big": jnp.zeros((9, 8, 1)), "b": None}
    tx = ox.scale_by_factored_rms(min_dim_size_to_factor=2, factored_axes="last_two")
    state = tx.init(params)
    assert state.v_row["w"].shape == (7, 2)  # drops the last axis (Keras' r)
    assert state.v_col["w"].shape == (7, 3)  # drops the second last (Keras' c)
    assert state.v["w"].shape == (1,)
    # The last axis has size 1 < 2: not factored, although 9 and 8 are long.
    assert state.v["big"].shape == (9, 8, 1) and state.v_row["big"].shape == (1,)
    largest = ox.scale_by_factored_rms(min_dim_size_to_factor=2).init(params)
    assert largest.v_row["big"].shape == (8, 1) and largest.v_col["big"].shape == (9, 1)
    assert state.v["b"] is None
    u, _ = jax.jit(tx.update)(jax.tree.map(jnp.ones_like, params), state)
    assert u["b"] is None and u["w"].shape == (7, 2, 3)


def test_last_two_equals_largest_when_the_last_axes_are_largest():
    params = {"w": jnp.zeros((2, 5, 7)), "m": jnp.zeros((3, 4))}
    grads = make_tree(3, {"w": (2, 5, 7), "m": (3, 4)}, steps=STEPS)
    a, sa = run(ox.scale_by_factored_rms(min_dim_size_to_factor=0), params, grads)
    b, sb = run(
        ox.scale_by_factored_rms(min_dim_size_to_factor=0, factored_axes="last_two"),
        params,
        grads,
    )
    jax.tree.map(np.testing.assert_array_equal, (a, tuple(sa)), (b, tuple(sb)))


def test_last_two_keeps_bfloat16_and_accepts_traced_hyperparameters():
    params = {"w": jnp.ones((3, 4), jnp.bfloat16)}
    grads = {"w": jnp.full((3, 4), 0.5, jnp.bfloat16)}

    @jax.jit
    def step(decay, eps):
        tx = ox.scale_by_factored_rms(
            decay_rate=decay, epsilon=eps, factored_axes="last_two"
        )
        return tx.update(grads, tx.init(params), params)

    u, state = step(jnp.float32(0.8), jnp.float32(1e-30))
    assert u["w"].dtype == jnp.bfloat16 and state.v_row["w"].dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(u["w"], np.float32), 1.0, rtol=1e-2)


def test_unknown_factored_axes_is_rejected():
    with pytest.raises(ValueError, match="`factored_axes` must be one of .*"):
        ox.scale_by_factored_rms(factored_axes="first_two")
