"""Decoupled weight decay: ``u <- u + weight_decay * params``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics
from optaxish._base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformationExtraArgs,
    ScalarOrSchedule,
)
from optaxish._elementwise import mark_elementwise


class AddDecayedWeightsState(NamedTuple):
    """State of :func:`add_decayed_weights` with a scheduled decay.

    Attributes:
      count: number of updates so far (int32 scalar); the schedule's step.
    """

    count: jax.Array


WeightDecaySchedule = AddDecayedWeightsState


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0,
    mask: Any | Callable[[Any], Any] | None = None,
) -> GradientTransformationExtraArgs:
    """Adds ``weight_decay * params`` to the updates (decoupled weight decay).

    Args:
      weight_decay: a float, a scalar array or a schedule of the step count.
      mask: a bool tree (or a prefix of one), or a function of the params that
        returns one; decay applies only where it is True.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.add_decayed_weights(0.1)
      >>> p = jnp.array([1.0, 2.0])
      >>> tx.update(jnp.zeros(2), tx.init(p), p)[0]
      Array([0.1, 0.2], dtype=float32)
    """
    scheduled = callable(weight_decay)

    def init_fn(params):
        del params
        if scheduled:
            return AddDecayedWeightsState(count=jnp.zeros([], jnp.int32))
        return EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG)
        if scheduled:
            rate = weight_decay(state.count)
            state = AddDecayedWeightsState(count=_numerics.safe_increment(state.count))
        else:
            rate = weight_decay
            if isinstance(rate, int | float) and rate == 0.0:
                return updates, state
        updates = jax.tree.map(
            lambda g, p: None if g is None else (g + rate * p).astype(g.dtype),
            updates,
            params,
            is_leaf=lambda x: x is None,
        )
        return updates, state

    tx = mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))
    if mask is None:
        return tx
    from optaxish.combinators import masked  # combinators build on transforms

    return masked(tx, mask)
