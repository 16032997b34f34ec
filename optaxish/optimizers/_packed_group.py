"""Variables an optimizer keeps packed: one buffer per dtype, state packed too.

When a step updates the same list of variables again and again (the usual
training loop) and the optimizer's core transformation is elementwise, the
optimizer moves those variables' values into one :class:`~optaxish.packing.
Packed` buffer per dtype and their slots into packed state, so each step is
a handful of kernels whatever the number of variables. The variables then
read their value from the group (a cached slice; ``assign`` writes into the
buffer). Anything that needs per-variable state (``get_slot``,
``get_weights``, a step over another list of variables, ...) dissolves the
group first: the values and the state go back to one array per variable,
with the same numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import Variable
from optaxish.optimizers._stacked import Stack, regroup, split
from optaxish.packing import Layout, Packed, pack


def _is_packed(x: Any) -> bool:
    return isinstance(x, Packed)


def _write(buffer: jax.Array, flat: jax.Array, offset: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice(buffer, flat, (offset,))


_write_donated = jax.jit(_write, donate_argnums=0)  # in place


class PackedGroup:
    """A list of variables whose values and slots live in packed buffers.

    Attributes:
      indices: the variables' positions in the optimizer's registry.
      variables: the variables, in step order.
      values: their values, packed (a :class:`Packed`).
      state: the core state of the whole group (per-parameter fields packed).
    """

    def __init__(
        self, indices: tuple[int, ...], variables: list[Variable], states: list, core
    ):
        self.indices = tuple(indices)
        self.variables = list(variables)
        self.owner: Any = None  # a weak reference to the optimizer, set by it
        self.values = pack([v.value for v in variables])
        layout = self.values.layout
        self._meta = {  # id(variable) -> (buffer, offset, shape, dtype)
            id(v): (g, off, shape, np.dtype(jnp.dtype(layout.dtypes[g])))
            for v, g, off, shape in zip(
                variables, layout.groups, layout.offsets, layout.shapes
            )
        }
        template = core.init(self.values)
        fresh = all(st is None for st in states)  # new variables: init packed
        if fresh:
            self.state = template
        else:
            self.state = regroup(
                template,
                states,
                _is_packed,
                lambda node, items: pack(items, node.layout),
            )
        self._cache: dict[int, jax.Array] = {}
        self._host: list[np.ndarray] | None = None
        self._grads: Packed | None = None  # see `gradient_buffers`
        for v in variables:
            v.__dict__["_store"] = self
            v.__dict__.pop("_array", None)

    @property
    def layout(self) -> Layout:
        """The values' layout."""
        return self.values.layout

    # -- the store protocol of ``Variable`` -------------------------------------

    def read(self, var: Variable) -> jax.Array:
        """The variable's current value (a slice, cached until the next step).

        Always a concrete array, even when read while JAX traces a function
        (a user's ``jit``, ``minimize``'s trace of another optimizer's loss):
        a tracer kept in the cache would outlive its trace.
        """
        hit = self._cache.get(id(var))
        if hit is None:
            # One host copy of the buffers per step serves every read: eager
            # device slicing would compile a program per variable shape.
            if self._host is None:
                self._host = [np.array(b, copy=True) for b in self.values.buffers]
            g, off, shape, _ = self._meta[id(var)]
            size = int(np.prod(shape, dtype=np.int64))
            host = self._host[g][off : off + size].reshape(shape)
            hit = jax.device_put(host)
            if isinstance(hit, jax.core.Tracer):  # read while tracing
                with jax.ensure_compile_time_eval():
                    hit = jax.device_put(host)
            self._cache[id(var)] = hit
        return hit

    def write(self, var: Variable, value: jax.Array) -> None:
        """Writes ``value`` into the variable's place in the buffer (in place)."""
        g, off, _, _ = self._meta[id(var)]
        buffers = list(self.values.buffers)
        flat = jnp.ravel(value).astype(buffers[g].dtype)
        buffers[g] = _write_donated(buffers[g], flat, jnp.asarray(off, jnp.int32))
        self.set_values(Packed(tuple(buffers), self.layout))

    def shape_of(self, var: Variable) -> tuple[int, ...]:
        """The variable's shape, without reading the buffer."""
        return self._meta[id(var)][2]

    def dtype_of(self, var: Variable) -> np.dtype:
        """The variable's dtype, without reading the buffer."""
        return self._meta[id(var)][3]

    # -- steps ------------------------------------------------------------------

    def gradient_buffers(self) -> Packed:
        """Buffers to pack ``apply_gradients``' gradients into (donated each step).

        Writing the gradients over a donated buffer instead of a fresh one
        saves a page fault per 4 KiB on CPU (see ``packing.pack_into``); it
        costs one more buffer the size of the values, made at the first step.
        """
        if self._grads is None:
            self._grads = jax.tree.map(jnp.zeros_like, self.values)
        return self._grads

    def set_gradient_buffers(self, grads: Packed) -> None:
        """Takes the buffers back from a step (the old ones were donated)."""
        self._grads = grads

    def set_values(self, values: Packed) -> None:
        """Takes a step's new values (the old buffers were donated)."""
        self.values = values
        self._cache.clear()
        self._host = None

    def dissolve(self) -> list:
        """Gives each variable its own array back; returns per-variable states.

        Computed eagerly even under a trace (``get_slot`` in a user's
        ``jit``): what the variables and the optimizer keep are arrays.
        """
        with jax.ensure_compile_time_eval():
            leaves = self.values.unpack()
            stacked = jax.tree.map(
                lambda x: Stack(x.unpack()) if isinstance(x, Packed) else x,
                self.state,
                is_leaf=_is_packed,
            )
            # Shared leaves (step counts) are copied: each state is donated alone.
            states = split(
                stacked, len(self.variables), shared=lambda x: jnp.array(x, copy=True)
            )
        self._meta = {}
        for v, value in zip(self.variables, leaves):
            v.__dict__.pop("_store", None)
            v.__dict__["_array"] = value  # a new array (see Packed.unpack)
        self._cache.clear()
        return states


def add_update(value: Any, update: Any) -> Any:
    """``value + update`` in ``value``'s dtype (an array or a ``Packed``)."""
    return jax.tree.map(lambda v, u: (v + u).astype(v.dtype), value, update)
