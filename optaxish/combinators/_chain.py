"""Sequential composition: ``chain`` and ``named_chain``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from optaxish._base import GradientTransformationExtraArgs, with_extra_args_support
from optaxish._elementwise import is_elementwise, mark_elementwise


def chain(*transforms: Any) -> GradientTransformationExtraArgs:
    """Applies transformations one after the other.

    The state is a tuple with one entry per transformation, in order (optax's
    layout, so ``state[0].mu`` works as it does there). Any object with
    ``init``/``update`` works, optax transformations included.

    Args:
      *transforms: the transformations, applied left to right.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.chain(optaxish.clip(1.0), optaxish.scale(-0.1))
      >>> tx.update(jnp.array([5.0, 0.5]), tx.init(jnp.zeros(2)))[0]
      Array([-0.1 , -0.05], dtype=float32)
    """
    txs = tuple(with_extra_args_support(t) for t in transforms)

    def init_fn(params):
        return tuple(t.init(params) for t in txs)

    def update_fn(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(txs):
            got = len(state) if isinstance(state, tuple) else type(state).__name__
            raise ValueError(
                f"`state` does not belong to this chain of {len(txs)} transformations "
                f"(received {got}). Make sure it came from this chain's `init`."
            )
        new_state = []
        for t, s in zip(txs, state):
            updates, s = t.update(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    tx = GradientTransformationExtraArgs(init_fn, update_fn)
    return mark_elementwise(tx, all(is_elementwise(t) for t in txs))


def _keys_match(state: Any, names: list[str]) -> bool:
    """Whether ``state`` has the keys of a ``named_chain`` of ``names``.

    An ``OrderedDict`` (what ``init`` returns) must list them in order, so the
    state of a chain with the same names in another order is refused. A plain
    dict (a state restored from msgpack or a checkpoint) may have them in any
    order: JAX sorts a dict's keys, so its order says nothing.
    """
    if isinstance(state, OrderedDict):
        return list(state) == names
    return isinstance(state, Mapping) and sorted(state) == sorted(names)


def named_chain(*transforms: tuple[str, Any]) -> GradientTransformationExtraArgs:
    """Like :func:`chain`, with the state keyed by a name per transformation.

    The state is an ``OrderedDict`` ``{name: state}``, so a transformation's state
    is found by name (``state["adam"].mu``) rather than by position. ``update``
    also takes the state as a plain dict with the keys in any order (as a
    checkpoint or msgpack restores it, sorted), as optax does.

    Args:
      *transforms: ``(name, transformation)`` pairs; names must be unique strings.

    Raises:
      ValueError: for duplicate names or entries that are not pairs.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.named_chain(("momentum", optaxish.trace(0.9)),
      ...                           ("lr", optaxish.scale(-0.1)))
      >>> list(tx.init(jnp.zeros(1)))
      ['momentum', 'lr']
    """
    names = []
    for i, item in enumerate(transforms):
        if not (
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        ):
            raise ValueError(
                f"`named_chain` takes (name, transformation) pairs; entry {i} is {item!r}"
            )
        names.append(item[0])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"`named_chain` names must be unique. Repeated: {duplicates}")
    txs = [(n, with_extra_args_support(t)) for n, t in transforms]

    def init_fn(params):
        return OrderedDict((n, t.init(params)) for n, t in txs)

    def update_fn(updates, state, params=None, **extra_args):
        if not _keys_match(state, names):
            got = list(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"`state` does not belong to this named_chain: expected keys {names}, "
                f"received {got}."
            )
        new_state = OrderedDict()
        for n, t in txs:
            updates, new_state[n] = t.update(updates, state[n], params, **extra_args)
        return updates, new_state

    tx = GradientTransformationExtraArgs(init_fn, update_fn)
    return mark_elementwise(tx, all(is_elementwise(t) for _, t in txs))
