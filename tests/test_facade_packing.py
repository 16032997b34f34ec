"""The facade keeps variables stepped together packed: same numbers, fewer
kernels, and every per-variable view still works."""

from __future__ import annotations

import copy

import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable, optimizers
from optaxish.mixed_precision import LossScaleOptimizer

SHAPES = [(3, 4), (4,), (), (2, 2, 3), (5,)]


def _vars(seed: int = 0) -> list[Variable]:
    rng = np.random.default_rng(seed)
    return [
        Variable(rng.normal(size=s).astype(np.float32), name=f"v{i}")
        for i, s in enumerate(SHAPES)
    ]


def _grads(t: int) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + t)
    return [rng.normal(size=s).astype(np.float32) for s in SHAPES]


def _assert_same(a: list, b: list) -> None:
    """Same numbers (a global norm sums in another order when packed: 1 ulp)."""
    for x, y in zip(a, b):
        x = x.numpy() if isinstance(x, Variable) else x
        y = y.numpy() if isinstance(y, Variable) else y
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


MAKERS = {
    "adam": lambda: optimizers.Adam(0.05, amsgrad=True),
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "nadam": lambda: optimizers.Nadam(0.01),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "adagrad_global_clip": lambda: optimizers.Adagrad(0.1, global_clipnorm=1.0),
    "ftrl": lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.01),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_packed_steps_match_unpacked(name):
    packed_opt, plain_opt = MAKERS[name](), MAKERS[name]()
    plain_opt.packing = False
    pv, uv = _vars(), _vars()
    for t in range(12):
        g = _grads(t)
        packed_opt.apply_gradients(zip(g, pv))
        plain_opt.apply_gradients(zip(g, uv))
        if t == 5:  # a learning-rate change mid-run, as a user would
            packed_opt.learning_rate = plain_opt.learning_rate = 0.02
    assert len(packed_opt._groups) == 1 and not plain_opt._groups
    _assert_same(pv, uv)
    assert int(packed_opt.iterations) == int(plain_opt.iterations) == 12
    assert packed_opt._traces == 1  # no retrace for the learning-rate change
    # Per-variable views dissolve the group and read the same slots.
    _assert_same(packed_opt.get_weights(), plain_opt.get_weights())
    assert not packed_opt._groups


def test_minimize_packed_matches_unpacked_and_traces_once():
    pv, uv = _vars(), _vars()
    targets = [jnp.asarray(g) for g in _grads(0)]

    def loss_of(vs):
        return lambda: sum(jnp.sum((v - c) ** 2) for v, c in zip(vs, targets))

    packed_opt, plain_opt = optimizers.Adam(0.1), optimizers.Adam(0.1)
    plain_opt.packing = False
    packed_loss, plain_loss = loss_of(pv), loss_of(uv)
    for _ in range(15):
        packed_opt.minimize(packed_loss, pv)
        plain_opt.minimize(plain_loss, uv)
    assert packed_opt._groups
    for x, y in zip(pv, uv):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)
    assert packed_opt._traces == 1


def test_variables_read_and_assign_through_the_packed_buffer():
    vs = _vars()
    opt = optimizers.SGD(0.1)
    opt.apply_gradients(zip(_grads(0), vs))
    assert opt._groups
    before = vs[1].numpy()
    assert vs[1].shape == (4,) and vs[1].dtype == np.float32
    vs[1].assign(jnp.full((4,), 7.0))  # writes into the buffer, group stays
    assert opt._groups
    np.testing.assert_array_equal(vs[1].numpy(), np.full(4, 7.0, np.float32))
    opt.apply_gradients(zip([np.ones(s, np.float32) for s in SHAPES], vs))
    np.testing.assert_allclose(vs[1].numpy(), np.full(4, 6.9, np.float32))
    assert not np.array_equal(before, vs[1].numpy())
    # A value read before a step survives it (it is a copy, not the buffer).
    kept = vs[0].value
    opt.apply_gradients(zip(_grads(1), vs))
    assert np.isfinite(np.asarray(kept)).all()


def test_a_step_over_another_list_dissolves_and_keeps_the_numbers():
    pv, uv = _vars(), _vars()
    packed_opt, plain_opt = optimizers.Adam(0.05), optimizers.Adam(0.05)
    plain_opt.packing = False
    schedule = [slice(None), slice(None), slice(0, 3), slice(None), slice(1, 5)]
    for t, part in enumerate(schedule):
        g = _grads(t)
        packed_opt.apply_gradients(zip(g[part], pv[part]))
        plain_opt.apply_gradients(zip(g[part], uv[part]))
    _assert_same(pv, uv)
    _assert_same(packed_opt.get_weights(), plain_opt.get_weights())


