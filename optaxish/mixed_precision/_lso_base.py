"""What both ``LossScaleOptimizer`` signatures share: delegation and the step.

The loss scale is a core loss-scale value (:class:`~optaxish.loss_scale.
DynamicLossScale` or :class:`~optaxish.loss_scale.StaticLossScale`, a pytree)
held next to the inner optimizer. One compiled function per step checks the
gradients, runs the inner optimizer's pure ``_update_values`` under
``jax.lax.cond`` (skipped for non-finite gradients under a dynamic scale) and
adjusts the scale; the inner state, the variables' values and the loss scale
are donated to it. Scaling and unscaling are the core value's ``scale`` and
``unscale``; the rule is its ``adjust``: this module holds no math.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import Variable
from optaxish.mixed_precision._lso_functional import (
    LossScaleFunctionalMixin,
    guarded,
    skipped_state,
)
from optaxish.optimizers import Optimizer
from optaxish.optimizers._checks import deepcopy_fresh_steps, refuse_under_trace
from optaxish.optimizers._functional import copy_arrays
from optaxish.optimizers._minimize import MinimizeMixin
from optaxish.optimizers._slots_weights import CallableList

_EXAMPLE = """
    loss, grads = jax.value_and_grad(
        lambda w: opt.get_scaled_loss(loss_fn(w)))(var.value)
    (grads,) = opt.get_unscaled_gradients([grads])
    opt.apply_gradients([(grads, var)])"""


def _scaling_warning(scaled: bool, unscaled: bool) -> None:
    """tf-keras' warning (one of three texts) when a scaling call is missing."""
    if scaled and unscaled:
        return
    more = f" For example:{_EXAMPLE}"
    if not scaled and not unscaled:
        message = (
            "You forgot to call LossScaleOptimizer.get_scaled_loss() and "
            "LossScaleOptimizer.get_unscaled_gradients() before calling "
            "LossScaleOptimizer.apply_gradients(). This will likely result in "
            "worse model quality, so please call them in the correct places!"
        )
    elif not scaled:
        message = (
            "You forgot to call LossScaleOptimizer.get_scaled_loss() before "
            "calling LossScaleOptimizer.apply_gradients() (you did call "
            "get_unscaled_gradients() however). This will likely result in "
            "worse model quality, so please call get_scaled_loss() in the "
            "correct place!"
        )
    else:
        message = (
            "You forgot to call LossScaleOptimizer.get_unscaled_gradients() "
            "before calling LossScaleOptimizer.apply_gradients() (you did call "
            "get_scaled_loss() however). This will likely result in worse "
            "model quality, so please call get_unscaled_gradients() in the "
            "correct place!"
        )
    warnings.warn(message + more, UserWarning, stacklevel=3)


def _clip_property(key: str) -> property:
    """``key`` read from (and written to) the inner optimizer, as tf-keras."""

    def fget(self: Any) -> Any:
        return getattr(self._optimizer, key)

    def fset(self: Any, value: Any) -> None:
        setattr(self._optimizer, key, value)

    return property(
        fget, fset, doc=f"The inner optimizer's ``{key}`` (get and set, as tf-keras)."
    )


