"""Packed storage for the Keras-style optimizers (a mixin of the base class).

The optimizer state has a *cold* form, one core state per variable in
``OptimizerState.inner_state`` (what slots, weights and configs read), and,
for lists of variables stepped together, a *hot* form: a
:class:`~optaxish.optimizers._packed_group.PackedGroup` holding their values
and slots packed. ``_state`` always returns the cold form (dissolving hot
groups first); the step (``_prepare``/``_commit``), ``iterations`` and the
hyperparameters use ``_cold`` directly, so they never dissolve a group.
"""

from __future__ import annotations

import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish.optimizers._aggregation import all_reduce_sum_gradients
from optaxish.optimizers._count_holes import drop_counts, fill_counts
from optaxish.optimizers._packed_group import PackedGroup
from optaxish.packing import Packed, is_packable

#: ``_packable``'s mark of a list that another optimizer took back: not
#: packed while that one holds it (see ``PackingMixin._take_back``).
_TAKEN = object()


def packed_step(values: Any) -> bool:
    """Whether a traced step's ``values`` are a packed group's."""
    return len(values) == 1 and isinstance(values[0], Packed)


def _spread(value: Any) -> bool:
    """Whether ``value`` lives on several devices (sharded or replicated).

    A packed group keeps one flat buffer on one device and reads values
    through the host: it would gather such a variable, and assigning to it
    would not fit the group's buffer. Such variables step one array each,
    keeping their sharding.
    """
    sharding = getattr(value, "sharding", None)
    return sharding is not None and len(sharding.device_set) > 1


