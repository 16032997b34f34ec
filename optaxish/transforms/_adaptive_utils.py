"""Helpers shared by the adaptive-scaling transforms (Adam family, RMS family).

Private: validation of plain-number hyperparameters, dtype canonicalisation,
moment buffers in a chosen dtype, and the casts that keep updates in the
gradient dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_is_none = lambda x: x is None  # noqa: E731


def is_plain_number(value: Any) -> bool:
    """True for Python/NumPy real scalars (never for arrays or tracers)."""
    return isinstance(value, int | float | np.integer | np.floating) and not (
        isinstance(value, bool)
    )


def check_range(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    high_inclusive: bool = False,
) -> None:
    """Raises ``ValueError`` if a plain-number ``value`` is outside the range.

    The range is ``[low, high)`` (or ``[low, high]`` with ``high_inclusive``);
    ``high=None`` means unbounded above. Arrays and tracers are not checked.
    """
    if not is_plain_number(value):
        return
    value_ok = value >= low and (
        high is None or (value <= high if high_inclusive else value < high)
    )
    if value_ok:  # False for NaN
        return
    if high is None:
        expected = f"must be >= {low}"
    else:
        expected = f"must be in [{low}, {high}{']' if high_inclusive else ')'}"
    raise ValueError(f"`{name}` {expected}. Received: {name}={value!r}")


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )


def canonical_dtype(dtype: Any) -> jnp.dtype | None:
    """``None`` stays ``None``; other dtypes are canonicalised (x64 aware)."""
    if dtype is None:
        return None
    return jax.dtypes.canonicalize_dtype(dtype)


def buffer_like(params: Any, dtype: Any, fill_value: Any = 0.0) -> Any:
    """A state buffer per param leaf, filled with ``fill_value``.

    The buffer takes ``dtype`` when given, else the param's dtype, and the
    param's sharding (``full_like``): a moment of a parameter sharded over
    several devices is sharded the same way, not replicated on each.
    """

    def leaf(p):
        p = p if isinstance(p, jax.Array) else jnp.asarray(p)
        return jnp.full_like(p, fill_value, p.dtype if dtype is None else dtype)

    return jax.tree.map(leaf, params)


def cast_like(new: Any, old: Any) -> Any:
    """Casts each leaf of ``new`` to the dtype of the matching leaf of ``old``.

    Keeps state buffers in the dtype they were created with, whatever the
    dtype of the gradients or hyperparameters (``None`` leaves pass through).
    """
    return jax.tree.map(
        lambda n, o: None if n is None else n.astype(o.dtype),
        new,
        old,
        is_leaf=_is_none,
    )


def map_updates(fn, updates: Any, *trees: Any) -> Any:
    """``fn(g, *xs)`` per leaf, cast to the dtype of ``g``; ``None`` passes."""
    return jax.tree.map(
        lambda g, *xs: None if g is None else fn(g, *xs).astype(g.dtype),
        updates,
        *trees,
        is_leaf=_is_none,
    )
