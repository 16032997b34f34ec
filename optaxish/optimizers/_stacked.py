"""Running one core transformation over all stepped variables at once.

The base class keeps one core state per variable (a step may update any
subset, as in tf-keras). Updating variable by variable repeats the scalar
work of every state (step counts, bias corrections): a few tiny kernels
per variable, which on CPU cost as much as the update of a small model.
Inside the traced step the per-variable states are therefore regrouped
into one state over a :class:`Stack` of the variables (the core maps over
its items as over the leaves of a list), updated once, and split back.
Pure restructuring: no data moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


@jax.tree_util.register_pytree_node_class
class Stack:
    """The stepped variables' arrays as one pytree node (internal)."""

    __slots__ = ("items",)

    def __init__(self, items: Any) -> None:
        self.items = list(items)

    def tree_flatten(self) -> tuple[tuple, int]:
        return tuple(self.items), len(self.items)

    @classmethod
    def tree_unflatten(cls, _: int, items: Any) -> Stack:
        return cls(items)


def _is_stack(x: Any) -> bool:
    return isinstance(x, Stack)


def regroup(
    template: Any,
    states: list,
    is_node: Callable[[Any], bool],
    build: Callable[[Any, list], Any],
    shared: Callable[[Any], Any] = lambda x: x,
) -> Any:
    """One state over all variables, from their per-variable ``states``.

    ``template`` is the core state initialized over all variables at once:
    each of its per-parameter nodes (``is_node``: a :class:`Stack` or a
    ``Packed``) becomes ``build(node, [that field of each state])``; every
    other leaf (a step count, shared by all variables) is ``shared`` of the
    first state's. Returns ``None`` when the per-variable states do not line
    up with ``template`` (a state whose shape is not one entry per leaf).
    """
    paths, treedef = jax.tree_util.tree_flatten_with_path(template, is_leaf=is_node)
    per_var = [dict(jax.tree_util.tree_flatten_with_path(st)[0]) for st in states]
    if any(len(p) != len(paths) for p in per_var):
        return None
    leaves = []
    for path, leaf in paths:
        if any(path not in p for p in per_var):
            return None
        if is_node(leaf):
            leaves.append(build(leaf, [p[path] for p in per_var]))
        else:
            leaves.append(shared(per_var[0][path]))
    return jax.tree.unflatten(treedef, leaves)


def split(state: Any, n: int, shared: Callable[[Any], Any] = lambda x: x) -> list:
    """The ``n`` per-variable states of a state whose per-parameter nodes are
    :class:`Stack`\\ s; other leaves go to every variable through ``shared``."""
    return [
        jax.tree.map(
            lambda x, j=j: x.items[j] if _is_stack(x) else shared(x),
            state,
            is_leaf=_is_stack,
        )
        for j in range(n)
    ]


def update_together(core: Any, grads: list, states: list, values: list):
    """``core`` applied to all variables in one update.

    Returns ``(updates, new_states)`` (one per variable), or ``None`` when
    the per-variable states do not regroup (see :func:`regroup`): the caller
    then updates variable by variable.
    """
    template = core.init(Stack(values))  # unused values: removed by XLA
    combined = regroup(template, states, _is_stack, lambda _, items: Stack(items))
    if combined is None:
        return None
    updates, new = core.update(Stack(grads), combined, Stack(values))
    return updates.items, split(new, len(values))
