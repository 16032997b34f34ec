"""The native sum-of-squares kernel and loss scaling's use of it.

``_native.sum_of_squares`` reads every leaf of a gradient tree in one pass
(with XLA's intra-op threads) for the finiteness check of loss scaling. It
must give the sum within float32 rounding of the exact value, the same bits
from run to run whatever the thread timing, a non-finite result for any NaN or
infinity, a derivative and a batching rule, and leave programs lowered for
other platforms with XLA's reductions.
"""

from __future__ import annotations

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish
from optaxish import _native
from optaxish import loss_scale as lsm
from optaxish.loss_scale import _values

pytestmark = pytest.mark.skipif(
    not _native.sum_squares_available(),
    reason=f"native kernel unavailable: {_native.unavailable_reason('sum_squares')}",
)

# Around the kernel's 32-element vector loop, its float32 block (4,096), the
# run length it reads as four side-by-side segments (16,384) and its chunk
# (65,536); 1,000,003 elements (16 chunks) share the work with a thread of
# XLA's pool.
_SIZES = [0, 1, 7, 31, 32, 33, 4095, 4097, 16_383, 16_401, 65_535, 65_537]
_SIZES += [200_003, 1_000_003]


def _exact(leaves) -> float:
    return float(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in leaves))


def _uses_kernel(fn, *args) -> bool:
    return "optaxish_sum_squares" in jax.jit(fn).lower(*args).as_text()


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.sampled_from(_SIZES), min_size=1, max_size=6),
    magnitude=st.sampled_from([1e-15, 1e-3, 1.0, 1e3, 1e15]),
    seed=st.integers(0, 2**16),
)
def test_sum_is_exact_to_float32_rounding_and_deterministic(sizes, magnitude, seed):
    rng = np.random.default_rng(seed)
    leaves = [
        jnp.asarray(rng.standard_normal(n).astype(np.float32) * np.float32(magnitude))
        for n in sizes
    ]
    got = jax.jit(_native.sum_of_squares)(leaves)
    assert got.dtype == jnp.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), _exact(leaves), rtol=1e-6, atol=1e-37)
    # Each chunk sums into its own slot and the slots add in order: the same
    # bits whichever thread took which chunk.
    again = [jax.jit(_native.sum_of_squares)(leaves) for _ in range(5)]
    assert all(float(x) == float(got) for x in again)


