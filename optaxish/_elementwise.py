"""Which transformations may run on packed (flattened) buffers.

A transformation is *elementwise* when its update treats every element the
same way whatever leaf it sits in: per-element math plus, at most, sums over
the whole tree (a global norm). Running it on the concatenation of the
leaves then gives the same numbers as running it on the tree. Per-leaf norms,
masks, factored moments or per-leaf random keys break this and are not
marked. Factories mark what they return; :func:`optaxish.packing.packed`
reads the mark.

The mark is kept on the ``update`` function (a transformation is a tuple,
which cannot carry attributes), in a weak set so nothing is kept alive.
"""

from __future__ import annotations

import weakref
from typing import Any, TypeVar

_ELEMENTWISE_UPDATES: weakref.WeakSet = weakref.WeakSet()

T = TypeVar("T")


def mark_elementwise(tx: T, elementwise: bool = True) -> T:
    """Marks ``tx`` as safe to run on packed buffers (when ``elementwise``)."""
    if elementwise:
        _ELEMENTWISE_UPDATES.add(tx.update)  # type: ignore[attr-defined]
    return tx


def is_elementwise(tx: Any) -> bool:
    """Whether ``tx`` was marked by :func:`mark_elementwise`."""
    update = getattr(tx, "update", None)
    try:
        return update in _ELEMENTWISE_UPDATES
    except TypeError:  # not weak-referenceable
        return False
