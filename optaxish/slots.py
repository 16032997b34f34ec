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

Packed states (:func:`optaxish.packing.packed`) read like unpacked ones: a
:class:`~optaxish.packing.Packed` moment is seen as the per-parameter tree it
stands for, with the parameters' paths; :func:`get` slices the parameter out
of its buffer and :func:`set` writes it back into the same place, so the
state keeps its buffers and layout and a jitted step does not retrace. A
:class:`Slot`'s path shows the step into the tree as ``.unpack()``.

Parameters boxed in a node whose only child is an array under ``value``
(flax ``nnx.Variable``, as :class:`flax.nnx.Optimizer` keeps them) are
addressed without that step: ``param=("linear", "kernel")``, and
``("linear", "kernel", "value")`` too. Reads give the array inside the box;
writes keep the box.

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

  A packed state, read and written per parameter:

  >>> from optaxish.packing import packed
  >>> state = packed(optaxish.adam(0.1)).init(params)
  >>> state.inner_state[0].mu
  Packed(2 leaves in 1 buffer(s): float32[3])
  >>> print(slots.find(state, "mu", param="w")[0])
  slot='mu', transform='scale_by_adam', param=('w',)  # state.inner_state[0].mu.unpack()['w']
  >>> state = slots.set(state, "mu", jnp.array([1.0, 2.0]), param="w")
  >>> slots.get(state, "mu", param="w")
  Array([1., 2.], dtype=float32)
  >>> state.inner_state[0].mu.buffers  # b first, then w
  (Array([0., 1., 2.], dtype=float32),)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp

from optaxish._slot_access import replace_at, value_at
from optaxish._slot_index import (
    Slot,
    SlotKeyError,
    instances,
    leaves,
    normalize_param,
    resolve,
    select,
)

__all__ = ["Slot", "SlotKeyError", "describe", "find", "get", "paths", "set"]

# Defined in the private index module; shown (and pickled) as ours.
Slot.__module__ = SlotKeyError.__module__ = __name__


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
    return [leaf for inst in instances(state) for leaf in leaves(inst)]


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
    prefix = normalize_param(param)
    return [s for _, s in select(state, slot, transform, label, prefix)]


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
    parameter path, that parameter's array (or subtree, for a prefix). Packed
    values come back unpacked (new arrays sliced from the buffers; under
    ``jit``, slices) and boxed parameters without their box.

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
    return value_at(state, resolve(state, slot, transform, label, param).path)


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

    ``value`` must have the structure and shapes of the piece it replaces
    (as :func:`get` returns it); each array is cast to the dtype of the array
    it replaces, so the state keeps its layout and a jitted step does not
    recompile. A piece of a packed value is written into its buffer, which
    keeps its layout; a boxed one keeps its box.

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
    target = resolve(state, slot, transform, label, param)
    old = value_at(state, target.path, read=False)  # shapes and dtypes
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
    return replace_at(state, target.path, jax.tree.unflatten(old_def, cast))
