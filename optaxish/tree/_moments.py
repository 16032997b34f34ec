"""Moving averages of pytrees and their bias correction (``None`` leaves pass)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from optaxish import _numerics
from optaxish._numerics import abs_sq
from optaxish.tree._cast import keep_inexact_dtype

_is_none = lambda x: x is None  # noqa: E731


def _map(f, tree, *rest):
    return jax.tree.map(
        lambda x, *r: None if x is None else f(x, *r), tree, *rest, is_leaf=_is_none
    )


def update_moment(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike, order: int
) -> Any:
    """Exponential moving average ``(1 - decay) * g**order + decay * m``.

    The result has the promoted dtype of the gradient and the moment, whatever
    the type of ``decay`` (a float32 ``decay`` does not promote bfloat16).
    Integer leaves are promoted as JAX promotes the arithmetic (to a float, as
    in optax), and Python-number leaves give Python numbers.

    Args:
      updates: the gradients ``g`` (a tree).
      moments: the previous averages ``m`` (a tree of the same structure).
      decay: the weight of the previous average, in [0, 1).
      order: the power of the gradient (1 for a first moment, 2 for a second).

    Returns:
      The new averages, with the structure of ``updates``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.update_moment(jnp.array([2.0]), jnp.array([1.0]), 0.9, 2)
      Array([1.3], dtype=float32)
      >>> optaxish.update_moment(jnp.array([2]), jnp.array([1]), 0.5, 1).tolist()
      [1.5]
    """
    return _map(
        lambda g, t: keep_inexact_dtype((1 - decay) * (g**order) + decay * t, g, t),
        updates,
        moments,
    )


def update_moment_per_elem_norm(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike, order: int
) -> Any:
    """Exponential moving average of ``|g|**order`` (complex-safe).

    Args:
      updates: the gradients ``g`` (a tree; complex leaves use their modulus).
      moments: the previous averages (a tree of the same structure).
      decay: the weight of the previous average, in [0, 1).
      order: the power of ``|g|``.

    Returns:
      The new averages, with the structure of ``updates``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> g = jnp.array([3.0 + 4.0j])
      >>> optaxish.update_moment_per_elem_norm(g, jnp.array([0.0]), 0.5, 2)
      Array([12.5], dtype=float32)
    """

    def orderth_norm(g):
        if jnp.iscomplexobj(g):
            return abs_sq(g) ** (order / 2)
        half = order / 2
        return abs_sq(g) ** half if half != 1 else abs_sq(g)

    def step(g, t):
        n = orderth_norm(g)
        return keep_inexact_dtype((1 - decay) * n + decay * t, n, t)

    return _map(step, updates, moments)


def update_infinity_moment(
    updates: Any, moments: Any, decay: jax.typing.ArrayLike, eps: jax.typing.ArrayLike
) -> Any:
    """Adamax's infinity-norm moment ``max(|g| + eps, decay * m)``.

    Args:
      updates: the gradients ``g`` (a tree).
      moments: the previous moments ``m`` (a tree of the same structure).
      decay: the factor applied to the previous moment, in [0, 1).
      eps: added to ``|g|``.

    Returns:
      The new moments, with the structure of ``updates``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.update_infinity_moment(jnp.array([-2.0]), jnp.array([3.0]), 0.5, 0.0)
      Array([2.], dtype=float32)
    """
    return _map(
        lambda g, t: keep_inexact_dtype(jnp.maximum(jnp.abs(g) + eps, decay * t), g, t),
        updates,
        moments,
    )


def bias_correction(
    moment: Any,
    decay: jax.typing.ArrayLike,
    count: jax.Array,
    reciprocal: bool = False,
) -> Any:
    """Divides an EMA by ``1 - decay**count``.

    The factor is computed in the dtype of ``decay ** count`` (float32 for a
    float32 ``decay``) and divided in the moment's dtype, so low-precision
    moments do not round it to 1. A float64 moment gets it computed in
    float64, from a float32 ``decay`` cast to float64 (as tf-keras; optax
    keeps it float32). With ``reciprocal``, float32/float64 moments are
    multiplied by its reciprocal instead: a division per element costs
    several multiplications, enough to slow an Adam step whose buffers sit in
    cache by 10 %; the result moves by an ulp at most (which a transform that
    subtracts nearly equal moments, such as ``scale_by_stddev``, would
    amplify: it keeps the division).

    Args:
      moment: the moving average to correct (a tree).
      decay: the average's decay rate.
      count: the number of averaged steps (1 after the first update).
      reciprocal: multiply by ``1 / (1 - decay**count)`` instead of dividing.

    Returns:
      The corrected average, with the structure of ``moment``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.bias_correction(jnp.array([0.1]), 0.9, jnp.asarray(1))
      Array([1.], dtype=float32)
    """
    # `one_minus_pow` is jitted (inline), so an eager call gives the number a
    # compiled step gives (eager `decay**count` multiplies repeatedly, ~1e-5
    # relative apart at decay=0.999), as optax's jitted `bias_correction`.
    # Computed once, and again in float64 for float64 leaves when `decay` is a
    # float32 array (`_numerics.LeafScalars`).
    corrections = _numerics.LeafScalars(
        lambda dt: _numerics.one_minus_pow(
            _numerics.cast_to(decay, dt), _numerics.cast_to(count, dt)
        )
    )

    def correct(t):
        correction = corrections.like(t)
        if reciprocal and jnp.finfo(t.dtype).bits >= 32:
            return t * (1 / correction).astype(t.dtype)
        return t / correction.astype(t.dtype)

    return jax.tree.map(correct, moment)
