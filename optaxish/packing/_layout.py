"""Packed parameter trees: every leaf of one dtype in one flat buffer.

XLA on CPU pays a few microseconds per kernel, and an optimizer step over a
tree runs a few kernels per leaf; compile time grows with the kernel count
too. Packing puts every leaf of one dtype into one contiguous buffer, so an
elementwise step is a handful of kernels whatever the number of leaves.

Leaves are grouped by dtype and by sharding, where the sharding is known
(see :meth:`Layout.of`): leaves replicated over the same devices (or on one
device) share a flat buffer placed like them, and a leaf sharded over
several devices gets a buffer of its own, kept in the leaf's shape so that
it keeps its sharding (raveling it, or concatenating it with others, would
gather it).

:class:`Packed` is a pytree whose children are those buffers and whose static
data is the :class:`Layout` (tree structure, shapes, dtypes, offsets), so a
transformation initialized on a ``Packed`` keeps its per-parameter state as
``Packed`` values too, which unpack to the parameter tree's structure.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each leaf of a tree lives in the packed buffers (static, hashable).

    Attributes:
      treedef: the tree structure (``None`` leaves are part of it).
      shapes: each leaf's shape, in flattening order.
      groups: each leaf's buffer index.
      offsets: each leaf's first element in its buffer.
      dtypes: each buffer's dtype name, in buffer order (a dtype appears more
        than once when its leaves sit on different devices).
      sizes: each buffer's length (number of elements).
      sharded: the indices of the buffers that each hold one leaf sharded
        over several devices, in the leaf's own shape (its offset is 0);
        every other buffer is flat (1-D). Empty for an unsharded tree.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    groups: tuple[int, ...]
    offsets: tuple[int, ...]
    dtypes: tuple[str, ...]
    sizes: tuple[int, ...]
    sharded: tuple[int, ...] = ()

    @classmethod
    def of(cls, tree: Any) -> Layout:
        """The layout of ``tree`` (only shapes, dtypes and shardings are read).

        Leaves are grouped by dtype and by where they live. A leaf's place is
        known for a concrete ``jax.Array`` (``x.sharding``) and, while
        tracing, for a tracer whose type carries a sharding (mesh axes of
        type ``Explicit``, ``jax.typeof(x).sharding``). A leaf sharded over
        several devices gets a buffer of its own (see ``sharded``); leaves
        replicated over the same devices share one. A leaf whose place is not
        known (a NumPy array, a tracer under mesh axes of type ``Auto``, the
        default) packs as on one device: under ``jax.jit`` such a layout
        concatenates sharded leaves, and XLA then decides where the buffer
        lives. So build the layout (``pack``, ``packed(...).init``) outside
        ``jit`` when the parameters are sharded.

        Examples:
          >>> import jax.numpy as jnp
          >>> from optaxish.packing import Layout
          >>> layout = Layout.of({"b": jnp.zeros(3), "w": jnp.zeros((2, 2))})
          >>> layout.dtypes, layout.sizes, layout.offsets
          (('float32',), (7,), (0, 3))
        """
        leaves, treedef = jax.tree.flatten(tree)
        keys: list[Any] = []
        dtypes: list[str] = []
        sizes: list[int] = []
        sharded: list[int] = []
        shapes, groups, offsets = [], [], []
        for leaf in leaves:
            dtype = jnp.dtype(jnp.result_type(leaf)).name
            place = _place(leaf)
            key = (dtype, place)
            if place is _SHARDED or key not in keys:
                keys.append(key)
                dtypes.append(dtype)
                sizes.append(0)
                if place is _SHARDED:
                    sharded.append(len(keys) - 1)
            g = len(keys) - 1 if place is _SHARDED else keys.index(key)
            shape = tuple(int(d) for d in np.shape(leaf))
            shapes.append(shape)
            groups.append(g)
            offsets.append(sizes[g])
            sizes[g] += int(np.prod(shape, dtype=np.int64))
        return cls(
            treedef,
            tuple(shapes),
            tuple(groups),
            tuple(offsets),
            tuple(dtypes),
            tuple(sizes),
            tuple(sharded),
        )

    @property
    def num_leaves(self) -> int:
        """The number of (non-``None``) leaves."""
        return len(self.shapes)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short digest of which leaf sits where (key paths, shapes, dtypes,
        buffer positions), the same in every process.

        It names the buffers in key paths (``jax.tree_util`` keys, orbax
        checkpoints), so a checkpoint of another layout (renamed, reordered
        or reshaped parameters whose buffers happen to have the same lengths)
        is not restored into this one by mistake. A box's trailing ``value``
        attribute (flax ``nnx``) is left out of the paths.
        """
        paths = _key_paths(self.treedef)
        names = (
            [jax.tree_util.keystr(_without_box(p)) for p in paths]
            if paths is not None
            else []
        )
        text = repr((names, self.shapes, self.groups, self.offsets, self.dtypes))
        return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()

    @functools.cached_property
    def buffer_names(self) -> tuple[str, ...]:
        """Each buffer's key in key paths: ``"<index>_<dtype>_<fingerprint>"``."""
        return tuple(f"{g}_{d}_{self.fingerprint}" for g, d in enumerate(self.dtypes))

    def buffer_shape(self, g: int) -> tuple[int, ...]:
        """Buffer ``g``'s shape: ``(sizes[g],)``, or its leaf's shape when
        the buffer holds one sharded leaf (see ``sharded``)."""
        if g in self.sharded:
            return self.shapes[self.groups.index(g)]
        return (self.sizes[g],)

    def describe(self) -> str:
        """A one-line summary, for error messages."""
        groups = ", ".join(
            f"{d}[{n}{', sharded' if g in self.sharded else ''}]"
            for g, (d, n) in enumerate(zip(self.dtypes, self.sizes))
        )
        return f"{self.num_leaves} leaves in {len(self.dtypes)} buffer(s): {groups}"


