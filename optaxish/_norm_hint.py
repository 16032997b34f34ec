"""A global norm computed once, reused by the transformation that needs it again.

:func:`~optaxish.loss_scale.loss_scaling` reduces over the gradients to check
them for NaN/inf, and :func:`~optaxish.clip_by_global_norm` inside it reduces
over the same gradients for their norm: two full reads of every gradient where
one does. The wrapper therefore checks with the global norm itself and
records it here, while its inner update is traced, for the exact leaves it
hands to the inner transformation. ``clip_by_global_norm`` uses the recorded
value only when its input leaves are those very objects (the same tracers),
so any transformation in between that changes the updates makes it compute
its own norm as before. The norm is a function of the leaves' values alone,
so a match can never give a wrong number.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import jax

_local = threading.local()


def _stack() -> list[tuple[tuple[Any, ...], Any]]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextlib.contextmanager
def global_norm_known(tree: Any, value: jax.Array | None) -> Iterator[None]:
    """Within the block, :func:`known_global_norm` of ``tree``'s leaves is ``value``.

    ``value=None`` (no norm known) records nothing.
    """
    if value is None:
        yield
        return
    stack = _stack()
    stack.append((tuple(jax.tree.leaves(tree)), value))
    try:
        yield
    finally:
        stack.pop()


def known_global_norm(tree: Any) -> jax.Array | None:
    """The recorded global norm of exactly these leaves, or ``None``."""
    stack = _stack()
    if not stack:
        return None
    leaves = jax.tree.leaves(tree)
    for known, value in reversed(stack):
        if len(known) == len(leaves) and all(
            a is b for a, b in zip(known, leaves, strict=True)
        ):
            return value
    return None