def test_set_weights_and_get_slot_while_packed():
    vs = _vars()
    opt = optimizers.Adam(0.05)
    opt.apply_gradients(zip(_grads(0), vs))
    weights = opt.get_weights()
    opt.apply_gradients(zip(_grads(1), vs))  # packs again
    assert opt._groups
    np.testing.assert_array_equal(opt.get_slot(vs[3], "m").shape, (2, 2, 3))
    opt.set_weights(weights)
    assert int(opt.iterations) == 1


def test_constraints_and_clipnorm_keep_variables_unpacked():
    vs = _vars()
    vs[0] = Variable(np.ones((3, 4), np.float32), constraint=lambda x: x * 0.0)
    opt = optimizers.SGD(0.1)
    opt.apply_gradients(zip(_grads(0), vs))
    assert not opt._groups
    np.testing.assert_array_equal(vs[0].numpy(), np.zeros((3, 4), np.float32))
    clip_opt = optimizers.SGD(0.1, clipnorm=1.0)
    clip_opt.apply_gradients(zip(_grads(0), _vars()))
    assert not clip_opt._groups


def test_settings_changed_after_packed_steps_unpack_the_next_step():
    """``packing``, a gradient transformer or an aggregator set between
    steps: the next step runs per variable, with the same numbers."""
    seen = []

    def halve(pairs):
        seen.append([tuple(g.shape) for g, _ in pairs])
        return [(g * 0.5, v) for g, v in pairs]

    for change in ("packing", "transformer", "aggregator"):
        opt, plain = optimizers.Adam(0.05), optimizers.Adam(0.05)
        plain.packing = False
        pv, uv = _vars(), _vars()
        for t in range(4):
            if t == 2:
                for o in (opt, plain):
                    if change == "packing":
                        o.packing = False
                    elif change == "transformer":
                        o.gradient_transformers.append(halve)
                    else:
                        o.gradient_aggregator = lambda pairs: list(pairs)
            opt.apply_gradients(zip(_grads(t), pv))
            plain.apply_gradients(zip(_grads(t), uv))
            assert bool(opt._groups) == (t < 2), (change, t)
        _assert_same(pv, uv)
        _assert_same(opt.get_weights(), plain.get_weights())
    assert seen and all(shapes == [tuple(s) for s in SHAPES] for shapes in seen)


def test_variables_shared_by_two_optimizers():
    vs = _vars()
    first, second = optimizers.SGD(0.1), optimizers.Adam(0.1)
    first.apply_gradients(zip(_grads(0), vs))
    second.apply_gradients(zip(_grads(1), vs))  # takes them back from first
    assert second._groups and not first._groups
    ref = _vars()
    optimizers.SGD(0.1).apply_gradients(zip(_grads(0), ref))
    plain = optimizers.Adam(0.1)
    plain.packing = False
    plain.apply_gradients(zip(_grads(1), ref))
    _assert_same(vs, ref)


def test_loss_scale_optimizer_skips_bit_identically_when_packed():
    vs = _vars()
    opt = LossScaleOptimizer(optimizers.Adam(0.05), initial_scale=4.0)
    grads = _grads(0)
    opt.get_scaled_loss(1.0)  # as a training loop does (no warning then)
    opt.apply_gradients(zip(opt.get_unscaled_gradients(grads), vs))
    assert opt.inner_optimizer._groups
    before = [v.numpy() for v in vs]
    bad = [g.copy() for g in grads]
    bad[2] = np.float32(np.nan)
    opt.apply_gradients(zip(opt.get_unscaled_gradients(bad), vs))
    for b, v in zip(before, vs):
        np.testing.assert_array_equal(b, v.numpy())
    assert float(opt.loss_scale) == 2.0


def test_deepcopy_of_a_packed_optimizer():
    vs = _vars()
    opt = optimizers.Adam(0.05)
    opt.apply_gradients(zip(_grads(0), vs))
    twin, twin_vs = copy.deepcopy((opt, vs))
    opt.apply_gradients(zip(_grads(1), vs))
    twin.apply_gradients(zip(_grads(1), twin_vs))
    _assert_same(vs, twin_vs)


def test_gradients_are_packed_into_buffers_reused_each_step():
    vs = _vars()
    opt = optimizers.Adam(0.05)
    opt.apply_gradients(zip(_grads(0), vs))
    (group,) = opt._groups.values()
    first = group.gradient_buffers()
    opt.apply_gradients(zip(_grads(1), vs))
    second = group.gradient_buffers()
    assert second is not first and all(b.is_deleted() for b in first.buffers)
    expected = [np.asarray(g).ravel() for g in _grads(1)]
    np.testing.assert_array_equal(second.buffers[0], np.concatenate(expected))
    # The same through LossScaleOptimizer, whose step packs them before its check.
    lso_vs = _vars()
    lso = LossScaleOptimizer(optimizers.Adam(0.05), dynamic=False, initial_scale=1.0)
    lso.get_scaled_loss(1.0)  # as a training loop does (no warning then)
    for t in range(2):
        lso.apply_gradients(zip(lso.get_unscaled_gradients(_grads(t)), lso_vs))
    _assert_same(lso_vs, vs)
