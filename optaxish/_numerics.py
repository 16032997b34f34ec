"""Numerically careful scalar helpers shared by the transforms.

Complex arrays are supported: squares are ``|x|**2`` (:func:`abs_sq`), so norms
and root-mean-squares are real.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp


def safe_increment(count: jax.Array) -> jax.Array:
    """Adds one to an integer counter, saturating at its dtype's maximum.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import safe_increment
      >>> int(safe_increment(jnp.asarray(2**31 - 1, jnp.int32)))
      2147483647
    """
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        limit = jnp.iinfo(count.dtype).max
    else:
        limit = jnp.finfo(count.dtype).max
    return jnp.where(count < limit, count + 1, limit).astype(count.dtype)


safe_int32_increment = safe_increment


def safe_norm(
    x: jax.Array, min_norm: jax.typing.ArrayLike, ord=None, axis=None, keepdims=False
) -> jax.Array:
    """``max(norm(x), min_norm)`` with a gradient that is finite at ``x == 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import safe_norm
      >>> float(safe_norm(jnp.zeros(3), 1e-6))
      1e-06
    """
    norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=True)
    x = jnp.where(norm <= min_norm, jnp.ones_like(x), x)
    norm = jnp.squeeze(norm, axis=axis) if not keepdims else norm
    masked_norm = jnp.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    return jnp.where(norm <= min_norm, min_norm, masked_norm)


def safe_root_mean_squares(x: jax.Array, min_rms: jax.typing.ArrayLike) -> jax.Array:
    """``max(rms(x), min_rms)`` with a gradient that is finite at ``x == 0``.

    The mean is of ``|x|**2`` (:func:`abs_sq`), so a complex ``x`` has a real
    RMS, as in optax.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import safe_root_mean_squares
      >>> float(safe_root_mean_squares(jnp.array([3.0, 4.0]), 0.0)) ** 2
      12.5...
      >>> float(safe_root_mean_squares(jnp.array([3 + 4j]), 1e-3))
      5.0
    """
    rms = jnp.sqrt(jnp.mean(abs_sq(x)))
    x = jnp.where(rms <= min_rms, jnp.ones_like(x), x)
    return jnp.where(rms <= min_rms, min_rms, jnp.sqrt(jnp.mean(abs_sq(x))))


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|**2`` for real and complex arrays (``x * conj(x)``, real-valued).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import abs_sq
      >>> abs_sq(jnp.array([3 + 4j]))
      Array([25.], dtype=float32)
    """
    if jnp.iscomplexobj(x):
        return jnp.real(x * jnp.conj(x))
    return jnp.square(x)


@functools.partial(jax.jit, inline=True)
def one_minus_pow(
    decay: jax.typing.ArrayLike, count: jax.typing.ArrayLike
) -> jax.Array:
    """``1 - decay**count``, the same number eagerly and under ``jit``.

    Eagerly, ``decay ** count`` with a concrete integer ``count`` is computed by
    repeated multiplication (``lax.integer_pow``), under ``jit`` by XLA's
    ``pow``: the two differ by ulps, which the cancellation in ``1 - decay**t``
    turns into ~1e-5 relative for ``decay=0.999``. Compiled (and inlined into an
    enclosing trace), this helper always takes the ``jit`` path, as optax's
    ``bias_correction`` does.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish._numerics import one_minus_pow
      >>> float(one_minus_pow(0.5, jnp.asarray(2)))
      0.75
    """
    return 1 - decay**count


class LeafScalars:
    """Scalars shared by the leaves of one update, widened for float64 leaves.

    ``compute(dtype)`` returns the scalars (an array or a tuple of arrays):
    with ``dtype=None`` from its inputs as they are, else from its inputs cast
    to ``dtype``. :meth:`like` gives a leaf the scalars computed once with
    ``None`` (the same program as computing them directly), except for a leaf
    whose real dtype is 64-bit while those scalars are narrower (float32
    hyperparameters, as the Keras-style optimizers pass them): it gets them
    computed again in float64 from the inputs cast to float64, once per
    update. A bias correction rounded to float32 would leave a float64 step
    ~1e-8 off; tf-keras likewise casts its float32 hyperparameters to each
    variable's dtype before computing them. Leaves of at most 32 bits always
    get the first scalars, whatever their dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish._numerics import LeafScalars
      >>> decay = jnp.asarray(0.9, jnp.float32)
      >>> s = LeafScalars(lambda dt: 1 - (decay if dt is None else decay.astype(dt)))
      >>> s.like(jnp.zeros(2, jnp.bfloat16)) is s.like(jnp.zeros(2)) is s.base
      True
    """

    def __init__(self, compute: Any, precision: Any = None) -> None:
        """``precision``: the dtype the first scalars are computed in, when
        narrower than their own dtype (a float64 ``b1`` times a float32 power
        is float32-precise)."""
        self._compute = compute
        self.base = compute(None)
        if precision is None:
            precision = jnp.result_type(*jax.tree.leaves(self.base))
        self._dtype = jnp.dtype(precision)
        self._wide: dict[Any, Any] = {}

    def like(self, x: Any) -> Any:
        """The scalars for leaf ``x`` (an array, or anything with a dtype)."""
        dtype = getattr(x, "dtype", None)  # a Python number gets the first ones
        if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
            return self.base
        dtype = jnp.promote_types(self._dtype, jnp.finfo(dtype).dtype)
        if dtype == self._dtype or jnp.finfo(dtype).bits <= 32:
            return self.base
        if dtype not in self._wide:
            self._wide[dtype] = self._compute(dtype)
        return self._wide[dtype]


def cast_to(x: Any, dtype: Any) -> Any:
    """``x`` as it is for ``dtype=None``, else as a ``dtype`` array (for the
    ``compute`` of :class:`LeafScalars`)."""
    return x if dtype is None else jnp.asarray(x).astype(dtype)


def bits(dtype: Any) -> int:
    """The width of an inexact ``dtype``'s real part (``complex128``: 64)."""
    return jnp.finfo(dtype).bits
