"""Layer-wise trust ratio scaling (the core of LARS and LAMB)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optaxish._base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformationExtraArgs,
    init_empty_state,
)
from optaxish._numerics import safe_norm

ScaleByTrustRatioState = EmptyState


def _check_non_negative(name: str, value) -> None:
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")


def scale_by_trust_ratio(
    min_norm: jax.typing.ArrayLike = 0.0,
    trust_coefficient: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 0.0,
) -> GradientTransformationExtraArgs:
    """Multiplies each leaf's update by its layer-wise trust ratio.

    For every leaf, with ``p`` the parameter and ``u`` the update:

    ``ratio = trust_coefficient * ||p|| / (||u|| + eps)``

    where both norms are floored at ``min_norm``. When either norm is zero the
    ratio is 1, so parameters that start at zero still move. The output is
    ``u * ratio``. Used by :func:`~optaxish.lars` and :func:`~optaxish.lamb`.

    Args:
      min_norm: floor applied to both norms (0 disables the floor).
      trust_coefficient: multiplier of the ratio.
      eps: added to the update norm in the denominator.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose ``update``
      needs ``params``.

    Raises:
      ValueError: if ``min_norm`` or ``eps`` is a negative number.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_trust_ratio()
      >>> p = jnp.array([3.0, 4.0])  # norm 5
      >>> u = jnp.array([0.6, 0.8])  # norm 1
      >>> tx.update(u, tx.init(p), p)[0]
      Array([3., 4.], dtype=float32)

    References:
      You et al, `Large Batch Training of Convolutional Networks
      <https://arxiv.org/abs/1708.03888>`_, 2017
    """
    _check_non_negative("min_norm", min_norm)
    _check_non_negative("eps", eps)

    def leaf(u, p):
        if u is None:
            return None
        p_norm = safe_norm(p, min_norm)
        u_norm = safe_norm(u, min_norm)
        ratio = trust_coefficient * p_norm / (u_norm + eps)
        either_zero = jnp.logical_or(p_norm == 0.0, u_norm == 0.0)
        ratio = jnp.where(either_zero, jnp.ones_like(ratio), ratio)
        return (u * ratio).astype(u.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG)
        updates = jax.tree.map(leaf, updates, params, is_leaf=lambda x: x is None)
        return updates, state

    return GradientTransformationExtraArgs(init_empty_state, update_fn)
