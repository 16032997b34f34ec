"""Input checks of the Keras-style optimizers (nothing changes on error)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import Variable

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_var(var: Any) -> None:
    """A float ``Variable``, or a ``TypeError`` (tf-keras' "Invalid type")."""
    if not isinstance(var, Variable):
        raise TypeError(f"Expected an optaxish.Variable. Received: {var!r}")
    if str(var.dtype) not in FLOAT_DTYPES:
        raise TypeError(
            f"Invalid type {var.dtype} for {var.name}, expected: {list(FLOAT_DTYPES)}."
        )


def check_grad(grad: Any, var: Variable) -> jax.Array:
    """``grad`` as an array of ``var``'s shape and dtype, or an error naming it.

    Arrays must already have the variable's dtype; Python numbers and lists
    are converted to it.
    """
    check_var(var)
    if hasattr(grad, "dtype"):
        if np.dtype(grad.dtype) != np.dtype(var.dtype):
            raise TypeError(
                f"The gradient of variable '{var.name}' has dtype {grad.dtype}; "
                f"the variable has dtype {var.dtype}."
            )
        array = jnp.asarray(grad)
    else:
        try:
            array = jnp.asarray(np.asarray(grad, np.dtype(var.dtype)))
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"The gradient of variable '{var.name}' is not numeric. "
                f"Received: {grad!r}"
            ) from e
    if array.shape != var.shape:
        raise ValueError(
            f"The gradient of variable '{var.name}' has shape "
            f"{tuple(array.shape)}; the variable has shape {var.shape}."
        )
    return array


def parse_pairs(grads_and_vars: Iterable[Any]) -> list[tuple[Any, Variable]]:
    """``[(grad, var)]``; malformed items raise what unpacking raises, with
    their position."""
    pairs = []
    for n, item in enumerate(grads_and_vars):
        try:
            grad, var = item
        except (TypeError, ValueError) as e:
            raise type(e)(
                "`grads_and_vars` must hold (gradient, variable) pairs. "
                f"Received at position {n}: {item!r} ({e})"
            ) from None
        if not isinstance(var, Variable):
            raise TypeError(
                "`grads_and_vars` must hold (gradient, variable) pairs with an "
                f"optaxish.Variable. Received at position {n}: var={var!r}"
            )
        pairs.append((grad, var))
    return pairs


def unique_variables(variables: list[Variable], where: str) -> None:
    """A ``ValueError`` naming the first variable that appears twice."""
    seen: set[int] = set()
    for v in variables:
        if id(v) in seen:
            raise ValueError(
                f"Variable '{v.name}' appears twice in `{where}`; sum its "
                "gradients first."
            )
        seen.add(id(v))
