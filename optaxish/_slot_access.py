"""Reading and writing the pieces :mod:`optaxish._slot_index` names.

Through packed values (reads slice their buffers, writes go back into the
same buffers with the same layout) and boxes (reads give the array inside,
writes keep the box).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import GetAttrKey

from optaxish._slot_index import (
    UNPACK,
    _BoxKey,
    _children,
    _index,
    _is_box,
    _is_view_leaf,
    _rebox,
    _unbox,
)
from optaxish.packing._layout import Layout, Packed, to_device


def _child(node: Any, entry: Any) -> Any:
    key = GetAttrKey(entry.name) if isinstance(entry, _BoxKey) else entry
    return dict(_children(node))[key]


def _concrete(arrays: Any) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _leaf_at(layout: Layout, i: int) -> tuple[int, int, int, tuple[int, ...]]:
    shape = layout.shapes[i]
    size = int(np.prod(shape, dtype=np.int64))
    return layout.groups[i], layout.offsets[i], size, shape


def _read(value: Packed, indices: list[int]) -> list[Any]:
    """Leaves ``indices`` of ``value`` (slices of its buffers)."""
    layout, buffers = value.layout, [_unbox(b) for b in value.buffers]
    if layout.sharded:  # a sharded leaf is its buffer: read it on its devices
        return [_read_one(layout, buffers, i) for i in indices]
    at = [_leaf_at(layout, i) for i in indices]
    if len(at) > 1 and _concrete(buffers):  # one host read, not a compile per shape
        hosts = {g: np.asarray(buffers[g]) for g in {a[0] for a in at}}
        return [jnp.array(hosts[g][o : o + n].reshape(s)) for g, o, n, s in at]
    if _concrete(buffers):  # one leaf: slice on the device (compiled per size)
        return [
            jax.lax.dynamic_slice_in_dim(buffers[g], o, n).reshape(s)
            for g, o, n, s in at
        ]
    return [buffers[g][o : o + n].reshape(s) for g, o, n, s in at]


def _read_one(layout: Layout, buffers: list, i: int) -> Any:
    """Leaf ``i``: its own buffer when sharded, else a slice of its buffer."""
    g, o, n, s = _leaf_at(layout, i)
    if g in layout.sharded:
        return (
            jnp.array(buffers[g], copy=True) if _concrete([buffers[g]]) else buffers[g]
        )
    if _concrete(buffers):
        return jax.lax.dynamic_slice_in_dim(buffers[g], o, n).reshape(s)
    return buffers[g][o : o + n].reshape(s)


def _write(value: Packed, indices: list[int], new: list[Any]) -> Packed:
    """``value`` with leaves ``indices`` replaced by ``new`` (same layout)."""
    layout, buffers = value.layout, [_unbox(b) for b in value.buffers]
    out = list(buffers)
    for i, x in zip(indices, new):  # a sharded leaf's buffer is the leaf
        g = layout.groups[i]
        if g in layout.sharded:
            x = jnp.asarray(x).reshape(layout.shapes[i]).astype(out[g].dtype)
            out[g] = jax.device_put(x, out[g].sharding) if _concrete([out[g]]) else x
    rest = [
        (i, x) for i, x in zip(indices, new) if layout.groups[i] not in layout.sharded
    ]
    indices, new = [i for i, _ in rest], [x for _, x in rest]
    at = [_leaf_at(layout, i) for i in indices]
    if len(at) > 1 and _concrete([*buffers, *new]):
        hosts = {g: np.array(buffers[g], copy=True) for g in {a[0] for a in at}}
        for (g, o, n, _), x in zip(at, new):
            hosts[g][o : o + n] = np.ravel(np.asarray(x, hosts[g].dtype))
        for g, host in hosts.items():
            out[g] = to_device(host, buffers[g])
    else:
        for (g, o, _, _), x in zip(at, new):
            flat = jnp.ravel(jnp.asarray(x)).astype(out[g].dtype)
            out[g] = jax.lax.dynamic_update_slice_in_dim(out[g], flat, o, axis=0)
    boxed = tuple(_rebox(b, x) for b, x in zip(value.buffers, out))
    return Packed(boxed, layout)


def _packed_indices(value: Packed, entries: tuple[Any, ...]) -> Any:
    """The subtree of leaf indices at ``entries`` inside ``value``'s tree."""
    tree = _index(value.layout)[0]
    for entry in entries:
        tree = _child(tree, entry)
    return jax.tree.map(_unbox, tree, is_leaf=_is_box)


def _view(node: Any, read: bool) -> Any:
    """``node`` with packed values unpacked and boxes opened; with
    ``read=False`` the arrays of packed values are shape/dtype structs."""

    def one(x):
        if isinstance(x, Packed) and _index(x.layout) is not None:
            return _packed_view(x, (), read)
        return _unbox(x)

    if not any(map(_is_view_leaf, jax.tree.leaves(node, is_leaf=_is_view_leaf))):
        return node  # as stored (the same object)
    return jax.tree.map(one, node, is_leaf=_is_view_leaf)


def _packed_view(value: Packed, entries: tuple[Any, ...], read: bool) -> Any:
    indices, treedef = jax.tree.flatten(_packed_indices(value, entries))
    if read:
        return treedef.unflatten(_read(value, indices))
    layout = value.layout
    return treedef.unflatten(
        jax.ShapeDtypeStruct(layout.shapes[i], layout.dtypes[layout.groups[i]])
        for i in indices
    )


def value_at(tree: Any, path: tuple[Any, ...], read: bool = True) -> Any:
    """The value at ``path``, viewed (see :func:`_view`)."""
    for n, entry in enumerate(path):
        if entry is UNPACK:
            return _packed_view(tree, path[n + 1 :], read)
        tree = _child(tree, entry)
    return _view(tree, read)


def _unview(old: Any, value: Any) -> Any:
    """``value`` (a viewed tree) stored as ``old`` is: packed, boxed."""
    flat, treedef = jax.tree.flatten(old, is_leaf=_is_view_leaf)
    if not any(_is_view_leaf(x) for x in flat):
        return value
    parts = treedef.flatten_up_to(value)
    new = []
    for x, part in zip(flat, parts):
        if isinstance(x, Packed) and _index(x.layout) is not None:
            new.append(_packed_replace(x, (), part))
        elif _is_box(x):
            new.append(_rebox(x, part))
        else:
            new.append(part)
    return treedef.unflatten(new)


def _packed_replace(value: Packed, entries: tuple[Any, ...], new: Any) -> Packed:
    indices, treedef = jax.tree.flatten(_packed_indices(value, entries))
    return _write(value, indices, treedef.flatten_up_to(new))


def replace_at(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``tree`` with the (viewed) value at ``path`` replaced by ``value``."""
    if not path:
        return _unview(tree, value)
    if path[0] is UNPACK:
        return _packed_replace(tree, path[1:], value)
    key = GetAttrKey(path[0].name) if isinstance(path[0], _BoxKey) else path[0]
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: x is not tree
    )
    children = [replace_at(c, path[1:], value) if p[0] == key else c for p, c in flat]
    return treedef.unflatten(children)
