"""The loss-scaling wrapper: unscale, check, skip or apply, adjust the scale."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish._base import GradientTransformationExtraArgs, with_extra_args_support
from optaxish._elementwise import is_elementwise, mark_elementwise
from optaxish._norm_hint import global_norm_known
from optaxish._numerics import safe_increment
from optaxish._update import apply_updates
from optaxish.loss_scale._values import (
    LOSS_SCALE_TYPES,
    DynamicLossScale,
    LossScale,
    NoOpLossScale,
    StaticLossScale,
    _check_period,
    _check_scale,
    _norm_and_finite,
    _unscale_leaf,
)


class LossScalingState(NamedTuple):
    """State of :func:`loss_scaling`.

    Attributes:
      loss_scale: the current loss-scale value (a :class:`DynamicLossScale`,
        :class:`StaticLossScale` or :class:`NoOpLossScale` pytree).
      skipped_steps: steps skipped for non-finite gradients so far (int32).
      consecutive_skipped_steps: skipped steps since the last applied one
        (int32); 0 after an applied step.
      inner_state: the wrapped transformation's state; bit-identical across a
        skipped step.
    """

    loss_scale: LossScale
    skipped_steps: jax.Array
    consecutive_skipped_steps: jax.Array
    inner_state: Any


def _cast_like(new: Any, old: Any) -> Any:
    def cast(n, o):
        if hasattr(n, "dtype") and hasattr(o, "dtype") and n.dtype != o.dtype:
            return n.astype(o.dtype)
        return n

    return jax.tree.map(cast, new, old)


def _check_state(state: Any) -> None:
    if not isinstance(state, LossScalingState):
        raise ValueError(
            "`state` does not belong to `loss_scaling`: expected a "
            f"LossScalingState, received {type(state).__name__}. Make sure it "
            "came from this transformation's `init`."
        )


def _step(inner, unscale, updates, state, params, extra_args, apply):
    """One step; returns ``(updates, state)``, or ``(params, state)`` if ``apply``."""
    _check_state(state)
    ls = state.loss_scale
    scale = jnp.asarray(ls.loss_scale, jnp.float32)
    scaled = unscale and not isinstance(ls, NoOpLossScale)

    def unscaled(tree):
        if not scaled:
            return tree
        return jax.tree.map(lambda g: _unscale_leaf(g, scale), tree)

    def run_inner(norm=None):
        grads = unscaled(updates)
        with global_norm_known(grads, norm):
            new_updates, new_state = inner.update(
                grads, state.inner_state, params, **extra_args
            )
        if apply:
            new_updates = apply_updates(params, new_updates)
        # Both cond branches must return the same types: keep the state's
        # dtypes (an inner that returns, e.g., a float32 count from a weakly
        # typed init would otherwise break the cond).
        return new_updates, _cast_like(new_state, state.inner_state)

    if not isinstance(ls, DynamicLossScale):
        out, inner_state = run_inner()
        return out, state._replace(inner_state=inner_state)

    # The check is one reduction over the gradients: their global norm, which
    # a `clip_by_global_norm` at the head of `inner` then reuses instead of
    # reading the gradients a second time. The unscaling is recomputed inside
    # the branch, where it fuses into the inner update, so no unscaled copy of
    # the gradients is ever materialised. Only the inner update (and, with
    # `apply`, the parameter update) and its state go through the cond.
    norm, finite = _norm_and_finite(updates, scale if scaled else None)
    if apply:

        def skip_branch():
            return params, state.inner_state

    else:
        out_shapes = jax.eval_shape(functools.partial(run_inner, norm))[0]

        def skip_branch():
            # `zeros_like` keeps a sharding the trace knows (explicit mesh
            # axes): both branches of the cond must give the same types.
            zeros = jax.tree.map(lambda s: jnp.zeros_like(s, s.dtype), out_shapes)
            return zeros, state.inner_state

    out, inner_state = jax.lax.cond(
        finite, functools.partial(run_inner, norm), skip_branch
    )
    skipped = state.skipped_steps
    consecutive = state.consecutive_skipped_steps
    return out, LossScalingState(
        loss_scale=ls.adjust(finite),
        skipped_steps=jnp.where(finite, skipped, safe_increment(skipped)),
        consecutive_skipped_steps=jnp.where(
            finite, jnp.zeros_like(consecutive), safe_increment(consecutive)
        ),
        inner_state=inner_state,
    )


def _as_loss_scale(loss_scale: Any) -> LossScale:
    if isinstance(loss_scale, LOSS_SCALE_TYPES):
        return loss_scale
    if isinstance(loss_scale, str):
        if loss_scale == "dynamic":
            return DynamicLossScale()
        raise ValueError(
            "`loss_scale` must be 'dynamic', a number or a loss-scale value. "
            f"Received: loss_scale={loss_scale!r}"
        )
    if isinstance(loss_scale, int | float) and not isinstance(loss_scale, bool):
        return StaticLossScale(loss_scale)
    raise TypeError(
        "`loss_scale` must be 'dynamic', a number, or a DynamicLossScale, "
        "StaticLossScale or NoOpLossScale. Received: "
        f"loss_scale={loss_scale!r} of type {type(loss_scale).__name__}"
    )


def loss_scaling(
    inner: Any,
    loss_scale: LossScale | str | float = "dynamic",
    *,
    unscale: bool = True,
) -> GradientTransformationExtraArgs:
    """Wraps ``inner`` with loss scaling: unscale, skip non-finite steps, adjust.

    ``update(grads, state, params)``:

    1. unscales the gradients (``g / scale``, unless ``unscale=False``);
    2. with a :class:`DynamicLossScale`, checks them for NaN/inf with one
       reduction (their global norm; an exact per-entry check runs only when
       the norm is not finite); then, under ``jax.lax.cond``,

       * finite: runs ``inner.update`` on the unscaled gradients and advances
         the growth counter (and the scale after ``period`` finite steps);
       * not finite: returns zero updates, does **not** run ``inner.update``
         (its state stays bit-identical), divides the scale by ``factor``
         (floored at ``min_loss_scale``), resets the counter and counts the
         skipped step;
    3. with a :class:`StaticLossScale` or :class:`NoOpLossScale`, only unscales
       and always applies, as tf-keras does with ``dynamic=False``.

    The scale sequence and the skipped steps are exactly tf-keras
    ``LossScaleOptimizer``'s. Anything inside ``inner`` (clipping, weight
    decay, schedules) sees unscaled gradients. The helpers in
    :mod:`optaxish.loss_scale` (:func:`scale_loss`, :func:`get_loss_scale`,
    :func:`scaled_value_and_grad`, ...) find this state anywhere inside a
    larger optimizer state.

    Put the wrapper outermost (around the whole chain): a transformation
    chained *after* it still runs, on zero updates, on a skipped step.

    Cost: the check is one reduction over the gradients, their global norm,
    which a :func:`~optaxish.clip_by_global_norm` at the head of ``inner``
    reuses, so with clipping the check reads nothing extra. The ``lax.cond``
    keeps XLA from fusing the inner update into the caller's
    ``apply_updates``: the updates land in a fresh buffer, which on CPU costs
    about as much as optax's ``apply_if_finite``. When you write the training
    step yourself, :func:`loss_scaling_step` runs update *and* apply under one
    cond: on CPU it measured 1.01-1.12x the plain step with a clipped inner
    chain and 1.02-1.34x without (``benchmarks/loss_scale_overhead.py``).

    Args:
      inner: the transformation to wrap (ours or optax's; a chain, an alias...).
      loss_scale: ``"dynamic"`` (a default :class:`DynamicLossScale`: 2**15,
        growth every 2000 finite steps, factor 2, floor 1), a number (a
        :class:`StaticLossScale`), or a loss-scale value.
      unscale: ``True`` (default) when ``update`` receives gradients of the
        *scaled* loss, as Keras 3's ``LossScaleOptimizer.apply`` does. Set
        ``False`` when the gradients are already unscaled (by
        :func:`unscale_gradients` or :func:`scaled_value_and_grad`, as
        tf-keras' ``apply_gradients`` expects): then ``update`` only checks
        them and adjusts the scale.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose state is a
      :class:`LossScalingState`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> tx = loss_scale.loss_scaling(optaxish.sgd(0.25),
      ...                              loss_scale.DynamicLossScale(8.0))
      >>> params = jnp.array([1.0])
      >>> state = tx.init(params)
      >>> grads = jax.grad(lambda p: loss_scale.scale_loss(jnp.sum(p**2), state))(params)
      >>> grads  # 8 * 2p
      Array([16.], dtype=float32)
      >>> updates, state = tx.update(grads, state, params)
      >>> updates, state.loss_scale.counter
      (Array([-0.5], dtype=float32), Array(1, dtype=int32))
      >>> updates, state = tx.update(jnp.array([jnp.inf]), state, params)
      >>> updates, loss_scale.get_loss_scale(state), state.skipped_steps
      (Array([0.], dtype=float32), Array(4., dtype=float32), Array(1, dtype=int32))
    """
    inner = with_extra_args_support(inner)
    loss_scale = _as_loss_scale(loss_scale)
    if not isinstance(unscale, bool):
        raise TypeError(f"`unscale` must be a bool. Received: unscale={unscale!r}")

    def init_fn(params):
        # Fresh, distinct buffers everywhere: a donated state must never delete
        # the factory's copy (a later `init` must still work) nor hold one
        # buffer twice.
        return LossScalingState(
            loss_scale=jax.tree.map(jnp.array, loss_scale),
            skipped_steps=jnp.zeros([], jnp.int32),
            consecutive_skipped_steps=jnp.zeros([], jnp.int32),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        return _step(inner, unscale, updates, state, params, extra_args, False)

    tx = GradientTransformationExtraArgs(init_fn, update_fn)
    return mark_elementwise(tx, is_elementwise(inner))


def dynamic_loss_scaling(
    inner: Any,
    initial_scale: jax.typing.ArrayLike = 2.0**15,
    dynamic_growth_steps: jax.typing.ArrayLike = 2000,
    *,
    factor: jax.typing.ArrayLike = 2.0,
    min_loss_scale: jax.typing.ArrayLike = 1.0,
    max_loss_scale: jax.typing.ArrayLike | None = None,
    unscale: bool = True,
) -> GradientTransformationExtraArgs:
    """:func:`loss_scaling` with a :class:`DynamicLossScale` built from tf-keras' names.

    Args:
      inner: the transformation to wrap.
      initial_scale: the first scale (tf-keras ``initial_scale``, 2**15).
      dynamic_growth_steps: finite steps between growths (tf-keras, 2000).
      factor: growth and back-off factor (2).
      min_loss_scale: floor of the back-off (1).
      max_loss_scale: optional ceiling of the growth (``None``: none).
      unscale: see :func:`loss_scaling`.

    Raises:
      ValueError: for out-of-range Python numbers (named by these arguments'
        names; see :class:`DynamicLossScale`).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> tx = loss_scale.dynamic_loss_scaling(optaxish.sgd(0.1), initial_scale=2.0**10)
      >>> state = tx.init(jnp.zeros(2))
      >>> float(loss_scale.get_loss_scale(state))
      1024.0
    """
    _check_scale("initial_scale", initial_scale)
    _check_period("dynamic_growth_steps", dynamic_growth_steps)
    return loss_scaling(
        inner,
        DynamicLossScale(
            initial_scale,
            period=dynamic_growth_steps,
            factor=factor,
            min_loss_scale=min_loss_scale,
            max_loss_scale=max_loss_scale,
        ),
        unscale=unscale,
    )


def loss_scaling_step(
    inner: Any,
    grads: Any,
    state: LossScalingState,
    params: Any,
    *,
    unscale: bool = True,
    **extra_args: Any,
) -> tuple[Any, LossScalingState]:
    """One fused training step: ``loss_scaling(inner).update`` + ``apply_updates``.

    The same numbers and state as::

        updates, state = loss_scaling(inner, ..., unscale=unscale).update(
            grads, state, params)
        params = optaxish.apply_updates(params, updates)

    but the parameter update runs inside the same ``jax.lax.cond`` as the
    inner update, so XLA fuses it with the inner transformation and no update
    buffer is materialised; a skipped step returns ``params`` unchanged. This
    is the fast path for a hand-written (or facade) training step.

    Args:
      inner: the transformation the state was built for (the ``inner`` of
        :func:`loss_scaling`).
      grads: gradients (of the scaled loss, unless ``unscale=False``).
      state: a :class:`LossScalingState` from ``loss_scaling(inner, ...).init``.
      params: the parameters.
      unscale: as in :func:`loss_scaling`.
      **extra_args: passed to ``inner.update``.

    Returns:
      ``(new_params, new_state)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> inner = optaxish.sgd(0.5)
      >>> state = loss_scale.loss_scaling(inner, loss_scale.DynamicLossScale(8.0)).init(
      ...     jnp.ones(1))
      >>> loss_scale.loss_scaling_step(inner, jnp.array([8.0]), state, jnp.ones(1))[0]
      Array([0.5], dtype=float32)
    """
    if not isinstance(unscale, bool):
        raise TypeError(f"`unscale` must be a bool. Received: unscale={unscale!r}")
    inner = with_extra_args_support(inner)
    return _step(inner, unscale, grads, state, params, extra_args, True)