#: The place of a leaf sharded over several devices (a buffer of its own).
_SHARDED = "sharded"


def _place(leaf: Any) -> Any:
    """Where ``leaf`` lives, as a hashable grouping key: ``None`` when on one
    device or not known, ``_SHARDED`` when sharded over several devices, else
    the set of devices it is replicated over (and their memory kind)."""
    if isinstance(leaf, jax.core.Tracer):
        try:
            spec = getattr(jax.typeof(leaf).sharding, "spec", None)
        except Exception:  # no sharding in the type (an old or custom tracer)
            return None
        return (
            _SHARDED if spec is not None and any(a is not None for a in spec) else None
        )
    sharding = getattr(leaf, "sharding", None) if isinstance(leaf, jax.Array) else None
    if sharding is None or len(sharding.device_set) <= 1:
        return None
    if not sharding.is_fully_replicated:
        return _SHARDED
    ids = frozenset(d.id for d in sharding.device_set)
    return ids, sharding.memory_kind


def _replicated_like(sharding: Any) -> Any:
    """A sharding replicating a flat buffer over ``sharding``'s devices."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.sharding.NamedSharding(
            sharding.mesh,
            jax.sharding.PartitionSpec(),
            memory_kind=sharding.memory_kind,
        )
    devices = np.asarray(sorted(sharding.device_set, key=lambda d: d.id))
    return jax.sharding.NamedSharding(
        jax.sharding.Mesh(devices, ("d",)),
        jax.sharding.PartitionSpec(),
        memory_kind=sharding.memory_kind,
    )


def _replicated(like: Any) -> bool:
    """Whether ``like`` is an array replicated over several devices."""
    place = _place(like)
    return place is not None and place is not _SHARDED


def _on_devices_of(flat: Any, like: Any) -> Any:
    """``flat`` (host data) on the devices ``like`` is replicated over, when
    ``like`` is an array replicated over several devices; else ``flat``."""
    if not _replicated(like):
        return flat
    return jax.device_put(flat, _replicated_like(like.sharding))


def _unsharded(leaf: Any) -> Any:
    """``leaf``, resharded to replicated when its type says it is sharded
    (a tracer under explicit mesh axes: raveling it would be an error)."""
    if not isinstance(leaf, jax.core.Tracer) or _place(leaf) is not _SHARDED:
        return leaf
    return jax.sharding.reshard(leaf, jax.sharding.PartitionSpec())


def to_device(host: Any, like: Any) -> Any:
    """``host`` as a device array, replicated like ``like`` when that is
    replicated over several devices (else on the default device)."""
    if not _replicated(like):
        return jax.device_put(host)
    return jax.device_put(host, _replicated_like(like.sharding))


@jax.tree_util.register_pytree_with_keys_class
class Packed:
    """A tree packed into one flat buffer per dtype (a pytree).

    Build one with :func:`pack`; read the tree back with :meth:`unpack`.
    ``jax.grad`` of a function of ``packed.unpack()`` gives a ``Packed``
    gradient, and ``optaxish.apply_updates`` adds two ``Packed`` values
    buffer by buffer, so a training step on packed parameters never touches
    individual leaves.

    Attributes:
      buffers: the flat buffers, one per dtype, in ``layout.dtypes`` order.
      layout: the static :class:`Layout`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.packing import pack
      >>> p = pack({"b": jnp.ones(2), "w": jnp.zeros((1, 2))})
      >>> p.buffers
      (Array([1., 1., 0., 0.], dtype=float32),)
      >>> p.unpack()["w"].shape
      (1, 2)
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple[Any, ...], layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self) -> tuple[tuple[Any, ...], Layout]:
        return self.buffers, self.layout

    def tree_flatten_with_keys(self) -> tuple[tuple[Any, ...], Layout]:
        # Keys that name the layout (see `Layout.fingerprint`): a checkpoint
        # of another layout has other paths, and is refused.
        keys = map(jax.tree_util.DictKey, self.layout.buffer_names)
        return tuple(zip(keys, self.buffers)), self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, buffers: Any) -> Packed:
        return cls(tuple(buffers), layout)

    def unpack(self) -> Any:
        """The tree, each leaf a reshaped slice of its buffer.

        Traced (inside ``jit``/``grad``), the leaves are slices that XLA fuses
        into their consumers. Called eagerly, the buffers are read once on
        the host and each leaf is a new device array (eager slicing would
        compile one small program per leaf shape: seconds for 1,000 leaves),
        replicated like its buffer when that is replicated over several
        devices; a sharded leaf's buffer (see ``Layout.sharded``) is copied
        on its devices, keeping its sharding.
        """
        return jax.tree.unflatten(self.layout.treedef, self._leaves())

    def _leaves(self) -> list:
        """The leaves of :meth:`unpack`, in flattening order."""
        layout = self.layout
        if _concrete(self.buffers):
            buffers = self.buffers
            hosts = [
                b if g in layout.sharded else np.array(b, copy=True)
                for g, b in enumerate(buffers)
            ]
            return [
                jnp.array(x, copy=True)
                if g in layout.sharded
                else to_device(x, buffers[g])
                for x, g in zip(_slices(layout, hosts), layout.groups)
            ]
        if all(jnp.issubdtype(d, jnp.inexact) for d in layout.dtypes):
            return _split(layout, tuple(self.buffers))
        return _slices(layout, self.buffers)

    def __repr__(self) -> str:
        return f"Packed({self.layout.describe()})"


