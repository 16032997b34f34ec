"""Gradient operations: adaptive (unit-wise) clipping, centralisation and
normalisation by the update norm."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from optaxish._base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformationExtraArgs,
    init_empty_state,
)
from optaxish._elementwise import mark_elementwise
from optaxish._norm_hint import known_global_norm
from optaxish._numerics import abs_sq
from optaxish.transforms._adaptive_utils import check_range
from optaxish.tree import global_norm

AdaptiveGradClipState = EmptyState

# Guards the division by a unit's update norm; the clipping branch is only
# taken when that norm exceeds the (positive) threshold, so it never engages
# for sensible thresholds (optax's value).
_DIV_EPS = 1e-6

_is_none = lambda x: x is None  # noqa: E731


def _normalise_axis(axis) -> int | tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    if isinstance(axis, Sequence) and all(
        isinstance(a, int) and not isinstance(a, bool) for a in axis
    ):
        return tuple(axis)
    raise ValueError(
        f"`axis` must be None, an int or a tuple of ints. Received: axis={axis!r}"
    )


def _unit_axes(shape: tuple[int, ...], axis) -> int | tuple[int, ...] | None:
    """The axes that one "unit" spans in a leaf of this shape.

    ``None`` means the whole leaf. Without an explicit ``axis`` the convention
    of Brock et al. (and optax) is used: a leaf with at most one non-trivial
    dimension is one unit; rank 2 and 3 leaves (``(in, out)`` linear and
    multi-head kernels) reduce over axis 0, so each output unit is its own
    unit; rank 4 and 5 leaves (HWIO and DHWIO convolutions) reduce over all
    but the last axis.
    """
    if axis is not None:
        return axis
    if sum(d != 1 for d in shape) <= 1:
        return None
    if len(shape) in (2, 3):
        return 0
    if len(shape) in (4, 5):
        return tuple(range(len(shape) - 1))
    raise ValueError(
        f"`adaptive_grad_clip` infers the unit axes only for leaves of rank "
        f"1 to 5; got a leaf of shape {shape}. Pass `axis` to choose them."
    )


def _unit_norm(x: jax.Array, axes) -> jax.Array:
    # Keeps the reduced axes (size 1), so the norm broadcasts against `x`.
    return jnp.sqrt(jnp.sum(abs_sq(x), axis=axes, keepdims=True))


def unitwise_norm(
    x: jax.typing.ArrayLike, axis: int | tuple[int, ...] | None = None
) -> jax.Array:
    """The L2 norm of each unit of ``x``, broadcast back to ``x``'s shape.

    The units of :func:`adaptive_grad_clip`: ``axis`` gives the axes one unit
    spans; ``None`` infers them from the rank (a leaf with at most one
    dimension longer than 1 is one unit, rank 2 and 3 reduce over axis 0,
    rank 4 and 5 over all axes but the last). As ``optax.transforms``.

    Raises:
      ValueError: for ``axis=None`` and a rank above 5, or a malformed ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.transforms import unitwise_norm
      >>> unitwise_norm(jnp.array([[3.0, 0.0], [4.0, 1.0]]))  # per column
      Array([[5., 1.],
             [5., 1.]], dtype=float32)
    """
    x = jnp.asarray(x)
    axes = _unit_axes(x.shape, _normalise_axis(axis))
    return jnp.broadcast_to(_unit_norm(x, axes), x.shape)


def unitwise_clip(
    g_norm: jax.typing.ArrayLike,
    max_norm: jax.typing.ArrayLike,
    grad: jax.typing.ArrayLike,
    div_eps: jax.typing.ArrayLike = _DIV_EPS,
) -> jax.Array:
    """``grad`` where ``g_norm < max_norm``, else ``grad * max_norm / g_norm``.

    The clipping step of :func:`adaptive_grad_clip`, for arrays of one shape
    (unit norms broadcast to it, as :func:`unitwise_norm` gives them);
    ``div_eps`` floors the divisor. As ``optax.transforms``.

    Raises:
      ValueError: when the three shapes differ.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish.transforms import unitwise_clip
      >>> g = jnp.array([3.0, 4.0])
      >>> unitwise_clip(jnp.full(2, 5.0), jnp.full(2, 1.0), g)
      Array([0.6, 0.8], dtype=float32)
    """
    shapes = {"g_norm": jnp.shape(g_norm), "max_norm": jnp.shape(max_norm)}
    for name, shape in shapes.items():
        if shape != jnp.shape(grad):
            raise ValueError(
                f"`{name}` must have the shape of `grad`. Received: {name} of "
                f"shape {shape}, grad of shape {jnp.shape(grad)}"
            )
    clipped = grad * (max_norm / jnp.maximum(g_norm, div_eps))
    return jnp.where(g_norm < max_norm, grad, clipped)


def adaptive_grad_clip(
    clipping: jax.typing.ArrayLike,
    eps: jax.typing.ArrayLike = 1e-3,
    axis: int | tuple[int, ...] | None = None,
) -> GradientTransformationExtraArgs:
    """Clips each unit's update to ``clipping`` times its parameter's norm (AGC).

    Adaptive gradient clipping (Brock et al., 2021). Every leaf is split into
    *units* (see ``axis``); with ``||.||`` the L2 norm over one unit,

    ``max_norm = clipping * max(||p||, eps)``

    and a unit's update ``g`` is kept when ``||g|| < max_norm``, else replaced
    by ``g * max_norm / max(||g||, 1e-6)``. The ``eps`` floor keeps
    zero-initialised parameters (biases) from freezing. optax's numbers.

    The unit-wise norm is not elementwise, so the transformation is not
    packable (:func:`optaxish.packing.packed` returns it unchanged).

    Args:
      clipping: the largest allowed ratio of a unit's update norm to its
        parameter norm (>= 0).
      eps: floor of the parameter norm (>= 0).
      axis: axis or axes a unit's norm is taken over, for every leaf. ``None``
        infers them from each leaf's rank: a leaf with at most one dimension
        longer than 1 is one unit, rank 2 and 3 leaves reduce over axis 0
        (linear and multi-head kernels), rank 4 and 5 leaves over all axes
        but the last (2-D and 3-D convolution kernels); other ranks need
        ``axis``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` whose ``update``
      needs ``params``; its state is an :class:`AdaptiveGradClipState` (an
      :class:`~optaxish.EmptyState`).

    Raises:
      ValueError: when ``clipping`` or ``eps`` is negative or ``axis`` is not
        an int or a tuple of ints; at update time, when ``params`` is missing
        or a leaf of rank 6 or more meets ``axis=None``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.adaptive_grad_clip(0.1)
      >>> p = jnp.array([3.0, 4.0])  # one unit, norm 5: max update norm 0.5
      >>> tx.update(jnp.array([0.0, 2.0]), tx.init(p), p)[0]
      Array([0. , 0.5], dtype=float32)

    References:
      Brock et al., `High-Performance Large-Scale Image Recognition Without
      Normalization <https://arxiv.org/abs/2102.06171>`_, 2021
    """
    check_range("clipping", clipping, 0)
    check_range("eps", eps, 0)
    axis = _normalise_axis(axis)

    def leaf(g, p):
        if g is None:
            return None
        axes = _unit_axes(jnp.shape(g), axis)
        g_norm = _unit_norm(g, axes)
        max_norm = clipping * jnp.maximum(_unit_norm(p, axes), eps)
        factor = jnp.where(
            g_norm < max_norm, 1.0, max_norm / jnp.maximum(g_norm, _DIV_EPS)
        )
        return (g * factor.astype(g.dtype)).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(NO_PARAMS_MSG)
        updates = jax.tree.map(leaf, updates, params, is_leaf=_is_none)
        return updates, state

    return GradientTransformationExtraArgs(init_empty_state, update_fn)


def centralize() -> GradientTransformationExtraArgs:
    """Subtracts from each update its mean over all axes but the first.

    Gradient centralisation (Yong et al., 2020): a leaf ``g`` of rank >= 2
    becomes ``g - mean(g, axis=(1, ..., ndim - 1))``, so each slice along the
    leading axis has zero mean; scalars and vectors pass through unchanged.
    optax's numbers. The means are per leaf, so the transformation is not
    packable.

    Returns:
      A stateless :class:`~optaxish.GradientTransformationExtraArgs` (its
      state is an :class:`~optaxish.EmptyState`).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.centralize()
      >>> g = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
      >>> tx.update(g, tx.init(g))[0]
      Array([[-1.,  0.,  1.],
             [-2., -1.,  3.]], dtype=float32)

    References:
      Yong et al., `Gradient Centralization: A New Optimization Technique for
      Deep Neural Networks <https://arxiv.org/abs/2004.01461>`_, 2020
    """

    def leaf(g):
        if jnp.ndim(g) < 2:
            return g
        mean = jnp.mean(g, axis=tuple(range(1, jnp.ndim(g))), keepdims=True)
        return (g - mean).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(leaf, updates), state

    return GradientTransformationExtraArgs(init_empty_state, update_fn)


def normalize_by_update_norm(
    scale_factor: jax.typing.ArrayLike = 1.0, eps: jax.typing.ArrayLike = 1e-6
) -> GradientTransformationExtraArgs:
    """Scales the updates to the global norm ``scale_factor`` (normalised steps).

    ``g <- g * scale_factor / (||g|| + eps)`` with ``||g||`` the L2 norm of
    all leaves together; ``scale_factor`` may be negative (a descent
    direction). optax's rule; optax divides by ``(||g|| + eps) /
    scale_factor`` where this multiplies by one scalar factor, so the numbers
    agree to within a rounding. Inside :func:`~optaxish.loss_scale.loss_scaling`
    the norm the wrapper already computed is reused. Packable: the norm is a
    sum over the whole tree.

    Args:
      scale_factor: the global norm of the output (its sign included).
      eps: added to the norm before dividing (>= 0).

    Returns:
      A stateless :class:`~optaxish.GradientTransformationExtraArgs`.

    Raises:
      ValueError: when ``eps`` is negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.normalize_by_update_norm(scale_factor=2.0, eps=0.0)
      >>> tx.update([jnp.array([3.0]), jnp.array([4.0])], tx.init(None))[0]
      [Array([1.2], dtype=float32), Array([1.6], dtype=float32)]
    """
    check_range("eps", eps, 0)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        g_norm = known_global_norm(updates)
        if g_norm is None:
            g_norm = global_norm(updates)
        # One scalar factor, multiplied in (see CONTRIBUTING: a divided copy
        # of the tree costs a second pass and a fresh buffer on CPU).
        factor = scale_factor / (g_norm + eps)
        updates = jax.tree.map(
            lambda g: (g * factor.astype(g.dtype)).astype(g.dtype), updates
        )
        return updates, state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )
