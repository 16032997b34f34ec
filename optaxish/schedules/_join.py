"""Running several schedules one after the other."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from optaxish._base import Schedule
from optaxish.schedules._checks import as_float32, concrete_scalar, fail


def join_schedules(
    schedules: Sequence[Schedule], boundaries: Sequence[int]
) -> Schedule:
    """Runs ``schedules[i]`` from ``boundaries[i - 1]`` until ``boundaries[i]``.

    Each schedule sees the number of steps since its own start: from step
    ``boundaries[i - 1]`` on, the value is ``schedules[i](count -
    boundaries[i - 1])``.

    Deviation from optax: a ``boundaries`` list whose length is not
    ``len(schedules) - 1`` is an error (optax silently ignores the extra
    schedules or boundaries).

    Args:
      schedules: the schedules, in order; at least one.
      boundaries: ``len(schedules) - 1`` concrete step counts where the next
        schedule takes over.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``schedules`` is empty, a schedule is not callable, or the
        number of boundaries does not fit.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.join_schedules(
      ...     [optaxish.constant_schedule(1.0),
      ...      optaxish.linear_schedule(0.5, 0.0, transition_steps=2)],
      ...     boundaries=[3])
      >>> print(schedule(jnp.arange(6)))
      [1.   1.   1.   0.5  0.25 0.  ]
    """
    schedules = tuple(schedules)
    boundaries = tuple(boundaries)
    if not schedules:
        fail("schedules", schedules, "a non-empty sequence of schedules")
    for fn in schedules:
        if not callable(fn):
            fail("schedules", schedules, "a sequence of callables")
    if len(boundaries) != len(schedules) - 1:
        fail(
            "boundaries",
            boundaries,
            f"a sequence of len(schedules) - 1 = {len(schedules) - 1} steps",
        )
    for step in boundaries:
        if concrete_scalar(step) is None:
            fail("boundaries", boundaries, "a sequence of concrete numbers")

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        value = schedules[0](count)
        for start, later in zip(boundaries, schedules[1:]):
            value = jnp.where(count < start, value, later(count - start))
        return as_float32(value)

    return schedule