def _key_paths(treedef: Any) -> list[tuple] | None:
    """The key path of each leaf of ``treedef`` (None if it cannot be built)."""
    try:
        tree = jax.tree.unflatten(treedef, [object()] * treedef.num_leaves)
        return [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    except Exception:  # a node that validates its children: no paths
        return None


def _without_box(path: tuple) -> tuple:
    """``path`` without a trailing ``.value`` attribute step (an nnx box)."""
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey):
        if path[-1].name == "value":
            return path[:-1]
    return path


def _unboxed(a: tuple, b: tuple) -> bool:
    """Whether two key paths differ only by attribute keys at the end of one."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return long[: len(short)] == short and all(
        isinstance(k, jax.tree_util.GetAttrKey) for k in long[len(short) :]
    )


def _same_leaves(own: Layout, layout: Layout) -> bool:
    """Whether ``own`` has ``layout``'s leaves, up to boxes around leaves.

    The same shapes and dtypes in the same order, at the same key paths,
    where one side may hold each leaf inside a node of its own that only
    adds attribute keys to its path: flax nnx's ``Variable`` (``['w'].value``),
    which ``nnx.Optimizer`` gives to ``init`` but strips from the gradients
    and parameters it passes to ``update``.
    """
    if own == layout:
        return True
    # The grouping may differ (a tree sharded otherwise than the one the
    # layout was made from, or traced): each leaf's shape and dtype may not.
    if own.shapes != layout.shapes or _leaf_dtypes(own) != _leaf_dtypes(layout):
        return False
    pa, pb = _key_paths(own.treedef), _key_paths(layout.treedef)
    if pa is None or pb is None:
        return False
    return all(_unboxed(a, b) for a, b in zip(pa, pb))


def _leaf_dtypes(layout: Layout) -> tuple[str, ...]:
    """Each leaf's dtype name, in flattening order."""
    return tuple(layout.dtypes[g] for g in layout.groups)


