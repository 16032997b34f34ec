"""Hyperparameters of the Keras-style optimizers as attributes (a mixin).

tf-keras' ``_set_hyper``/``_get_hyper`` and the attribute access built on
them (``opt.learning_rate = 0.05``, ``opt.lr``): values live in the
optimizer state as float32 scalars, so setting one never recompiles the
step; a learning rate may also be a schedule or a zero-argument callable.
Also ``iterations``. Relies on the base's ``_cold``/``_set_cold``,
``_hyper_names``, ``_lr_fn`` and the custom-hook trace attributes.

As in tf-keras' ``OptimizerV2``, a hyperparameter given as a Python number
stays that number for ``get_config`` until the hyperparameters are
"created" (tf-keras turns them into float32 variables at the first step or
the first read of a hyperparameter attribute); from then on the config
holds the float32-rounded value. The step always runs on the float32 value.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import Variable
from optaxish.optimizers import schedules
from optaxish.optimizers._checks import refuse_under_trace


def f32(value: Any) -> jax.Array:
    """``value`` as a float32 scalar array (rounded as tf-keras stores it).

    Concrete even while a transformation traces (an optimizer built inside
    ``jit`` must not keep its tracers).
    """
    with jax.ensure_compile_time_eval():
        return jnp.asarray(np.asarray(value, np.float32))


def as_iterations(value: Any) -> jax.Array:
    """``value`` as the int32 ``iterations`` scalar (tf-keras stores int64)."""
    with jax.ensure_compile_time_eval():
        return jnp.asarray(np.asarray(value).astype(np.int64), jnp.int32)


class HyperparamsMixin:
    """``_set_hyper``, ``_get_hyper``, attribute access, ``iterations``."""

    # -- hyperparameters ------------------------------------------------------

    def _set_hyper(self, name: str, value: Any) -> None:
        new = name not in self._hyper_names
        if new:
            self._hyper_names.append(name)
        # tf-keras' `_set_hyper`: a Python number replaces a Python number, a
        # callable or a schedule as it is; it is written into the float32
        # variable once the hyperparameters are created.
        raw = self.__dict__.setdefault("_raw_hyper", {})
        was_fn = name == "learning_rate" and self._lr_fn is not None
        keep_raw = new or name in raw or was_fn or not self._hypers_created
        if keep_raw and isinstance(value, int | float) and not isinstance(value, bool):
            raw_value: Any = value
        else:
            raw_value = None
        hp = dict(self._cold.hyperparams)
        if name == "learning_rate" and (
            isinstance(value, schedules.LearningRateSchedule) or callable(value)
        ):
            self._lr_fn = value
            hp.setdefault(name, f32(0.0))
        else:
            if isinstance(value, Variable):
                value = value.value
            if callable(value) or np.ndim(value) != 0:
                raise TypeError(
                    f"Hyperparameter `{name}` must be a real scalar"
                    + (" (or, for `learning_rate`, a schedule or a callable)")
                    + f". Received: {name}={value!r}"
                )
            if name == "learning_rate":
                self._lr_fn = None
            hp[name] = f32(value)
        self._set_cold(hyperparams=hp)
        if raw_value is None:
            raw.pop(name, None)
        else:
            raw[name] = raw_value

    @property
    def _hypers_created(self) -> bool:
        return self.__dict__.get("_hypers_made", False)

    def _create_hypers(self) -> None:
        """Marks the hyperparameters as created (tf-keras' ``_create_hypers``):
        configs then give their float32 values."""
        if not self.__dict__.get("_hypers_made", False):
            self.__dict__["_hypers_made"] = True
            self.__dict__.get("_raw_hyper", {}).clear()

    def _get_hyper(self, name: str, dtype: Any = None) -> Any:
        if self._hook_trace is not None:  # in a custom optimizer's traced step
            return self._traced_hyper(name, dtype)
        self._create_hypers()  # as tf-keras' `_get_hyper`
        return self._read_hyper(name, dtype)

    def _read_hyper(self, name: str, dtype: Any = None) -> Any:
        """``_get_hyper`` without creating the hyperparameters."""
        if dtype is not None:
            return self._read_hyper(name).astype(dtype)
        if name == "learning_rate" and self._lr_fn is not None:
            if isinstance(self._lr_fn, schedules.LearningRateSchedule):
                return self._lr_fn
            return self._lr_fn()
        return jnp.array(self._cold.hyperparams[name], copy=True)

    def __getattr__(self, name: str) -> Any:
        names = self.__dict__.get("_hyper_names", ())
        if name == "lr":
            name = "learning_rate"
        if name in names:
            return self._get_hyper(name)
        raise AttributeError(
            f"'{type(self).__name__}' object has no attribute '{name}'"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lr":
            name = "learning_rate"
        if name in self.__dict__.get("_hyper_names", ()):
            refuse_under_trace(f"optimizer.{name} = ...", "state")
            self._set_hyper(name, value)
        else:
            object.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._hyper_names, "lr"})

    @property
    def iterations(self) -> jax.Array:
        """The number of steps taken (a copy, as an int32 scalar array)."""
        if self._hook_trace is not None:  # in a custom optimizer's traced step
            return self._hook_trace.iterations
        return jnp.array(self._cold.iterations, copy=True)

    @iterations.setter
    def iterations(self, value: Any) -> None:
        refuse_under_trace("optimizer.iterations = ...", "state")
        self._set_cold(iterations=as_iterations(value))
