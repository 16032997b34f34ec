"""Exponential, piecewise-constant, polynomial and inverse-time decay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish.optimizers.schedules._base import LearningRateSchedule, builtin
from optaxish.optimizers.schedules._numerics import (
    check_name,
    check_number,
    check_positive,
    div,
    f32,
    plain,
)


class _RateDecay(LearningRateSchedule):
    """Shared arguments, config and progress of the two ``decay_rate`` schedules
    (``ExponentialDecay`` and ``InverseTimeDecay`` have tf-keras' same signature)."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = None,
    ) -> None:
        check_number("initial_learning_rate", initial_learning_rate)
        check_positive("decay_steps", decay_steps)
        check_number("decay_rate", decay_rate)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = bool(staircase)
        self.name = check_name(name)

    def _progress(self, step: jax.typing.ArrayLike) -> jax.Array:
        """``step / decay_steps``, floored with ``staircase``."""
        p = div(f32(step), self.decay_steps)
        return jnp.floor(p) if self.staircase else p

    def get_config(self) -> dict[str, Any]:
        return plain(
            {
                "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate,
                "staircase": self.staircase,
                "name": self.name,
            }
        )


@builtin
class ExponentialDecay(_RateDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.
    tf-keras' signature, config and float32 numbers.

    Args:
      initial_learning_rate: the learning rate at step 0.
      decay_steps: steps per factor of ``decay_rate``; must be > 0 (checked
        as in Keras 3; tf-keras returns 0 or NaN instead).
      decay_rate: the decay factor.
      staircase: decay in discrete steps.
      name: optional name (kept in the config).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
      >>> [float(s(step)) for step in range(3)]
      [0.10000000149011612, 0.05000000074505806, 0.02500000037252903]
    """

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        p = self._progress(step)
        return f32(self.initial_learning_rate) * jnp.power(f32(self.decay_rate), p)


@builtin
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` on the ``i``-th interval between ``boundaries``.

    The value is ``values[0]`` while ``step <= boundaries[0]``, ``values[1]``
    while ``boundaries[0] < step <= boundaries[1]``, ..., and ``values[-1]``
    after ``boundaries[-1]``. As in tf-keras, the boundaries are cast to the
    step's dtype first: with an integer step, ``2.5`` acts as ``2``; the
    legacy optimizer passes a float step. Unlike tf-keras the result is
    float32 even when ``values`` are ints.

    Args:
      boundaries: strictly increasing step numbers (checked eagerly; tf-keras
        does not check).
      values: one more number than ``boundaries``.
      name: optional name (kept in the config).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
      >>> [float(s(step)) for step in (0, 10, 11, 20, 21)]
      [1.0, 1.0, 0.5, 0.5, 0.10000000149011612]
    """

    def __init__(
        self,
        boundaries: Sequence[float],
        values: Sequence[float],
        name: str | None = None,
    ) -> None:
        for arg, seq in (("boundaries", boundaries), ("values", values)):
            if not isinstance(seq, Sequence | np.ndarray) or isinstance(seq, str):
                raise TypeError(
                    f"Argument `{arg}` must be a list of numbers. Received: {arg}={seq!r}"
                )
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of "
                f"values. Received: boundaries={boundaries} of length "
                f"{len(boundaries)}, and values={values} "
                f"of length {len(values)}."
            )
        b = [check_number("boundaries", x) for x in boundaries]
        for x in values:
            check_number("values", x)
        if any(lo >= hi for lo, hi in zip(b[:-1], b[1:])):
            raise ValueError(
                "Argument `boundaries` must be strictly increasing. "
                f"Received: boundaries={boundaries}"
            )
        self.boundaries = boundaries
        self.values = values
        self.name = check_name(name)

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        step = jnp.asarray(step)
        if not jnp.issubdtype(step.dtype, jnp.integer):
            step = f32(step)
        # tf.cast(float -> int) truncates, as numpy's astype does.
        bounds = np.asarray([float(b) for b in self.boundaries], np.float64)
        bounds = jnp.asarray(bounds.astype(step.dtype))
        index = jnp.sum(step[..., None] > bounds, axis=-1)
        return f32([float(v) for v in self.values])[index]

    def get_config(self) -> dict[str, Any]:
        return plain(
            {"boundaries": self.boundaries, "values": self.values, "name": self.name}
        )


@builtin
class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``.

    ``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power +
    end``. With ``cycle=True``, ``decay_steps`` is multiplied by
    ``ceil(step / decay_steps)`` (1 at step 0) instead of clamping the step.

    Args:
      initial_learning_rate: the learning rate at step 0.
      decay_steps: length of the decay; must be > 0 (Keras 3's check).
      end_learning_rate: the final learning rate.
      power: the polynomial's exponent.
      cycle: restart the decay every ``decay_steps``-multiple.
      name: optional name (kept in the config).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.0)
      >>> [round(float(s(step)), 6) for step in (0, 5, 10, 20)]
      [0.1, 0.05, 0.0, 0.0]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str | None = None,
    ) -> None:
        check_number("initial_learning_rate", initial_learning_rate)
        check_positive("decay_steps", decay_steps)
        check_number("end_learning_rate", end_learning_rate)
        check_number("power", power)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = bool(cycle)
        self.name = check_name(name)

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        initial = f32(self.initial_learning_rate)
        end = f32(self.end_learning_rate)
        step = f32(step)
        decay_steps = f32(self.decay_steps)
        if self.cycle:
            multiplier = jnp.where(step == 0, 1.0, jnp.ceil(div(step, decay_steps)))
            decay_steps = decay_steps * multiplier
        else:
            step = jnp.minimum(step, decay_steps)
        p = div(step, decay_steps)
        return (initial - end) * jnp.power(1 - p, f32(self.power)) + end

    def get_config(self) -> dict[str, Any]:
        return plain(
            {
                "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate,
                "power": self.power,
                "cycle": self.cycle,
                "name": self.name,
            }
        )


@builtin
class InverseTimeDecay(_RateDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored.

    Args:
      initial_learning_rate: the learning rate at step 0.
      decay_steps: how often to apply the decay; must be > 0 (Keras 3's check).
      decay_rate: the decay rate.
      staircase: decay in discrete steps.
      name: optional name (kept in the config).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
      >>> [round(float(s(step)), 6) for step in range(4)]
      [0.1, 0.066667, 0.05, 0.04]
    """

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        p = self._progress(step)
        return div(self.initial_learning_rate, 1 + f32(self.decay_rate) * p)
