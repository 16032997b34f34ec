"""Readable errors for mismatched pytrees."""

from __future__ import annotations

from typing import Any

import jax


def _leaf_paths(tree: Any) -> list[str]:
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
    return [jax.tree_util.keystr(path) for path, _ in leaves]


def first_difference(a: Any, b: Any) -> str:
    """Describes the first key path at which two pytree structures differ."""
    pa, pb = _leaf_paths(a), _leaf_paths(b)
    for x, y in zip(pa, pb):
        if x != y:
            return f"first differing key path: {x or '<root>'} vs {y or '<root>'}"
    if len(pa) != len(pb):
        longer, name = (pa, "first") if len(pa) > len(pb) else (pb, "second")
        extra = longer[min(len(pa), len(pb))]
        return f"the {name} tree has an extra leaf at {extra or '<root>'}"
    return "same key paths, but different node types"


def check_same_structure(
    expected: Any, received: Any, expected_name: str, received_name: str
) -> None:
    """Raises ``ValueError`` naming both trees if their structures differ.

    ``None`` leaves count as part of the structure.

    Examples:
      >>> from optaxish._errors import check_same_structure
      >>> check_same_structure({"a": 1}, {"b": 1}, "params", "updates")
      Traceback (most recent call last):
      ...
      ValueError: `updates` does not have the structure of `params` (first differing key path: ['a'] vs ['b']).
      ...
    """
    sa = jax.tree.structure(expected, is_leaf=lambda x: x is None)
    sb = jax.tree.structure(received, is_leaf=lambda x: x is None)
    if sa == sb:
        return
    raise ValueError(
        f"`{received_name}` does not have the structure of `{expected_name}` "
        f"({first_difference(expected, received)}).\n"
        f"  {expected_name}: {sa}\n  {received_name}: {sb}"
    )
