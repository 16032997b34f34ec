"""The index behind :mod:`optaxish.slots`: walking a state into named pieces."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable
from typing import Any

import jax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

_CONTAINER_FIELDS = ("inner_state", "inner_states", "inner_opt_state")
_ALIASES = {"inject_stateful_hyperparams": "inject_hyperparams"}
_MAX_LISTED = 25


class SlotKeyError(KeyError):
    """A query matched no piece of the state, or several; lists candidates."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclasses.dataclass(frozen=True)
class Slot:
    """One addressable piece of an optimizer state (one array, usually).

    Attributes:
      slot: the field (or hyperparameter) name, e.g. ``"mu"``.
      transform: the owning transformation's name, e.g. ``"scale_by_adam"``.
      param: the path inside the slot value, as a tuple of keys; ``()`` for a
        scalar slot such as ``count``.
      labels: enclosing ``partition`` labels, outermost first.
      names: enclosing ``named_chain`` names (and, for schedule states of
        ``inject_hyperparams``, the hyperparameter name), outermost first.
      scope: enclosing wrapper transformations, outermost first.
      path: the JAX key path from the state's root (``jax.tree_util.keystr``
        prints it).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> state = optaxish.trace(0.9).init({"w": jnp.zeros(1)})
      >>> print(optaxish.slots.paths(state)[0])
      slot='trace', transform='trace', param=('w',)  # state.trace['w']
    """

    slot: str
    transform: str
    param: tuple[Any, ...]
    labels: tuple[Hashable, ...] = ()
    names: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    path: tuple[Any, ...] = ()

    @property
    def label(self) -> Hashable | None:
        """The innermost enclosing ``partition`` label, or ``None``."""
        return self.labels[-1] if self.labels else None

    def query(self) -> str:
        """The keyword arguments of :func:`get` that select this piece."""
        transform = (*self.names, self.transform) if self.names else self.transform
        parts = [f"slot={self.slot!r}", f"transform={transform!r}"]
        if self.labels:
            parts.append(f"label={self.label!r}")
        if self.param:
            parts.append(f"param={self.param!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        owner = f"{self.transform}: " if self.names else ""
        return f"{self.query()}  # {owner}state{jax.tree_util.keystr(self.path)}"


def _transform_name(cls: type) -> str:
    name = cls.__name__
    if name.endswith("State") and len(name) > len("State"):
        name = name[: -len("State")]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    snake = snake.lower()
    return _ALIASES.get(snake, snake)


def _children(node: Any) -> list[tuple[Any, Any]]:
    """One level of ``(key_entry, child)`` pairs; ``[]`` for leaves."""
    if node is None or jax.tree_util.treedef_is_leaf(jax.tree.structure(node)):
        return []
    flat, _ = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda x: x is not node
    )
    return [(path[0], child) for path, child in flat]


def _record_fields(node: Any) -> list[tuple[str, Any]] | None:
    """``[(field, value)]`` for NamedTuples and attribute-keyed pytree nodes."""
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        return [(f, getattr(node, f)) for f in node._fields]
    if isinstance(node, dict | list | tuple):
        return None
    children = _children(node)
    if children and all(isinstance(k, GetAttrKey) for k, _ in children):
        return [(k.name, v) for k, v in children]
    return None


def _holds_states(value: Any) -> bool:
    """True when ``value`` contains a transformation state (a ``*State``)."""

    def is_state(x):
        return _record_fields(x) is not None and type(x).__name__.endswith("State")

    leaves = jax.tree.leaves(value, is_leaf=is_state)
    return any(is_state(x) for x in leaves)


@dataclasses.dataclass(frozen=True)
class _Instance:
    """A whole slot: the value of one field of one state."""

    slot: Slot  # with param=()
    value: Any