class PackingMixin:
    """Hot (packed) and cold (per-variable) state; relies on the base's
    ``_vars``, ``_core``, ``_clip``, ``_uses_hooks``, gradient options."""

    #: Set to ``False`` (on an instance or a subclass) to keep every variable
    #: in its own array; the numbers are the same either way.
    packing = True

    #: Pack a list of variables only when their mean size (in elements) is at
    #: most this. Gathering the gradients of ``apply_gradients`` into the
    #: buffer costs a copy; with large variables that copy costs more than
    #: the per-variable kernels it saves (measured on CPU: packing wins 2-6x
    #: at means of 600-10,000 elements and loses 2x at 100,000-140,000).
    packing_max_mean_size = 2**15

    @property
    def _cold(self) -> Any:
        return self.__dict__["_cold"]

    def _set_cold(self, **fields: Any) -> None:
        self.__dict__["_cold"] = self._cold._replace(**fields)

    @property
    def _state(self) -> Any:
        """The whole state in per-variable form (hot groups are dissolved).

        Each variable's step count reads as ``iterations`` (``_cold`` may
        hold it as a hole, see ``_count_holes``).
        """
        self._cool()
        cold = self._cold
        return cold._replace(inner_state=self._counts_shown(cold.inner_state))

    def _counts_shown(self, states: tuple) -> tuple:
        """``states`` with every step count set to a copy of ``iterations``
        (a buffer of its own: steps donate ``iterations``)."""
        if self._uses_hooks():  # custom slots: the base keeps no counts
            return states
        count = jnp.array(self._cold.iterations, copy=True)
        return fill_counts(drop_counts(states), count)

    @_state.setter
    def _state(self, value: Any) -> None:
        self._cool()
        self.__dict__["_cold"] = value

    def _cool(self, indices: Any = None, materialize: bool = True) -> None:
        """Dissolves the hot groups (those sharing a variable with ``indices``,
        or all), then creates the states not created yet (see ``_register``)."""
        if "_cold" not in self.__dict__:  # during __init__
            return
        groups = self.__dict__.get("_groups")
        if groups:
            wanted = None if indices is None else set(indices)
            inner = list(self._cold.inner_state)
            for key in list(groups):
                if wanted is not None and wanted.isdisjoint(key):
                    continue
                for i, st in zip(key, groups.pop(key).dissolve()):
                    inner[i] = st
            self._set_cold(inner_state=tuple(inner))
        if materialize:
            self._materialize(range(len(self._vars)) if indices is None else indices)

    def _materialize(self, indices: Any) -> None:
        """Initializes the per-variable states of ``indices`` still missing."""
        if self._uses_hooks():  # custom optimizers make their slots themselves
            return
        inner = self._cold.inner_state
        missing = [i for i in indices if i < len(inner) and inner[i] is None]
        if missing:  # rare: only then look at the hot groups (their members are None)
            hot = {i for key in self.__dict__.get("_groups", {}) for i in key}
            missing = [i for i in missing if i not in hot]
        if not missing:
            return
        inner = list(inner)
        hp = self._cold.hyperparams
        core = self._core(hp["learning_rate"], hp)
        with jax.ensure_compile_time_eval():  # arrays, even under a user's trace
            for i in missing:
                inner[i] = core.init(self._vars[i]._value)
        self._set_cold(inner_state=tuple(inner))

    def _variables_seen(self, aggregate: bool) -> bool:
        """Whether a step's trace sees the ``Variable`` objects themselves
        (user callables get them): then a compiled step is kept per list of
        variables, not per shapes. Override when a subclass's step looks at
        them too."""
        return (
            self._uses_hooks()
            or bool(self.gradient_transformers)
            or (aggregate and self.gradient_aggregator is not all_reduce_sum_gradients)
        )

    def _registry_mark(self, variables: list) -> Any:
        """What :meth:`_registry_rollback` needs to forget the variables that
        registering ``variables`` is about to add (taken before)."""
        n = len(self._vars)
        if not self._uses_hooks():
            return n  # registering only appends
        known = {id(v) for v in self._vars}
        if all(id(v) in known for v in variables):
            return n
        # `_create_slots` may add slots and weights: keep what it changes.
        return (n, self._hook_records().copy(), self.__dict__["_cold"])

    def _registry_rollback(self, mark: Any) -> None:
        """Forgets the variables registered since ``mark`` (a step over them
        failed before committing anything): their slots, their place in the
        weights, the packed groups and packing decisions involving them."""
        n = mark[0] if isinstance(mark, tuple) else mark
        if len(self._vars) == n:
            return
        gone = self._vars[n:]
        if isinstance(mark, tuple):  # custom slots
            object.__setattr__(self, "_hook_recs", mark[1])
            self.__dict__["_cold"] = mark[2]
        else:
            self._cool(list(range(n, len(self._vars))), materialize=False)
            self._set_cold(inner_state=self._cold.inner_state[:n])
            self._batches[:] = [b for b in self._batches if all(i < n for i in b)]
            packable = self.__dict__.get("_packable", {})
            for key in [k for k in packable if any(i >= n for i in k)]:
                del packable[key]
        del self._vars[n:]
        for v in gone:
            if self._index.get(id(v), -1) >= n:
                del self._index[id(v)]

    def _var_position(self, var: Any) -> int:
        i = self._index.get(id(var))
        if i is None or self._vars[i] is not var:  # rebuilt after a copy
            self._index = {id(v): j for j, v in enumerate(self._vars)}
            i = self._index.get(id(var))
            if i is None:
                raise KeyError(getattr(var, "name", repr(var)))
        return i

    def _packing_allowed(self) -> bool:
        """Whether the settings, which may change between steps, allow
        packing: user callables and per-variable norms need one array per
        variable."""
        return (
            self.packing
            and self._clip["clipnorm"] is None
            and self.gradient_aggregator is all_reduce_sum_gradients
            and not self.gradient_transformers
            and not self._uses_hooks()
        )

    def _can_pack(self, indices: list[int]) -> bool:
        if not self._packing_allowed():
            return False
        # Cached per list: the rest depends only on things fixed at creation
        # (variables' shapes and constraints, the core's kind), except while
        # another optimizer holds the variables (see `_take_back`).
        cache = self.__dict__.setdefault("_packable", {})
        key = tuple(indices)
        known = cache.get(key)
        if known is _TAKEN:
            if self._held_elsewhere(indices):
                return False
            known = None  # let go of (dropped, or its group dissolved)
        if known is None:
            known = cache[key] = self._decide_packing(indices)
        return known

    def _held_elsewhere(self, indices: list[int]) -> bool:
        """Whether another live optimizer keeps one of the variables
        ``indices`` in one of its packed groups."""
        for i in indices:
            group = self._vars[i].__dict__.get("_store")
            if group is None or group.owner is None:
                continue
            owner = group.owner()
            if (
                owner is not None
                and owner is not self
                and owner.__dict__.get("_groups", {}).get(group.indices) is group
            ):
                return True
        return False

    def _decide_packing(self, indices: list[int]) -> bool:
        if len(indices) < 2:
            return False
        size = 0
        for i in indices:
            var = self._vars[i]
            if var.constraint is not None or _spread(var._value):
                return False
            size += int(np.prod(var.shape, dtype=np.int64))
        if size > self.packing_max_mean_size * len(indices):
            return False
        hp = self._cold.hyperparams
        return is_packable(self._core(hp["learning_rate"], hp))

    def _take_back(self, indices: list[int]) -> None:
        """Takes the variables of ``indices`` out of other optimizers' packed
        groups (this one's were just dissolved): their owner dissolves the
        group, keeping its slots per variable, as when it steps another list.

        A second optimizer over the same variables (a new one after the first,
        a deep copy and its original) would otherwise step them through the
        first one's group, one read and one write per variable: 30x slower on
        eight small variables. The first optimizer then keeps that list
        unpacked while this one holds them, so that two optimizers stepping
        the same variables in turn do not re-pack on every switch: the one
        that packed last stays packed, the other steps through its group.
        Once no other live optimizer holds them (this one was dropped, or
        dissolved its group: ``get_slot``, a step over another list), the
        first one packs the list again at its next step over it.
        """
        for i in indices:
            group = self._vars[i].__dict__.get("_store")
            if group is None:
                continue
            owner = group.owner() if group.owner is not None else None
            owned = owner is not None and owner._groups.get(group.indices) is group
            if owned:
                owner._cool(list(group.indices), materialize=False)
                owner.__dict__.setdefault("_packable", {})[group.indices] = _TAKEN
            else:  # its optimizer is gone: only the values matter
                group.dissolve()

    def _hot_group(self, indices: list[int]) -> PackedGroup | None:
        """The packed group of exactly ``indices``, made if it can be."""
        key = tuple(indices)
        group = self._groups.get(key)
        if group is not None and self._packing_allowed():  # settings may change
            return group
        self._cool(indices, materialize=False)
        if not self._can_pack(indices):
            # Variables held in another optimizer's group stay there.
            self._materialize(indices)
            return None
        self._take_back(indices)
        if any(self._cold.inner_state[i] is not None for i in indices):
            self._materialize(indices)  # all per-variable, or all new
        hp = self._cold.hyperparams
        inner = list(self._cold.inner_state)
        states = self._counts_shown(tuple(inner[i] for i in indices))
        group = PackedGroup(
            key,
            [self._vars[i] for i in indices],
            states,
            self._core(hp["learning_rate"], hp),
        )
        for i in indices:
            inner[i] = None  # lives in the group now
        self._set_cold(inner_state=tuple(inner))
        group.owner = weakref.ref(self)
        self._groups[key] = group
        return group
