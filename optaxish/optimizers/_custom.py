"""Custom optimizers written the tf-keras way: the subclassing hooks, compiled.

A tf-keras user writes an optimizer by overriding ``_create_slots`` (which
calls ``add_slot``/``add_weight``) and ``_resource_apply_dense`` (which reads
``_get_hyper``/``_decayed_lr``/``get_slot`` and calls ``assign``). A subclass
of :class:`~optaxish.optimizers.Optimizer` that overrides
``_resource_apply_dense`` takes this path instead of the core-chain one:

* the slots of variable ``i`` live in the optimizer state as a dict
  ``inner_state[i] = {slot name: array}``; the non-slot weights of
  ``add_weight`` live in ``hyperparams`` under ``"weight/<name>"``;
* the user's methods are traced inside the optimizer's one jitted step: the
  variables, their slot variables and the weights are bound to traced values
  with ``Variable._bind``, ``_get_hyper``/``_decayed_lr``/``iterations`` read
  the traced state, and the values assigned in the block are the step's
  outputs. Setting ``opt.learning_rate`` therefore never retraces.

The compiled step is keyed by the variables themselves (not only their
shapes), since user code may branch on a variable's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from optaxish._numerics import safe_increment
from optaxish._variable import Variable
from optaxish.optimizers import schedules
from optaxish.optimizers._custom_state import (
    WEIGHT,
    CustomStateMixin,
    _initial_value,
    _StateVariable,
)


class _Trace(NamedTuple):
    """What the user's hooks read while the step is being traced."""

    iterations: Any
    hyper: dict[str, Any]
    lr: Any


