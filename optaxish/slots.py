"""Reading and writing any piece of an optimizer state by name.

optax states are nested tuples, so a moment is found by position
(``state[0].mu``) or by a bare key (``optax.tree.get(state, "mu")``), which is
ambiguous as soon as two Adams sit under one ``partition``. This module
addresses each piece by names instead:

* **slot** — the state field holding it: ``"mu"``, ``"nu"``, ``"count"``,
  ``"trace"``, ``"acc_grads"``, ... For :func:`~optaxish.inject_hyperparams`
  each hyperparameter is a slot of its own: ``"learning_rate"``, ``"b1"``.
* **transform** — the transformation owning it, from its state class
  (``ScaleByAdamState`` -> ``"scale_by_adam"``, ``TraceState`` -> ``"trace"``,
  ``InjectStatefulHyperparamsState`` -> ``"inject_hyperparams"``); the name of
  an enclosing :func:`~optaxish.named_chain` entry matches too, and a tuple of
  names must all match (``transform=("encoder", "scale_by_adam")``).
* **label** — an enclosing :func:`~optaxish.partition` label.
* **param** — the parameter path inside a per-parameter slot: a tuple of the
  keys of the params tree (dict keys, sequence indices, attribute names), e.g.
  ``("dense", "kernel")`` or ``("layers", 0, "w")``. A single key may be given
  bare (``param="w"`` is ``("w",)``), and a JAX key path (as from
  ``jax.tree_util.tree_flatten_with_path(params)``) is accepted too. Strings
  are never split, so ``"dense/kernel"`` is one key named ``"dense/kernel"``.
  A prefix selects a subtree.

Wrappers are looked through: ``chain``, ``named_chain``, ``masked``,
``partition``, ``inject_hyperparams``, ``MultiSteps``, ``apply_if_finite``,
the conditional wrappers, and any state with an ``inner_state`` field.
Masked-out leaves (:class:`~optaxish.MaskedNode`) hold nothing and are never
matched, so under a ``partition`` a parameter's moment is found without the
label: only the group that owns the parameter has it.

:func:`paths` lists every addressable piece as a :class:`Slot`, whose ``str``
is the query that selects it. :func:`get` and :func:`set` need the query to
match exactly one piece (or one whole slot); otherwise they raise a
:class:`SlotKeyError` (a ``KeyError``) listing the candidates.

Examples:
  >>> import jax.numpy as jnp
  >>> import optaxish
  >>> from optaxish import slots
  >>> params = {"w": jnp.ones(2), "b": jnp.ones(1)}
  >>> tx = optaxish.partition(
  ...     {"a": optaxish.adam(0.1), "b": optaxish.adam(0.01)}, {"w": "a", "b": "b"})
  >>> state = tx.init(params)
  >>> slots.get(state, "mu", param="w")  # only group "a" holds w
  Array([0., 0.], dtype=float32)
  >>> state = slots.set(state, "count", 7, label="b")
  >>> int(slots.get(state, "count", transform="scale_by_adam", label="b"))
  7
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

__all__ = ["Slot", "SlotKeyError", "describe", "find", "get", "paths", "set"]

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


def _instances(state: Any) -> list[_Instance]:
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


def _leaves(instance: _Instance) -> list[Slot]:
    flat, _ = jax.tree_util.tree_flatten_with_path(instance.value)
    base = instance.slot
    return [
        dataclasses.replace(
            base, param=tuple(_key_of(k) for k in p), path=(*base.path, *p)
        )
        for p, _ in flat
    ]


def _normalize_param(param: Any) -> tuple[Any, ...] | None:
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


def _matches(s: Slot, slot, transform, label) -> bool:
    if slot is not None and s.slot != slot:
        return False
    if transform is not None:
        wanted = (transform,) if isinstance(transform, str) else tuple(transform)
        have = {s.transform, *s.names}
        have.update(k for k, v in _ALIASES.items() if v == s.transform)
        if not all(w in have for w in wanted):
            return False
    return label is None or label in s.labels


def paths(state: Any) -> list[Slot]:
    """Every addressable piece of ``state``, one :class:`Slot` per array.

    Args:
      state: an optimizer state (any nesting of the library's states).

    Returns:
      A list of :class:`Slot`, in the state's traversal order.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> state = optaxish.adam(0.1).init({"w": jnp.zeros(2)})
      >>> for s in optaxish.slots.paths(state):
      ...     print(s)
      slot='count', transform='scale_by_adam'  # state[0].count
      slot='mu', transform='scale_by_adam', param=('w',)  # state[0].mu['w']
      slot='nu', transform='scale_by_adam', param=('w',)  # state[0].nu['w']
    """
    return [leaf for inst in _instances(state) for leaf in _leaves(inst)]


def describe(state: Any) -> str:
    """:func:`paths` as text, one piece per line (for discovering names).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> print(optaxish.slots.describe(optaxish.ema(0.9).init(jnp.zeros(1))))
      slot='count', transform='ema'  # state.count
      slot='ema', transform='ema'  # state.ema
    """
    return "\n".join(str(s) for s in paths(state))


def find(
    state: Any,
    slot: str | None = None,
    *,
    transform: str | tuple[str, ...] | None = None,
    label: Hashable | None = None,
    param: Any = None,
) -> list[Slot]:
    """The pieces of ``state`` matching every given filter.

    Args:
      state: an optimizer state.
      slot: the field name (e.g. ``"mu"``), or ``None`` for any.
      transform: the owning transformation (``"scale_by_adam"``), an
        enclosing ``named_chain`` name, or a tuple of such names (all must
        match).
      label: an enclosing ``partition`` label.
      param: a parameter path (tuple of keys, a single key, or a JAX key path);
        pieces under it (a prefix) match.

    Returns:
      The matching :class:`Slot` entries (possibly empty).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> state = optaxish.adam(0.1).init({"w": jnp.zeros(2), "b": jnp.zeros(1)})
      >>> [s.slot for s in optaxish.slots.find(state, param="w")]
      ['mu', 'nu']
    """
    prefix = _normalize_param(param)
    return [
        s
        for s in paths(state)
        if _matches(s, slot, transform, label)
        and (prefix is None or s.param[: len(prefix)] == prefix)
    ]


def _listing(items: list[str]) -> str:
    shown = [f"  {x}" for x in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        shown.append(f"  ... and {len(items) - _MAX_LISTED} more")
    return "\n".join(shown)


def _resolve(state, slot, transform, label, param) -> tuple[Slot, Any]:
    """The unique ``(Slot, value)`` a query selects, or a SlotKeyError."""
    if isinstance(slot, Slot):
        return slot, _value_at(state, slot.path)
    prefix = _normalize_param(param)
    query = f"slot={slot!r}" + "".join(
        f", {k}={v!r}"
        for k, v in (("transform", transform), ("label", label), ("param", prefix))
        if v is not None
    )
    instances = [
        i for i in _instances(state) if _matches(i.slot, slot, transform, label)
    ]
    if prefix is None:
        candidates = [(i.slot, i.value) for i in instances]
    else:
        found = {}
        for inst in instances:
            for leaf in _leaves(inst):
                if leaf.param[: len(prefix)] == prefix:
                    path = leaf.path[: len(inst.slot.path) + len(prefix)]
                    found.setdefault(
                        path, dataclasses.replace(leaf, param=prefix, path=path)
                    )
        candidates = [(s, _value_at(state, s.path)) for s in found.values()]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise SlotKeyError(
            f"{len(candidates)} pieces of the state match {query}; narrow the "
            "query with `transform=`, `label=` or `param=` (or pass one of the "
            "`Slot`s that `slots.find` returns). Candidates:\n"
            + _listing([str(s) for s, _ in candidates])
        )
    everything = paths(state)
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


def _value_at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = dict(_children(tree))[key]
    return tree


def _replace_at(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: x is not tree
    )
    children = [
        _replace_at(c, path[1:], value) if p[0] == path[0] else c for p, c in flat
    ]
    return treedef.unflatten(children)


def get(
    state: Any,
    slot: str | Slot,
    *,
    transform: str | tuple[str, ...] | None = None,
    label: Hashable | None = None,
    param: Any = None,
) -> Any:
    """The piece of ``state`` selected by the query.

    With ``param=None`` the whole slot is returned (e.g. the ``mu`` tree, with
    :class:`~optaxish.MaskedNode` where the owner does not apply); with a
    parameter path, that parameter's array (or subtree, for a prefix).

    Args:
      state: an optimizer state.
      slot: the field name, or a :class:`Slot` from :func:`paths`/:func:`find`.
      transform: the owning transformation, an enclosing ``named_chain`` name,
        or a tuple of such names (all must match).
      label: an enclosing ``partition`` label.
      param: a parameter path (see the module docstring).

    Returns:
      The selected value.

    Raises:
      SlotKeyError: (a ``KeyError``) when the query matches nothing or several
        pieces; the message lists the candidates.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.inject_hyperparams(optaxish.adam)(learning_rate=0.1)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> optaxish.slots.get(state, "learning_rate")
      Array(0.1, dtype=float32)
      >>> optaxish.slots.get(state, "nu", param="w")
      Array([0., 0.], dtype=float32)
    """
    return _resolve(state, slot, transform, label, param)[1]


def set(  # noqa: A001
    state: Any,
    slot: str | Slot,
    value: Any,
    *,
    transform: str | tuple[str, ...] | None = None,
    label: Hashable | None = None,
    param: Any = None,
) -> Any:
    """A copy of ``state`` with the selected piece replaced by ``value``.

    ``value`` must have the structure and shapes of the piece it replaces;
    each array is cast to the dtype of the array it replaces, so the state
    keeps its layout and a jitted step does not recompile.

    Args:
      state: an optimizer state (not modified).
      slot: the field name, or a :class:`Slot` from :func:`paths`/:func:`find`.
      value: the new value (an array, a Python number, or a tree for a whole
        slot or a subtree).
      transform: the owning transformation, an enclosing ``named_chain`` name,
        or a tuple of such names (all must match).
      label: an enclosing ``partition`` label.
      param: a parameter path (see the module docstring).

    Returns:
      The new state.

    Raises:
      SlotKeyError: when the query matches nothing or several pieces.
      ValueError: when ``value`` does not have the replaced piece's structure
        or shapes.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.inject_hyperparams(optaxish.adam)(learning_rate=0.1)
      >>> state = tx.init({"w": jnp.zeros(2)})
      >>> state = optaxish.slots.set(state, "learning_rate", 0.05)
      >>> state.hyperparams["learning_rate"]
      Array(0.05, dtype=float32)
    """
    target, old = _resolve(state, slot, transform, label, param)
    where = f"state{jax.tree_util.keystr(target.path)}"
    old_def = jax.tree.structure(old)
    new_leaves, new_def = jax.tree.flatten(value)
    if new_def != old_def:
        raise ValueError(
            f"The new value for {where} must have the structure {old_def}. "
            f"Received: {new_def}"
        )
    cast = []
    for o, n in zip(jax.tree.leaves(old), new_leaves):
        o_shape, n_shape = jnp.shape(o), jnp.shape(n)
        if o_shape != n_shape:
            raise ValueError(
                f"The new value for {where} must have shape {o_shape}. "
                f"Received shape {n_shape}."
            )
        dtype = getattr(o, "dtype", None)
        cast.append(jnp.asarray(n, dtype=dtype) if dtype is not None else n)
    return _replace_at(state, target.path, jax.tree.unflatten(old_def, cast))
