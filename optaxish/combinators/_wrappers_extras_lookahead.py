"""Lookahead: a fast optimizer whose parameters are pulled back, every few
steps, towards a slowly moving copy (Zhang et al., 2019)."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics
from optaxish._base import (
    GradientTransformationExtraArgs,
    Params,
    with_extra_args_support,
)
from optaxish.combinators._wrappers_extras import as_int32, check_positive_int
from optaxish.transforms._adaptive_utils import check_range
from optaxish.tree._state import is_params_placeholder

_logger = logging.getLogger(__name__)


class LookaheadState(NamedTuple):
    """State of :func:`lookahead`.

    Attributes:
      fast_state: the fast optimizer's state.
      steps_since_sync: fast steps since the last synchronization, in
        ``[0, sync_period)`` (int32 scalar).
    """

    fast_state: Any
    steps_since_sync: jax.Array


class LookaheadParams(NamedTuple):
    """The fast and slow parameters of :func:`lookahead` (a pytree).

    Compute the gradients at ``fast``; evaluate (and serve) ``slow``, which
    generalizes better. ``optaxish.apply_updates(params, updates)`` updates both
    with the :class:`LookaheadParams` of updates that ``lookahead`` returns.

    Attributes:
      fast: the parameters the fast optimizer steps (take gradients here).
      slow: the slow parameters, moved only at synchronizations.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> params = optaxish.LookaheadParams.init_synced(jnp.ones(2))
      >>> params.fast is params.slow
      True

    References:
      Zhang et al., `Lookahead Optimizer: k steps forward, 1 step back
      <https://arxiv.org/abs/1907.08610>`_, 2019.
    """

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        """Fast and slow parameters both set to ``params``.

        Examples:
          >>> import jax.numpy as jnp
          >>> import optaxish
          >>> optaxish.LookaheadParams.init_synced(jnp.zeros(1)).slow
          Array([0.], dtype=float32)
        """
        return cls(fast=params, slow=params)


def lookahead(
    fast_optimizer: Any,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformationExtraArgs:
    """Lookahead: ``sync_period`` fast steps forward, then one step back.

    ``fast_optimizer`` steps the fast parameters; every ``sync_period``-th
    step, the slow parameters move towards the fast ones,
    ``slow <- slow + slow_step_size * (fast - slow)``, and the fast parameters
    restart from the new slow ones. One ``update`` does one fast step (and the
    synchronization when it is due), returning a :class:`LookaheadParams` of
    updates for ``apply_updates``:

    * between synchronizations: ``fast += u`` and ``slow += 0``;
    * at a synchronization, with ``d = fast + u - slow``:
      ``slow += slow_step_size * d`` and ``fast += u - (1 - slow_step_size) * d``.

    So the parameters must be a :class:`LookaheadParams`, gradients must be
    taken at ``params.fast``, and the returned updates must be applied
    unchanged (anything after ``lookahead`` in a chain breaks the sync).

    Deviations from optax: the updates keep the gradients' dtype, and
    ``reset_state`` selects the fast optimizer's fresh state rather than
    mixing it in arithmetically (same numbers, but random keys and a NaN in
    the old state are handled). The numbers are optax's.

    Args:
      fast_optimizer: the optimizer of the inner loop.
      sync_period: fast steps between synchronizations (an integer >= 1).
      slow_step_size: how far the slow parameters move towards the fast ones
        at a synchronization, in ``[0, 1]`` (``alpha`` in the paper).
      reset_state: re-initialize the fast optimizer's state at each
        synchronization.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`; its state is a
      :class:`LookaheadState`. ``init`` takes a :class:`LookaheadParams` (or,
      with a logged warning, the fast parameters alone); ``update`` needs the
      :class:`LookaheadParams`.

    Raises:
      ValueError: if ``sync_period`` is not an integer >= 1 or
        ``slow_step_size`` is outside ``[0, 1]``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> opt = optaxish.lookahead(optaxish.sgd(0.1), sync_period=2,
      ...                          slow_step_size=0.5)
      >>> params = optaxish.LookaheadParams.init_synced(jnp.array([1.0]))
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     grads = jax.grad(lambda p: jnp.sum(p**2))(params.fast)
      ...     updates, state = opt.update(grads, state, params)
      ...     params = optaxish.apply_updates(params, updates)
      >>> params.fast, params.slow
      (Array([0.82], dtype=float32), Array([0.82], dtype=float32))

    References:
      Zhang et al., `Lookahead Optimizer: k steps forward, 1 step back
      <https://arxiv.org/abs/1907.08610>`_, 2019.
    """
    check_positive_int("sync_period", sync_period)
    check_range("slow_step_size", slow_step_size, 0.0, 1.0, high_inclusive=True)
    fast_optimizer = with_extra_args_support(fast_optimizer)

    def init_fn(params):
        fast = getattr(params, "fast", None)
        if fast is None and is_params_placeholder(params):
            fast = params  # `tree.map_params`: nothing to warn about
        elif fast is None:
            # As optax: let code that passes plain parameters to `init` work.
            _logger.warning(
                "`params` has no attribute `fast`: assuming that only the fast "
                "parameters were passed to `lookahead`'s `init`."
            )
            fast = params
        return LookaheadState(
            fast_state=fast_optimizer.init(fast),
            steps_since_sync=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        if params is None or not hasattr(params, "fast"):
            raise ValueError(
                "`lookahead` needs the fast and slow parameters: call "
                "`update(updates, state, params)` with `params` a "
                f"`LookaheadParams`. Received: params of type {type(params).__name__}"
            )
        fast_updates, fast_state = fast_optimizer.update(
            updates, state.fast_state, params.fast, **extra_args
        )
        period = as_int32(sync_period)
        sync = state.steps_since_sync == period - 1

        def slow_step(fast, u, slow):
            d = fast + u - slow
            return jnp.where(sync, slow_step_size * d, jnp.zeros_like(d)).astype(
                u.dtype
            )

        def fast_step(fast, u, slow):
            d = fast + u - slow
            return jnp.where(sync, u - (1 - slow_step_size) * d, u).astype(u.dtype)

        slow_u = jax.tree.map(slow_step, params.fast, fast_updates, params.slow)
        fast_u = jax.tree.map(fast_step, params.fast, fast_updates, params.slow)
        if reset_state:
            fresh = fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(
                lambda old, new: jnp.where(sync, new, old), fast_state, fresh
            )
        steps = _numerics.safe_increment(state.steps_since_sync) % period
        return LookaheadParams(fast=fast_u, slow=slow_u), LookaheadState(
            fast_state=fast_state, steps_since_sync=steps.astype(jnp.int32)
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)
