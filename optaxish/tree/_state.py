"""Searching optimizer states by key: optax's ``tree.get/set/...`` helpers.

These mirror ``optax.tree.get``, ``set``, ``get_all_with_path`` and
``map_params``. They search by a bare key (a NamedTuple field, a dict key or a
NamedTuple class name), so two Adams under one ``partition`` make
``get(state, "mu")`` ambiguous; :mod:`optaxish.slots` addresses state pieces by
transform, slot, partition label and parameter path instead.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import jax

KeyPath = tuple[Any, ...]
Filtering = Callable[[KeyPath, Any], bool]


@dataclasses.dataclass(frozen=True)
class NamedTupleKey:
    """A key-path entry for a NamedTuple field, naming the tuple's class too.

    Paths returned by :func:`get_all_with_path` use it (instead of JAX's
    ``GetAttrKey``) so a ``filtering`` function can tell ``ScaleByAdamState.mu``
    from another state's ``mu``.

    Attributes:
      tuple_name: the NamedTuple's class name, e.g. ``"ScaleByAdamState"``.
      name: the field name, e.g. ``"mu"``.

    Examples:
      >>> from optaxish.tree import NamedTupleKey
      >>> str(NamedTupleKey("ScaleByAdamState", "mu"))
      'ScaleByAdamState.mu'
    """

    tuple_name: str
    name: str

    def __str__(self) -> str:
        return f"{self.tuple_name}.{self.name}"


@jax.tree_util.register_pytree_node_class
class _ParamsPlaceholder:
    """Stands for the whole parameter tree while :func:`map_params` inits."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux, children
        return cls()


def is_params_placeholder(x: Any) -> bool:
    """True for the placeholder of :func:`map_params` (ours or optax's)."""
    return type(x).__name__ == "_ParamsPlaceholder"


def _placeholder() -> Any:
    """The placeholder :func:`map_params` initializes on.

    optax's own when optax is loaded (looked up, never imported): optax's
    ``masked`` (so ``adamw(mask=...)``, ``lamb``, ``multi_transform``) passes
    only its own placeholder through its ``init``. Ours recognize either.
    """
    optax_state_utils = sys.modules.get("optax.tree_utils._state_utils")
    cls = getattr(optax_state_utils, "_ParamsPlaceholder", None)
    return cls() if isinstance(cls, type) else _ParamsPlaceholder()


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _has_key(node: Any, key: Any) -> bool:
    if _is_namedtuple(node):
        return key in node._fields or type(node).__name__ == key
    return isinstance(node, dict) and key in node


def _children(path: KeyPath, node: Any) -> list[tuple[KeyPath, Any]]:
    """One level of children with their paths (NamedTupleKey for fields)."""
    if _is_namedtuple(node):
        name = type(node).__name__
        return [
            ((*path, NamedTupleKey(name, f)), getattr(node, f)) for f in node._fields
        ]
    if isinstance(node, dict):
        return [((*path, jax.tree_util.DictKey(k)), v) for k, v in node.items()]
    if _is_leaf(node):
        return []
    flat, _ = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    return [((*path, *p), v) for p, v in flat]


def _is_leaf(node: Any) -> bool:
    """True for leaves and ``None`` (nodes without children to search)."""
    if _is_namedtuple(node) or isinstance(node, dict):
        return False
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(node))


def _nodes_with_key(tree: Any, key: Any, path: KeyPath = ()) -> list:
    """The outermost nodes having ``key``, in traversal order."""
    if _has_key(tree, key):
        return [(path, tree)]
    if _is_leaf(tree):
        return []
    out = []
    for child_path, child in _children(path, tree):
        out += _nodes_with_key(child, key, child_path)
    return out


def _search(tree: Any, key: Any) -> list[tuple[KeyPath, Any]]:
    # optax's order: the outermost matches first, then matches nested in them.
    nodes = _nodes_with_key(tree, key)
    found = []
    for path, node in nodes:
        if _is_namedtuple(node) and type(node).__name__ == key:
            found.append((path, node))
        elif _is_namedtuple(node):
            found.append(
                (
                    (*path, NamedTupleKey(type(node).__name__, key)),
                    node[node._fields.index(key)],
                )
            )
        else:
            found.append(((*path, jax.tree_util.DictKey(key)), node[key]))
    for path, node in nodes:
        for child_path, child in _children(path, node):
            found += [((*child_path, *p), v) for p, v in _search(child, key)]
    return found


def get_all_with_path(
    tree: Any, key: Any, filtering: Filtering | None = None
) -> list[tuple[KeyPath, Any]]:
    """Every ``(path, value)`` in ``tree`` found under ``key``.

    ``key`` is a NamedTuple field name, a dict key, or a NamedTuple class name
    (which returns the whole NamedTuple). Paths use :class:`NamedTupleKey` for
    NamedTuple fields; ``jax.tree_util.keystr`` prints them.

    Args:
      tree: the tree to search (usually an optimizer state).
      key: the key to look for.
      filtering: optional ``filtering(path, value) -> bool`` to keep a subset.

    Returns:
      A list of ``(path, value)`` pairs; empty when nothing matches.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.chain(optaxish.ema(0.9), optaxish.trace(0.9))
      >>> state = tx.init(jnp.zeros(2))
      >>> [jax.tree_util.keystr(p) for p, _ in
      ...  optaxish.tree.get_all_with_path(state, "count")]
      ['[0]EmaState.count']
    """
    found = _search(tree, key)
    if filtering is not None:
        found = [(p, v) for p, v in found if filtering(p, v)]
    return found