class CustomHooksMixin(CustomStateMixin):
    """tf-keras' subclassing hooks on the ``Optimizer`` base (a mixin).

    Relies on the base's ``_vars``, ``_state``, ``_name``, ``_lr_fn``,
    ``_initial_decay``, ``_clip``, the gradient aggregation attributes and
    ``_var_position``.
    """

    # -- the hooks a subclass overrides -----------------------------------------

    def _create_slots(self, var_list: list[Variable]) -> None:
        """Creates the slots of new variables (override; calls ``add_slot``)."""

    def _resource_apply_dense(self, grad: Any, var: Variable, apply_state: Any) -> Any:
        """Updates ``var`` from its dense ``grad`` (override to customise)."""
        raise NotImplementedError("Must be implemented in subclasses.")

    def _resource_apply_sparse(
        self, grad: Any, var: Variable, indices: Any, apply_state: Any
    ) -> Any:
        """Not used: JAX has no sparse gradients (``IndexedSlices``)."""
        raise NotImplementedError(
            f"{type(self).__name__}._resource_apply_sparse is never called: JAX "
            "gradients are dense arrays (there is no `tf.IndexedSlices`), so only "
            "`_resource_apply_dense` is used."
        )

    def _prepare_local(
        self, var_device: Any, var_dtype: Any, apply_state: dict
    ) -> None:
        """Fills ``apply_state[(var_device, var_dtype)]`` (``lr_t``), as tf-keras."""
        apply_state[(var_device, var_dtype)]["lr_t"] = self._decayed_lr(var_dtype)

    def _fallback_apply_state(self, var_device: Any, var_dtype: Any) -> dict:
        """The coefficients of one dtype, computed now (tf-keras' fallback)."""
        apply_state: dict = {(var_device, var_dtype): {}}
        self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state[(var_device, var_dtype)]

    # -- public helpers for subclasses ------------------------------------------

    def add_slot(
        self,
        var: Variable,
        slot_name: str,
        initializer: Any = "zeros",
        shape: Any = None,
    ) -> Variable:
        """Creates slot ``slot_name`` of ``var`` (call it from ``_create_slots``).

        The slot has ``var``'s dtype and ``shape`` (``var``'s shape by
        default); ``initializer`` is ``"zeros"``, ``"ones"``, a callable
        ``(shape, dtype) -> array`` or an array (broadcast to the shape).
        Asking again for an existing slot with the same shape and dtype
        returns it (as tf-keras). The returned ``Variable`` is a view of the
        optimizer state: inside ``_resource_apply_dense`` assign to it.

        Raises:
          ValueError: for a variable the optimizer is not updating, or a slot
            that exists already with another shape.

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import Optimizer
          >>> class Counting(Optimizer):
          ...     def __init__(self, name="Counting"):
          ...         super().__init__(name)
          ...         self._set_hyper("learning_rate", 0.1)
          ...     def _create_slots(self, var_list):
          ...         for var in var_list:
          ...             self.add_slot(var, "seen", "zeros")
          ...     def _resource_apply_dense(self, grad, var, apply_state):
          ...         self.get_slot(var, "seen").assign_add(jnp.ones_like(grad))
          ...         var.assign_sub(self._decayed_lr(var.dtype) * grad)
          >>> import jax.numpy as jnp
          >>> opt, v = Counting(), Variable([1.0, 2.0], name="w")
          >>> _ = opt.apply_gradients([([1.0, 1.0], v)])
          >>> opt.get_slot(v, "seen"), v.numpy()
          (Array([1., 1.], dtype=float32), array([0.9, 1.9], dtype=float32))
        """
        records = self._hook_records()
        index = self._hook_index(var, f"add slot '{slot_name}'")
        slot_shape = tuple(var.shape)
        if shape is not None:
            slot_shape = tuple(int(d) for d in np.ravel(np.asarray(shape, np.int64)))
        existing = records.slot_vars.get((index, slot_name))
        if existing is not None:
            if existing.shape != slot_shape:
                raise ValueError(
                    f"Slot '{slot_name}' of variable '{var.name}' exists already "
                    f"with shape {existing.shape}; cannot create it again with "
                    f"shape {slot_shape}."
                )
            return existing
        if self._hook_trace is not None:
            raise ValueError(
                f"Cannot create slot '{slot_name}' of variable '{var.name}' inside "
                "`_resource_apply_dense`: create it in `_create_slots`."
            )
        what = f"slot '{slot_name}' of variable '{var.name}'"
        value = _initial_value(initializer, slot_shape, var.dtype, what)
        inner = list(self._state.inner_state)
        inner[index] = {**inner[index], slot_name: value}
        self._state = self._state._replace(inner_state=tuple(inner))
        name = f"{self._name}/{var._shared_name}/{slot_name}"
        slot = _StateVariable(self, ("slot", index, slot_name), name)
        records.slot_vars[(index, slot_name)] = slot
        if slot_name not in records.slot_names:
            records.slot_names.append(slot_name)
        records.order.append(("slot", index, slot_name))
        return slot

    def add_weight(
        self,
        name: str,
        shape: Any,
        dtype: Any = None,
        initializer: Any = "zeros",
        trainable: bool | None = None,
        synchronization: Any = None,
        aggregation: Any = None,
    ) -> Variable:
        """Creates a non-slot weight (e.g. a step counter) of a custom optimizer.

        Deviation: unlike tf-keras the weight is listed in :attr:`weights`,
        ``get_weights`` and ``set_weights`` (after the weights created before
        it), and asking again for an existing name with the same shape and
        dtype returns it. ``dtype`` defaults to float32; ``trainable``,
        ``synchronization`` and ``aggregation`` are accepted for tf-keras
        compatibility (optimizer weights are never trained).

        Raises:
          TypeError: on a built-in optimizer (one without
            ``_resource_apply_dense``).
          ValueError: for a name that exists with another shape or dtype.

        Examples:
          >>> import jax.numpy as jnp
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import Optimizer
          >>> class Steps(Optimizer):
          ...     def __init__(self, name="Steps"):
          ...         super().__init__(name)
          ...         self._set_hyper("learning_rate", 0.5)
          ...     def _create_slots(self, var_list):
          ...         self.add_weight("steps", [], dtype=jnp.int32)
          ...     def _resource_apply_dense(self, grad, var, apply_state):
          ...         var.assign_sub(self._decayed_lr(var.dtype) * grad)
          ...         self.add_weight("steps", [], dtype=jnp.int32).assign_add(1)
          >>> opt, v = Steps(), Variable(1.0)
          >>> _ = opt.apply_gradients([(1.0, v)])
          >>> [w.name for w in opt.weights], opt.get_weights()[1]
          (['Steps/iter:0', 'Steps/steps:0'], array(1, dtype=int32))
        """
        del trainable, synchronization, aggregation
        if not self._uses_hooks():
            raise TypeError(
                f"`add_weight` is for custom optimizers (subclasses overriding "
                f"`_resource_apply_dense`); {type(self).__name__} builds its state "
                "from core transformations."
            )
        records = self._hook_records()
        key = WEIGHT + name
        weight_shape = tuple(int(d) for d in np.ravel(np.asarray(shape, np.int64)))
        dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
        existing = records.weights.get(key)
        if existing is not None:
            if existing.shape != weight_shape or existing.dtype != dtype:
                raise ValueError(
                    f"Weight '{name}' exists already with shape {existing.shape} "
                    f"and dtype {existing.dtype}; cannot create it again with shape "
                    f"{weight_shape} and dtype {dtype}."
                )
            return existing
        if self._hook_trace is not None:
            raise ValueError(
                f"Cannot create weight '{name}' inside `_resource_apply_dense`: "
                "create it in `_create_slots`."
            )
        value = _initial_value(initializer, weight_shape, dtype, f"weight '{name}'")
        hp = {**self._state.hyperparams, key: value}
        self._state = self._state._replace(hyperparams=hp)
        weight = _StateVariable(self, ("weight", key), f"{self._name}/{name}")
        records.weights[key] = weight
        records.order.append(("weight", key))
        return weight

    def _decayed_lr(self, var_dtype: Any) -> Any:
        """The learning rate of this step (schedule and ``decay`` applied)."""
        if self._hook_trace is not None:
            return self._hook_trace.lr.astype(var_dtype)
        state = self._state
        return self._hook_lr(state.hyperparams, state.iterations).astype(var_dtype)

    # -- the hook path, used by the base class -----------------------------------

    def _uses_hooks(self) -> bool:
        return (
            type(self)._resource_apply_dense
            is not CustomHooksMixin._resource_apply_dense
        )

    def _hook_index(self, var: Any, action: str) -> int:
        for i, v in enumerate(self._vars):
            if v is var:
                return i
        raise ValueError(
            f"Cannot {action} for variable '{getattr(var, 'name', var)!s}': the "
            "optimizer does not update this variable. Create slots in "
            "`_create_slots(var_list)` for the variables of `var_list`."
        )

    def _hook_key(self, variables: list[Variable]) -> tuple:
        if not self._uses_hooks():
            return ()
        return tuple(v._unique_id for v in variables)

    def _hook_register(self, variables: list[Variable]) -> list[int]:
        """Calls ``_create_slots`` on new variables; all or nothing."""
        records = self._hook_records()
        new = [v for v in variables if all(v is not w for w in self._vars)]
        if new:
            saved = (records.copy(), self._state, list(self._vars))
            try:
                self._vars.extend(new)
                self._state = self._state._replace(
                    inner_state=self._state.inner_state + ({},) * len(new)
                )
                self._create_slots(list(new))
            except BaseException:
                restored, self._state, self._vars[:] = saved
                object.__setattr__(self, "_hook_recs", restored)
                raise
        indices = [self._var_position(v) for v in variables]
        self._hook_records().current = [self._vars[i] for i in indices]
        return indices

    def _hook_lr(self, hp: dict[str, Any], iterations: Any) -> Any:
        step = jnp.asarray(iterations).astype(jnp.float32)
        if isinstance(self._lr_fn, schedules.LearningRateSchedule):
            hp["learning_rate"] = jnp.asarray(self._lr_fn(step), jnp.float32)
        lr = hp["learning_rate"]
        if self._initial_decay > 0:
            lr = lr / (1.0 + self._initial_decay * step)
        return lr

    def _traced_hyper(self, name: str, dtype: Any) -> Any:
        if name == "learning_rate" and isinstance(
            self._lr_fn, schedules.LearningRateSchedule
        ):
            return self._lr_fn
        value = self._hook_trace.hyper[name]
        return value if dtype is None else value.astype(dtype)

    def _hook_update_values(
        self,
        state: Any,
        values: list,
        grads: Iterable,
        variables: list[Variable] | None = None,
        aggregate: bool = True,
    ) -> tuple:
        """The traced step: runs ``_resource_apply_dense`` on bound values."""
        from optaxish.optimizers._aggregation import process_gradients

        if variables is None or any(v is None for v in variables):
            variables = self._hook_records().current
        variables = list(variables)
        if len(variables) != len(values):
            raise NotImplementedError(
                f"{type(self).__name__} is a custom optimizer: its step needs the "
                "`Variable`s it updates, so use `apply_gradients` or `minimize`."
            )
        records = self._hook_records()
        hp = dict(state.hyperparams)
        lr = self._hook_lr(hp, state.iterations)
        grads = process_gradients(self, list(grads), variables, aggregate)
        indices = [self._var_position(v) for v in variables]
        slot_vars = [
            [(name, records.slot_vars[(i, name)]) for name in st]
            for i, st in zip(indices, state.inner_state)
        ]
        weight_keys = [k for k in hp if k in records.weights]
        bound = list(variables) + [records.weights[k] for k in weight_keys]
        bound_values = list(values) + [hp[k] for k in weight_keys]
        for pairs, st in zip(slot_vars, state.inner_state):
            bound += [var for _, var in pairs]
            bound_values += [st[name] for name, _ in pairs]
        object.__setattr__(self, "_hook_trace", _Trace(state.iterations, hp, lr))
        try:
            with Variable._bind(bound, bound_values):
                apply_state: dict = {}
                for dtype in dict.fromkeys(v.dtype for v in variables):
                    apply_state[(None, dtype)] = {}
                    self._prepare_local(None, dtype, apply_state)
                for var, grad in zip(variables, grads):
                    self._resource_apply_dense(grad, var, apply_state)
                new_values = [v.value for v in variables]
                new_inner = tuple(
                    {name: var.value for name, var in pairs} for pairs in slot_vars
                )
                for k in weight_keys:
                    hp[k] = records.weights[k].value
        finally:
            object.__setattr__(self, "_hook_trace", None)
        new_state = state._replace(
            iterations=safe_increment(state.iterations),
            hyperparams=hp,
            inner_state=new_inner,
        )
        return new_state, new_values