def instances(state: Any) -> list[_Instance]:
    out: list[_Instance] = []

    def walk(node, path, labels, names, scope):
        fields = _record_fields(node)
        if fields is None:
            is_dict = isinstance(node, dict)
            for key, child in _children(node):
                more = (str(key.key),) if is_dict and isinstance(key, DictKey) else ()
                walk(child, (*path, key), labels, names + more, scope)
            return
        owner = _transform_name(type(node))
        for field, value in fields:
            fpath = (*path, GetAttrKey(field))
            if field == "hyperparams" and isinstance(value, dict):
                for k, v in value.items():
                    slot = Slot(str(k), owner, (), labels, names, scope)
                    out.append(
                        _Instance(
                            dataclasses.replace(slot, path=(*fpath, DictKey(k))), v
                        )
                    )
            elif field in ("inner_states", "hyperparams_states") and isinstance(
                value, dict
            ):
                for k, v in value.items():
                    sub = (*fpath, DictKey(k))
                    if field == "inner_states":
                        walk(v, sub, (*labels, k), names, (*scope, owner))
                    else:
                        walk(v, sub, labels, (*names, str(k)), (*scope, owner))
            elif field in _CONTAINER_FIELDS or _holds_states(value):
                walk(value, fpath, labels, names, (*scope, owner))
            else:
                slot = Slot(field, owner, (), labels, names, scope, fpath)
                out.append(_Instance(slot, value))

    walk(state, (), (), (), ())
    return out


def _key_of(entry: Any) -> Any:
    if isinstance(entry, DictKey | FlattenedIndexKey):
        return entry.key
    if isinstance(entry, SequenceKey):
        return entry.idx
    if isinstance(entry, GetAttrKey):
        return entry.name
    return entry


def leaves(instance: _Instance) -> list[Slot]:
    flat, _ = jax.tree_util.tree_flatten_with_path(instance.value)
    base = instance.slot
    return [
        dataclasses.replace(
            base, param=tuple(_key_of(k) for k in p), path=(*base.path, *p)
        )
        for p, _ in flat
    ]


def normalize_param(param: Any) -> tuple[Any, ...] | None:
    if param is None:
        return None
    if isinstance(param, tuple):
        return tuple(_key_of(k) for k in param)
    if isinstance(param, list):
        raise TypeError(
            "`param` must be a tuple of keys (or a single key). Received a list: "
            f"param={param!r}"
        )
    return (_key_of(param),)


def matches(s: Slot, slot, transform, label) -> bool:
    if slot is not None and s.slot != slot:
        return False
    if transform is not None:
        wanted = (transform,) if isinstance(transform, str) else tuple(transform)
        have = {s.transform, *s.names}
        have.update(k for k, v in _ALIASES.items() if v == s.transform)
        if not all(w in have for w in wanted):
            return False
    return label is None or label in s.labels


def _listing(items: list[str]) -> str:
    shown = [f"  {x}" for x in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        shown.append(f"  ... and {len(items) - _MAX_LISTED} more")
    return "\n".join(shown)


def resolve(state, slot, transform, label, param) -> tuple[Slot, Any]:
    """The unique ``(Slot, value)`` a query selects, or a SlotKeyError."""
    if isinstance(slot, Slot):
        return slot, value_at(state, slot.path)
    prefix = normalize_param(param)
    query = f"slot={slot!r}" + "".join(
        f", {k}={v!r}"
        for k, v in (("transform", transform), ("label", label), ("param", prefix))
        if v is not None
    )
    selected = [i for i in instances(state) if matches(i.slot, slot, transform, label)]
    if prefix is None:
        candidates = [(i.slot, i.value) for i in selected]
    else:
        found = {}
        for inst in selected:
            for leaf in leaves(inst):
                if leaf.param[: len(prefix)] == prefix:
                    path = leaf.path[: len(inst.slot.path) + len(prefix)]
                    found.setdefault(
                        path, dataclasses.replace(leaf, param=prefix, path=path)
                    )
        candidates = [(s, value_at(state, s.path)) for s in found.values()]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise SlotKeyError(
            f"{len(candidates)} pieces of the state match {query}; narrow the "
            "query with `transform=`, `label=` or `param=` (or pass one of the "
            "`Slot`s that `slots.find` returns). Candidates:\n"
            + _listing([str(s) for s, _ in candidates])
        )
    everything = [leaf for inst in instances(state) for leaf in leaves(inst)]
    same_slot = [s for s in everything if s.slot == slot]
    if not same_slot:
        names = sorted({f"{s.slot!r} ({s.transform})" for s in everything})
        raise SlotKeyError(
            f"No slot named {slot!r} in the state. Slots:\n" + _listing(names)
        )
    raise SlotKeyError(
        f"Nothing in the state matches {query}. Pieces named {slot!r}:\n"
        + _listing([str(s) for s in same_slot])
    )


def value_at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = dict(_children(tree))[key]
    return tree


def replace_at(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: x is not tree
    )
    children = [
        replace_at(c, path[1:], value) if p[0] == path[0] else c for p, c in flat
    ]
    return treedef.unflatten(children)
