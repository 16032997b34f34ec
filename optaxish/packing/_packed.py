"""``packed``: run an elementwise transformation on packed buffers."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from optaxish._base import GradientTransformationExtraArgs, with_extra_args_support
from optaxish._elementwise import is_elementwise, mark_elementwise
from optaxish._norm_hint import global_norm_known, known_global_norm
from optaxish.packing._layout import Layout, Packed, pack, unpack_as
from optaxish.tree._state import is_params_placeholder


class PackedState(NamedTuple):
    """State of :func:`packed`.

    Attributes:
      inner_state: the inner transformation's state, initialized on the packed
        parameters: its per-parameter fields are :class:`Packed` values (read
        them per parameter with :func:`~optaxish.packing.unpack`, or by
        parameter name with :mod:`optaxish.slots`).
    """

    inner_state: Any


def _layout_in(state: Any) -> Layout | None:
    """The layout of the first ``Packed`` value in ``state`` (None if none)."""
    for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, Packed)):
        if isinstance(leaf, Packed):
            return leaf.layout
    return None


def is_packable(tx: Any) -> bool:
    """Whether :func:`packed` runs ``tx`` on packed buffers.

    True for the elementwise transformations (those whose numbers do not
    depend on how elements are grouped into leaves: Adam, SGD, RMSprop,
    global-norm clipping, unmasked weight decay, ...) and for chains,
    ``inject_hyperparams``, ``apply_if_finite`` and ``loss_scaling`` of them.

    Examples:
      >>> import optaxish
      >>> from optaxish.packing import is_packable
      >>> is_packable(optaxish.adamw(1e-3)), is_packable(optaxish.lamb(1e-3))
      (True, False)
    """
    return is_elementwise(tx)


def packed(inner: Any, max_mean_size: int = 2**15) -> GradientTransformationExtraArgs:
    """Runs ``inner`` on the parameters packed into one buffer per dtype.

    ``init(params)`` packs the parameters and initializes ``inner`` on them,
    so ``inner``'s moments live in a few contiguous buffers (as
    :class:`Packed` values) instead of one array per leaf. ``update`` accepts
    gradients either as a tree shaped like the parameters (they are packed,
    and the updates unpacked, on each call) or as a :class:`Packed` (then the
    whole step works on the buffers and returns a ``Packed``; this is the
    fast path, see :func:`pack`). The numbers are ``inner``'s. Updates given
    as a tree come back in that tree's structure, so the parameters given to
    ``init`` may hold each leaf in a box of its own (flax ``nnx.Optimizer``
    initializes on ``Variable`` objects and updates with plain arrays).

    A transformation whose numbers depend on the leaves (per-leaf norms,
    trust ratios, masks, factored moments) is not packable (see
    :func:`is_packable`): ``packed`` then returns ``inner`` unchanged.

    Packing a tree on every step costs a copy of the gradients; with large
    leaves that costs more than the per-leaf kernels it saves (on CPU XLA's
    concatenation of large arrays is slow). So ``init`` on a *tree* whose
    mean leaf size exceeds ``max_mean_size`` elements keeps ``inner``'s
    state unpacked, and ``update`` then runs ``inner`` on the tree as is.
    Parameters given as a :class:`Packed` are always run packed.

    Sharded parameters: ``init`` groups the leaves by dtype and by sharding
    (see :meth:`Layout.of`). A leaf sharded over several devices keeps a
    buffer of its own in its shape and sharding, so its moments are sharded
    like it; leaves replicated over the same devices share a buffer
    replicated like them. ``init`` sees shardings on concrete arrays, so
    call it outside ``jax.jit``: traced with mesh axes of type ``Auto`` (the
    default), the parameters pack as if on one device (one buffer per
    dtype, which XLA then places, typically replicated on every device).

    Args:
      inner: the transformation to run on packed buffers.
      max_mean_size: the largest mean leaf size (in elements) of a tree that
        ``init`` packs.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`.

    Raises:
      ValueError: from ``update``, when the gradients do not match the layout
        the state was initialized with.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish.packing import pack, packed
      >>> params = {"b": jnp.zeros(2), "w": jnp.ones((2, 2))}
      >>> tx = packed(optaxish.adam(0.1))
      >>> state = tx.init(params)
      >>> state.inner_state[0].mu
      Packed(2 leaves in 1 buffer(s): float32[6])
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"]
      Array([[-0.1, -0.1],
             [-0.1, -0.1]], dtype=float32)
    """
    inner = with_extra_args_support(inner)
    if not is_elementwise(inner):
        return inner

    def init_fn(params):
        if is_params_placeholder(params):
            # `tree.map_params` (ours or optax's): the per-parameter fields of
            # a packed state hold buffers, which `f` then sees as they are.
            return PackedState(inner.init(params))
        if not isinstance(params, Packed):
            layout = Layout.of(params)
            if sum(layout.sizes) > max_mean_size * max(layout.num_leaves, 1):
                return PackedState(inner.init(params))
        return PackedState(inner.init(pack(params)))

    def update_fn(updates, state, params=None, **extra_args):
        layout = _layout_in(state.inner_state)
        as_tree = not isinstance(updates, Packed)
        if layout is None and as_tree:  # large leaves (or a stateless inner)
            updates, inner_state = inner.update(
                updates, state.inner_state, params, **extra_args
            )
            return updates, PackedState(inner_state)
        norm = known_global_norm(updates)  # packing keeps the norm
        flat = pack(updates, layout)
        flat_params = None if params is None else pack(params, flat.layout)
        with global_norm_known(flat, norm):
            flat, inner_state = inner.update(
                flat, state.inner_state, flat_params, **extra_args
            )
        if as_tree:  # in the gradients' structure (the params' may be boxed)
            return unpack_as(flat, jax.tree.structure(updates)), PackedState(
                inner_state
            )
        return flat, PackedState(inner_state)

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))
