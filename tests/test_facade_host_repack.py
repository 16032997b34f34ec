"""An optimizer whose packed variables another optimizer took back packs them
again once the other no longer holds them, and two optimizers stepping the
same variables in turn still do not re-pack on every switch."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from optaxish import optimizers
from optaxish.optimizers import _packing_mixin
from tests.facade_helpers import four_gradients, four_variables


def _pair():
    return optimizers.SGD(0.1, momentum=0.9), optimizers.Adam(0.05)


def _unpacked_pair():
    first, second = _pair()
    first.packing = second.packing = False
    return first, second


def _owners(vs):
    return {
        None if v.__dict__.get("_store") is None else v.__dict__["_store"].owner()
        for v in vs
    }


def _assert_close(vs, ref_vs):
    for v, r in zip(vs, ref_vs):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-6)


@pytest.fixture
def packings(monkeypatch):
    """Counts the packed groups made from now on."""
    made = []
    original = _packing_mixin.PackedGroup

    def counting(*args, **kwargs):
        group = original(*args, **kwargs)
        made.append(group)
        return group

    monkeypatch.setattr(_packing_mixin, "PackedGroup", counting)
    return made


def _taken_back(vs, ref_vs):
    """``first`` packed ``vs``, then ``second`` took them back (and the same
    steps on ``ref_vs`` with packing off)."""
    first, second = _pair()
    ref_first, ref_second = _unpacked_pair()
    for k in range(2):
        first.apply_gradients(zip(four_gradients(k), vs))
        ref_first.apply_gradients(zip(four_gradients(k), ref_vs))
    second.apply_gradients(zip(four_gradients(2), vs))
    ref_second.apply_gradients(zip(four_gradients(2), ref_vs))
    assert second._groups and not first._groups
    first.apply_gradients(zip(four_gradients(3), vs))  # through the second one's group
    ref_first.apply_gradients(zip(four_gradients(3), ref_vs))
    assert not first._groups and _owners(vs) == {second}
    return first, second, ref_first, ref_second


def test_packs_again_after_the_other_optimizer_is_dropped():
    vs, ref_vs = four_variables(), four_variables()
    first, second, ref_first, _ = _taken_back(vs, ref_vs)
    del second
    gc.collect()
    for k in range(2):
        first.apply_gradients(zip(four_gradients(4 + k), vs))
        ref_first.apply_gradients(zip(four_gradients(4 + k), ref_vs))
        # It used to step that list unpacked for good.
        assert first._groups and _owners(vs) == {first}
    _assert_close(vs, ref_vs)
    for v, r in zip(vs, ref_vs):
        np.testing.assert_allclose(
            first.get_slot(v, "momentum"), ref_first.get_slot(r, "momentum"), rtol=1e-6
        )


def test_packs_again_after_the_other_optimizer_dissolved_its_group():
    vs, ref_vs = four_variables(), four_variables()
    first, second, ref_first, ref_second = _taken_back(vs, ref_vs)
    np.testing.assert_allclose(  # a per-variable read dissolves its group
        second.get_slot(vs[0], "m"), ref_second.get_slot(ref_vs[0], "m"), rtol=1e-6
    )
    assert not second._groups
    first.apply_gradients(zip(four_gradients(4), vs))
    ref_first.apply_gradients(zip(four_gradients(4), ref_vs))
    assert first._groups and _owners(vs) == {first}
    # The other one takes them back at its next step, as the first time.
    second.apply_gradients(zip(four_gradients(5), vs))
    ref_second.apply_gradients(zip(four_gradients(5), ref_vs))
    assert second._groups and not first._groups and _owners(vs) == {second}
    _assert_close(vs, ref_vs)


def test_two_optimizers_in_turn_do_not_repack(packings):
    vs, ref_vs = four_variables(), four_variables()
    first, second, ref_first, ref_second = _taken_back(vs, ref_vs)
    made, traces = len(packings), (first._traces, second._traces)
    for k in range(6):
        first.apply_gradients(zip(four_gradients(k), vs))
        second.apply_gradients(zip(four_gradients(k), vs))
        ref_first.apply_gradients(zip(four_gradients(k), ref_vs))
        ref_second.apply_gradients(zip(four_gradients(k), ref_vs))
        assert not first._groups and _owners(vs) == {second}
    assert len(packings) == made  # no group made while they alternate
    assert (first._traces, second._traces) == traces  # nothing compiled
    _assert_close(vs, ref_vs)


def test_a_list_held_by_a_live_group_stays_unpacked_after_the_first_step():
    # The first optimizer steps through the other's group while it lives,
    # even after many steps (its decision is re-checked, not forgotten).
    vs, ref_vs = four_variables(), four_variables()
    first, second, ref_first, _ = _taken_back(vs, ref_vs)
    for k in range(3):
        first.apply_gradients(zip(four_gradients(k), vs))
        ref_first.apply_gradients(zip(four_gradients(k), ref_vs))
    assert not first._groups and _owners(vs) == {second}
    _assert_close(vs, ref_vs)
