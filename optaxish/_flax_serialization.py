"""Saving optaxish states with ``flax.serialization`` (msgpack, ``to_bytes``)."""

from __future__ import annotations

from typing import Any

import jax
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
    classes (:class:`~optaxish.packing.Packed` and the loss-scale values)
    and typed PRNG keys.

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

    Typed PRNG keys (``jax.random.key``, in the state of
    :func:`~optaxish.noisy_sgd` and :func:`~optaxish.add_noise`) are no
    optaxish class, but msgpack refuses them as well (flax converts every
    leaf to a NumPy array). After this call a typed key is saved as its
    ``jax.random.key_data`` (an unsigned integer array) and restored as a key
    of the target's implementation, so a state saved with its keys unwrapped
    by :func:`optaxish.tree.unwrap_random_key_data` restores too. This
    applies to every typed key flax serializes in this process, not only to
    optaxish states.

    orbax (``orbax.checkpoint``) needs none of this: it saves the leaves of
    any pytree, typed keys included (restoring them into an abstract target
    needs orbax 0.11.27 or later). Restore into a target,
    ``jax.eval_shape(tx.init, params)``: without one, orbax rebuilds plain
    dicts and lists instead of the NamedTuples, loss-scale values and
    ``Packed`` values (``orbax.checkpoint.tree.deserialize_tree(raw,
    target)`` converts such a result). A ``Packed`` value's buffers are
    named after its layout (:attr:`~optaxish.packing.Layout.fingerprint`: which
    leaf sits where), in its key paths for orbax and in its state dict for
    flax, so a checkpoint of other parameters (renamed, reordered or reshaped
    ones whose buffers have the same lengths) is refused instead of restoring
    moments into the wrong parameters.

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
    key_type = type(jax.random.key(0))
    if not serialization.is_serializable(key_type):
        serialization.register_serialization_state(
            key_type, _key_to_state_dict, _key_from_state_dict
        )


def _is_typed_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _key_to_state_dict(value: jax.Array) -> jax.Array:
    return jax.random.key_data(value)


def _key_from_state_dict(target: jax.Array, state: Any) -> jax.Array:
    from flax import serialization

    impl = jax.random.key_impl(target)
    expected = jax.eval_shape(jax.random.key_data, target)
    data = jax.random.key_data(state) if _is_typed_key(state) else state
    shape, dtype = np.shape(data), getattr(data, "dtype", None)
    if shape != expected.shape or dtype != expected.dtype:
        raise ValueError(
            f"The saved value at {serialization.current_path() or '<root>'} is "
            f"not the key data of a {impl} PRNG key of shape {target.shape}: "
            f"expected {expected.dtype}{list(expected.shape)}. Received: "
            f"{dtype if dtype is not None else type(state).__name__}{list(shape)}"
        )
    return jax.random.wrap_key_data(data, impl=impl)


def _packed_to_state_dict(value: Packed) -> dict[str, Any]:
    from flax import serialization

    out = {str(i): serialization.to_state_dict(b) for i, b in enumerate(value.buffers)}
    out["layout"] = value.layout.fingerprint  # which leaf sits where
    return out


def _packed_from_state_dict(target: Packed, state: Any) -> Packed:
    from flax import serialization

    layout = target.layout
    expected = sorted([str(i) for i in range(len(layout.dtypes))] + ["layout"])
    keys = sorted(state) if isinstance(state, dict) else None
    if keys != expected:
        raise ValueError(
            f"The saved value at {serialization.current_path() or '<root>'} is not "
            f"a packed value of {layout.describe()}: expected the keys {expected}. "
            f"Received: {keys if keys is not None else type(state).__name__}"
        )
    saved = state["layout"]
    saved = saved.decode() if isinstance(saved, bytes) else str(saved)
    if saved != layout.fingerprint:
        raise ValueError(
            f"The saved value at {serialization.current_path() or '<root>'} was "
            f"packed from other parameters (layout {saved}) than the target "
            f"({layout.describe()}, layout {layout.fingerprint}): restore it into "
            "a state initialized on the parameters it was saved with."
        )
    buffers = []
    for i, (dtype, size) in enumerate(zip(layout.dtypes, layout.sizes)):
        buffer = serialization.from_state_dict(target.buffers[i], state[str(i)], str(i))
        if np.shape(buffer) != layout.buffer_shape(i):
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
