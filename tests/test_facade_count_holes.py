"""The facade keeps per-variable step counts out of its compiled step.

Unpacked, each variable's core state has a step count that always equals
``iterations``; the compiled step neither takes nor returns them (they cost
a scalar copy each), and every view of the state fills them back in.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import optimizers, slots
from optaxish.mixed_precision import LossScaleOptimizer
from optaxish.optimizers._count_holes import drop_counts, fill_counts
from tests.test_facade_packing import _grads, _vars


def _unpacked(opt):
    opt.packing = False
    return opt


def _counts(state) -> list[int]:
    return [
        int(slots.get(st, piece))
        for st in state.inner_state
        for piece in slots.paths(st)
        if piece.slot == "count"
    ]


def test_drop_and_fill_round_trip():
    opt = _unpacked(optimizers.Adam(0.1))
    opt.build(_vars())
    states = opt.state.inner_state
    holey = drop_counts(states)
    assert len(jax.tree.leaves(holey)) == len(jax.tree.leaves(states)) - len(states)
    filled = fill_counts(holey, jnp.int32(7))
    assert jax.tree.structure(filled) == jax.tree.structure(states)
    assert [int(st[0].count) for st in filled] == [7] * len(states)

    # States without counts (or with holes already) come back unchanged, and
    # so does a tree with no holes, even with a None of its own.
    def same(a, b):
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert all(x is y for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    same(drop_counts(holey), holey)
    same(fill_counts(states, jnp.int32(7)), states)
    # A variable whose state is not created yet is None, and stays None.
    same(fill_counts((None, *holey), 7)[0], None)
    same(drop_counts((None, *states))[1:], holey)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.Adam(0.1, amsgrad=True),
        lambda: optimizers.Nadam(0.01),
        lambda: optimizers.Adamax(0.1),
        lambda: optimizers.AdamW(0.01),
    ],
    ids=["adam", "nadam", "adamax", "adamw"],
)
def test_state_counts_follow_iterations(make):
    opt, vs = _unpacked(make()), _vars()
    for t in range(3):
        opt.apply_gradients(zip(_grads(t), vs))
    state = opt.state
    assert int(state.iterations) == 3
    counts = _counts(state)
    assert counts and counts == [3] * len(counts)
    # The stored state holds holes, never a count buffer a step could donate.
    assert all(st[0].count is None for st in opt._cold.inner_state)


def test_compiled_step_has_no_per_variable_count_outputs():
    opt, vs = _unpacked(optimizers.Adam(0.1)), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    (fn,) = [f for k, f in opt._steps.items() if callable(f)]
    carry, values, holes = opt._step_inputs(list(range(len(vs))))
    assert holes
    grads = [jnp.asarray(g) for g in _grads(1)]
    out = jax.eval_shape(fn, carry, values, grads)
    scalar_ints = [
        x for x in jax.tree.leaves(out) if x.shape == () and x.dtype == jnp.int32
    ]
    assert len(scalar_ints) == 2  # iterations in the carry, and returned


def test_numbers_unchanged_by_holes_against_packed():
    plain, packed = _unpacked(optimizers.Adam(0.05)), optimizers.Adam(0.05)
    pv, uv = _vars(), _vars()
    for t in range(6):
        plain.apply_gradients(zip(_grads(t), uv))
        packed.apply_gradients(zip(_grads(t), pv))
    for a, b in zip(uv, pv):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_switching_to_packed_after_unpacked_steps():
    opt, vs = _unpacked(optimizers.Adam(0.05)), _vars()
    ref_opt, ref_vs = _unpacked(optimizers.Adam(0.05)), _vars()
    for t in range(4):
        if t == 2:
            opt.packing = True  # the holey per-variable states get packed
        opt.apply_gradients(zip(_grads(t), vs))
        ref_opt.apply_gradients(zip(_grads(t), ref_vs))
    assert opt._groups
    for a, b in zip(vs, ref_vs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert _counts(opt.state) == [4] * len(vs)


def test_subsets_deepcopy_pickle_and_weights():
    opt, vs = _unpacked(optimizers.Adam(0.05)), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    opt.apply_gradients(zip(_grads(1)[:2], vs[:2]))  # another structure
    twin, twin_vs = copy.deepcopy((opt, vs))
    for o, v in ((opt, vs), (twin, twin_vs)):
        o.apply_gradients(zip(_grads(2), v))
    for a, b in zip(vs, twin_vs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    weights = opt.get_weights()
    assert int(weights[0]) == 3 and len(weights) == 1 + 2 * len(vs)
    fresh = _unpacked(optimizers.Adam(0.05))
    fresh.build(twin_vs)
    fresh.set_weights(weights)
    assert _counts(fresh.state) == [3] * len(vs)


def test_loss_scale_optimizer_skip_keeps_slots_and_counts_follow():
    opt = LossScaleOptimizer(_unpacked(optimizers.Adam(0.05)), initial_scale=4.0)
    vs = _vars()
    opt.get_scaled_loss(1.0)
    opt.apply_gradients(zip(opt.get_unscaled_gradients(_grads(0)), vs))
    names = opt.inner_optimizer.get_slot_names()
    before = [np.asarray(opt.get_slot(v, n)) for v in vs for n in names]
    bad = _grads(1)
    bad[1][0] = np.inf
    opt.apply_gradients(zip(opt.get_unscaled_gradients(bad), vs))
    after = [np.asarray(opt.get_slot(v, n)) for v in vs for n in names]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)
    assert float(opt.loss_scale) == 2.0
    state = opt.inner_optimizer.state
    assert _counts(state) == [int(state.iterations)] * len(vs)
