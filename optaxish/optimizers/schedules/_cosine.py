"""Cosine decay (with optional linear warmup) and cosine decay with restarts."""

from __future__ import annotations

import math
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

_PI = math.pi


@builtin
class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warmup (tf-keras >= 2.13).

    Without warmup (``warmup_target=None``, the default) the rate at ``step``
    is ``initial_learning_rate * ((1 - alpha) * c + alpha)`` with ``c = 0.5 *
    (1 + cos(pi * min(step, decay_steps) / decay_steps))``. With a
    ``warmup_target``, the rate first goes linearly from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then
    decays from ``warmup_target`` as above over ``decay_steps``.

    Args:
      initial_learning_rate: the learning rate at step 0.
      decay_steps: length of the decay; must be > 0 (Keras 3's check).
      alpha: the final rate as a fraction of the decay's starting rate.
      name: optional name (kept in the config).
      warmup_target: the rate reached by the warmup; ``None`` for no warmup.
      warmup_steps: length of the warmup; must be >= 0.

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.CosineDecay(0.1, decay_steps=10)
      >>> [round(float(s(step)), 6) for step in (0, 5, 10, 20)]
      [0.1, 0.05, 0.0, 0.0]
      >>> w = schedules.CosineDecay(0.0, 10, warmup_target=0.2, warmup_steps=4)
      >>> [round(float(w(step)), 6) for step in (0, 2, 4, 9, 14)]
      [0.0, 0.1, 0.2, 0.1, 0.0]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        alpha: float = 0.0,
        name: str | None = None,
        warmup_target: float | None = None,
        warmup_steps: float = 0,
    ) -> None:
        check_number("initial_learning_rate", initial_learning_rate)
        check_positive("decay_steps", decay_steps)
        check_number("alpha", alpha)
        if warmup_target is not None:
            check_number("warmup_target", warmup_target)
        if not check_number("warmup_steps", warmup_steps) >= 0:
            raise ValueError(
                f"Argument `warmup_steps` must be >= 0. Received: warmup_steps={warmup_steps!r}"
            )
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = check_name(name)
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _decay(self, step: jax.Array, decay_from: jax.Array) -> jax.Array:
        fraction = div(step, self.decay_steps)
        cosine = 0.5 * (1.0 + jnp.cos(f32(_PI) * fraction))
        # tf-keras computes `1 - alpha` in Python (float64), then casts.
        return decay_from * (f32(1 - float(self.alpha)) * cosine + f32(self.alpha))

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        initial = f32(self.initial_learning_rate)
        decay_steps = f32(self.decay_steps)
        step = f32(step)
        if self.warmup_target is None:
            return self._decay(jnp.minimum(step, decay_steps), initial)
        target = f32(self.warmup_target)
        warmup_steps = f32(self.warmup_steps)
        step = jnp.minimum(step, decay_steps + warmup_steps)
        warmup = (target - initial) * div(step, warmup_steps) + initial
        decay = self._decay(step - warmup_steps, target)
        return jnp.where(step < warmup_steps, warmup, decay)

    def get_config(self) -> dict[str, Any]:
        return plain(
            {
                "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps,
                "alpha": self.alpha,
                "name": self.name,
                "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps,
            }
        )


@builtin
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2016).

    The multiplier decays from 1 to ``alpha`` over ``first_decay_steps``
    steps, then restarts; each period is ``t_mul`` times longer than the last
    and starts ``m_mul`` times lower.

    Args:
      initial_learning_rate: the learning rate at step 0.
      first_decay_steps: length of the first period; must be > 0 (Keras 3's
        check).
      t_mul: period length multiplier; must be > 0 (checked here; tf-keras
        returns NaN).
      m_mul: restart value multiplier.
      alpha: the minimum rate as a fraction of ``initial_learning_rate``.
      name: optional name (kept in the config).

    Examples:
      >>> from optaxish.optimizers import schedules
      >>> s = schedules.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5)
      >>> [round(float(s(step)), 6) for step in (0, 5, 10, 20, 30)]
      [0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: float,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str | None = None,
    ) -> None:
        check_number("initial_learning_rate", initial_learning_rate)
        check_positive("first_decay_steps", first_decay_steps)
        check_positive("t_mul", t_mul)
        check_number("m_mul", m_mul)
        check_number("alpha", alpha)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = check_name(name)

    @property
    def t_mul(self) -> float:
        """The period length multiplier."""
        return self._t_mul

    @property
    def m_mul(self) -> float:
        """The restart value multiplier."""
        return self._m_mul

    def __call__(self, step: jax.typing.ArrayLike) -> jax.Array:
        alpha = f32(self.alpha)
        t_mul = f32(self._t_mul)
        fraction = div(f32(step), self.first_decay_steps)
        if np.float32(self._t_mul) == 1.0:
            restart = jnp.floor(fraction)
            fraction = fraction - restart
        else:
            ratio = div(jnp.log(1.0 - fraction * (1.0 - t_mul)), jnp.log(t_mul))
            restart = jnp.floor(ratio)
            done = div(1.0 - t_mul**restart, 1.0 - t_mul)
            fraction = div(fraction - done, t_mul**restart)
        m_fac = f32(self._m_mul) ** restart
        cosine = 0.5 * m_fac * (1.0 + jnp.cos(f32(_PI) * fraction))
        return f32(self.initial_learning_rate) * ((1 - alpha) * cosine + alpha)

    def get_config(self) -> dict[str, Any]:
        return plain(
            {
                "initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul,
                "m_mul": self._m_mul,
                "alpha": self.alpha,
                "name": self.name,
            }
        )
