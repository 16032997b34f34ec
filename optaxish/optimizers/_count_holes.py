"""Keeping the per-variable step counts out of the compiled step's signature.

Each variable's core state has its own step count, and the step sets every
one of them to ``iterations`` before the update (see ``_compute_updates``),
so after it they all equal the new ``iterations``. Passed through the
compiled step, they are one input and one output buffer per variable, and
XLA writes each output with its own scalar copy of the new count; on CPU
those copies, scheduled among the update kernels, made the ``mlp`` step
(8 variables) about 20 % slower than a hand-written one. So the step takes
and returns ``None`` (a pytree node without leaves) in place of each count
-- a *hole* -- and fills the holes with ``iterations`` while tracing; the
optimizer stores the holes and fills them with ``iterations`` whenever it
hands a per-variable state out (``_state``). Nothing is computed
differently.

``None`` rather than a placeholder class of our own: JAX flattens ``None``
in C++, a registered class through a Python callback per hole (about 9 us
more per step for 8 variables). Holes are told apart from a state's own
``None`` fields by position: :func:`drop_counts` records, for every state
structure with holes it makes, where they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from optaxish import slots

# treedef of a per-variable state -> which of its leaves are counts
_MASKS: dict[Any, tuple[bool, ...]] = {}
# treedef of a state with holes -> (treedef without, mask): filling is a splice
_FILLS: dict[Any, tuple[Any, tuple[bool, ...]]] = {}


def _drop(state: Any) -> Any:
    leaves, treedef = jax.tree.flatten(state)
    mask = _MASKS.get(treedef)
    if mask is None:
        counts = {p.path for p in slots.paths(state) if p.slot == "count"}
        flat, _ = jax.tree_util.tree_flatten_with_path(state)
        mask = _MASKS[treedef] = tuple(path in counts for path, _leaf in flat)
        if any(mask):
            holey = jax.tree.unflatten(treedef, [None if m else 0 for m in mask])
            _FILLS[jax.tree.structure(holey)] = (treedef, mask)
    if not any(mask):  # no counts, or holes already
        return state
    return jax.tree.unflatten(treedef, [None if m else x for x, m in zip(leaves, mask)])


def _fill(state: Any, value: Any) -> Any:
    leaves, treedef = jax.tree.flatten(state)
    known = _FILLS.get(treedef)
    if known is None:
        return state
    full, mask = known
    rest = iter(leaves)
    return jax.tree.unflatten(full, [value if m else next(rest) for m in mask])


def drop_counts(states: tuple) -> tuple:
    """``states`` (one core state per variable, or ``None`` for one not
    created yet) with each count a hole."""
    return tuple(None if st is None else _drop(st) for st in states)


def fill_counts(states: tuple, value: Any) -> tuple:
    """``states`` with the holes :func:`drop_counts` made replaced by
    ``value`` (a state without holes comes back as it is)."""
    return tuple(None if st is None else _fill(st, value) for st in states)


def without_counts(
    step: Callable,
    get_sub: Callable[[Any], Any],
    put_sub: Callable[[Any, Any], Any],
) -> Callable:
    """``step(carry, values, *args)`` taking and returning counts as holes.

    ``get_sub(carry)`` is the carry's ``OptimizerState`` and ``put_sub(carry,
    sub)`` puts one back: the holes are in its ``inner_state``.
    """

    def wrapped(carry, values, *args):
        sub = get_sub(carry)
        inner = fill_counts(sub.inner_state, sub.iterations)
        new_carry, new_values = step(
            put_sub(carry, sub._replace(inner_state=inner)), values, *args
        )
        new_sub = get_sub(new_carry)
        holes = drop_counts(new_sub.inner_state)
        return put_sub(new_carry, new_sub._replace(inner_state=holes)), new_values

    return wrapped
