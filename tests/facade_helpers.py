"""Variable and gradient lists shared by the facade tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optaxish import Variable


def four_variables() -> list[Variable]:
    """Four 3-element float32 variables, ``v0`` to ``v3`` (packable together)."""
    return [
        Variable(np.arange(i, i + 3, dtype=np.float32), name=f"v{i}") for i in range(4)
    ]


def four_gradients(k: int) -> list[jax.Array]:
    """Gradients for :func:`four_variables` at step ``k``, distinct per step."""
    return [jnp.full(3, 0.1 * (k + i + 1), jnp.float32) for i in range(4)]
