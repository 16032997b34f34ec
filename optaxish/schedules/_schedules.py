"""Basic schedules: constant, polynomial, linear, exponential and cosine decay.

A schedule is a pure function ``count -> value`` of the step count. Every
factory here validates its arguments eagerly and returns a function that is
safe to call with a Python int, an int32 array or a traced step (under
``jax.jit``/``jax.vmap``), and that returns float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optaxish._base import Schedule
from optaxish.schedules._checks import as_float32, check_steps, concrete_scalar, fail


def constant_schedule(value: jax.typing.ArrayLike) -> Schedule:
    """Returns a schedule that always gives ``value``.

    Deviation from optax: the value comes back as a float32 array (optax
    returns ``value`` untouched, e.g. a Python int).

    Args:
      value: the value to hold at every step.

    Returns:
      A function mapping a step count to ``value`` (float32).

    Examples:
      >>> import optaxish
      >>> schedule = optaxish.constant_schedule(5)
      >>> schedule(0), schedule(100)
      (Array(5., dtype=float32), Array(5., dtype=float32))
    """

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        del count
        return as_float32(value)

    return schedule


def polynomial_schedule(
    init_value: jax.typing.ArrayLike,
    end_value: jax.typing.ArrayLike,
    power: jax.typing.ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Polynomial transition from ``init_value`` to ``end_value``.

    With :math:`I` = ``init_value``, :math:`E` = ``end_value``, :math:`B` =
    ``transition_begin``, :math:`T` = ``transition_steps`` and :math:`P` =
    ``power``, the value at step :math:`t` is :math:`I` for :math:`t < B`,
    :math:`(I - E)(1 - (t - B)/T)^P + E` for :math:`B \le t < B + T`, and
    :math:`E` afterwards.

    Deviation from optax: under ``jax.jit`` optax's version can return NaN at
    the end of the transition when ``power`` is not an integer (rounding makes
    the remaining fraction slightly negative); here it is clamped at 0.

    Args:
      init_value: the value before and at the start of the transition.
      end_value: the value at the end of the transition and after it.
      power: the exponent of the polynomial.
      transition_steps: length of the transition. ``0`` disables it: the
        schedule then holds ``init_value`` forever (as in optax).
      transition_begin: how many steps to hold ``init_value`` first.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``transition_steps`` or ``transition_begin`` is negative
        (optax silently holds ``init_value`` or starts at 0 instead).

    Examples:
      >>> import optaxish
      >>> schedule = optaxish.polynomial_schedule(
      ...     init_value=1.0, end_value=0.01, power=2, transition_steps=100)
      >>> schedule(0), schedule(50), schedule(100)
      (Array(1., dtype=float32), Array(0.2575, dtype=float32), Array(0.01, dtype=float32))
    """
    steps = check_steps("transition_steps", transition_steps)
    check_steps("transition_begin", transition_begin)
    if steps == 0:
        return constant_schedule(init_value)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        elapsed = jnp.clip(count - transition_begin, 0, transition_steps)
        # Under jit, XLA turns `t / T` into `t * (1 / T)`, which can exceed 1 at
        # the end of the transition; optax then raises a negative number to a
        # fractional power (NaN). Clamping keeps the exact end value. `where`,
        # not `maximum`: at exactly 0 the gradient through the count stays
        # optax's (`maximum` would halve it at the tie).
        remaining = 1 - elapsed / transition_steps
        remaining = jnp.where(remaining < 0, 0.0, remaining)
        return as_float32((init_value - end_value) * remaining**power + end_value)

    return schedule


