"""Momentum (``trace``) and exponential moving averages (``ema``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics, tree
from optaxish._base import GradientTransformationExtraArgs
from optaxish._elementwise import mark_elementwise
from optaxish._errors import check_same_shapes
from optaxish.transforms._adaptive_utils import check_range


class TraceState(NamedTuple):
    """State of :func:`trace`.

    Attributes:
      trace: the momentum buffer, one array per parameter.
    """

    trace: Any


def trace(
    decay: float,
    nesterov: bool = False,
    accumulator_dtype: Any | None = None,
) -> GradientTransformationExtraArgs:
    """Heavy-ball momentum: ``t <- g + decay * t``; outputs ``t`` (or Nesterov's
    ``g + decay * t``).

    Args:
      decay: the momentum coefficient, in ``[-1, 1]``: with ``|decay| > 1``
        the buffer grows geometrically. Negative momentum (Gidel et al.,
        2019, for games and GANs) is allowed, as in optax.
      nesterov: use Nesterov momentum.
      accumulator_dtype: dtype of the buffer; ``None`` follows the params.
        The updates keep the gradient's dtype (optax returns them in the
        buffer's dtype when it is wider, e.g. float64 in x64 mode).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`; its state is a
      :class:`TraceState`.

    Raises:
      ValueError: for a plain-number ``decay`` outside ``[-1, 1]`` (eagerly),
        or updates whose structure or shapes differ from the params'.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.trace(0.9)
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.ones(1), state)
      >>> u, state = tx.update(jnp.ones(1), state)
      >>> u
      Array([1.9], dtype=float32)
    """
    check_range("decay", decay, -1.0, 1.0, high_inclusive=True)

    def init_fn(params):
        return TraceState(trace=tree.zeros_like(params, dtype=accumulator_dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.trace, updates, "state.trace", "updates")

        def step(g, t):
            # Keep the buffer's dtype: a float32 `decay` must not promote bf16.
            if g is None:
                return None
            return (g + decay * t).astype(jnp.promote_types(g.dtype, t.dtype))

        new_trace = jax.tree.map(
            step, updates, state.trace, is_leaf=lambda x: x is None
        )
        out = (
            jax.tree.map(step, updates, new_trace, is_leaf=lambda x: x is None)
            if nesterov
            else new_trace
        )
        # A wider buffer (float64 in x64 mode, float32 for bf16 params) must
        # not promote the updates: they keep the gradient's dtype.
        out = tree.cast_like(out, updates)
        return out, TraceState(trace=tree.cast(new_trace, accumulator_dtype))

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))


class EmaState(NamedTuple):
    """State of :func:`ema`.

    Attributes:
      count: number of updates so far (int32 scalar).
      ema: the moving average, one array per parameter.
    """

    count: jax.Array
    ema: Any


def ema(
    decay: float, debias: bool = True, accumulator_dtype: Any | None = None
) -> GradientTransformationExtraArgs:
    """Exponential moving average of updates: ``e <- (1 - decay) * g + decay * e``.

    Args:
      decay: the averaging coefficient, in ``[0, 1)`` with ``debias`` (at 1
        the debiased average is ``0 / 0``), in ``[0, 1]`` without (at 1 the
        average never moves from zero, which ``signum(beta=1)`` accepts).
      debias: divide by ``1 - decay**count`` (Adam-style bias correction).
      accumulator_dtype: dtype of the average; ``None`` follows the params.
        The output keeps the updates' dtype (optax returns it in the
        average's dtype when that is wider).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`; its state is an
      :class:`EmaState`.

    Raises:
      ValueError: for a plain-number ``decay`` outside that range (eagerly),
        or updates whose structure or shapes differ from the params'.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.ema(0.9)
      >>> tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))[0]
      Array([1.], dtype=float32)
    """
    check_range("decay", decay, 0.0, 1.0, high_inclusive=not debias)

    def init_fn(params):
        return EmaState(
            count=jnp.zeros([], jnp.int32),
            ema=tree.zeros_like(params, dtype=accumulator_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.ema, updates, "state.ema", "updates")
        new_ema = tree.update_moment(updates, state.ema, decay, order=1)
        count = _numerics.safe_increment(state.count)
        out = tree.bias_correction(new_ema, decay, count) if debias else new_ema
        # The average may be wider than the updates (`accumulator_dtype`):
        # the output keeps the updates' dtype.
        out = tree.cast_like(out, updates)
        return out, EmaState(count=count, ema=tree.cast(new_ema, accumulator_dtype))

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))
