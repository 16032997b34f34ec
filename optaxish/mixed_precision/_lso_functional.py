"""The ``LossScaleOptimizer``'s functional side: Keras 3's stateless step.

:attr:`~LossScaleFunctionalMixin.state` is the inner optimizer's state and
the loss scale together; :meth:`~LossScaleFunctionalMixin.stateless_apply`
and :meth:`~LossScaleFunctionalMixin.transformation` run the same traced
step as the stateful methods (unscale, check, the inner step under
``lax.cond``, the scale update), so mixed precision through the facade can
go into a user's own ``jax.jit`` step. The methods that are Keras 3's
(``apply``, ``stateless_apply``) take Keras 3's gradients: those of the
*scaled* loss, which they unscale themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish._base import GradientTransformationExtraArgs
from optaxish._norm_hint import global_norm_known
from optaxish._numerics import safe_increment
from optaxish._variable import Variable
from optaxish.loss_scale import DynamicLossScale
from optaxish.loss_scale._values import _norm_and_finite
from optaxish.optimizers._checks import refuse_under_trace
from optaxish.optimizers._count_holes import drop_counts, fill_counts
from optaxish.optimizers._functional import (
    copy_arrays,
    gradient_list_pairs,
    loaded_copy,
    same_arrays,
)


class LossScaleOptimizerState(NamedTuple):
    """The whole state of a ``LossScaleOptimizer`` (a pytree).

    Attributes:
      inner: the inner optimizer's state (its ``state``: ``iterations``, the
        hyperparameters and the slots).
      loss_scale: the loss-scale value
        (:class:`~optaxish.loss_scale.DynamicLossScale` or
        :class:`~optaxish.loss_scale.StaticLossScale`); the core's helpers
        read it, e.g. ``optaxish.loss_scale.scale_loss(loss, state)``.
    """

    inner: Any
    loss_scale: Any


def skipped_state(sub: Any, counts_skips: bool) -> Any:
    """The inner ``OptimizerState`` after a skipped step: as it was, but for
    ``iterations`` + 1 under tf-keras' rule, with the per-variable step
    counts (which every step sets to ``iterations``) following it."""
    if not counts_skips:
        return sub
    it = safe_increment(sub.iterations)
    inner = fill_counts(drop_counts(sub.inner_state), it)
    return sub._replace(iterations=it, inner_state=inner)


def guarded(ls: Any, grads: Any, run: Callable, skip: Callable) -> tuple[Any, Any]:
    """``(run() or skip(), new loss scale)``: the loss-scale rule around a step.

    Under a dynamic ``ls``, ``run`` goes under ``lax.cond`` when ``grads``
    are all finite (with their global norm known, so that clipping inside
    reuses the check's reduction), its outputs cast to ``skip``'s dtypes, and
    ``skip`` otherwise; the scale is then adjusted. A fixed scale never
    skips. Shared by the stateful step and :meth:`transformation`.
    """
    if not isinstance(ls, DynamicLossScale):
        return run(), ls
    leaves = jax.tree.leaves(grads)
    norm, finite = _norm_and_finite(leaves)

    def apply():
        with global_norm_known(leaves, norm):
            out = run()
        return jax.tree.map(
            lambda x, s: jnp.asarray(x).astype(s.dtype), out, jax.eval_shape(skip)
        )

    return jax.lax.cond(finite, apply, skip), ls.adjust(finite)


class LossScaleFunctionalMixin:
    """``apply``, ``state``, ``stateless_apply`` and ``transformation`` of the
    ``LossScaleOptimizer``s; relies on the base's ``_optimizer``,
    ``_loss_scale``, ``_initial_loss_scale``, ``_skip_counts_iterations``,
    ``_apply_pairs``, ``_unscale_traced`` and ``_apply_traced``."""

    def apply(
        self,
        grads: Sequence[Any],
        trainable_variables: Sequence[Variable] | None = None,
    ) -> jax.Array | None:
        """Keras 3's ``apply``: one step with the gradients of the *scaled* loss.

        As Keras 3's ``LossScaleOptimizer.apply``, the gradients are those
        of ``scale_loss(loss)``; they are unscaled inside the compiled step
        (:meth:`apply_gradients`, tf-keras', takes unscaled ones). Without
        ``trainable_variables`` they go one-to-one to the variables of
        :meth:`build`. The skip rule is this class's (see the class
        docstring). An empty ``grads`` list does nothing.

        Returns:
          The new ``iterations`` (``None`` for empty ``grads``).

        Raises:
          ValueError: without ``trainable_variables`` before the optimizer
            knows any variable, or for a number of gradients that does not
            match; as :meth:`apply_gradients` otherwise. Nothing changes then.
          RuntimeError: inside ``jax.jit``, ``vmap`` or ``grad`` (use
            :meth:`stateless_apply` there).

        Examples:
          >>> import jax
          >>> from optaxish import Variable
          >>> from optaxish.mixed_precision import LossScaleOptimizer
          >>> from optaxish.optimizers import SGD
          >>> var = Variable([1.0, 2.0])
          >>> opt = LossScaleOptimizer(SGD(0.5), initial_scale=8.0)
          >>> grads = jax.grad(lambda v: opt.scale_loss((v**2).sum() / 2))(var.value)
          >>> grads  # scaled by 8
          Array([ 8., 16.], dtype=float32)
          >>> _ = opt.apply([grads], [var])
          >>> var.numpy()
          array([0.5, 1. ], dtype=float32)
        """
        refuse_under_trace("apply")
        pairs = gradient_list_pairs(self._optimizer._vars, grads, trainable_variables)
        if pairs is None:
            return None
        return self._apply_pairs(pairs, True, unscale=True)

    @property
    def state(self) -> LossScaleOptimizerState:
        """A copy of the whole state: the inner optimizer's and the loss scale.

        The ``optimizer_variables`` of :meth:`stateless_apply`. Assigning a
        state of the same structure loads it (the inner optimizer's state
        and the loss scale together).

        Raises:
          ValueError: when an assigned state has another structure, shape or
            dtype, or another kind of loss scale (nothing changes then).

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.mixed_precision import LossScaleOptimizer
          >>> from optaxish.optimizers import Adam
          >>> opt = LossScaleOptimizer(Adam(0.1))
          >>> opt.build([Variable([1.0, 2.0])])
          >>> state = opt.state
          >>> int(state.inner.iterations), float(state.loss_scale.loss_scale)
          (0, 32768.0)
        """
        return LossScaleOptimizerState(
            self._optimizer.state, copy_arrays(self._loss_scale)
        )

    @state.setter
    def state(self, value: Any) -> None:
        refuse_under_trace("optimizer.state = ...")
        if not isinstance(value, LossScaleOptimizerState) or not same_arrays(
            value.loss_scale, self._loss_scale
        ):
            raise ValueError(
                "The state assigned to a LossScaleOptimizer must have the "
                "structure, shapes and dtypes of `optimizer.state` (a "
                "LossScaleOptimizerState holding a "
                f"{type(self._loss_scale).__name__}). Received: "
                f"{jax.tree.structure(value)}"
            )
        self._optimizer.state = value.inner  # checks it before changing anything
        self._loss_scale = loaded_copy(value.loss_scale)

    def stateless_apply(
        self,
        optimizer_variables: LossScaleOptimizerState,
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
        experimental_aggregate_gradients: bool = True,
    ) -> tuple[list[jax.Array], LossScaleOptimizerState]:
        """One pure step with the gradients of the *scaled* loss (Keras 3).

        ``optimizer_variables`` is an :attr:`state`. Scale the loss with the
        scale *in that state*, ``optaxish.loss_scale.scale_loss(loss,
        state)`` (the optimizer's own :meth:`scale_loss` reads its current
        scale, which a ``jax.jit``-ed function would keep as a constant).
        The step unscales the gradients, checks them, runs the inner
        optimizer's step (skipped for a NaN or an infinity under a dynamic
        scale: the values and the slots come back unchanged) and updates the
        scale, as :meth:`apply` does; nothing in the optimizer or the
        variables changes, so it can be ``jax.jit``-ed.

        Returns:
          ``(new_trainable_values, new_state)``.

        Raises:
          ValueError: before :meth:`build`, for a wrong state structure, a
            wrong list length or a gradient of the wrong shape.

        Examples:
          >>> import jax
          >>> import jax.numpy as jnp
          >>> from optaxish import Variable, loss_scale
          >>> from optaxish.mixed_precision import LossScaleOptimizer
          >>> from optaxish.optimizers import SGD
          >>> var = Variable([1.0, 2.0])
          >>> opt = LossScaleOptimizer(SGD(0.5), initial_scale=8.0)
          >>> opt.build([var])
          >>> def loss_fn(v):
          ...     return (v**2).sum() / 2
          >>> @jax.jit
          ... def train_step(state, values):
          ...     scaled = lambda v: loss_scale.scale_loss(loss_fn(v), state)
          ...     grads = jax.grad(scaled)(values[0])
          ...     return opt.stateless_apply(state, [grads], values)
          >>> (new,), state = train_step(opt.state, [var.value])
          >>> new, int(state.inner.iterations)
          (Array([0.5, 1. ], dtype=float32), 1)
          >>> (same,), state = train_step(state, [jnp.array([jnp.inf, 1.0])])
          >>> float(state.loss_scale.loss_scale)  # skipped: halved
          4.0
        """
        inner = self._optimizer
        if not isinstance(optimizer_variables, LossScaleOptimizerState) or (
            jax.tree.structure(optimizer_variables.loss_scale)
            != jax.tree.structure(self._loss_scale)
        ):
            raise ValueError(
                "Argument `optimizer_variables` must have the structure of "
                "`optimizer.state` (a LossScaleOptimizerState holding a "
                f"{type(self._loss_scale).__name__}). Received: "
                f"{jax.tree.structure(optimizer_variables)}"
            )
        values, gs = inner._stateless_inputs(
            optimizer_variables.inner, grads, trainable_variables
        )
        carry = tuple(optimizer_variables)
        gs = self._unscale_traced(carry, gs)
        (new_inner, new_scale), new_values = self._apply_traced(
            carry,
            values,
            gs,
            list(inner._vars),
            bool(experimental_aggregate_gradients),
        )
        new_state = LossScaleOptimizerState(new_inner, new_scale)
        return inner._constrained(list(new_values)), new_state

    def transformation(self) -> GradientTransformationExtraArgs:
        """This optimizer as a core transformation over any tree of params.

        ``init(params)`` gives a :class:`LossScaleOptimizerState`: the inner
        optimizer's ``transformation().init(params)`` and the loss scale this
        optimizer started with. ``update(grads, state, params)`` takes the
        gradients of the *scaled* loss (``optaxish.loss_scale.scale_loss(loss,
        state)``), unscales and checks them, and gives the inner updates
        (zeros for a skipped step, whose inner state stays as it was but for
        ``iterations``, as in :meth:`apply`) and the new scale. ``params`` is
        required.

        Examples:
          >>> import jax
          >>> import jax.numpy as jnp
          >>> import optaxish
          >>> from optaxish import loss_scale
          >>> from optaxish.mixed_precision import LossScaleOptimizer
          >>> from optaxish.optimizers import SGD
          >>> tx = LossScaleOptimizer(SGD(0.5), initial_scale=8.0).transformation()
          >>> params = {"w": jnp.array([1.0, 2.0])}
          >>> state = tx.init(params)
          >>> loss = lambda p: loss_scale.scale_loss((p["w"] ** 2).sum() / 2, state)
          >>> updates, state = tx.update(jax.grad(loss)(params), state, params)
          >>> optaxish.apply_updates(params, updates)["w"]
          Array([0.5, 1. ], dtype=float32)
        """
        inner_tx = self._optimizer.transformation()
        initial = copy_arrays(self._initial_loss_scale)
        counts_skips = self._skip_counts_iterations

        def init_fn(params: Any) -> LossScaleOptimizerState:
            return LossScaleOptimizerState(inner_tx.init(params), copy_arrays(initial))

        def update_fn(updates: Any, state: Any, params: Any = None, **extra: Any):
            del extra
            ls = state.loss_scale
            grads = ls.unscale(updates)

            def run():
                return inner_tx.update(grads, state.inner, params)

            def skip():
                steps = jax.tree.map(
                    lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(run)[0]
                )
                return steps, skipped_state(state.inner, counts_skips)

            (steps, new_inner), new_scale = guarded(ls, grads, run, skip)
            return steps, LossScaleOptimizerState(new_inner, new_scale)

        return GradientTransformationExtraArgs(init_fn, update_fn)