def get(
    tree: Any,
    key: Any,
    default: Any | None = None,
    filtering: Filtering | None = None,
) -> Any:
    """The single value of ``tree`` found under ``key`` (or ``default``).

    Args:
      tree: the tree to search.
      key: a NamedTuple field name, dict key or NamedTuple class name.
      default: returned when nothing matches.
      filtering: optional ``filtering(path, value) -> bool``.

    Returns:
      The value found.

    Raises:
      KeyError: when several values match; the message lists their paths.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> state = optaxish.ema(0.9).init(jnp.zeros(2))
      >>> optaxish.tree.get(state, "count")
      Array(0, dtype=int32)
    """
    found = get_all_with_path(tree, key, filtering)
    if len(found) > 1:
        paths = ", ".join(jax.tree_util.keystr(p) for p, _ in found)
        raise KeyError(
            f"Found {len(found)} values for {key!r} (at {paths}); pass `filtering` "
            "to pick one, or use `optaxish.slots.get` to address it by transform, "
            "label and parameter."
        )
    return found[0][1] if found else default


def _replace(node: Any, path: KeyPath, values: dict, filtering) -> Any:
    ok = lambda p, v: filtering is None or filtering(p, v)  # noqa: E731
    if _is_namedtuple(node) and type(node).__name__ in values and ok(path, node):
        return values[type(node).__name__]
    if _is_leaf(node):
        return node
    if _is_namedtuple(node) or isinstance(node, dict):
        new = {}
        for child_path, child in _children(path, node):
            k = child_path[-1]
            k = k.name if isinstance(k, NamedTupleKey) else k.key
            if k in values and ok(child_path, child):
                new[k] = values[k]
            else:
                new[k] = _replace(child, child_path, values, filtering)
        if _is_namedtuple(node):
            return node._replace(**new)
        out = type(node)() if type(node) is not dict else {}
        out.update(new)
        return out
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    return treedef.unflatten(
        [_replace(v, (*path, *p), values, filtering) for p, v in flat]
    )


def set(  # noqa: A001
    tree: Any, filtering: Filtering | None = None, /, **kwargs: Any
) -> Any:
    """A copy of ``tree`` with the values under the given keys replaced.

    Every match of each keyword (a NamedTuple field, a dict key or a
    NamedTuple class name) is replaced, subject to ``filtering``.

    Args:
      tree: the tree (not modified).
      filtering: optional ``filtering(path, value) -> bool``, positional.
      **kwargs: ``key=new_value`` pairs.

    Returns:
      The new tree.

    Raises:
      KeyError: when a key matches nothing (after filtering).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> state = optaxish.ema(0.9).init(jnp.zeros(2))
      >>> optaxish.tree.set(state, count=jnp.asarray(3)).count
      Array(3, dtype=int32, weak_type=True)
    """
    for key in kwargs:
        if not get_all_with_path(tree, key, filtering):
            extra = " given the filtering" if filtering is not None else ""
            raise KeyError(f"Found no value for {key!r}{extra} in the tree.")
    return _replace(tree, (), kwargs, filtering)


def map_params(
    initable: Any,
    f: Callable[..., Any],
    state: Any,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Applies ``f`` to every copy of the parameter tree inside ``state``.

    ``initable`` (a transformation, or an ``init`` function) is initialised on
    a placeholder to learn which parts of the state are parameter-shaped; for
    example, this maps parameter sharding specs onto an optimizer state.

    Args:
      initable: a transformation with ``init``, or an ``init`` function.
      f: applied leafwise to each params-shaped subtree (and to ``rest``).
      state: the optimizer state.
      *rest: trees with the structure of the params, passed to ``f``.
      transform_non_params: applied to the other leaves (kept when ``None``).
      is_leaf: passed to ``jax.tree.map`` on the params-shaped subtrees (e.g.
        ``lambda x: isinstance(x, optaxish.MaskedNode)`` with ``masked``).

    Returns:
      A tree with the structure of ``state``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.ema(0.9)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> out = optaxish.tree.map_params(tx, lambda x: x.shape, state,
      ...                                transform_non_params=lambda x: None)
      >>> out.ema, out.count
      ({'w': (2,)}, None)
    """
    init = initable.init if hasattr(initable, "init") else initable
    template = init(_placeholder())

    def visit(maybe_placeholder, value):
        if is_params_placeholder(maybe_placeholder):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        if transform_non_params is not None:
            return transform_non_params(value)
        return value

    return jax.tree.map(visit, template, state, is_leaf=is_params_placeholder)
