"""The state side of custom (tf-keras-hook) optimizers (internal).

The slots of a custom optimizer's variable ``i`` are the dict
``inner_state[i] = {slot name: array}``; its non-slot weights (``add_weight``)
are ``hyperparams["weight/<name>"]``. The slot and weight ``Variable``\\ s that
``add_slot``/``add_weight`` return are live views of those pieces. This module
holds those views and the slot/weight accessors of the hook path; the traced
step is in ``_custom.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import _COUNTER, Variable
from optaxish.optimizers._hyper import as_iterations

WEIGHT = "weight/"  # prefix of the non-slot weights' keys in `hyperparams`


class _StateVariable(Variable):
    """A ``Variable`` whose value is a piece of its optimizer's state.

    Reading it reads the state, ``assign`` writes into the state (inside the
    traced step ``Variable._bind`` catches the assignment first).
    """

    def __init__(self, opt: Any, location: tuple, name: str) -> None:
        self._opt = opt
        self._location = location
        self._shared_name = name
        self._name = f"{name}:0"
        self._unique_id = next(_COUNTER)
        self._trainable = False
        self._constraint = None

    @property
    def _value(self) -> jax.Array:  # type: ignore[override]
        return self._opt._hook_read(self._location)

    @_value.setter
    def _value(self, value: jax.Array) -> None:
        self._opt._hook_write(self._location, value)

    def __deepcopy__(self, memo: dict[int, Any]) -> _StateVariable:
        opt = copy.deepcopy(self._opt, memo)
        return _StateVariable(opt, self._location, self._shared_name)


class _Records:
    """Per-optimizer bookkeeping of the hook path."""

    def __init__(self) -> None:
        self.slot_vars: dict[tuple[int, str], _StateVariable] = {}
        self.slot_names: list[str] = []
        self.weights: dict[str, _StateVariable] = {}
        self.order: list[tuple] = []  # ("slot", i, name) | ("weight", key)
        self.current: list[Variable] = []  # the variables of the step traced next

    def copy(self) -> _Records:
        new = _Records()
        new.slot_vars = dict(self.slot_vars)
        new.slot_names = list(self.slot_names)
        new.weights = dict(self.weights)
        new.order = list(self.order)
        new.current = list(self.current)
        return new


def _initial_value(initializer: Any, shape: tuple, dtype: Any, what: str) -> jax.Array:
    if isinstance(initializer, str):
        makers = {"zeros": np.zeros, "ones": np.ones}
        if initializer not in makers:
            raise ValueError(
                f"Unknown initializer for {what}: {initializer!r}. Use 'zeros', "
                "'ones', a callable `(shape, dtype) -> array` or an array."
            )
        return jnp.asarray(makers[initializer](shape, dtype))
    if callable(initializer):
        value = initializer(shape=shape, dtype=dtype)
    else:
        value = initializer
    value = jnp.asarray(value, dtype)
    if value.shape != shape:
        try:
            value = jnp.broadcast_to(value, shape)
        except ValueError as e:
            raise ValueError(
                f"The initial value of {what} has shape {tuple(value.shape)}; "
                f"expected shape {shape}."
            ) from e
    return jnp.array(value, copy=True)


class CustomStateMixin:
    """Slots and weights of custom optimizers; defers to the base otherwise.

    Relies on ``_uses_hooks()`` (defined by ``CustomHooksMixin``) and the
    base's ``_vars``, ``_state``, ``_name`` and ``_var_position``.
    """

    _hook_trace: Any = None  # set while the custom step is being traced

    def _hook_records(self) -> _Records:
        records = self.__dict__.get("_hook_recs")
        if records is None:
            records = _Records()
            object.__setattr__(self, "_hook_recs", records)
        return records

    def _hook_read(self, location: tuple) -> jax.Array:
        if location[0] == "slot":
            return self._state.inner_state[location[1]][location[2]]
        return self._state.hyperparams[location[1]]

    def _hook_write(self, location: tuple, value: jax.Array) -> None:
        if location[0] == "slot":
            inner = list(self._state.inner_state)
            inner[location[1]] = {**inner[location[1]], location[2]: value}
            self._state = self._state._replace(inner_state=tuple(inner))
        else:
            hp = {**self._state.hyperparams, location[1]: value}
            self._state = self._state._replace(hyperparams=hp)

    # -- slots and weights of the hook path ---------------------------------------

    def get_slot_names(self) -> list[str]:
        """The slot names, in creation order (empty before the first step)."""
        if not self._uses_hooks():
            return super().get_slot_names()
        return list(self._hook_records().slot_names) if self._vars else []

    def get_slot(self, var: Variable, slot_name: str) -> Any:
        """The current value of ``var``'s slot ``slot_name`` (a ``jax.Array``).

        Inside a custom optimizer's ``_resource_apply_dense`` it is the slot's
        ``Variable`` instead (assign to it to update the slot).

        Raises:
          KeyError: for a variable the optimizer has not updated or an unknown
            slot name (a bare ``KeyError``, as tf-keras).
        """
        if not self._uses_hooks():
            return super().get_slot(var, slot_name)
        index = self._var_position(var)
        slot = self._hook_records().slot_vars.get((index, slot_name))
        if slot is None:
            names = [n for (i, n) in self._hook_records().slot_vars if i == index]
            raise KeyError(
                f"Variable '{var.name}' has no slot '{slot_name}' in optimizer "
                f"'{self._name}'. Its slots: {names}"
            )
        if self._hook_trace is not None:
            return slot
        return jnp.array(slot.value, copy=True)

    def _weight_entries(self) -> list[tuple[str, int | None, str | None]]:
        if not self._uses_hooks():
            return super()._weight_entries()
        if not self._vars:
            return []
        records = self._hook_records()
        out: list[tuple[str, int | None, str | None]] = [
            (f"{self._name}/iter:0", None, None)
        ]
        for entry in records.order:
            if entry[0] == "slot":
                var = records.slot_vars[(entry[1], entry[2])]
                out.append((var.name, entry[1], entry[2]))
            else:
                out.append((records.weights[entry[1]].name, -1, entry[1]))
        return out

    def _weight_value(self, index: int | None, field: str | None) -> Any:
        if not self._uses_hooks() or index is None:
            return super()._weight_value(index, field)
        if index == -1:
            return self._state.hyperparams[field]
        return self._state.inner_state[index][field]

    def set_weights(self, weights: list[Any]) -> None:
        """Loads a list in :meth:`get_weights` order (a tf-keras list works).

        Raises:
          ValueError: on a wrong length or shape; nothing changes then.
        """
        if not self._uses_hooks():
            return super().set_weights(weights)
        checked = self._checked_weights(weights)
        if not checked:
            return None
        entries = [entry for entry, _, _ in checked]
        new = [
            as_iterations(w) if i is None else jnp.asarray(np.asarray(w), current.dtype)
            for (_, i, _), w, current in checked
        ]
        state = self._state
        hp, inner = dict(state.hyperparams), list(state.inner_state)
        for (_, i, f), value in zip(entries[1:], new[1:]):
            if i == -1:
                hp[f] = value
            else:
                inner[i] = {**inner[i], f: value}
        self._state = state._replace(
            iterations=new[0], hyperparams=hp, inner_state=tuple(inner)
        )
        return None
