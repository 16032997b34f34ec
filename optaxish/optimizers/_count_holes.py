"""Keeping the per-variable step counts out of the compiled step's signature.

Each variable's core state has its own step count, and the step sets every
one of them to ``iterations`` before the update (see ``_compute_updates``),
so after it they all equal the new ``iterations``. Passed through the
compiled step, they are one input and one output buffer per variable, and
XLA writes each output with its own scalar copy of the new count; on CPU
those copies, scheduled among the update kernels, made the ``mlp`` step
(8 variables) about 20 % slower than a hand-written one. So the step takes
and returns a :data:`HOLE` (a pytree node without leaves) in place of each
count and fills the holes with ``iterations`` while tracing; the optimizer
stores the holes and fills them with ``iterations`` whenever it hands a
per-variable state out (``_state``). Nothing is computed differently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from optaxish import slots


class _Hole:
    """The placeholder of a count that stays outside the compiled step."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HOLE"

    def __copy__(self) -> _Hole:
        return self

    def __deepcopy__(self, memo: dict) -> _Hole:
        return self

    def __reduce__(self) -> str:
        return "HOLE"  # pickled by reference to the module's singleton


jax.tree_util.register_pytree_node(
    _Hole, lambda _: ((), None), lambda _aux, _children: HOLE
)

HOLE = _Hole()

# treedef of a tuple of per-variable states -> which of its leaves are counts
_MASKS: dict[Any, tuple[bool, ...]] = {}
# treedef with holes -> (treedef without, mask): filling is a list splice
_FILLS: dict[Any, tuple[Any, tuple[bool, ...]]] = {}
# treedef with holes -> (treedef without, mask): filling is a list splice
_FILLS: dict[Any, tuple[Any, tuple[bool, ...]]] = {}


def _is_hole(x: Any) -> bool:
    return isinstance(x, _Hole)


def _count_mask(states: tuple) -> tuple[bool, ...]:
    mask: list[bool] = []
    for st in states:
        counts = {p.path for p in slots.paths(st) if p.slot == "count"}
        flat, _ = jax.tree_util.tree_flatten_with_path(st)
        mask.extend(path in counts for path, _leaf in flat)
    return tuple(mask)


def drop_counts(states: tuple) -> tuple:
    """``states`` (one core state per variable) with each count a :data:`HOLE`."""
    leaves, treedef = jax.tree.flatten(states)
    mask = _MASKS.get(treedef)
    if mask is None:
        mask = _MASKS[treedef] = _count_mask(states)
    if not any(mask):
        return states
    holey = jax.tree.unflatten(
        treedef, [HOLE if m else x for x, m in zip(leaves, mask)]
    )
    _FILLS.setdefault(jax.tree.structure(holey), (treedef, mask))
    return holey


def fill_counts(tree: Any, value: Any) -> Any:
    """``tree`` with every :data:`HOLE` replaced by ``value``."""
    leaves, treedef = jax.tree.flatten(tree)
    known = _FILLS.get(treedef)
    if known is None:  # not made by `drop_counts`: the slow, general way
        return jax.tree.map(
            lambda x: value if _is_hole(x) else x, tree, is_leaf=_is_hole
        )
    full, mask = known
    rest = iter(leaves)
    return jax.tree.unflatten(full, [value if m else next(rest) for m in mask])


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
