"""``optaxish.tree`` and ``optaxish.tree_utils`` against numpy (and optax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish as ox

SETTINGS = settings(max_examples=8, deadline=None)
seeds = st.integers(0, 2**16)


def make_tree(seed, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 4)
    return {
        "w": jax.random.normal(k[0], (4, 3), dtype),
        "b": jax.random.normal(k[1], (3,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
        "nested": [jax.random.normal(k[3], (2, 2, 2), dtype)],
    }


def np_leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def close(got, want, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def close_tree(got, want_leaves, **kw):
    leaves = jax.tree.leaves(got)
    assert len(leaves) == len(want_leaves)
    for g, w in zip(leaves, want_leaves):
        close(g, w, **kw)


@SETTINGS
@given(seed=seeds, a=st.floats(-3.0, 3.0))
def test_elementwise_ops_match_numpy(seed, a):
    x, y, z = make_tree(seed), make_tree(seed + 1), make_tree(seed + 2)
    nx, ny, nz = np_leaves(x), np_leaves(y), np_leaves(z)
    close_tree(ox.tree.add(x, y), [p + q for p, q in zip(nx, ny)])
    close_tree(ox.tree.add(x, y, z), [p + q + r for p, q, r in zip(nx, ny, nz)])
    close_tree(ox.tree.sub(x, y), [p - q for p, q in zip(nx, ny)])
    close_tree(ox.tree.mul(x, y), [p * q for p, q in zip(nx, ny)])
    close_tree(ox.tree.div(x, y), [p / q for p, q in zip(nx, ny)], rtol=1e-4)
    close_tree(ox.tree.scale(a, x), [a * p for p in nx])
    close_tree(ox.tree.add_scale(x, a, y), [p + a * q for p, q in zip(nx, ny)])
    close_tree(ox.tree.clip(x, -0.5, 0.7), [np.clip(p, -0.5, 0.7) for p in nx])
    close_tree(ox.tree.clip(x, None, 0.1), [np.minimum(p, 0.1) for p in nx])


@SETTINGS
@given(seed=seeds)
def test_reductions_match_numpy(seed):
    x, y = make_tree(seed), make_tree(seed + 1)
    nx, ny = np_leaves(x), np_leaves(y)
    flat = np.concatenate([p.ravel() for p in nx])
    close(ox.tree.vdot(x, y), sum(np.vdot(p, q) for p, q in zip(nx, ny)), atol=1e-5)
    close(ox.tree.sum(x), flat.sum(), atol=1e-5)
    close(ox.tree.max(x), flat.max())
    close(ox.tree.min(x), flat.min())
    assert ox.tree.size(x) == flat.size == 24
    close(ox.tree.norm(x), np.linalg.norm(flat))
    close(ox.tree.norm(x, ord=2), np.linalg.norm(flat))
    close(ox.tree.norm(x, squared=True), np.sum(flat**2))
    close(ox.tree.norm(x, ord=1), np.abs(flat).sum(), atol=1e-5)
    close(ox.tree.norm(x, ord="inf"), np.abs(flat).max())
    close(ox.tree.norm(x, ord=jnp.inf), np.abs(flat).max())
    close(ox.tree.global_norm(x), np.linalg.norm(flat))
    close(ox.global_norm(x), np.linalg.norm(flat))


@SETTINGS
@given(seed=seeds)
def test_reductions_match_optax(seed):
    x, y = make_tree(seed), make_tree(seed + 1)
    for ours, theirs in [
        (ox.tree.vdot(x, y), optax.tree.vdot(x, y)),
        (ox.tree.sum(x), optax.tree.sum(x)),
        (ox.tree.max(x), optax.tree.max(x)),
        (ox.tree.min(x), optax.tree.min(x)),
        (ox.tree.norm(x), optax.tree.norm(x)),
        (ox.tree.norm(x, ord=1), optax.tree.norm(x, ord=1)),
        (ox.tree.norm(x, ord="inf"), optax.tree.norm(x, ord="inf")),
        (ox.tree.norm(x, squared=True), optax.tree.norm(x, squared=True)),
    ]:
        close(ours, np.asarray(theirs, np.float64))


def test_complex_leaves():
    x = {"c": jnp.array([3 + 4j, 1 - 1j], jnp.complex64), "r": jnp.array([2.0])}
    close(ox.tree.norm(x), np.sqrt(25 + 2 + 4))
    np.testing.assert_allclose(ox.tree.vdot(x, x), 25 + 2 + 4, rtol=1e-6)
    np.testing.assert_array_equal(ox.tree.conj(x)["c"], np.conj(x["c"]))
    np.testing.assert_array_equal(ox.tree.real(x)["c"], [3.0, 1.0])
    assert ox.tree.real(x)["c"].dtype == jnp.float32


def test_empty_trees():
    assert ox.tree.size({}) == 0
    assert float(ox.tree.norm({})) == 0.0
    assert float(ox.tree.sum([])) == 0.0
    assert float(ox.tree.max({})) == -np.inf and float(ox.tree.min({})) == np.inf
    assert bool(ox.tree.all_finite({}))
    assert ox.tree.zeros_like({}) == {}


def test_max_min_skip_empty_leaves_like_optax():
    x = {"a": jnp.zeros((0,)), "b": jnp.array([1.0, -2.0])}
    assert float(ox.tree.max(x)) == float(optax.tree.max(x)) == 1.0
    assert float(ox.tree.min(x)) == float(optax.tree.min(x)) == -2.0


def test_all_finite():
    x = make_tree(0)
    assert bool(ox.tree.all_finite(x))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        y = dict(x, s=jnp.asarray(bad, jnp.float32))
        assert not bool(ox.tree.all_finite(y))
    assert not bool(jax.jit(ox.tree.all_finite)(dict(x, b=x["b"].at[1].set(jnp.nan))))


def test_where_and_select():
    x, y = make_tree(1), make_tree(2)
    got = ox.tree.where(True, x, y)
    jax.tree.map(np.testing.assert_array_equal, got, x)
    got = ox.tree.select(jnp.array(False), x, y)
    jax.tree.map(np.testing.assert_array_equal, got, y)
    cond = jax.tree.map(lambda a: a > 0, x)
    got = ox.tree.where(cond, x, y)
    jax.tree.map(
        lambda g, a, b: np.testing.assert_array_equal(g, np.where(a > 0, a, b)),
        got,
        x,
        y,
    )


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16, jnp.int32])
def test_like_constructors(dtype):
    x = make_tree(0)
    for fn, value in [(ox.tree.zeros_like, 0), (ox.tree.ones_like, 1)]:
        out = fn(x, dtype=dtype)
        for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(x)):
            assert a.shape == b.shape and a.dtype == (dtype or b.dtype)
            assert np.all(np.asarray(a, np.float32) == value)
    out = ox.tree.full_like(x, 3, dtype=dtype)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(x)):
        assert a.dtype == (dtype or b.dtype) and np.all(np.asarray(a, np.float32) == 3)


@SETTINGS
@given(seed=seeds, decay=st.floats(0.0, 0.999), order=st.sampled_from([1, 2, 3]))
def test_moments_match_numpy(seed, decay, order):
    g, m = make_tree(seed), jax.tree.map(jnp.abs, make_tree(seed + 1))
    ng, nm = np_leaves(g), np_leaves(m)
    close_tree(
        ox.tree.update_moment(g, m, decay, order),
        [(1 - decay) * a**order + decay * b for a, b in zip(ng, nm)],
        atol=1e-5,
    )
    close_tree(
        ox.tree.update_moment_per_elem_norm(g, m, decay, 2),
        [(1 - decay) * np.abs(a) ** 2 + decay * b for a, b in zip(ng, nm)],
        atol=1e-5,
    )
    close_tree(
        ox.tree.update_infinity_moment(g, m, decay, 1e-3),
        [np.maximum(np.abs(a) + 1e-3, decay * b) for a, b in zip(ng, nm)],
    )


@SETTINGS
@given(seed=seeds, decay=st.floats(0.0, 0.999))
def test_moments_match_optax(seed, decay):
    g, m = make_tree(seed), make_tree(seed + 1)
    for ours, theirs in [
        (
            ox.tree.update_moment(g, m, decay, 2),
            optax.tree.update_moment(g, m, decay, 2),
        ),
        (
            ox.tree.update_moment_per_elem_norm(g, m, decay, 2),
            optax.tree.update_moment_per_elem_norm(g, m, decay, 2),
        ),
        (
            ox.tree.update_infinity_moment(g, m, decay, 1e-8),
            optax.tree.update_infinity_moment(g, m, decay, 1e-8),
        ),
    ]:
        jax.tree.map(lambda a, b: close(a, np.asarray(b, np.float64)), ours, theirs)


def test_moments_pass_none_leaves():
    g = {"a": jnp.ones(2), "frozen": None}
    m = {"a": jnp.zeros(2), "frozen": None}
    for out in (
        ox.tree.update_moment(g, m, 0.9, 2),
        ox.tree.update_moment_per_elem_norm(g, m, 0.9, 2),
        ox.tree.update_infinity_moment(g, m, 0.9, 0.0),
    ):
        assert out["frozen"] is None and out["a"].shape == (2,)


def test_moment_per_elem_norm_complex():
    g = {"c": jnp.array([3 + 4j], jnp.complex64)}
    m = {"c": jnp.zeros(1, jnp.float32)}
    close(ox.tree.update_moment_per_elem_norm(g, m, 0.5, 2)["c"], [12.5])
    close(ox.tree.update_moment_per_elem_norm(g, m, 0.5, 1)["c"], [2.5])


_jit_bias_correction = jax.jit(ox.tree.bias_correction)
_jit_optax_bias_correction = jax.jit(optax.tree.bias_correction)


@SETTINGS
@given(decay=st.floats(0.5, 0.999), count=st.integers(1, 1000))
def test_bias_correction(decay, count):
    m = {"a": jnp.full(3, 0.5), "h": jnp.full(2, 0.5, jnp.bfloat16)}
    out = ox.tree.bias_correction(m, decay, jnp.asarray(count, jnp.int32))
    assert out["h"].dtype == jnp.bfloat16
    close(out["a"], np.full(3, 0.5 / (1 - decay**count)), rtol=1e-4)
    close(out["h"], np.full(2, 0.5 / (1 - decay**count)), rtol=1e-2)
    # Same numbers as optax under jit (eager and compiled `pow` differ by ulps).
    c = jnp.asarray(count, jnp.int32)
    ours = _jit_bias_correction(m, jnp.float32(decay), c)
    want = _jit_optax_bias_correction(m, jnp.float32(decay), c)
    np.testing.assert_allclose(ours["a"], want["a"], rtol=1e-6)


def test_bias_correction_keeps_small_factors_in_low_precision():
    # 1 - 0.999 computed in bf16 would round; the factor is float32 first.
    out = ox.tree.bias_correction(
        {"h": jnp.ones(1, jnp.bfloat16)}, 0.999, jnp.asarray(1)
    )
    close(out["h"], [1000.0], rtol=1e-2)


def test_cast_and_cast_like():
    x = make_tree(0)
    assert ox.tree.cast(x, None) is x
    out = ox.tree.cast(x, jnp.bfloat16)
    assert {a.dtype for a in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}
    other = {"w": x["w"], "b": x["b"].astype(jnp.float16), "s": 1, "nested": [x["w"]]}
    out = ox.tree.cast_like(x, other)
    assert out["b"].dtype == jnp.float16 and out["w"].dtype == jnp.float32
    assert out["s"].dtype == jnp.int32


def test_tree_dtype():
    x = make_tree(0)
    assert ox.tree.dtype(x) == jnp.float32
    mixed = [jnp.ones(1, jnp.bfloat16), jnp.ones(1, jnp.float32)]
    with pytest.raises(ValueError, match="mixes dtypes"):
        ox.tree.dtype(mixed)
    assert ox.tree.dtype(mixed, "promote") == jnp.float32
    assert ox.tree.dtype(mixed, "highest") == jnp.float32
    assert ox.tree.dtype(mixed, "lowest") == jnp.bfloat16
    with pytest.raises(ValueError, match="mixed_dtype_handler"):
        ox.tree.dtype(mixed, "bogus")


def test_norm_rejects_unknown_ord():
    with pytest.raises(ValueError, match="ord"):
        ox.tree.norm(make_tree(0), ord=3)


def test_jit_and_traced_scalars():
    x, y = make_tree(0), make_tree(1)
    got = jax.jit(ox.tree.add_scale)(x, jnp.float32(0.5), y)
    jax.tree.map(
        lambda g, a, b: close(g, np.asarray(a) + 0.5 * np.asarray(b)), got, x, y
    )


def test_tree_utils_spells_tree_functions_with_tree_prefix():
    # optax's older spelling: optax.tree_utils.tree_add == optax.tree.add.
    names = [n for n in dir(ox.tree) if not n.startswith("_")]
    functions = [n for n in names if callable(getattr(ox.tree, n)) and n.islower()]
    assert "add" in functions and "norm" in functions
    for n in functions:
        assert getattr(ox.tree_utils, f"tree_{n}") is getattr(ox.tree, n), n
    assert set(ox.tree_utils.__all__) >= {f"tree_{n}" for n in functions}


def _full_size_results(hlo: str, n: int) -> int:
    """How many instructions of the entry computation produce an ``f32[n]``."""
    entry = hlo[hlo.index("ENTRY") :]
    return sum(f"= f32[{n}]" in line for line in entry.splitlines())


@pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="the barrier is for XLA:CPU's fusion only"
)
def test_global_norm_beside_adam_adds_no_gradient_sized_buffer():
    # Logging the gradients' norm next to an Adam step must not write the
    # squared gradients out: XLA merges the norm's `g * g` with Adam's, and on
    # CPU the merged square was a kernel of its own with a fresh buffer
    # (1.6-2.4x the step). `tree.norm` keeps the squares apart there.
    n = 4096
    tx = ox.adam(1e-3)
    params = {"w": jnp.ones(n)}

    def step(p, g, s, with_norm):
        u, s = tx.update(g, s, p)
        norm = ox.global_norm(g) if with_norm else jnp.zeros(())
        return ox.apply_updates(p, u), s, norm

    def hlo(with_norm):
        fn = jax.jit(lambda p, g, s: step(p, g, s, with_norm), donate_argnums=(0, 2))
        return fn.lower(params, params, tx.init(params)).compile().as_text()

    assert _full_size_results(hlo(True), n) == _full_size_results(hlo(False), n)


@pytest.mark.parametrize("squared", [False, True])
def test_norm_differentiates_and_batches(squared):
    x = {"a": jnp.array([3.0, -4.0]), "b": jnp.array([[12.0]])}
    grad = jax.grad(lambda t: ox.tree.norm(t, squared=squared))(x)
    want = 2.0 if squared else 1.0 / 13.0
    close(grad["a"], want * np.array([3.0, -4.0]))
    close(grad["b"], want * np.array([[12.0]]))
    batched = jax.vmap(lambda t: ox.tree.norm(t, squared=squared))(
        jax.tree.map(lambda v: jnp.stack([v, 2 * v]), x)
    )
    close(batched, np.array([13.0, 26.0]) ** (2 if squared else 1))
