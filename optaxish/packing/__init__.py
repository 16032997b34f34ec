"""Packed execution: one buffer per dtype (and sharding) instead of one per leaf.

An optimizer step over a tree of many small arrays runs a few kernels per
leaf; on CPU each costs microseconds, and compile time grows with the kernel
count. :func:`packed` runs an elementwise transformation (Adam, SGD, ...) on
the parameters packed into one flat buffer per dtype; with parameters held
packed too (:func:`pack`, then ``params.unpack()`` inside the loss), a whole
training step is a handful of kernels whatever the number of leaves.

Example, the fast path::

    params = pack(params_tree)              # once
    tx = packed(optaxish.adam(1e-3))
    state = tx.init(params)

    @jax.jit
    def step(params, state, batch):
        grads = jax.grad(lambda p: loss(p.unpack(), batch))(params)  # Packed
        updates, state = tx.update(grads, state, params)
        return optaxish.apply_updates(params, updates), state

Sharded parameters pack by dtype and sharding: a leaf sharded over several
devices keeps a buffer of its own, in its shape and sharding, and leaves
replicated over the same devices share a buffer replicated like them (see
:meth:`Layout.of`; build layouts from concrete arrays, outside ``jit``).

A packed state is a pytree like any other (``jit``, ``vmap``, orbax); for
``flax.serialization`` (msgpack, ``to_bytes``) call
:func:`optaxish.register_flax_serialization` once.
"""

from optaxish.packing._layout import Layout as Layout
from optaxish.packing._layout import Packed as Packed
from optaxish.packing._layout import pack as pack
from optaxish.packing._layout import unpack as unpack
from optaxish.packing._packed import PackedState as PackedState
from optaxish.packing._packed import is_packable as is_packable
from optaxish.packing._packed import packed as packed