def _flat_groups(tree: Any, layout: Layout | None) -> tuple[Layout, list]:
    """``tree``'s layout (checked against ``layout`` when given) and its
    leaves concatenated into one flat array per buffer of the layout (the
    leaf itself, copied when concrete, for a buffer in ``layout.sharded``).

    Eagerly, a flat buffer of leaves replicated over several devices is
    replicated over the first one's devices."""
    own = Layout.of(tree)
    if layout is None:
        layout = own
    elif not _same_leaves(own, layout):
        raise ValueError(
            "The tree does not match the packed layout: received a tree of "
            f"{own.describe()} with structure {own.treedef}, expected "
            f"{layout.describe()} with structure {layout.treedef}."
        )
    leaves = jax.tree.leaves(tree)
    # Eagerly, concatenate on the host (no per-shape compiles); traced, in XLA.
    lib = np if _concrete(leaves) else jnp
    flats = []
    for g in range(len(layout.dtypes)):
        members = [leaf for leaf, lg in zip(leaves, layout.groups) if lg == g]
        if g in layout.sharded:  # one leaf, in its own shape and sharding
            leaf = members[0]
            if lib is np:  # a new array (the caller may donate the buffer)
                leaf = jnp.array(leaf, copy=True)
            flats.append(leaf)
            continue
        if lib is jnp:  # a traced leaf typed as sharded (explicit mesh axes)
            members = [_unsharded(leaf) for leaf in members]  # in a flat buffer
        parts = [lib.ravel(lib.asarray(leaf)) for leaf in members]
        flat = lib.concatenate(parts) if len(parts) > 1 else parts[0]
        flats.append(flat if lib is jnp else _on_devices_of(flat, members[0]))
    return layout, flats


def pack(tree: Any, layout: Layout | None = None) -> Packed:
    """Packs ``tree`` into one flat buffer per dtype.

    Args:
      tree: a pytree of arrays (``None`` leaves are kept in the structure).
      layout: the layout to pack into; by default ``Layout.of(tree)``. Given,
        the tree must have its leaves: the same shapes and dtypes in the same
        order, at the same key paths. A leaf may sit in a node of its own
        that only adds attribute keys to its path on one side (flax nnx's
        ``Variable``: ``['w'].value``, where the other side has ``['w']``);
        the result has ``layout``.

    Returns:
      A :class:`Packed`.

    Raises:
      ValueError: when ``tree`` does not match ``layout``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.packing import pack
      >>> pack([jnp.ones(2), jnp.zeros(1, jnp.int32)]).layout.dtypes
      ('float32', 'int32')
    """
    if isinstance(tree, Packed):
        return tree
    layout, flats = _flat_groups(tree, layout)
    buffers = [jnp.asarray(flat, dtype) for flat, dtype in zip(flats, layout.dtypes)]
    return Packed(tuple(buffers), layout)


