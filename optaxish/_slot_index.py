"""The index behind :mod:`optaxish.slots`: walking a state into named pieces.

Two kinds of nodes are seen through rather than shown as they are stored:

* a :class:`~optaxish.packing.Packed` value stands for the per-parameter tree
  of its layout: a :class:`Slot`'s path enters it with an :data:`UNPACK`
  step, then follows the layout's key paths; reads slice the buffers and
  writes go back into them (same buffers, same layout);
* a *box*, a pytree node whose only child is one array under the attribute
  ``value`` (flax ``nnx.Variable``, ``nn.Partitioned``): its ``value`` step
  is left out of :attr:`Slot.param` (the long form still selects) and reads
  give the array inside, writes keep the box.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Hashable
from typing import Any

import jax
import numpy as np
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

from optaxish.packing._layout import Layout, Packed

_CONTAINER_FIELDS = ("inner_state", "inner_states", "inner_opt_state")
_BOX_KEY = GetAttrKey("value")
_NOT_BOXES = (
    dict, list, tuple, Packed, jax.Array, jax.core.Tracer, np.ndarray, np.generic,
    int, float, complex,
)  # fmt: skip
_ALIASES = {"inject_stateful_hyperparams": "inject_hyperparams"}
_MAX_LISTED = 25


class SlotKeyError(KeyError):
    """A query matched no piece of the state, or several; lists candidates."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclasses.dataclass(frozen=True)
class _Unpack:
    """Path entry: from a ``Packed`` value into the tree it stands for."""

    def __str__(self) -> str:
        return ".unpack()"


UNPACK = _Unpack()


@dataclasses.dataclass(frozen=True)
class _BoxKey:
    """Path entry: into a box (its ``value``), not part of ``Slot.param``."""

    name: str

    def __str__(self) -> str:
        return f".{self.name}"


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
      path: the key path from the state's root (``jax.tree_util.keystr``
        prints it). Into a :class:`~optaxish.packing.Packed` value it has an
        ``.unpack()`` step, then the key path inside the unpacked tree.

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


def _is_box(node: Any) -> bool:
    """A node whose only child is one leaf under the attribute ``value``."""
    if node is None or isinstance(node, _NOT_BOXES):
        return False
    children = _children(node)
    return (
        len(children) == 1
        and children[0][0] == _BOX_KEY
        and jax.tree_util.treedef_is_leaf(jax.tree.structure(children[0][1]))
    )


def _unbox(node: Any) -> Any:
    return _children(node)[0][1] if _is_box(node) else node


def _rebox(box: Any, value: Any) -> Any:
    """``box`` holding ``value`` instead (``value`` itself if not a box)."""
    if not _is_box(box):
        return value
    return jax.tree.structure(box, is_leaf=lambda x: x is not box).unflatten([value])


def _record_fields(node: Any) -> list[tuple[str, Any]] | None:
    """``[(field, value)]`` for NamedTuples and attribute-keyed pytree nodes."""
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        return [(f, getattr(node, f)) for f in node._fields]
    if isinstance(node, dict | list | tuple) or _is_box(node):
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
    if isinstance(entry, GetAttrKey | _BoxKey):
        return entry.name
    return entry


def _is_view_leaf(x: Any) -> bool:
    return isinstance(x, Packed) or _is_box(x)


def _flat_entries(node: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """``(path entries, leaf)`` pairs, boxes ending in a ``_BoxKey`` step."""
    out = []
    for p, x in jax.tree_util.tree_flatten_with_path(node, is_leaf=_is_view_leaf)[0]:
        if _is_box(x):
            out.append(((*p, _BoxKey(_BOX_KEY.name)), _unbox(x)))
        else:
            out.append((p, x))
    return out


@functools.lru_cache(maxsize=256)
def _index(layout: Layout) -> tuple[Any, tuple[tuple[Any, ...], ...]] | None:
    """The layout's tree with each leaf's index as the leaf, and the path
    entries of the leaves in order (None if the tree cannot be rebuilt)."""
    try:
        tree = jax.tree.unflatten(layout.treedef, range(layout.num_leaves))
    except Exception:  # a node that validates its children
        return None
    return tree, tuple(p for p, _ in _flat_entries(tree))


def leaves(instance: _Instance) -> list[Slot]:
    base = instance.slot
    out = []
    for p, x in _flat_entries(instance.value):
        index = _index(x.layout) if isinstance(x, Packed) else None
        if isinstance(x, Packed) and index is None:  # shown as its buffers
            inner = [(*p, *q) for q, _ in jax.tree_util.tree_flatten_with_path(x)[0]]
        elif isinstance(x, Packed):
            inner = [(*p, UNPACK, *q) for q in index[1]]
        else:
            inner = [p]
        for q in inner:
            param = tuple(_key_of(k) for k in q if not isinstance(k, _BoxKey | _Unpack))
            out.append(dataclasses.replace(base, param=param, path=(*base.path, *q)))
    return out


def cut(entries: tuple[Any, ...], prefix: tuple[Any, ...]) -> int | None:
    """How many of a piece's ``entries`` (its path below the slot) ``prefix``
    covers, matched against its param with box steps left out, then with
    them in; ``None`` when it matches neither."""
    for with_boxes in (False, True):
        taken = end = 0
        for i, entry in enumerate(entries):
            if taken == len(prefix):
                break
            if entry is UNPACK or (isinstance(entry, _BoxKey) and not with_boxes):
                continue
            if _key_of(entry) != prefix[taken]:
                break
            taken, end = taken + 1, i + 1
        if taken == len(prefix):
            return end
    return None


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


def select(state, slot, transform, label, prefix) -> list[tuple[_Instance, Slot]]:
    """``(instance, piece)`` for each piece matching the filters."""
    return [
        (inst, leaf)
        for inst in instances(state)
        if matches(inst.slot, slot, transform, label)
        for leaf in leaves(inst)
        if prefix is None or cut(leaf.path[len(inst.slot.path) :], prefix) is not None
    ]


def _listing(items: list[str]) -> str:
    shown = [f"  {x}" for x in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        shown.append(f"  ... and {len(items) - _MAX_LISTED} more")
    return "\n".join(shown)


def resolve(state, slot, transform, label, param) -> Slot:
    """The unique piece (or subtree) a query selects, or a SlotKeyError."""
    if isinstance(slot, Slot):
        return slot
    prefix = normalize_param(param)
    query = f"slot={slot!r}" + "".join(
        f", {k}={v!r}"
        for k, v in (("transform", transform), ("label", label), ("param", prefix))
        if v is not None
    )
    if prefix is None:
        candidates = [
            i.slot for i in instances(state) if matches(i.slot, slot, transform, label)
        ]
    else:
        found = {}
        for inst, leaf in select(state, slot, transform, label, prefix):
            start = len(inst.slot.path)
            path = leaf.path[: start + cut(leaf.path[start:], prefix)]
            found.setdefault(path, dataclasses.replace(leaf, param=prefix, path=path))
        candidates = list(found.values())
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise SlotKeyError(
            f"{len(candidates)} pieces of the state match {query}; narrow the "
            "query with `transform=`, `label=` or `param=` (or pass one of the "
            "`Slot`s that `slots.find` returns). Candidates:\n"
            + _listing([str(s) for s in candidates])
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
