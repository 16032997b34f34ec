"""Every exported state class survives a pytree flatten/unflatten with all fields."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from optaxish import loss_scale

STATE_CLASSES = sorted(
    {
        getattr(mod, n)
        for mod in (ox, loss_scale)
        for n in dir(mod)
        if n.endswith("State")
        and isinstance(getattr(mod, n), type)
        and issubclass(getattr(mod, n), tuple)
        and hasattr(getattr(mod, n), "_fields")
    },
    key=lambda c: c.__name__,
)


def test_there_are_many_state_classes():
    assert len(STATE_CLASSES) >= 30


@pytest.mark.parametrize("cls", STATE_CLASSES, ids=lambda c: c.__name__)
def test_flatten_roundtrip_keeps_every_field(cls):
    values = {f: jnp.full((2,), i + 1.0) for i, f in enumerate(cls._fields)}
    state = cls(**values)
    leaves, treedef = jax.tree.flatten(state)
    again = jax.tree.unflatten(treedef, leaves)
    assert type(again) is cls
    for field in cls._fields:
        np.testing.assert_array_equal(getattr(again, field), values[field])