def pack_into(target: Packed, tree: Any) -> Packed:
    """``pack(tree, target.layout)``, written over ``target``'s buffers.

    Under ``jax.jit`` with ``target`` donated (and the result returned), XLA
    writes the leaves straight into the donated buffers. ``pack`` writes them
    into a fresh one instead, which on CPU costs a page fault per 4 KiB each
    time: 4.4 ms against 1.9 ms for the 400 leaves (4M floats) of the
    ``mixed_400`` benchmark shape.

    Raises:
      ValueError: when ``tree`` does not match ``target``'s layout.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.packing import pack
      >>> from optaxish.packing._layout import pack_into
      >>> scratch = pack([jnp.zeros(2), jnp.zeros(1)])
      >>> pack_into(scratch, [jnp.ones(2), jnp.full(1, 2.0)]).buffers[0]
      Array([1., 1., 2.], dtype=float32)
    """
    layout, flats = _flat_groups(tree, target.layout)
    buffers = [
        jax.lax.dynamic_update_slice(
            buffer, jnp.asarray(flat, buffer.dtype), (0,) * np.ndim(buffer)
        )
        for buffer, flat in zip(target.buffers, flats)
    ]
    return Packed(tuple(buffers), layout)


def _slices(layout: Layout, buffers: Any) -> list:
    """Each leaf of ``layout`` as a reshaped slice of its buffer (a sharded
    leaf's buffer as it is)."""
    leaves = []
    for shape, g, off in zip(layout.shapes, layout.groups, layout.offsets):
        buffer = buffers[g]
        if g in layout.sharded:
            same = tuple(np.shape(buffer)) == shape
            leaves.append(buffer if same else buffer.reshape(shape))
            continue
        size = int(np.prod(shape, dtype=np.int64))
        leaves.append(buffer[off : off + size].reshape(shape))
    return leaves


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _split(layout: Layout, buffers: tuple) -> list:
    """``_slices`` whose gradient is one concatenation per buffer.

    JAX's own transpose of a slice is a pad to the full buffer, summed over
    the leaves: quadratic work for XLA to simplify (compiles took tens of
    seconds at a few hundred leaves).
    """
    return _slices(layout, buffers)


def _split_fwd(layout: Layout, buffers: tuple) -> tuple[list, None]:
    return _slices(layout, buffers), None


def _split_bwd(layout: Layout, _: None, cotangents: list) -> tuple[tuple, ...]:
    out = []
    for g, dtype in enumerate(layout.dtypes):
        mine = [ct for ct, lg in zip(cotangents, layout.groups) if lg == g]
        if g in layout.sharded:  # the buffer is the leaf, in its own shape
            out.append(mine[0].astype(dtype))
            continue
        parts = [jnp.ravel(ct).astype(dtype) for ct in mine]
        out.append(jnp.concatenate(parts) if len(parts) > 1 else parts[0])
    return (tuple(out),)


_split.defvjp(_split_fwd, _split_bwd)


def _concrete(arrays: Any) -> bool:
    """No tracer among ``arrays`` (so they can be read on the host)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def unpack_as(value: Packed, treedef: Any) -> Any:
    """``value.unpack()`` with the structure ``treedef`` (same leaves, up to boxes)."""
    return jax.tree.unflatten(treedef, value._leaves())


def unpack(value: Any) -> Any:
    """Replaces every :class:`Packed` inside ``value`` by its tree.

    Works on any pytree, e.g. a packed optimizer state, whose per-parameter
    fields then read like the unpacked transformation's.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.packing import pack, unpack
      >>> state = {"count": jnp.zeros([]), "mu": pack({"w": jnp.ones(2)})}
      >>> unpack(state)["mu"]
      {'w': Array([1., 1.], dtype=float32)}
    """
    return jax.tree.map(
        lambda x: x.unpack() if isinstance(x, Packed) else x,
        value,
        is_leaf=lambda x: isinstance(x, Packed),
    )
