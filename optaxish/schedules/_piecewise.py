"""Piecewise schedules: constant jumps, interpolated segments and one-cycle."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optaxish._base import Schedule
from optaxish.schedules._checks import (
    as_float32,
    check_scales,
    check_steps,
    concrete_scalar,
    fail,
)


def piecewise_constant_schedule(
    init_value: jax.typing.ArrayLike,
    boundaries_and_scales: dict[int, float] | None = None,
) -> Schedule:
    """Piecewise constant: multiplies the value by ``scale`` from each ``step`` on.

    At step ``t`` the value is ``init_value`` times every scale whose boundary
    is ``<= t``.

    Args:
      init_value: the value before the first boundary.
      boundaries_and_scales: ``{step: scale}``; scales must be non-negative.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if a scale is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.piecewise_constant_schedule(
      ...     1.0, boundaries_and_scales={100: 0.1, 200: 0.5})
      >>> print(schedule(jnp.array([0, 99, 100, 250])))
      [1.   1.   0.1  0.05]
    """
    boundaries, scales = check_scales("boundaries_and_scales", boundaries_and_scales)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        value = jnp.asarray(init_value)
        for boundary, scale in zip(boundaries, scales):
            value = jnp.where(count < boundary, value, scale * value)
        return as_float32(value)

    return schedule


def _linear_between(start, end, fraction):
    return (end - start) * fraction + start


def _cosine_between(start, end, fraction):
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * fraction) + 1)


_INTERPOLATORS = {"linear": _linear_between, "cosine": _cosine_between}


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: jax.typing.ArrayLike,
    boundaries_and_scales: dict[int, float] | None = None,
) -> Schedule:
    """Piecewise schedule interpolating between accumulated scaled values.

    The value at step 0 is ``init_value``; at each boundary ``b_i`` it reaches
    ``init_value * scale_1 * ... * scale_i``, and between boundaries it moves
    from one such value to the next, linearly or along a half cosine. After
    the last boundary it holds the last value. (Like optax, negative steps
    give 0.)

    Args:
      interpolate_type: ``'linear'`` or ``'cosine'``.
      init_value: the value at step 0.
      boundaries_and_scales: ``{step: scale}``; scales must be non-negative.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``interpolate_type`` is unknown or a scale is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.piecewise_interpolate_schedule(
      ...     "linear", 1.0, boundaries_and_scales={4: 0.5, 8: 0.5})
      >>> print(schedule(jnp.arange(0, 11, 2)))
      [1.    0.75  0.5   0.375 0.25  0.25 ]
    """
    if interpolate_type not in _INTERPOLATORS:
        fail("interpolate_type", interpolate_type, "'linear' or 'cosine'")
    between = _INTERPOLATORS[interpolate_type]
    boundaries, scales = check_scales("boundaries_and_scales", boundaries_and_scales)
    starts = (0, *boundaries)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        count = jnp.asarray(count)
        levels = jnp.cumprod(jnp.stack((init_value, *scales)))
        value = jnp.zeros_like(levels[0])
        for i, (lo, hi) in enumerate(zip(starts[:-1], starts[1:])):
            fraction = (count - lo) / max(hi - lo, 1)
            inside = (lo <= count) & (count < hi)
            value = jnp.where(
                inside, between(levels[i], levels[i + 1], fraction), value
            )
        return as_float32(jnp.where(starts[-1] <= count, levels[-1], value))

    return schedule


def _check_onecycle(transition_steps, pct_start, div_factor, final_div_factor):
    check_steps("transition_steps", transition_steps, positive=True)
    start = concrete_scalar(pct_start)
    if start is None or not 0 <= start <= 1:
        fail("pct_start", pct_start, "a number in [0, 1]")
    for name, factor in (
        ("div_factor", div_factor),
        ("final_div_factor", final_div_factor),
    ):
        number = concrete_scalar(factor)
        if number is not None and not number > 0:
            fail(name, factor, "> 0")


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: jax.typing.ArrayLike,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle schedule with three linear phases.

    From ``peak_value / div_factor`` up to ``peak_value`` by step
    ``pct_start * transition_steps``, back down to ``peak_value / div_factor``
    by ``pct_final * transition_steps``, then down to ``peak_value /
    (div_factor * final_div_factor)`` at ``transition_steps``.

    Args:
      transition_steps: total length of the cycle; must be positive.
      peak_value: the largest value, reached at the end of phase 1.
      pct_start: fraction of the cycle spent increasing, in ``[0, 1]``.
      pct_final: fraction of the cycle at which phase 2 ends, in
        ``[pct_start, 1]``.
      div_factor: the initial value is ``peak_value / div_factor``.
      final_div_factor: the final value is the initial value divided by this.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``transition_steps <= 0``, the fractions are out of range
        or a factor is not positive (optax only checks ``transition_steps``).

    References:
      Smith & Topin, `Super-Convergence: Very Fast Training of Neural Networks
      Using Large Learning Rates <https://arxiv.org/abs/1708.07120>`_, 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.linear_onecycle_schedule(
      ...     10, peak_value=1.0, pct_start=0.2, pct_final=0.6,
      ...     div_factor=4.0, final_div_factor=5.0)
      >>> print(schedule(jnp.array([0, 2, 6, 10])))
      [0.25 1.   0.25 0.05]
    """
    _check_onecycle(transition_steps, pct_start, div_factor, final_div_factor)
    final = concrete_scalar(pct_final)
    if final is None or not concrete_scalar(pct_start) <= final <= 1:
        fail("pct_final", pct_final, f"a number in [pct_start, 1] = [{pct_start}, 1]")
    # Built as optax does, so coinciding boundaries collapse the same way.
    scales = {
        int(pct_start * transition_steps): div_factor,
        int(pct_final * transition_steps): 1.0 / div_factor,
        transition_steps: 1.0 / final_div_factor,
    }
    return piecewise_interpolate_schedule("linear", peak_value / div_factor, scales)


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: jax.typing.ArrayLike,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle schedule with cosine phases.

    Rises from ``peak_value / div_factor`` to ``peak_value`` over the first
    ``pct_start * transition_steps`` steps, then falls to ``peak_value /
    (div_factor * final_div_factor)`` at ``transition_steps``, both along half
    cosines.

    Args:
      transition_steps: total length of the cycle; must be positive.
      peak_value: the largest value, reached at the end of the rise.
      pct_start: fraction of the cycle spent increasing, in ``[0, 1]``.
      div_factor: the initial value is ``peak_value / div_factor``.
      final_div_factor: the final value is the initial value divided by this.

    Returns:
      A function mapping a step count to a float32 value.

    Raises:
      ValueError: if ``transition_steps <= 0``, ``pct_start`` is out of range
        or a factor is not positive (optax only checks ``transition_steps``).

    References:
      Smith & Topin, `Super-Convergence: Very Fast Training of Neural Networks
      Using Large Learning Rates <https://arxiv.org/abs/1708.07120>`_, 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> schedule = optaxish.cosine_onecycle_schedule(
      ...     10, peak_value=1.0, pct_start=0.2, div_factor=4.0, final_div_factor=5.0)
      >>> print(schedule(jnp.array([0, 1, 2, 10])))
      [0.25  0.625 1.    0.05 ]
    """
    _check_onecycle(transition_steps, pct_start, div_factor, final_div_factor)
    scales = {
        int(pct_start * transition_steps): div_factor,
        int(transition_steps): 1.0 / (div_factor * final_div_factor),
    }
    return piecewise_interpolate_schedule("cosine", peak_value / div_factor, scales)
