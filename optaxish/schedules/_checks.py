"""Eager argument checks shared by the schedule factories.

Schedule factories run in Python, so their step-count arguments (which shape
the schedule: where a phase starts, how long it lasts) must be concrete
numbers. Value arguments (``init_value``, ``peak_value``, ...) may be arrays
or traced scalars and are only checked when they are concrete.
"""

from __future__ import annotations

from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np


def concrete_scalar(value: Any) -> float | None:
    """Returns ``value`` as a Python float if it is a concrete real scalar.

    Returns ``None`` for traced values, non-scalar arrays and non-numbers, so
    callers can skip checks they cannot make eagerly.

    Examples:
      >>> from optaxish.schedules._checks import concrete_scalar
      >>> concrete_scalar(3), concrete_scalar([1, 2])
      (3.0, None)
    """
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if arr.shape != () or arr.dtype.kind not in "biuf":
        return None
    return float(arr)


def fail(name: str, value: Any, requirement: str) -> NoReturn:
    """Raises the standard ``ValueError`` for argument ``name``."""
    raise ValueError(f"`{name}` must be {requirement}. Received: {name}={value!r}")


def check_steps(name: str, value: Any, *, positive: bool = False) -> float:
    """Checks a step-count argument: a concrete number, ``>= 0`` (or ``> 0``).

    Examples:
      >>> from optaxish.schedules._checks import check_steps
      >>> check_steps("warmup_steps", 10)
      10.0
      >>> check_steps("decay_steps", 0, positive=True)
      Traceback (most recent call last):
      ...
      ValueError: `decay_steps` must be > 0. Received: decay_steps=0
    """
    number = concrete_scalar(value)
    if number is None:
        fail(name, value, "a concrete number (steps cannot be traced)")
    if positive and not number > 0:
        fail(name, value, "> 0")
    if not number >= 0:
        fail(name, value, ">= 0")
    return number


def check_scales(name: str, boundaries_and_scales: Any) -> tuple[tuple, tuple]:
    """Checks a ``{step: scale}`` dict; returns its boundaries and scales sorted.

    Boundaries must be concrete numbers; scales must be non-negative wherever
    they are concrete.
    """
    if boundaries_and_scales is None:
        return (), ()
    try:
        items = sorted(boundaries_and_scales.items())
    except (AttributeError, TypeError):
        fail(name, boundaries_and_scales, "a dict mapping steps to scales")
    for step, scale in items:
        if concrete_scalar(step) is None:
            fail(name, boundaries_and_scales, "a dict with concrete number keys")
        number = concrete_scalar(scale)
        if number is not None and not number >= 0:
            fail(name, boundaries_and_scales, "a dict of non-negative scales")
    if not items:
        return (), ()
    boundaries, scales = zip(*items, strict=True)
    return boundaries, scales


def as_float32(value: Any) -> jax.Array:
    """Casts a schedule output to a float32 array."""
    return jnp.asarray(value, dtype=jnp.float32)