@settings(max_examples=25, deadline=None)
@given(
    position=st.integers(0, 2 * 65_537 + 4_097 - 1),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_any_nonfinite_entry_makes_the_sum_nonfinite(position, bad):
    sizes = [65_537, 4_097, 65_537]
    flat = np.ones(sum(sizes), np.float32)
    flat[position] = bad
    leaves = [jnp.asarray(x) for x in np.split(flat, np.cumsum(sizes)[:-1])]
    assert not np.isfinite(float(jax.jit(_native.sum_of_squares)(leaves)))


def test_differentiable_and_batched():
    leaves = [jnp.linspace(-1.0, 1.0, 70_000), jnp.full((3, 5), 2.0)]
    grads = jax.grad(_native.sum_of_squares)(leaves)
    for g, x in zip(grads, leaves):
        np.testing.assert_allclose(g, 2 * x, rtol=1e-6)
    # Under vmap (per-example norms) XLA reduces each example; an unbatched
    # leaf counts once per example.
    rows = jnp.arange(3.0)[:, None] * jnp.ones((3, 100_000))

    def per_example(r):
        return _native.sum_of_squares([r, leaves[1]])

    batched = jax.jit(jax.vmap(per_example))(rows)
    np.testing.assert_allclose(batched, [60.0, 1e5 + 60, 4e5 + 60], rtol=1e-6)
    assert not _uses_kernel(jax.vmap(per_example), rows)
    per_row = jax.vmap(jax.grad(per_example))(rows)
    np.testing.assert_allclose(per_row, 2 * rows, rtol=1e-6)


def test_global_norm_and_clipping_read_large_float32_trees_natively():
    rng = np.random.default_rng(3)
    tree = {
        f"w{i}": jnp.asarray(rng.standard_normal(30_000), jnp.float32) for i in range(4)
    }
    assert _uses_kernel(optaxish.global_norm, tree)
    exact = np.sqrt(_exact(tree.values()))
    np.testing.assert_allclose(
        float(jax.jit(optaxish.global_norm)(tree)), exact, rtol=1e-6
    )
    clip = optaxish.clip_by_global_norm(1.0)
    clipped, _ = jax.jit(clip.update)(tree, clip.init(tree))
    np.testing.assert_allclose(float(optaxish.global_norm(clipped)), 1.0, rtol=1e-6)
    # Small trees, one leaf (a packed buffer: XLA's one reduction is as fast)
    # and other dtypes keep XLA's reductions and their bits.
    assert not _uses_kernel(optaxish.global_norm, {"w": jnp.ones(1000)})
    assert not _uses_kernel(optaxish.global_norm, {"w": jnp.ones(200_000)})
    halves = jax.tree.map(lambda x: x.astype(jnp.bfloat16), tree)
    assert not _uses_kernel(optaxish.global_norm, halves)


def test_rejects_other_dtypes_naming_them():
    with pytest.raises(ValueError, match="float32.*float16"):
        _native.sum_of_squares([jnp.ones(3), jnp.ones(3, jnp.float16)])
    assert float(_native.sum_of_squares([])) == 0.0
    with pytest.raises(ValueError, match="kernel=.bogus."):
        _native.unavailable_reason("bogus")


def test_other_platforms_keep_xlas_reductions():
    # An export for CUDA lowers only the default branch: no CPU custom call.
    exported = jax.export.export(
        jax.jit(lambda xs: _native.sum_of_squares(xs)), platforms=["cuda"]
    )([jnp.ones(100_000)])
    assert "optaxish_sum_squares" not in exported.mlir_module()


def test_falls_back_to_xla_when_unavailable(monkeypatch):
    leaves = [jnp.full((100_000,), 0.5)]
    monkeypatch.setitem(_native._STATE, "sum_squares", "turned off for the test")
    assert not _native.sum_squares_available()
    assert _native.unavailable_reason("sum_squares") == "turned off for the test"
    assert not _uses_kernel(_native.sum_of_squares, leaves)
    assert float(_native.sum_of_squares(leaves)) == 25_000.0


def _tree(n_leaves: int, size: int, dtype=jnp.float32, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        f"w{i}": jnp.asarray(rng.standard_normal(size), dtype) for i in range(n_leaves)
    }


def test_the_check_uses_the_kernel_only_on_large_float32_trees():
    scale = jnp.float32(2.0**15)
    big = _tree(3, _native.MIN_SUM_SQUARES_SIZE // 2)
    assert _uses_kernel(_values._norm_and_finite, big, scale)
    small = _tree(3, 1000)
    assert not _uses_kernel(_values._norm_and_finite, small, scale)
    low = _tree(3, _native.MIN_SUM_SQUARES_SIZE, jnp.bfloat16)
    assert not _uses_kernel(_values._norm_and_finite, low, scale)


def _fuzzed_training(native: bool, inner, steps: int = 8):
    """Loss-scaled steps on a 200K-parameter tree, NaNs in steps 2 and 5."""
    params = _tree(4, 50_000, seed=1)
    state = lsm.loss_scaling(inner, lsm.DynamicLossScale(2.0**10, period=3)).init(
        params
    )
    threshold = 0 if native else 1 << 62

    def step(g, s, p):
        return lsm.loss_scaling_step(inner, g, s, p)

    with mock.patch.object(_native, "MIN_SUM_SQUARES_SIZE", threshold):
        assert _uses_kernel(step, params, state, params) == native
        jitted = jax.jit(step)
        history = []
        for i in range(steps):
            grads = jax.tree.map(lambda g: g * 2.0**10, _tree(4, 50_000, seed=10 + i))
            if i in (2, 5):
                grads["w3"] = grads["w3"].at[i * 1000].set(jnp.nan)
            params, state = jitted(grads, state, params)
            history.append((params, state))
    return history


@pytest.mark.parametrize("clip", [False, True])
def test_loss_scaling_with_the_kernel_steps_as_without(clip):
    inner = optaxish.adam(1e-2)
    if clip:  # the clip reuses the check's norm, so its numbers come from it
        inner = optaxish.chain(optaxish.clip_by_global_norm(100.0), inner)
    ours = _fuzzed_training(True, inner)
    theirs = _fuzzed_training(False, inner)
    for i, ((p, s), (q, t)) in enumerate(zip(ours, theirs)):
        assert int(s.skipped_steps) == int(t.skipped_steps) == (i >= 2) + (i >= 5)
        assert float(s.loss_scale.loss_scale) == float(t.loss_scale.loss_scale)
        for a, b in zip(jax.tree.leaves((p, s)), jax.tree.leaves((q, t))):
            if clip:
                # entries near 0 (mu, after cancellation) differ in absolute terms
                np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-8)
            else:  # plain Adam never reads the norm: the same bits
                np.testing.assert_array_equal(a, b)
    # A skipped step leaves parameters and inner state bit-identical.
    for i in (2, 5):
        before, after = ours[i - 1], ours[i]
        for a, b in zip(
            jax.tree.leaves((before[0], before[1].inner_state)),
            jax.tree.leaves((after[0], after[1].inner_state)),
        ):
            np.testing.assert_array_equal(a, b)


def test_keras_loss_scale_optimizer_steps_as_without_the_kernel():
    from optaxish.mixed_precision import LossScaleOptimizer
    from optaxish.optimizers import Adam

    values = [np.linspace(-1, 1, 40_000, dtype=np.float32) * (k + 1) for k in range(3)]

    def train(threshold):
        with mock.patch.object(_native, "MIN_SUM_SQUARES_SIZE", threshold):
            opt = LossScaleOptimizer(
                Adam(1e-2, global_clipnorm=1.0), initial_scale=64.0
            )
            variables = [optaxish.Variable(v) for v in values]
            for step in range(4):
                opt.get_scaled_loss(jnp.float32(1.0))  # as a training step does
                scaled = [jnp.asarray(v * (step + 1) * 64.0) for v in values]
                if step == 1:
                    scaled[2] = scaled[2].at[7].set(jnp.inf)
                opt.apply_gradients(zip(opt.get_unscaled_gradients(scaled), variables))
        return opt, [v.numpy() for v in variables]

    ours, ours_values = train(0)
    theirs, their_values = train(1 << 62)
    for a, b, v in zip(ours_values, their_values, values):
        np.testing.assert_allclose(a, b, rtol=2e-6)
        assert not np.array_equal(a, v)  # it trained
    for opt in (ours, theirs):
        assert float(opt.loss_scale) == 32.0  # the inf step was skipped


def test_a_step_exports_with_the_kernels_off(monkeypatch):
    # jax.export refuses custom calls; with OPTAXISH_NATIVE=0 (here: the
    # kernel marked off, as that variable leaves it) the step exports.
    inner = optaxish.adam(1e-3)
    params = _tree(2, _native.MIN_SUM_SQUARES_SIZE)
    state = lsm.loss_scaling(inner).init(params)

    def step(g, s, p):
        return lsm.loss_scaling_step(inner, g, s, p)

    with pytest.raises(ValueError, match="optaxish_sum_squares"):
        jax.export.export(jax.jit(step))(params, state, params)
    expected = jax.jit(step)(params, state, params)[0]
    monkeypatch.setitem(
        _native._STATE, "sum_squares", "turned off by OPTAXISH_NATIVE=0"
    )
    # A new function: jit's trace cache would hand back the first trace.
    exported = jax.export.export(jax.jit(lambda *a: step(*a)))(params, state, params)
    new_params, _ = exported.call(params, state, params)
    for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)  # plain Adam does not read the norm
