"""Schedules with a linear warmup, and cosine decay with warm restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp

from optaxish._base import Schedule
from optaxish.schedules._checks import check_steps, concrete_scalar, fail
from optaxish.schedules._join import join_schedules
from optaxish.schedules._schedules import (
    cosine_decay_schedule,
    exponential_decay,
    linear_schedule,
)


def warmup_constant_schedule(
    init_value: jax.typing.ArrayLike,
    peak_value: jax.typing.ArrayLike,
    warmup_steps: int,
) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value``, then constant.

    Args:
      init_value: the value at step 0.
      peak_value: the value reached after ``warmup_steps`` and kept after.
      warmup_steps: length of the warmup (``0``: hold ``init_value``, as optax).

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``warmup_steps`` is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.warmup_constant_schedule(0.0, 1.0, warmup_steps=4)
      >>> print(schedule(jnp.array([0, 2, 4, 100])))
      [0.  0.5 1.  1. ]
    """
    check_steps("warmup_steps", warmup_steps)
    return linear_schedule(
        init_value=init_value, end_value=peak_value, transition_steps=warmup_steps
    )


def warmup_cosine_decay_schedule(
    init_value: jax.typing.ArrayLike,
    peak_value: jax.typing.ArrayLike,
    warmup_steps: int,
    decay_steps: int,
    end_value: jax.typing.ArrayLike = 0.0,
    exponent: jax.typing.ArrayLike = 1.0,
) -> Schedule:
    """Linear warmup to ``peak_value``, then cosine decay to ``end_value``.

    Args:
      init_value: the value at step 0.
      peak_value: the value at the end of the warmup.
      warmup_steps: length of the linear warmup.
      decay_steps: total length of the schedule, *including* the warmup: the
        cosine decay lasts ``decay_steps - warmup_steps`` steps.
      end_value: the value at ``decay_steps`` and after.
      exponent: the power applied to the cosine factor (see
        :func:`optaxish.cosine_decay_schedule`).

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``warmup_steps`` is negative or ``decay_steps`` is not
        greater than ``warmup_steps``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.warmup_cosine_decay_schedule(
      ...     0.0, 1.0, warmup_steps=2, decay_steps=6, end_value=0.2)
      >>> print(schedule(jnp.array([0, 1, 2, 4, 6, 9])).round(4))
      [0.  0.5 1.  0.6 0.2 0.2]
    """
    check_steps("warmup_steps", warmup_steps)
    check_steps("decay_steps", decay_steps, positive=True)
    if not concrete_scalar(decay_steps) > concrete_scalar(warmup_steps):
        raise ValueError(
            "`decay_steps` must be greater than `warmup_steps` (it includes the "
            f"warmup). Received: decay_steps={decay_steps!r}, "
            f"warmup_steps={warmup_steps!r}"
        )
    peak = concrete_scalar(peak_value)
    if peak is not None:
        alpha = 0.0 if peak == 0.0 else end_value / peak_value
    else:
        nonzero = peak_value != 0.0
        alpha = jnp.where(nonzero, end_value / jnp.where(nonzero, peak_value, 1.0), 0.0)
    warmup = linear_schedule(
        init_value=init_value, end_value=peak_value, transition_steps=warmup_steps
    )
    decay = cosine_decay_schedule(
        init_value=peak_value,
        decay_steps=decay_steps - warmup_steps,
        alpha=alpha,
        exponent=exponent,
    )
    return join_schedules([warmup, decay], [warmup_steps])


def warmup_exponential_decay_schedule(
    init_value: jax.typing.ArrayLike,
    peak_value: jax.typing.ArrayLike,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: jax.typing.ArrayLike,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: jax.typing.ArrayLike | None = None,
) -> Schedule:
    """Linear warmup to ``peak_value``, then exponential decay.

    After the warmup the value follows :func:`optaxish.exponential_decay`
    started at ``peak_value``, counting steps from the end of the warmup.

    Args:
      init_value: the value at step 0.
      peak_value: the value at the end of the warmup.
      warmup_steps: length of the linear warmup.
      transition_steps: steps per factor of ``decay_rate``; must be positive.
      decay_rate: the decay factor; must be positive.
      transition_begin: steps to hold ``peak_value`` after the warmup.
      staircase: decay at discrete intervals instead of continuously.
      end_value: optional bound the decay never passes.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``warmup_steps`` or ``transition_begin`` is negative,
        ``transition_steps <= 0`` or ``decay_rate <= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.warmup_exponential_decay_schedule(
      ...     0.0, 1.0, warmup_steps=2, transition_steps=1, decay_rate=0.5)
      >>> print(schedule(jnp.array([0, 1, 2, 3, 4])))
      [0.   0.5  1.   0.5  0.25]
    """
    check_steps("warmup_steps", warmup_steps)
    warmup = linear_schedule(
        init_value=init_value, end_value=peak_value, transition_steps=warmup_steps
    )
    decay = exponential_decay(
        init_value=peak_value,
        transition_steps=transition_steps,
        decay_rate=decay_rate,
        transition_begin=transition_begin,
        staircase=staircase,
        end_value=end_value,
    )
    return join_schedules([warmup, decay], [warmup_steps])


def sgdr_schedule(
    cosine_kwargs: Iterable[Mapping[str, jax.typing.ArrayLike]],
) -> Schedule:
    """Stochastic gradient descent with warm restarts: joined cosine cycles.

    Each element of ``cosine_kwargs`` holds the keyword arguments of one
    :func:`optaxish.warmup_cosine_decay_schedule` cycle; a cycle lasts its
    ``decay_steps``, after which the next one starts from its own step 0.

    Args:
      cosine_kwargs: one dict per cycle, each with ``init_value``,
        ``peak_value``, ``warmup_steps`` and ``decay_steps`` (and optionally
        ``end_value`` and ``exponent``).

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``cosine_kwargs`` is empty, an element is not a dict with
        ``decay_steps``, or a cycle's arguments are invalid.

    References:
      Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm
      Restarts <https://arxiv.org/abs/1608.03983>`_, 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> cycle = dict(init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=3)
      >>> schedule = optaxish.sgdr_schedule([cycle, cycle])
      >>> print(schedule(jnp.arange(7)))
      [0.  1.  0.5 0.  1.  0.5 0. ]
    """
    cycles = list(cosine_kwargs)
    if not cycles:
        fail("cosine_kwargs", cycles, "a non-empty iterable of dicts")
    schedules, ends, end = [], [], 0
    for kwargs in cycles:
        if not isinstance(kwargs, Mapping) or "decay_steps" not in kwargs:
            fail("cosine_kwargs", cycles, "an iterable of dicts with `decay_steps`")
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        end += kwargs["decay_steps"]
        ends.append(end)
    return join_schedules(schedules, ends[:-1])