def linear_schedule(
    init_value: jax.typing.ArrayLike,
    end_value: jax.typing.ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Linear transition from ``init_value`` to ``end_value``.

    The value is ``init_value`` until ``transition_begin``, moves linearly to
    ``end_value`` over ``transition_steps`` steps, then stays there. Same as
    :func:`polynomial_schedule` with ``power=1``.

    Args:
      init_value: the value before and at the start of the transition.
      end_value: the value at the end of the transition and after it.
      transition_steps: length of the transition; ``0`` holds ``init_value``.
      transition_begin: how many steps to hold ``init_value`` first.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``transition_steps`` or ``transition_begin`` is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.linear_schedule(
      ...     init_value=1.0, end_value=0.0, transition_steps=4, transition_begin=2)
      >>> print(schedule(jnp.arange(8)))
      [1.   1.   1.   0.75 0.5  0.25 0.   0.  ]
    """
    return polynomial_schedule(
        init_value=init_value,
        end_value=end_value,
        power=1,
        transition_steps=transition_steps,
        transition_begin=transition_begin,
    )


def exponential_decay(
    init_value: jax.typing.ArrayLike,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: jax.typing.ArrayLike | None = None,
) -> Schedule:
    """Exponential decay: ``init_value * decay_rate ** ((t - begin) / steps)``.

    The value is ``init_value`` up to ``transition_begin``. With
    ``staircase=True`` the exponent is floored, so the value drops in steps.
    ``end_value`` bounds the decay: a floor when ``decay_rate < 1``, a ceiling
    otherwise.

    Deviation from optax: with ``staircase=True`` the value drops exactly at
    multiples of ``transition_steps``. optax's compiled (or vmapped) version
    drops one step late at some of them (e.g. ``transition_steps=41``, step 41),
    because XLA divides by multiplying with a rounded reciprocal.

    Args:
      init_value: the value before the decay starts.
      transition_steps: steps per factor of ``decay_rate``; must be positive.
      decay_rate: the factor applied every ``transition_steps`` steps; must be
        positive.
      transition_begin: how many steps to hold ``init_value`` first.
      staircase: decay at discrete intervals instead of continuously.
      end_value: optional bound the value never passes.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``transition_steps <= 0``, ``decay_rate <= 0`` or
        ``transition_begin < 0``. For ``transition_steps <= 0`` and
        ``decay_rate == 0`` optax logs (at INFO level) and returns the constant
        ``init_value``; for ``decay_rate < 0`` it returns NaN (values of
        alternating sign with ``staircase=True``); a negative
        ``transition_begin`` is logged and taken as 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.exponential_decay(
      ...     init_value=1.0, transition_steps=10, decay_rate=0.5, staircase=True)
      >>> print(schedule(jnp.array([0, 9, 10, 25])))
      [1.   1.   0.5  0.25]
    """
    check_steps("transition_steps", transition_steps, positive=True)
    check_steps("transition_begin", transition_begin)
    rate = concrete_scalar(decay_rate)
    if rate is not None and not rate > 0:
        fail("decay_rate", decay_rate, "> 0")

    def bound(value):
        if end_value is None:
            return value
        if rate is not None:
            return (jnp.maximum if rate < 1 else jnp.minimum)(value, end_value)
        return jnp.where(
            decay_rate < 1,
            jnp.maximum(value, end_value),
            jnp.minimum(value, end_value),
        )

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        elapsed = count - transition_begin
        if staircase:
            # Exact: compiled, `floor(t / T)` is `floor(t * (1 / T))`, one short
            # at some multiples of T (e.g. T=41, t=41); floor_divide is not.
            exponent = jnp.floor_divide(elapsed, transition_steps).astype(float)
        else:
            exponent = elapsed / transition_steps
        decayed = init_value * jnp.power(decay_rate, exponent)
        return as_float32(bound(jnp.where(elapsed <= 0, init_value, decayed)))

    return schedule


def cosine_decay_schedule(
    init_value: jax.typing.ArrayLike,
    decay_steps: int,
    alpha: jax.typing.ArrayLike = 0.0,
    exponent: jax.typing.ArrayLike = 1.0,
) -> Schedule:
    r"""Cosine decay from ``init_value`` to ``alpha * init_value``.

    At step :math:`t \le T` (:math:`T` = ``decay_steps``) the value is
    :math:`I\,[\alpha + (1 - \alpha)\,c^p]` with
    :math:`c = \frac{1}{2}(1 + \cos(\pi t / T))` and :math:`p` = ``exponent``;
    after :math:`T` it stays at :math:`\alpha I`.

    Args:
      init_value: the value at step 0.
      decay_steps: length of the decay; must be positive.
      alpha: the final value as a fraction of ``init_value``.
      exponent: the power applied to the cosine factor.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``decay_steps <= 0``.

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, 2017.

    Examples:
      >>> import optaxish
      >>> schedule = optaxish.cosine_decay_schedule(1.0, decay_steps=100, alpha=0.1)
      >>> schedule(0), schedule(50), schedule(200)
      (Array(1., dtype=float32), Array(0.55, dtype=float32), Array(0.1, dtype=float32))
    """
    check_steps("decay_steps", decay_steps, positive=True)
    # A Python int step count must not be squeezed into int32: use floats.
    total = float(decay_steps) if isinstance(decay_steps, int) else decay_steps

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        if isinstance(count, int):
            count = float(count)
        # Same operation order as optax: (pi * t) / T, not pi * (t / T).
        angle = jnp.pi * jnp.minimum(count, total) / total
        cosine = 0.5 * (1 + jnp.cos(angle))
        return as_float32(init_value * ((1 - alpha) * cosine**exponent + alpha))

    return schedule
