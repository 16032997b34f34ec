"""The native one-pass Adam kernel (``optaxish/_native``) and the facade's use of it.

The kernel must give XLA's numbers within float32 rounding (the same
operations; only the order in which multiply-adds are contracted into FMAs may
differ, in the last bit), compile once, keep a skipped loss-scale step
bit-identical, and fall back to XLA's loops whenever it cannot run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish
from optaxish import _native
from optaxish._native import _build
from optaxish.mixed_precision import LossScaleOptimizer
from optaxish.optimizers import Adam, AdamW
from optaxish.optimizers._native_step import MIN_MEAN_SIZE, native_step_applies

pytestmark = pytest.mark.skipif(
    not _native.adam_available(),
    reason=f"native kernel unavailable: {_native.unavailable_reason()}",
)


def _xla_step(p, state, g, lr, b1, b2, eps):
    tx = optaxish.chain(
        optaxish.scale_by_adam(b1, b2, eps, epsilon_hat=True), optaxish.scale(-lr)
    )
    updates, state = tx.update(g, state, p)
    return (p + updates).astype(p.dtype), state


def _native_step(p, state, g, lr, b1, b2, eps):
    adam, rest = state
    count = optaxish.safe_increment(adam.count)
    one_minus_pow = optaxish._numerics.one_minus_pow
    factor = jnp.sqrt(one_minus_pow(b2, count)) / one_minus_pow(b1, count)
    p, mu, nu = _native.adam_step(
        p, adam.mu, adam.nu, g, b1=b1, b2=b2, factor=factor, eps=eps,
        eps_root=0.0, neg_lr=-lr,
    )  # fmt: skip
    return p, (adam._replace(count=count, mu=mu, nu=nu), rest)


@settings(max_examples=12, deadline=None)
@given(
    # 1,000,003: 16 chunks of 65,536, shared with a thread of XLA's pool.
    n=st.sampled_from([1, 7, 64, 1000, 300_000, 1_000_003]),
    hyper=st.tuples(st.floats(1e-4, 0.5), st.floats(0.5, 0.99), st.floats(0.9, 0.9999)),
    steps=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_kernel_gives_xlas_numbers(n, hyper, steps, seed):
    lr, b1, b2 = (jnp.float32(h) for h in hyper)
    rng = np.random.default_rng(seed)
    p = jnp.asarray(rng.standard_normal(n, dtype=np.float32))
    tx = optaxish.chain(
        optaxish.scale_by_adam(0.9, 0.999, 1e-7, epsilon_hat=True), optaxish.scale(-1.0)
    )
    ours, theirs = (p, tx.init(p)), (p, tx.init(p))
    native = jax.jit(_native_step, donate_argnums=(0, 1))
    xla = jax.jit(_xla_step)
    for _ in range(steps):
        scale = 10.0 ** rng.integers(-6, 2, n)  # tiny to large gradients
        g = jnp.asarray(rng.standard_normal(n, dtype=np.float32) * scale)
        ours = native(
            jnp.copy(ours[0]), jax.tree.map(jnp.copy, ours[1]), g, lr, b1, b2, 1e-7
        )
        theirs = xla(theirs[0], theirs[1], g, lr, b1, b2, 1e-7)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        # A few ulps: one FMA contracted the other way rounds once less.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=5e-7, atol=0)


def test_kernel_under_vmap_runs_per_example():
    p, mu, nu, g = (jnp.full((3, 5), x, jnp.float32) for x in (1.0, 0.0, 0.0, 2.0))
    step = jax.vmap(
        lambda p, m, v, g: _native.adam_step(
            p,
            m,
            v,
            g,
            b1=0.9,
            b2=0.999,
            factor=1.0,
            eps=0.0,
            eps_root=0.0,
            neg_lr=-0.5,
        )  # fmt: skip
    )
    new_p, new_mu, new_nu = step(p, mu, nu, g)
    f32 = np.float32
    mu1 = (f32(1) - f32(0.9)) * f32(2)
    nu1 = (f32(1) - f32(0.999)) * f32(4)
    np.testing.assert_allclose(new_mu, np.full((3, 5), mu1), rtol=1e-7)
    np.testing.assert_allclose(new_nu, np.full((3, 5), nu1), rtol=1e-7)
    np.testing.assert_allclose(new_p, 1 - 0.5 * mu1 / np.sqrt(nu1), rtol=1e-6)


# 24 variables averaging 4,584 elements: packed, and large enough for the kernel.
_SHAPES = [(64, 128), (128,), (100, 100), (17,)] * 6


def _train(native: bool, steps: int = 4, optimizer=Adam, exclude=False, **kwargs):
    """``steps`` of ``optimizer(0.01, **kwargs)`` over ``_SHAPES`` (with
    ``exclude``, the 1-D variables exempt from weight decay), the kernel on
    or off; returns the optimizer and the variables."""
    rng = np.random.default_rng(0)
    variables = [
        optaxish.Variable(rng.standard_normal(s).astype(np.float32)) for s in _SHAPES
    ]
    opt = optimizer(0.01, **kwargs)
    if exclude:
        opt.exclude_from_weight_decay(var_list=[v for v in variables if v.ndim == 1])
    if not native:
        opt._native_kernel = None
    for _ in range(steps):
        grads = [
            jnp.asarray(rng.standard_normal(s).astype(np.float32) * 10.0 ** rng.integers(-5, 2))
            for s in _SHAPES
        ]  # fmt: skip
        opt.apply_gradients(zip(grads, variables))
    return opt, variables


def _uses_kernel(opt) -> bool:
    (group,) = opt._groups.values()
    return native_step_applies(opt, [group.values])


def _slots(opt, variables):
    return [np.asarray(opt.get_slot(v, s)) for v in variables for s in ("m", "v")]


def test_facade_packed_adam_uses_the_kernel():
    ours, ours_vars = _train(native=True)
    theirs, their_vars = _train(native=False)
    assert ours._groups and theirs._groups  # both packed
    assert _uses_kernel(ours) and not _uses_kernel(theirs)
    for a, b in zip(ours_vars, their_vars):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=5e-7, atol=1e-30)
    for a, b in zip(_slots(ours, ours_vars), _slots(theirs, their_vars)):
        np.testing.assert_allclose(a, b, rtol=5e-7, atol=1e-30)
    assert int(ours.iterations) == 4 and ours._traces == theirs._traces == 1


def test_facade_with_clipped_gradients_within_float32_rounding():
    # XLA fuses the clip into its loops and contracts them into FMAs in
    # another order: the last bit may differ, nothing more.
    ours, ours_vars = _train(native=True, global_clipnorm=1.0)
    theirs, their_vars = _train(native=False, global_clipnorm=1.0)
    for a, b in zip(ours_vars, their_vars):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_loss_scale_optimizer_skip_keeps_everything_bit_identical():
    rng = np.random.default_rng(1)
    variables = [
        optaxish.Variable(rng.standard_normal(s).astype(np.float32)) for s in _SHAPES
    ]
    opt = LossScaleOptimizer(Adam(0.01), initial_scale=2.0)
    opt.get_scaled_loss(jnp.float32(1.0))  # as a training step does
    finite = opt.get_unscaled_gradients([jnp.ones(s, jnp.float32) for s in _SHAPES])
    opt.apply_gradients(zip(finite, variables))
    before = [v.numpy() for v in variables], _slots(opt, variables)
    bad = [
        g.at[(0,) * g.ndim].set(jnp.inf) if i == 3 else g for i, g in enumerate(finite)
    ]
    opt.apply_gradients(zip(opt.get_unscaled_gradients(bad), variables))
    assert opt.inner_optimizer._groups  # packed: the kernel stepped it
    after = [v.numpy() for v in variables], _slots(opt, variables)
    for a, b in zip(before[0] + before[1], after[0] + after[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(opt.loss_scale) == 1.0


def test_kernel_is_not_used_where_it_does_not_apply():
    big = jnp.zeros(MIN_MEAN_SIZE, jnp.float32)
    values = [optaxish.packing.pack([big, big])]
    assert not native_step_applies(Adam(amsgrad=True), values)

    class CustomCore(Adam):
        def _core(self, lr, hyper):
            return optaxish.sgd(lr)

    assert not native_step_applies(CustomCore(), values)
    bf16 = optaxish.packing.pack([big.astype(jnp.bfloat16)] * 2)
    assert not native_step_applies(Adam(), [bf16])
    assert not native_step_applies(Adam(), [big])  # unpacked
    # Many small variables: reading their gradients piece by piece would cost
    # more than the kernel saves.
    small = optaxish.packing.pack([big[:100]] * 2 * (MIN_MEAN_SIZE // 100))
    assert not native_step_applies(Adam(), [small])
    assert native_step_applies(Adam(), values)


def test_build_failure_and_switch_off_fall_back(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTAXISH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-for-optaxish")
    reason = _native._load("adam")
    assert isinstance(reason, str) and "no-such-compiler-for-optaxish" in reason
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        _build.build(_native._KERNELS["adam"].source)
    monkeypatch.setenv("OPTAXISH_NATIVE", "0")
    assert _native._load("adam") == "turned off by OPTAXISH_NATIVE=0"
    # With the kernel off, the facade steps with XLA's loops and the same bits.
    monkeypatch.setitem(_native._STATE, "adam", "turned off by OPTAXISH_NATIVE=0")
    assert not _native.adam_available()
    assert _native.unavailable_reason() == "turned off by OPTAXISH_NATIVE=0"
    off, off_vars = _train(native=True, steps=2)
    assert not _uses_kernel(off)
    monkeypatch.undo()
    on, on_vars = _train(native=True, steps=2)
    for a, b in zip(off_vars, on_vars):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=5e-7, atol=1e-30)


def test_build_is_cached_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTAXISH_CACHE_DIR", str(tmp_path))
    first = _build.build(_native._KERNELS["adam"].source)
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert _build.build(_native._KERNELS["adam"].source) == first
    assert first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporaries


def test_build_key_covers_the_headers_beside_the_source(monkeypatch, tmp_path):
    # chunks.h is compiled into every kernel: editing it must rebuild them.
    monkeypatch.setenv("OPTAXISH_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    for name in ("adam.cc", "chunks.h"):
        (src / name).write_bytes(
            (_native._KERNELS["adam"].source.parent / name).read_bytes()
        )
    first = _build.build(src / "adam.cc")
    with open(src / "chunks.h", "a") as header:
        header.write("// an edit\n")
    second = _build.build(src / "adam.cc")
    assert first != second and first.exists() and second.exists()


@pytest.mark.parametrize("weight_decay", [0.004, 0.0])
def test_facade_adamw_uses_the_kernel_with_its_decay(weight_decay):
    ours, ours_vars = _train(True, optimizer=AdamW, weight_decay=weight_decay)
    theirs, their_vars = _train(False, optimizer=AdamW, weight_decay=weight_decay)
    assert _uses_kernel(ours)
    for a, b in zip(ours_vars, their_vars):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=5e-7, atol=1e-30)
    for a, b in zip(_slots(ours, ours_vars), _slots(theirs, their_vars)):
        np.testing.assert_allclose(a, b, rtol=5e-7, atol=1e-30)


def test_facade_adamw_with_exclusions_keeps_xlas_loops():
    opt, _ = _train(True, optimizer=AdamW, exclude=True, weight_decay=0.004)
    assert not _uses_kernel(opt)  # the decay is masked per variable


def test_a_kernel_step_is_not_taken_for_a_cheap_program():
    # XLA:CPU runs a program under 1,000 estimated flops inline on the calling
    # thread, and the custom call counts as none: the hint keeps the step
    # asynchronous, as an XLA program of its size is.
    n = 70_000

    def step(p, m, v, g, b1):
        return _native.adam_step(
            p, m, v, g, b1=b1, b2=jnp.float32(0.999), factor=jnp.float32(1.0),
            eps=1e-7, eps_root=0.0, neg_lr=jnp.float32(-1e-3),
        )  # fmt: skip

    args = [jnp.zeros(n), jnp.zeros(n), jnp.zeros(n), jnp.ones(n), jnp.float32(0.9)]
    compiled = jax.jit(step).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert cost["flops"] >= 1000
    # The hint is a zero whatever its input, so the kernel's numbers stay.
    for x in (0.9, np.nan, np.inf, -np.inf, 0.0):
        assert float(jax.jit(_native._dispatch_hint)(jnp.float32(x))) == 0.0
    _, mu, _ = compiled(*args)
    np.testing.assert_allclose(mu, np.full(n, np.float32(1) - np.float32(0.9)))


def test_the_facade_hands_the_hint_a_runtime_value(monkeypatch):
    # A constant would be folded away by XLA, with the hint's flops.
    seen = []
    hint = _native._dispatch_hint
    monkeypatch.setattr(
        _native, "_dispatch_hint", lambda x: seen.append(type(x)) or hint(x)
    )
    opt, _ = _train(native=True, steps=1)
    assert _uses_kernel(opt) and seen
    assert all(issubclass(t, jax.core.Tracer) for t in seen), seen
