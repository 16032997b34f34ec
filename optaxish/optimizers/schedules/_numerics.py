"""Float32 arithmetic and argument checks shared by the Keras schedules.

tf-keras evaluates its schedules as a short sequence of float32 operations.
To give the same numbers, the schedules here run the same sequence, with one
care: XLA compiles ``x / c`` for a constant (or broadcast) ``c`` into
``x * (1 / c)``, which is off by one unit in the last place for about half of
all inputs. That is harmless for smooth terms but moves ``floor``/``ceil`` at
exact multiples (``floor(41 / 41)`` becomes ``0``), so every division goes
through :func:`div`, which corrects the quotient to the IEEE result.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish.schedules._checks import concrete_scalar


def f32(x: Any) -> jax.Array:
    """Casts ``x`` (a number, an array or a traced value) to float32."""
    return jnp.asarray(x, dtype=jnp.float32)


def _split(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    # Veltkamp's split: x == hi + lo exactly, each with at most 12 bits.
    c = x * jnp.float32(4097.0)
    hi = c - (c - x)
    return hi, x - hi


def _residual(a: jax.Array, q: jax.Array, b: jax.Array) -> jax.Array:
    # a - q * b, exact when q is within an ulp of a / b (Dekker's product).
    p = q * b
    qh, ql = _split(q)
    bh, bl = _split(b)
    err = ((qh * bh - p) + qh * bl + ql * bh) + ql * bl
    return (a - p) - err


def div(a: Any, b: Any) -> jax.Array:
    """``a / b`` in float32, rounded as IEEE division rounds (as TF does).

    Examples:
      >>> from optaxish.optimizers.schedules._numerics import div
      >>> import jax
      >>> float(jax.jit(lambda s: div(s, 41.0))(41.0))
      1.0
    """
    a, b = f32(a), f32(b)
    q = a / b
    r = _residual(a, q, b)
    toward = jnp.where((r > 0) == (b > 0), jnp.inf, -jnp.inf).astype(jnp.float32)
    q_next = jnp.nextafter(q, toward)
    closer = jnp.abs(_residual(a, q_next, b)) < jnp.abs(r)
    return jnp.where(closer, q_next, q)


def check_number(name: str, value: Any) -> float:
    """Returns ``value`` as a float; ``TypeError`` unless a concrete real number."""
    number = None if isinstance(value, bool) else concrete_scalar(value)
    if number is None:
        raise TypeError(
            f"Argument `{name}` must be a real number. Received: {name}={value!r}"
        )
    return number


def check_positive(name: str, value: Any) -> float:
    """Like :func:`check_number`, and ``ValueError`` unless ``> 0`` (Keras 3)."""
    number = check_number(name, value)
    if not number > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return number


def check_name(name: Any) -> str | None:
    """Checks the ``name`` argument: a string or ``None``."""
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"Argument `name` must be a string or None. Received: name={name!r}"
        )
    return name


def plain(value: Any) -> Any:
    """Makes a config value JSON-safe: NumPy/JAX numbers and tuples become Python."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic | np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value