class LossScaleOptimizerBase(LossScaleFunctionalMixin, MinimizeMixin):
    """Shared by both ``LossScaleOptimizer`` signatures (not public).

    Subclasses call :meth:`_setup` with the inner optimizer and a core
    loss-scale value, and set ``_skip_counts_iterations`` (tf-keras 2.4+:
    a skipped step still increments ``iterations``; TF 2.2: it does not) and
    ``_warns_without_scaling`` (tf-keras 2.4+ warns when ``apply_gradients``
    runs before the scaling methods were ever called; TF 2.2 does not).
    """

    _skip_counts_iterations = True
    _warns_without_scaling = True

    def _setup(self, inner: Optimizer, loss_scale: Any) -> None:
        object.__setattr__(self, "_optimizer", inner)
        # Copies: the step donates these buffers.
        self._loss_scale = copy_arrays(loss_scale)
        self._initial_loss_scale = copy_arrays(loss_scale)  # for ``transformation``
        self._steps: dict[Any, Callable] = {}
        self._traces = 0
        self._loss_has_been_scaled = False
        self._gradients_have_been_unscaled = False
        inner._is_wrapped_by_loss_scale_optimizer = True

    # -- delegation (tf-keras: hyperparameters, iterations, weights) -----------

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_optimizer")
        key = "learning_rate" if name == "lr" else name
        if inner is not None and key in inner.__dict__.get("_hyper_names", ()):
            return inner._get_hyper(key)
        raise AttributeError(
            f"'{type(self).__name__}' object has no attribute '{name}'"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        inner = self.__dict__.get("_optimizer")
        key = "learning_rate" if name == "lr" else name
        own = key in self.__dict__ or hasattr(type(self), key)
        if inner is not None and not own and key in inner._hyper_names:
            inner._set_hyper(key, value)
        else:
            object.__setattr__(self, name, value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return deepcopy_fresh_steps(self, memo)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._optimizer._hyper_names, "lr"})

    @property
    def inner_optimizer(self) -> Optimizer:
        """The wrapped optimizer."""
        return self._optimizer

    @property
    def learning_rate(self) -> Any:
        """The inner optimizer's learning rate (get and set)."""
        return self._optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._optimizer.learning_rate = value

    @property
    def lr(self) -> Any:
        """Alias of :attr:`learning_rate`."""
        return self._optimizer.learning_rate

    @lr.setter
    def lr(self, value: Any) -> None:
        self._optimizer.learning_rate = value

    @property
    def iterations(self) -> jax.Array:
        """The inner optimizer's ``iterations`` (get and set)."""
        return self._optimizer.iterations

    @iterations.setter
    def iterations(self, value: Any) -> None:
        self._optimizer.iterations = value

    @property
    def weights(self) -> list[Variable]:
        """The inner optimizer's weights (the loss scale is not among them)."""
        return self._optimizer.weights

    @property
    def variables(self) -> CallableList:
        """The inner optimizer's weights, as a list that can also be called:
        ``opt.variables()`` (tf-keras ``LossScaleOptimizer``) and
        ``opt.variables`` (``LossScaleOptimizerV3``, Keras 3) both work. The
        loss scale and its counter are not among them (Keras 3 lists its own
        four first)."""
        return CallableList(self._optimizer.weights)

    clipnorm = _clip_property("clipnorm")
    global_clipnorm = _clip_property("global_clipnorm")
    clipvalue = _clip_property("clipvalue")

    def add_slot(self, var: Any, slot_name: str, initializer: Any = "zeros") -> Any:
        """The inner optimizer's ``add_slot`` (for custom optimizers)."""
        return self._optimizer.add_slot(var, slot_name, initializer)

    def get_weights(self) -> list[np.ndarray]:
        """The inner optimizer's ``get_weights()``."""
        return self._optimizer.get_weights()

    def set_weights(self, weights: list[Any]) -> None:
        """The inner optimizer's ``set_weights(weights)``."""
        self._optimizer.set_weights(weights)

    def get_slot_names(self) -> list[str]:
        """The inner optimizer's slot names."""
        return self._optimizer.get_slot_names()

    def build(self, var_list: Iterable[Variable]) -> None:
        """Creates the inner optimizer's slots for ``var_list`` now."""
        self._optimizer.build(var_list)

    # -- scaling ------------------------------------------------------------------

    def get_scaled_loss(self, loss: Any) -> Any:
        """``loss * loss_scale`` (the scale cast to the loss dtype).

        A callable ``loss`` gives a callable that scales its result (with the
        scale current at call time).
        """
        self._loss_has_been_scaled = True
        if callable(loss):
            return lambda: self._loss_scale.scale(jnp.asarray(loss()))
        return self._loss_scale.scale(jnp.asarray(loss))

    def get_unscaled_gradients(self, grads: Iterable[Any]) -> list[Any]:
        """Each gradient divided by the loss scale; ``None`` entries are kept."""
        self._gradients_have_been_unscaled = True
        return [
            None if g is None else self._loss_scale.unscale(jnp.asarray(g))
            for g in grads
        ]

    def get_gradients(self, loss: Callable[[], Any], params: Any) -> list[Any]:
        """The inner ``get_gradients`` of the scaled loss, unscaled.

        ``loss`` is a zero-argument callable (see the inner optimizer's
        ``get_gradients``); nothing is stepped.
        """
        grads = self._optimizer.get_gradients(self.get_scaled_loss(loss), params)
        return self.get_unscaled_gradients(grads)

    # -- the compiled step (the carry is ``(inner sub-state, loss scale)``) -------

    def _prepare_carry(self, indices: list[int]) -> tuple[Any, list]:
        sub, values = self._optimizer._prepare(indices)
        return (sub, self._loss_scale), values

    def _scale_traced(self, carry: Any, loss: jax.Array) -> jax.Array:
        return carry[1].scale(loss)

    def _unscale_traced(self, carry: Any, grads: list) -> list:
        return carry[1].unscale(grads)

    def _reads_grads_in_place(self, values: list) -> bool:
        return self._optimizer._reads_grads_in_place(values)  # it steps them

    def _apply_traced(
        self, carry: Any, values: list, grads: list, variables: list, aggregate=True
    ) -> tuple[Any, list]:
        """Check, then the inner step under ``lax.cond``, then the scale update."""
        sub, ls = carry
        inner = self._optimizer

        def run():
            new_sub, new_values = inner._update_values(
                sub, values, grads, variables, aggregate
            )
            return new_sub, list(new_values)

        def skip():
            return skipped_state(sub, self._skip_counts_iterations), list(values)

        (new_sub, new_values), new_scale = guarded(ls, grads, run, skip)
        return (new_sub, new_scale), new_values

    def _carry_sub(self, carry: Any) -> Any:
        return carry[0]

    def _carry_with_sub(self, carry: Any, sub: Any) -> Any:
        return (sub, carry[1])

    def _commit_carry(self, indices: list[int], carry: Any, values: list) -> None:
        new_sub, self._loss_scale = carry
        self._optimizer._commit(indices, new_sub, values)

    def _uses_hooks(self) -> bool:
        return self._optimizer._uses_hooks()

    def _packed_group(self, indices: list[int]) -> Any:
        return self._optimizer._packed_group(indices)

    def _register(self, variables: list[Variable]) -> list[int]:
        return self._optimizer._register(variables)

    def _key(self, variables: list[Variable]) -> tuple:
        return (self._optimizer._key(variables), type(self._loss_scale).__name__)

    def _registry_mark(self, variables: list[Variable]) -> Any:
        return self._optimizer._registry_mark(variables)

    def _registry_rollback(self, mark: Any) -> None:
        self._optimizer._registry_rollback(mark)

    def _variables_seen(self, aggregate: bool) -> bool:
        return self._optimizer._variables_seen(aggregate)

    def _config_key(self) -> tuple:
        return (self._optimizer._config_key(), type(self._loss_scale).__name__)

    def apply_gradients(
        self,
        grads_and_vars: Iterable[tuple[Any, Variable]],
        name: str | None = None,
        experimental_aggregate_gradients: bool = True,
    ) -> jax.Array | None:
        """Applies one step and updates the loss scale; returns ``iterations``.

        The gradients must already be unscaled (:meth:`get_unscaled_gradients`).
        As tf-keras, a ``UserWarning`` names :meth:`get_scaled_loss` and/or
        :meth:`get_unscaled_gradients` when they were never called (Python
        shows it once per call site; tf-keras logs it on every call). Under a
        dynamic scale a step with a NaN or infinite gradient is skipped: the
        variables and the slots stay bit-identical and the scale is halved.

        Raises:
          TypeError, ValueError: as the inner optimizer's ``apply_gradients``;
            nothing changes then.
        """
        del name
        refuse_under_trace("apply_gradients")  # before the scaling warning
        if self._warns_without_scaling:
            _scaling_warning(
                self._loss_has_been_scaled, self._gradients_have_been_unscaled
            )
        return self._apply_pairs(grads_and_vars, bool(experimental_aggregate_gradients))

    def minimize(
        self,
        loss: Callable[[], Any],
        var_list: Any,
        grad_loss: Any = None,
        name: str | None = None,
        tape: Any = None,
    ) -> jax.Array | None:
        """Differentiates the scaled ``loss()``, unscales, applies one step.

        As the inner optimizer's ``minimize`` (one compiled function per loss
        function and variable list), with ``loss() * loss_scale``
        differentiated so that small float16 gradients survive, and the
        gradients divided by the scale before the step.

        Raises:
          ValueError: when ``loss`` is not callable.
          TypeError: for a non-variable in ``var_list``.
        """
        if tape is not None:
            raise ValueError(
                "LossScaleOptimizer.minimize takes a callable loss (it scales the "
                "loss and unscales the gradients itself). With your own gradient "
                "function, use get_scaled_loss, get_unscaled_gradients and "
                f"apply_gradients. Received: tape={tape!r}"
            )
        self._loss_has_been_scaled = self._gradients_have_been_unscaled = True
        return super().minimize(loss, var_list, grad_loss, name, tape)
