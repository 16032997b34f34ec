"""Slots, weights and configs of the Keras-style ``Optimizer`` (a mixin)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from optaxish import slots
from optaxish._variable import Variable
from optaxish.optimizers import schedules
from optaxish.optimizers._checks import refuse_under_trace
from optaxish.optimizers._hyper import as_iterations


class CallableList(list):
    """A list that also returns itself when called: tf-keras' shim, so that
    both ``opt.variables`` (Keras 3, a property) and ``opt.variables()``
    (tf-keras ``OptimizerV2``, a method) work."""

    def __call__(self) -> CallableList:
        return self


class SlotsWeightsMixin:
    """``get_slot``, ``weights``, ``get_weights``/``set_weights``, configs.

    Relies on the base class attributes ``_vars`` (registered variables),
    ``_batches`` (indices of the variables whose slots were created together,
    per batch, as tf-keras' ``_create_slots`` does), ``_state`` and
    ``_slot_fields()`` (``[(keras slot name, core state field), ...]``).

    Subclass hooks for the weight list: ``_non_slot_weights()`` (weights
    kept in ``state.hyperparams``, listed after ``iterations``, as Nadam's
    ``momentum_cache``) and ``_slots_variable_major`` (``True`` when tf-keras
    creates all slots of a variable before the next variable, as Ftrl), or
    ``_weight_order`` for another order (``AdamW``: ``m``, ``v`` per variable,
    then every ``vhat``).
    """

    _slots_variable_major = False

    def _non_slot_weights(self) -> list[tuple[str, str, float]]:
        """``[(keras weight name, hyperparams key, initial value)]``: float32
        scalars shared by all variables, updated by the step (override)."""
        return []

    def get_slot_names(self) -> list[str]:
        """The slot names, in creation order (empty before the first step)."""
        return [k for k, _ in self._slot_fields()] if self._vars else []

    def get_slot(self, var: Variable, slot_name: str) -> Any:
        """The current value of ``var``'s slot ``slot_name`` (a ``jax.Array``).

        Raises:
          KeyError: for a variable the optimizer has not updated or an unknown
            slot name (a bare ``KeyError``, as tf-keras).
        """
        fields = dict(self._slot_fields())
        index = self._var_position(var)
        if slot_name not in fields:
            raise KeyError(slot_name)
        value = slots.get(self._state.inner_state[index], fields[slot_name])
        return jnp.array(value, copy=True)  # the state's buffers get donated

    def _weight_entries(self) -> list[tuple[str, int | None, str | None]]:
        """``(name, variable index, core field)`` in tf-keras weight order.

        Index ``None`` is ``iterations``; index ``-1`` a non-slot weight whose
        field is its ``hyperparams`` key.
        """
        if not self._vars:
            return []
        out: list[tuple[str, int | None, str | None]] = [
            (f"{self._name}/iter:0", None, None)
        ]
        for keras_name, key, _ in self._non_slot_weights():
            out.append((f"{self._name}/{keras_name}:0", -1, key))
        fields = self._slot_fields()
        for batch in self._batches:
            for i, (keras_name, field) in self._weight_order(batch, fields):
                shared = self._vars[i]._shared_name
                out.append((f"{self._name}/{shared}/{keras_name}:0", i, field))
        return out

    def _weight_order(
        self, batch: list[int], fields: list[tuple[str, str]]
    ) -> list[tuple[int, tuple[str, str]]]:
        """``[(variable index, slot field)]`` of one batch in weight order:
        slot-major (tf-keras legacy), or variable-major with
        ``_slots_variable_major`` (override for other orders)."""
        if self._slots_variable_major:
            return [(i, f) for i in batch for f in fields]
        return [(i, f) for f in fields for i in batch]

    def _weight_value(self, index: int | None, field: str | None) -> Any:
        if index is None:
            return self._state.iterations
        if index == -1:
            return self._state.hyperparams[field]
        return slots.get(self._state.inner_state[index], field)

    @property
    def weights(self) -> list[Variable]:
        """Snapshots of the optimizer weights, named as in tf-keras.

        Iterations first, then the slots in tf-keras creation order. Each is a
        new ``Variable`` holding a copy: assigning to it does not change the
        optimizer (use :meth:`set_weights`).
        """
        return [
            Variable(self._weight_value(i, f), trainable=False, name=name[:-2])
            for name, i, f in self._weight_entries()
        ]

    def variables(self) -> list[Variable]:
        """Same as :attr:`weights` (a method, as in tf-keras' OptimizerV2)."""
        return self.weights

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays (iterations as int64 first)."""
        out = []
        for _, i, f in self._weight_entries():
            value = np.asarray(self._weight_value(i, f))
            out.append(value.astype(np.int64) if i is None else value.copy())
        return out

    def _checked_weights(self, weights: list[Any]) -> list[tuple[Any, Any, Any]]:
        """``set_weights``' checks, done before anything changes.

        Returns ``[(entry, weight, current value)]`` in ``_weight_entries()``
        order, or raises tf-keras' ``ValueError`` for a wrong length or shape.
        """
        refuse_under_trace("set_weights", "state")
        entries = self._weight_entries()
        weights = list(weights)
        if len(weights) != len(entries):
            raise ValueError(
                f"You called `set_weights(weights)` on optimizer {self._name} with a "
                f" weight list of length {len(weights)}, but the optimizer was "
                f"expecting {len(entries)} weights. Provided weights: "
                f"{str(weights)[:50]}..."
            )
        checked = []
        for (name, i, f), w in zip(entries, weights):
            current = self._weight_value(i, f)
            if tuple(np.shape(current)) != tuple(np.shape(w)):
                raise ValueError(
                    f"Optimizer weight shape {tuple(np.shape(current))} not "
                    f"compatible with provided weight shape {tuple(np.shape(w))}."
                )
            checked.append(((name, i, f), w, current))
        return checked

    def set_weights(self, weights: list[Any]) -> None:
        """Loads a list in :meth:`get_weights` order (a tf-keras list works).

        Raises:
          ValueError: on a wrong length or shape; nothing changes then.
        """
        checked = self._checked_weights(weights)
        if not checked:
            return
        state = self._state
        inner = list(state.inner_state)
        hp = dict(state.hyperparams)
        iterations = state.iterations
        for (_, i, f), w, current in checked:
            if i is None:
                iterations = as_iterations(w)
            elif i == -1:
                hp[f] = jnp.asarray(np.asarray(w, np.dtype(current.dtype)))
            else:
                inner[i] = slots.set(inner[i], f, np.asarray(w))
        self._state = state._replace(
            iterations=iterations, hyperparams=hp, inner_state=tuple(inner)
        )

    # -- config ---------------------------------------------------------------

    def _serialize_hyperparameter(self, name: str) -> Any:
        """tf-keras' value for configs: the Python number given, until the
        hyperparameters are created (see :mod:`._hyper`), else the float32
        value (or the schedule's config, or the callable's current value)."""
        raw = self.__dict__.get("_raw_hyper", {})
        if name in raw:
            return float(raw[name])
        return self._stored_hyperparameter(name)

    def _stored_hyperparameter(self, name: str) -> Any:
        """The hyperparameter as stored (float32), for configs."""
        value = self._read_hyper(name)
        if isinstance(value, schedules.LearningRateSchedule):
            return schedules.serialize(value)
        return float(np.asarray(value))

    def get_config(self) -> dict[str, Any]:
        """The config, with tf-keras keys (JSON-safe)."""
        config: dict[str, Any] = {"name": self._name}
        for key in ("clipnorm", "global_clipnorm", "clipvalue"):
            if self._clip[key] is not None:
                config[key] = self._clip[key]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
        """Creates an optimizer from :meth:`get_config`'s output.

        ``"lr"`` is renamed ``"learning_rate"`` and a dict learning rate is
        revived as a schedule. Unlike tf-keras, ``config`` is not modified.
        """
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects
            )
        return cls(**config)
