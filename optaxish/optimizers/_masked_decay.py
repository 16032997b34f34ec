"""Weight decay for some of the stepped variables only (``exclude_from_weight_decay``).

The Keras 3 optimizers exempt variables from the decay by name or by
object. Stepped one array per variable (or as a ``Stack``), each variable
is decided on its own; a packed group mixing decayed and exempt variables
runs the decay once over its buffers, with the exempt elements of the
params masked to ``-0.0`` so that their updates stay bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._base import GradientTransformation, GradientTransformationExtraArgs
from optaxish._elementwise import is_elementwise, mark_elementwise
from optaxish.optimizers._stacked import Stack
from optaxish.packing import Packed


def _unchanged(updates: Any) -> Any:
    return updates


#: A packed buffer whose decayed elements form at most this many runs gets
#: its mask from comparisons with an iota (free inside the fused loop); more
#: runs take a constant mask, one byte per element.
_MAX_IOTA_RUNS = 2


def _decayed_runs(layout: Any, flags: tuple) -> list[list[tuple[int, int]]]:
    """Per buffer of ``layout``, the ``(start, stop)`` runs of elements that
    belong to leaves whose flag is true (adjacent leaves merged)."""
    runs: list[list[tuple[int, int]]] = [[] for _ in layout.dtypes]
    for g, off, shape, flag in zip(
        layout.groups, layout.offsets, layout.shapes, flags, strict=True
    ):
        stop = off + int(np.prod(shape, dtype=np.int64))
        if not flag or stop == off:
            continue
        mine = runs[g]
        if mine and mine[-1][1] == off:
            mine[-1] = (mine[-1][0], stop)
        else:
            mine.append((off, stop))
    return runs


def _run_mask(runs: list[tuple[int, int]], size: int) -> Any:
    """A bool vector of ``size``, true inside ``runs`` (traced or constant)."""
    if len(runs) > _MAX_IOTA_RUNS or size >= 2**31:  # (int32 iota)
        mask = np.zeros(size, np.bool_)
        for start, stop in runs:
            mask[start:stop] = True
        return mask
    i = jax.lax.iota(jnp.int32, size)
    mask = None
    for start, stop in runs:
        if start == 0:
            inside = i < stop
        elif stop == size:
            inside = i >= start
        else:
            inside = (i >= start) & (i < stop)
        mask = inside if mask is None else mask | inside
    return mask


def _decayed_only(params: Packed, flags: tuple) -> Packed:
    """``params`` with the elements of the leaves whose flag is false
    replaced by ``-0.0`` (internal).

    A decay that adds ``rate * params`` to the updates then leaves those
    elements' updates as they are, bit for bit (``u + rate * -0.0 == u`` for
    a finite ``rate >= 0``), while the others get exactly the unmasked
    decay. The mask is static: comparisons with an iota for up to
    ``_MAX_IOTA_RUNS`` runs of decayed elements per buffer, else a constant.
    """
    layout = params.layout
    buffers = []
    for buffer, runs, size in zip(
        params.buffers, _decayed_runs(layout, flags), layout.sizes
    ):
        if sum(stop - start for start, stop in runs) == size:
            buffers.append(buffer)  # every element decayed
        elif not runs:
            buffers.append(jnp.full_like(buffer, -0.0))
        else:
            zero = jnp.asarray(-0.0, buffer.dtype)
            buffers.append(jnp.where(_run_mask(runs, size), buffer, zero))
    return Packed(tuple(buffers), layout)


def masked_decay(
    decay: GradientTransformation,
    decayed: Callable[[Any], Any],
    skip: Callable[[Any], Any] = _unchanged,
) -> GradientTransformationExtraArgs:
    """``decay`` for the variables whose value ``decayed(value)`` accepts;
    the others' updates become ``skip(updates)`` (internal).

    The params are one variable's value, a ``Stack`` of the stepped values
    (see ``_stacked``: then each item is decided on its own) or a packed
    group's value, for which ``decayed`` may give one flag per variable (a
    tuple, in the group's order): then ``decay`` runs once on the whole
    group with the exempt variables' elements of the params set to ``-0.0``
    (see ``_decayed_only``), which is only right for a decay that adds a
    multiple of the params to unchanged updates (``skip`` left as is). The
    state is ``decay``'s (shared and empty), so the core's state has the
    same structure with or without exclusions.
    """

    def update_fn(updates, state, params=None, **extra_args):
        if isinstance(params, Stack):
            items = [
                decay.update(u, state, p, **extra_args)[0] if decayed(p) else skip(u)
                for u, p in zip(updates.items, params.items)
            ]
            return Stack(items), state
        flag = decayed(params)
        if isinstance(flag, tuple):  # a packed group mixing decayed and exempt
            if skip is not _unchanged or not isinstance(params, Packed):
                raise RuntimeError(
                    "internal error: per-variable weight decay flags for a "
                    f"value of type {type(params).__name__} with skip={skip!r}"
                )
            kept = _decayed_only(params, flag)
            return decay.update(updates, state, kept, **extra_args)
        if flag:
            return decay.update(updates, state, params, **extra_args)
        return skip(updates), state

    tx = GradientTransformationExtraArgs(decay.init, update_fn)
    return mark_elementwise(tx, is_elementwise(decay))
