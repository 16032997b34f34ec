"""Constraints on updates: non-negative parameters, NaN-free updates."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish._base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformationExtraArgs,
    init_empty_state,
)
from optaxish._elementwise import mark_elementwise
from optaxish._errors import check_same_structure

NonNegativeParamsState = EmptyState


def keep_params_nonnegative() -> GradientTransformationExtraArgs:
    """Changes updates so that ``params + updates >= 0``.

    Where ``p + u`` would be negative the update becomes ``-p`` (the parameter
    lands on 0). Put it last in a chain. Parameters are expected to start
    non-negative; a negative one is moved to 0 by the first update that would
    keep it negative.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose ``update``
      needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.keep_params_nonnegative()
      >>> p = jnp.array([1.0, 1.0])
      >>> tx.update(jnp.array([-3.0, -0.5]), tx.init(p), p)[0]
      Array([-1. , -0.5], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG)
        updates = jax.tree.map(
            lambda u, p: (
                None
                if u is None
                else jnp.where(p + u < 0.0, -p, u).astype(jnp.asarray(u).dtype)
            ),
            updates,
            params,
            is_leaf=lambda x: x is None,
        )
        return updates, state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )


class ZeroNansState(NamedTuple):
    """State of :func:`zero_nans`.

    Attributes:
      found_nan: a tree like the params with one bool scalar per leaf: True when
        that leaf's last update held a NaN (that was replaced by 0).
    """

    found_nan: Any


def zero_nans() -> GradientTransformationExtraArgs:
    """Replaces NaN update entries by 0 and records, per leaf, whether it did.

    The state is only a report for the user; it does not change the updates.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.zero_nans()
      >>> u, state = tx.update({"a": jnp.array([jnp.nan, 1.0])}, tx.init({"a": jnp.zeros(2)}))
      >>> u["a"], bool(state.found_nan["a"])
      (Array([0., 1.], dtype=float32), True)
    """

    def init_fn(params):
        return ZeroNansState(
            found_nan=jax.tree.map(lambda p: jnp.zeros([], jnp.bool_), params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_structure(state.found_nan, updates, "state.found_nan", "updates")
        found_nan = jax.tree.map(lambda u: jnp.any(jnp.isnan(u)), updates)
        updates = jax.tree.map(
            lambda u: jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), updates
        )
        return updates, ZeroNansState(found_nan=found_nan)

    return GradientTransformationExtraArgs(init_fn, update_fn)
