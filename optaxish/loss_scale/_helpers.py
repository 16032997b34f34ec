"""Helpers that find the loss scale anywhere inside an optimizer state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from optaxish.loss_scale._values import LOSS_SCALE_TYPES, LossScale
from optaxish.loss_scale._wrapper import LossScalingState


def _is_node(x: Any) -> bool:
    return isinstance(x, (LossScalingState, *LOSS_SCALE_TYPES))


def find_loss_scaling_state(state: Any) -> LossScalingState:
    """The :class:`LossScalingState` inside ``state``, however deeply nested.

    ``state`` may be the wrapper's own state or any pytree that contains it:
    a chain or named_chain state, ``inject_hyperparams``, ``MultiSteps``,
    ``partition`` states, optax's states, a flax ``TrainState``...

    Args:
      state: a pytree containing exactly one :class:`LossScalingState`.

    Returns:
      That state.

    Raises:
      ValueError: if ``state`` contains none, or more than one.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> tx = optaxish.chain(optaxish.identity(),
      ...                     loss_scale.loss_scaling(optaxish.sgd(0.1)))
      >>> s = loss_scale.find_loss_scaling_state(tx.init(jnp.zeros(1)))
      >>> int(s.skipped_steps)
      0
    """
    found = [
        x
        for x in jax.tree.leaves(state, is_leaf=_is_node)
        if isinstance(x, LossScalingState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"Expected exactly one LossScalingState (the state of "
            f"`loss_scaling`) inside `state`, found {len(found)}. "
            + (
                "Wrap the optimizer with `optaxish.loss_scale.loss_scaling`."
                if not found
                else "Pass the sub-state that holds the one you mean."
            )
        )
    return found[0]


def find_loss_scale(state: Any) -> LossScale:
    """The loss-scale value in ``state`` (or ``state`` itself if it is one).

    That of the one :class:`LossScalingState` inside ``state``; without
    one, the one loss-scale value held directly in ``state`` (as in the
    ``state`` of a Keras-style ``LossScaleOptimizer``).

    Raises:
      ValueError: if ``state`` holds no loss scale, or more than one.

    Examples:
      >>> from optaxish import loss_scale
      >>> loss_scale.find_loss_scale(loss_scale.StaticLossScale(4.0))
      StaticLossScale(loss_scale=4.0)
      >>> loss_scale.find_loss_scale({"opt": (), "ls": loss_scale.StaticLossScale(2.0)})
      StaticLossScale(loss_scale=2.0)
    """
    if isinstance(state, LOSS_SCALE_TYPES):
        return state
    nodes = jax.tree.leaves(state, is_leaf=_is_node)
    if not any(isinstance(x, LossScalingState) for x in nodes):
        bare = [x for x in nodes if isinstance(x, LOSS_SCALE_TYPES)]
        if len(bare) == 1:
            return bare[0]
        if len(bare) > 1:
            raise ValueError(
                f"Expected one loss scale inside `state`, found {len(bare)}. "
                "Pass the sub-state that holds the one you mean."
            )
    return find_loss_scaling_state(state).loss_scale


def get_loss_scale(state: Any) -> jax.Array:
    """The current scale (a float32 scalar) held in ``state``.

    Args:
      state: an optimizer state containing a :class:`LossScalingState`, or a
        loss-scale value.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> tx = loss_scale.loss_scaling(optaxish.adam(1e-3))
      >>> loss_scale.get_loss_scale(tx.init(jnp.zeros(2)))
      Array(32768., dtype=float32)
    """
    return jnp.asarray(find_loss_scale(state).loss_scale, jnp.float32)


def scale_loss(loss: Any, state: Any) -> Any:
    """``loss * scale`` (the scale cast to the loss dtype), tf-keras ``get_scaled_loss``.

    ``loss`` may be a pytree (every leaf is scaled).

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> loss_scale.scale_loss(jnp.float32(3.0), loss_scale.StaticLossScale(4.0))
      Array(12., dtype=float32)
    """
    return find_loss_scale(state).scale(loss)


def unscale_gradients(grads: Any, state: Any) -> Any:
    """``grads / scale`` leafwise; dtypes and ``None`` leaves are kept.

    tf-keras ``get_unscaled_gradients``. Gradients unscaled here go to a
    wrapper built with ``unscale=False``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> ls = loss_scale.StaticLossScale(4.0)
      >>> loss_scale.unscale_gradients([jnp.array([8.0]), None], ls)
      [Array([2.], dtype=float32), None]
    """
    return find_loss_scale(state).unscale(grads)


def scaled_value_and_grad(
    fun: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
) -> Callable[..., Any]:
    """``jax.value_and_grad`` of the scaled loss, returning unscaled results.

    The returned function takes the optimizer state (or a loss-scale value)
    first, then ``fun``'s arguments: ``g(state, *args, **kwargs)``. It
    differentiates ``scale * fun(*args)`` (so small gradients survive float16)
    and returns ``(loss, grads)``, or ``((loss, aux), grads)`` with
    ``has_aux=True``, with the loss and gradients divided by the scale again.

    The gradients are already unscaled: pass them to a wrapper built with
    ``loss_scaling(..., unscale=False)``, which only checks them.

    Args:
      fun: the loss function; returns a scalar (or ``(scalar, aux)``).
      argnums: which positional arguments of ``fun`` to differentiate.
      has_aux: whether ``fun`` returns ``(loss, aux)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> from optaxish import loss_scale
      >>> tx = loss_scale.loss_scaling(optaxish.sgd(0.25), unscale=False)
      >>> params = jnp.array([1.0])
      >>> state = tx.init(params)
      >>> vg = loss_scale.scaled_value_and_grad(lambda p: jnp.sum(p**2))
      >>> loss, grads = vg(state, params)
      >>> loss, grads
      (Array(1., dtype=float32), Array([2.], dtype=float32))
      >>> updates, state = tx.update(grads, state, params)
      >>> optaxish.apply_updates(params, updates)
      Array([0.5], dtype=float32)
    """

    def scaled_fun(ls, *args, **kwargs):
        out = fun(*args, **kwargs)
        if has_aux:
            loss, aux = out
            return ls.scale(loss), (loss, aux)
        return ls.scale(out), out

    if isinstance(argnums, int):
        shifted: int | tuple[int, ...] = argnums + 1
    else:
        shifted = tuple(a + 1 for a in argnums)
    vg = jax.value_and_grad(scaled_fun, argnums=shifted, has_aux=True)

    def wrapped(state: Any, *args: Any, **kwargs: Any):
        ls = find_loss_scale(state)
        (scaled_loss, out), grads = vg(ls, *args, **kwargs)
        del scaled_loss
        grads = ls.unscale(grads)
        return out, grads

    return wrapped
