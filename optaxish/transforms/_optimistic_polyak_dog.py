"""Optimistic gradients, Polyak's step size and Distance over Gradients (DoG).

Three step-size rules with optax's names, defaults, state layout and numbers:
``scale_by_optimistic_gradient`` (a negative-momentum extrapolation),
``scale_by_polyak`` (which reads the loss from the ``value`` extra argument)
and ``scale_by_distance_over_gradients`` (layer-wise DoG).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import tree
from optaxish._base import (
    NO_PARAMS_MSG,
    GradientTransformationExtraArgs,
    init_empty_state,
)
from optaxish._elementwise import mark_elementwise
from optaxish._errors import check_same_shapes, check_same_structure
from optaxish._norm_hint import known_global_norm
from optaxish.transforms._adaptive_utils import (
    cast_like,
    check_choice,
    check_range,
    is_plain_number,
    map_updates,
)

_is_none = lambda x: x is None  # noqa: E731


def _check_not_schedule(name: str, value: Any) -> None:
    if callable(value):
        raise ValueError(
            f"`{name}` must be a number or a scalar array, not a schedule. "
            f"Received: {name}={value!r}"
        )


class ScaleByOptimisticGradientState(NamedTuple):
    """State of :func:`scale_by_optimistic_gradient`.

    Attributes:
      is_initial_step: a bool scalar, ``True`` until the first update.
      previous_gradient: the previous step's incoming updates, one array per
        parameter (zeros before the first update).
    """

    is_initial_step: jax.Array  # shape=(), bool
    previous_gradient: Any


def scale_by_optimistic_gradient(
    alpha: jax.typing.ArrayLike = 1.0, beta: jax.typing.ArrayLike = 1.0
) -> GradientTransformationExtraArgs:
    r"""Generalised optimistic gradient: ``u_t = (alpha + beta) g_t - beta g_{t-1}``.

    The previous gradient acts as a negative momentum, an extrapolation that
    approximates the extra-gradient method with one gradient per step. At the
    first step there is no previous gradient and ``g_{t-1} = g_t`` is used,
    so the first output is ``alpha * g_1`` (optax's convention). Used by
    :func:`~optaxish.optimistic_gradient_descent`,
    :func:`~optaxish.optimistic_adam` and :func:`~optaxish.optimistic_adam_v2`.

    Args:
      alpha: the coefficient of the current gradient.
      beta: the optimism: the coefficient of the gradient difference
        ``g_t - g_{t-1}``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`.

    Raises:
      ValueError: if ``alpha`` or ``beta`` is a schedule (they are constants,
        as in optax).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_optimistic_gradient(alpha=1.0, beta=0.5)
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([1.0, 2.0]), state)
      >>> u  # first step: alpha * g
      Array([1., 2.], dtype=float32)
      >>> tx.update(jnp.array([3.0, 2.0]), state)[0]  # 1.5 g - 0.5 g_prev
      Array([4., 2.], dtype=float32)

    References:
      Mokhtari et al, `A Unified Analysis of Extra-gradient and Optimistic
      Gradient Methods for Saddle Point Problems: Proximal Point Approach
      <https://arxiv.org/abs/1901.08511>`_, 2019
    """
    _check_not_schedule("alpha", alpha)
    _check_not_schedule("beta", beta)

    def init_fn(params):
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.asarray(True),
            previous_gradient=tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(
            state.previous_gradient, updates, "state.previous_gradient", "updates"
        )

        def step(g, prev):
            # No previous gradient at the first step: use the current one.
            prev = jnp.where(state.is_initial_step, g, prev)
            return (alpha + beta) * g - beta * prev

        new_updates = map_updates(step, updates, state.previous_gradient)
        new_state = ScaleByOptimisticGradientState(
            is_initial_step=jnp.zeros_like(state.is_initial_step),
            previous_gradient=cast_like(updates, state.previous_gradient),
        )
        return new_updates, new_state

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))


_POLYAK_VARIANTS = ("sps", "sps+")


def scale_by_polyak(
    f_min: jax.typing.ArrayLike = 0.0,
    max_learning_rate: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 0.0,
    variant: str = "sps",
) -> GradientTransformationExtraArgs:
    r"""Scales the updates by Polyak's step size, from the loss ``value``.

    With ``f`` the loss passed as ``update(..., value=f)`` and ``g`` the
    incoming updates (the whole tree seen as one vector)::

        step = min((f - f_min) / (||g||^2 + eps), max_learning_rate)

    and the output is ``step * g``; the step is 0 when
    ``||g||^2 + eps`` is at most float64's machine epsilon. With
    ``variant="sps+"`` the gap ``f - f_min`` is first clipped at 0. The
    output is not negated: chain it with a descent step such as
    ``scale_by_learning_rate(1.0)`` (:func:`~optaxish.polyak_sgd` does).
    Only sums over the whole tree are taken, so it runs on packed buffers.

    Args:
      f_min: a lower bound on the loss (:math:`f^\star`; 0 for models that
        interpolate the data).
      max_learning_rate: the largest step, ``>= 0``.
      eps: added to the squared norm in the denominator, ``>= 0``.
      variant: ``"sps"`` or ``"sps+"`` (non-negative gap).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose ``update``
      needs the keyword argument ``value`` (the loss at the current params).

    Raises:
      ValueError: when ``max_learning_rate`` or ``eps`` is a negative number
        or ``variant`` is unknown (optax raises only at the first update).
      TypeError: from ``update``, when ``value`` is not given.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_polyak()
      >>> g = jnp.array([1.0, 1.0])
      >>> tx.update(g, tx.init(g), value=0.5)[0]  # step 0.5 / 2
      Array([0.25, 0.25], dtype=float32)

    References:
      Loizou et al, `Stochastic Polyak Step-size for SGD: An Adaptive Learning
      Rate for Fast Convergence <https://arxiv.org/abs/2002.10542>`_, 2021

      Garrigos et al, `Function Value Learning: Adaptive Learning Rates Based
      on the Polyak Stepsize and Function Splitting in ERM
      <https://arxiv.org/abs/2307.14528>`_, 2023
    """
    check_range("max_learning_rate", max_learning_rate, 0.0)
    check_range("eps", eps, 0.0)
    check_choice("variant", variant, _POLYAK_VARIANTS)
    tiny = jnp.finfo(float).eps  # optax's threshold (float64's epsilon)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise TypeError(
                "scale_by_polyak needs the loss: call "
                "`update(updates, state, params, value=loss)`. Received: "
                "value=None. If you passed it, an optax combinator (optax.chain, "
                "optax.MultiSteps, optax.inject_hyperparams, ...) dropped it: "
                "optax passes keyword extras only to its own "
                "GradientTransformationExtraArgs class. Use optaxish's "
                "combinators, or wrap this transformation as "
                "`optax.GradientTransformationExtraArgs(*tx)`."
            )
        g_norm = known_global_norm(updates)
        if g_norm is None:
            sq_norm = tree.norm(updates, squared=True)
        else:
            sq_norm = jnp.square(g_norm)
        gap = jnp.asarray(value - f_min).astype(sq_norm.dtype)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denom = sq_norm + eps
        step = jnp.where(
            denom <= tiny, 0.0, jnp.minimum(gap / denom, max_learning_rate)
        )
        updates = jax.tree.map(lambda t: t * step.astype(t.dtype), updates)
        return updates, state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )


class ScaleByDistanceOverGradientsState(NamedTuple):
    """State of :func:`scale_by_distance_over_gradients`.

    Attributes:
      max_dist: per parameter, the largest distance ``||x_t - x_0||`` seen so
        far (a scalar in the parameter's dtype), floored by its initial value
        ``reps_rel * (1 + ||x_0||)``.
      grad_sum_of_squares: per parameter, the running sum of ``||g_t||^2``
        (shape ``(1,)``, in the default float dtype, as in optax).
      init_params: the initial parameters ``x_0``, in ``param_dtype``.
    """

    max_dist: Any
    grad_sum_of_squares: Any
    init_params: Any


def _l2(x: jax.Array) -> jax.Array:
    # At least float32: a float16 sum of squares overflows for large leaves.
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jnp.sqrt(jnp.sum(jnp.square(x)))


def scale_by_distance_over_gradients(
    reps_rel: jax.typing.ArrayLike = 1e-6,
    eps: jax.typing.ArrayLike = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: jax.typing.ArrayLike = 1.0,
) -> GradientTransformationExtraArgs:
    r"""Distance over Gradients (layer-wise DoG): a learning-rate-free step size.

    For each parameter array (layer) ``x`` with initial value ``x_0`` and
    gradient ``g_t``::

        r_t = max(reps_rel * (1 + ||x_0||), max_{s <= t} ||x_s - x_0||)
        G_t = sum_{s <= t} ||g_s||^2
        u_t = global_scale * r_t / sqrt(G_t + eps) * g_t

    The output has the sign of ``g``: chain it with ``scale(-1)`` or pass
    ``global_scale=-1.0`` to descend. The state keeps one copy of the initial
    parameters and two scalars per array (LDoG in the paper). The authors
    recommend averaging the iterates.

    Deviation from optax: optax's sum of squares has shape ``(1,)``, which
    turns the update of a scalar (shape ``()``) parameter into shape ``(1,)``;
    here every update keeps its gradient's shape (the state is optax's).
    ``init`` copies the initial parameters, where optax's state holds the
    parameters' own arrays, so that a jitted step can donate both the
    parameters and the state.

    Args:
      reps_rel: sets the first step, ``r_0 = reps_rel * (1 + ||x_0||)``;
        ``> 0``. The authors recommend 1e-4 for models with batch norm, 1e-6
        otherwise.
      eps: added to ``G_t`` under the square root, ``>= 0``.
      param_dtype: dtype of the stored initial parameters (``None`` keeps the
        parameters' dtype).
      global_scale: multiplies every update (typically 1.0 or -1.0).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose ``update``
      needs ``params``.

    Raises:
      ValueError: if ``reps_rel`` is not a positive number or ``eps`` is
        negative; from ``update``, when ``params`` is ``None``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0)
      >>> x = jnp.array([3.0, 4.0])  # r_0 = 0.1 * (1 + 5)
      >>> tx.update(jnp.array([0.0, 2.0]), tx.init(x), x)[0]  # 0.6 / 2 * g
      Array([0. , 0.6], dtype=float32)

    References:
      Ivgi et al, `DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
      Size Schedule <https://arxiv.org/abs/2302.12022>`_, 2023
    """
    if is_plain_number(reps_rel) and not reps_rel > 0:
        raise ValueError(f"`reps_rel` must be > 0. Received: reps_rel={reps_rel!r}")
    check_range("eps", eps, 0.0)

    def init_fn(params):
        def first_dist(x):
            x = jnp.asarray(x)
            return (reps_rel * (1 + _l2(x))).astype(x.dtype)

        return ScaleByDistanceOverGradientsState(
            max_dist=jax.tree.map(first_dist, params),
            grad_sum_of_squares=jax.tree.map(lambda x: jnp.zeros(1), params),
            # Copies (optax keeps the params' own arrays): donating the params
            # and the state to one jitted step would donate a buffer twice.
            init_params=jax.tree.map(jnp.copy, tree.cast(params, param_dtype)),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG)
        check_same_structure(state.max_dist, updates, "state.max_dist", "updates")

        def new_dist(d, x, x0):
            if d is None:
                return None
            return jnp.maximum(d, _l2(x - x0)).astype(d.dtype)

        def new_sos(s, g):
            if s is None:
                return None
            g = g.astype(jnp.promote_types(g.dtype, s.dtype))
            return (s + jnp.sum(jnp.square(g))).astype(s.dtype)

        max_dist = jax.tree.map(
            new_dist, state.max_dist, params, state.init_params, is_leaf=_is_none
        )
        sos = jax.tree.map(
            new_sos, state.grad_sum_of_squares, updates, is_leaf=_is_none
        )

        def scale(g, d, s):
            # One factor per leaf, squeezed to a scalar so that a scalar
            # leaf's update keeps shape () (optax's has shape (1,)).
            eta = global_scale * (d / jnp.sqrt(s + eps))
            return g * jnp.reshape(eta, ()).astype(g.dtype)

        updates = map_updates(scale, updates, max_dist, sos)
        return updates, ScaleByDistanceOverGradientsState(
            max_dist=max_dist, grad_sum_of_squares=sos, init_params=state.init_params
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)
