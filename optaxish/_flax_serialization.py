"""Saving optaxish states with ``flax.serialization`` (msgpack, ``to_bytes``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from optaxish.loss_scale._values import (
    DynamicLossScale,
    NoOpLossScale,
    StaticLossScale,
)
from optaxish.packing._layout import Packed

_LOSS_SCALES = (NoOpLossScale, StaticLossScale, DynamicLossScale)


def register_flax_serialization() -> None:
    """Lets ``flax.serialization`` save and restore optaxish's own pytree
    classes: :class:`~optaxish.packing.Packed` and the loss-scale values.

    flax's ``to_state_dict``, ``msgpack_serialize`` and ``to_bytes`` know
    dicts, lists, tuples, NamedTuples and the classes registered with them;
    the buffers of a :class:`~optaxish.packing.Packed` (in the state of
    :func:`~optaxish.packing.packed`, or packed parameters) and the loss-scale
    values (``NoOpLossScale``, ``StaticLossScale``, ``DynamicLossScale``, in
    the state of :func:`~optaxish.loss_scale.loss_scaling`) are none of
    these, so msgpack refuses them. After this call a ``Packed`` is saved as
    ``{"0": buffer, "1": ...}`` (one flat buffer per dtype) and a loss scale
    as a dict of its fields, and both are restored into the target's
    structure, as flax restores anything: into a state from
    ``tx.init(params)``. NamedTuple states need nothing.

    Importing flax is left to this function: the rest of optaxish does not
    need it. Calling it again does nothing.

    Raises:
      ImportError: when flax is not installed.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from flax import serialization
      >>> from optaxish.loss_scale import dynamic_loss_scaling
      >>> from optaxish.packing import packed
      >>> optaxish.register_flax_serialization()
      >>> tx = dynamic_loss_scaling(packed(optaxish.adam(0.1)))
      >>> params = {"w": jnp.ones(2), "b": jnp.zeros(1)}
      >>> scaled_grads = {"w": jnp.full(2, 2.0**15), "b": jnp.full(1, 2.0**15)}
      >>> state = tx.update(scaled_grads, tx.init(params), params)[1]
      >>> data = serialization.to_bytes(state)
      >>> restored = serialization.from_bytes(tx.init(params), data)
      >>> restored.inner_state.inner_state[0].mu.buffers[0].tolist()
      [0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
      >>> float(restored.loss_scale.loss_scale), int(restored.loss_scale.counter)
      (32768.0, 1)
    """
    from flax import serialization  # optional: only this function needs flax

    if not serialization.is_serializable(Packed):
        serialization.register_serialization_state(
            Packed, _packed_to_state_dict, _packed_from_state_dict
        )
    for cls in _LOSS_SCALES:
        if not serialization.is_serializable(cls):
            serialization.register_serialization_state(
                cls, _fields_to_state_dict, _fields_from_state_dict
            )


def _packed_to_state_dict(value: Packed) -> dict[str, Any]:
    from flax import serialization

    return {str(i): serialization.to_state_dict(b) for i, b in enumerate(value.buffers)}


def _packed_from_state_dict(target: Packed, state: Any) -> Packed:
    from flax import serialization

    layout = target.layout
    expected = [str(i) for i in range(len(layout.dtypes))]
    keys = sorted(state) if isinstance(state, dict) else None
    if keys != expected:
        raise ValueError(
            f"The saved value at {serialization.current_path() or '<root>'} is not "
            f"a packed value of {layout.describe()}: expected the keys {expected}. "
            f"Received: {keys if keys is not None else type(state).__name__}"
        )
    buffers = []
    for i, (dtype, size) in enumerate(zip(layout.dtypes, layout.sizes)):
        buffer = serialization.from_state_dict(target.buffers[i], state[str(i)], str(i))
        if np.shape(buffer) != (size,):
            raise ValueError(
                f"The saved buffer {i} at {serialization.current_path() or '<root>'} "
                f"has shape {np.shape(buffer)}; the target packs {layout.describe()} "
                f"(buffer {i}: {dtype}[{size}])."
            )
        buffers.append(buffer)
    return Packed(tuple(buffers), layout)


def _fields_to_state_dict(value: Any) -> dict[str, Any]:
    from flax import serialization

    return {f: serialization.to_state_dict(getattr(value, f)) for f in value._fields}


def _fields_from_state_dict(target: Any, state: Any) -> Any:
    from flax import serialization

    fields = list(target._fields)
    keys = sorted(state) if isinstance(state, dict) else None
    if keys != sorted(fields):
        raise ValueError(
            f"The saved value at {serialization.current_path() or '<root>'} is not "
            f"a {type(target).__name__}: expected the keys {fields}. "
            f"Received: {keys if keys is not None else type(state).__name__}"
        )
    children = [
        serialization.from_state_dict(getattr(target, f), state[f], f) for f in fields
    ]
    return type(target)._unflatten(None, children)
