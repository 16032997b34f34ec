"""Rprop, Adan and SM3 scalings (optax's ``scale_by_rprop``, ``scale_by_adan``
and ``scale_by_sm3``).

Rprop and Adan are per-element (packable); SM3 keeps one accumulator per axis
of each leaf, so its numbers depend on the leaf shapes and it is not.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics, tree
from optaxish._base import GradientTransformationExtraArgs
from optaxish._elementwise import mark_elementwise
from optaxish._errors import check_same_shapes, check_same_structure
from optaxish.transforms._adaptive_utils import (
    cast_like,
    check_range,
    is_plain_number,
    map_updates,
)

_is_none = lambda x: x is None  # noqa: E731


def _map(fn, first: Any, *rest: Any) -> Any:
    """``fn`` per leaf of ``first`` (the others may hold subtrees there)."""
    return jax.tree.map(
        lambda x, *r: None if x is None else fn(x, *r), first, *rest, is_leaf=_is_none
    )


# ----------------------------------------------------------------------------
# Rprop


class ScaleByRpropState(NamedTuple):
    """State of :func:`scale_by_rprop`.

    Attributes:
      step_sizes: the current step size of every element, one array per param.
      prev_updates: the previous output (``step_size * sign(g)``, or 0 after a
        sign change), one array per param.
    """

    step_sizes: Any
    prev_updates: Any


def scale_by_rprop(
    learning_rate: jax.typing.ArrayLike,
    eta_minus: jax.typing.ArrayLike = 0.5,
    eta_plus: jax.typing.ArrayLike = 1.2,
    min_step_size: jax.typing.ArrayLike = 1e-6,
    max_step_size: jax.typing.ArrayLike = 50.0,
) -> GradientTransformationExtraArgs:
    r"""Resilient backpropagation: per-element step sizes driven by signs only.

    Every element keeps its own step size ``s`` (initially ``learning_rate``)
    and compares the sign of its gradient ``g`` with the sign of its previous
    output ``p``:

    * same sign: ``s <- clip(eta_plus * s, min_step_size, max_step_size)``,
      output ``s * sign(g)``;
    * opposite signs: ``s <- clip(eta_minus * s, ...)``, output 0 (so the
      next step restarts from "no previous sign": Rprop without
      weight-backtracking, iRprop-);
    * either is zero: ``s`` unchanged, output ``s * sign(g)``.

    The output points along the gradient: :func:`~optaxish.rprop` appends
    ``scale(-1)`` to descend.

    Deviations from optax 0.2.8 (both bugs there):

    * optax emits the *previous* step's output (zeroed on a sign change)
      instead of the one it has just computed and stored in ``prev_updates``:
      its updates lag one step behind and its first update is 0. Here the
      update is the current one, as in the paper and ``torch.optim.Rprop``;
      the state is the same as optax's.
    * optax decides the case from the sign of the product ``g * p``, which
      underflows to 0 for small values in float16 (the step size then
      freezes). Here the signs are compared directly.

    Args:
      learning_rate: the initial step size, ``>= 0``.
      eta_minus: factor applied to the step size on a sign change, in
        ``[0, 1]``.
      eta_plus: factor applied to the step size when the sign is kept,
        ``>= 1``.
      min_step_size: lower bound of the step sizes, ``>= 0``.
      max_step_size: upper bound of the step sizes, ``>= min_step_size``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` with state
      :class:`ScaleByRpropState`.

    Raises:
      ValueError: for an out-of-range plain-number argument.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_rprop(learning_rate=0.1)
      >>> state = tx.init(jnp.zeros(2))
      >>> u, state = tx.update(jnp.array([1.0, -2.0]), state)
      >>> u, state = tx.update(jnp.array([3.0, 2.0]), state)
      >>> u, state.step_sizes
      (Array([0.12, 0.  ], dtype=float32), Array([0.12, 0.05], dtype=float32))

    References:
      Riedmiller and Braun, `A direct adaptive method for faster
      backpropagation learning: the RPROP algorithm
      <https://ieeexplore.ieee.org/document/298623>`_, 1993

      Igel and Hüsken, `Empirical evaluation of the improved Rprop learning
      algorithms <https://doi.org/10.1016/S0925-2312(01)00700-7>`_, 2003
    """
    check_range("learning_rate", learning_rate, 0.0)
    check_range("eta_minus", eta_minus, 0.0, 1.0, high_inclusive=True)
    check_range("eta_plus", eta_plus, 1.0)
    check_range("min_step_size", min_step_size, 0.0)
    if is_plain_number(min_step_size):
        check_range("max_step_size", max_step_size, min_step_size)

    def init_fn(params):
        return ScaleByRpropState(
            step_sizes=tree.full_like(params, learning_rate),
            prev_updates=tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.step_sizes, updates, "state.step_sizes", "updates")
        # +1: same sign, -1: flipped, 0: no sign to compare (NaN stays NaN).
        agreement = _map(
            lambda g, p: jnp.sign(g) * jnp.sign(p), updates, state.prev_updates
        )

        def new_size(a, s):
            grown = jnp.clip(
                s * jnp.where(a > 0, eta_plus, eta_minus), min_step_size, max_step_size
            )
            return jnp.where(a == 0, s, grown).astype(s.dtype)

        step_sizes = _map(new_size, agreement, state.step_sizes)
        updates = map_updates(
            lambda g, a, s: jnp.where(a < 0, 0, s * jnp.sign(g)),
            updates,
            agreement,
            step_sizes,
        )
        return updates, ScaleByRpropState(
            step_sizes=step_sizes,
            prev_updates=cast_like(updates, state.prev_updates),
        )

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))


# ----------------------------------------------------------------------------
# Adan


class ScaleByAdanState(NamedTuple):
    """State of :func:`scale_by_adan` (optax's field names and order).

    Attributes:
      m: moving average of the gradients, one array per param.
      v: moving average of the gradient differences ``g_t - g_{t-1}``.
      n: moving average of ``(g_t + (1 - b2) (g_t - g_{t-1}))**2``.
      g: the previous gradient.
      t: number of updates so far (int32 scalar).
    """

    m: Any
    v: Any
    n: Any
    g: Any
    t: jax.Array  # shape=(), int32


def scale_by_adan(
    b1: jax.typing.ArrayLike = 0.98,
    b2: jax.typing.ArrayLike = 0.92,
    b3: jax.typing.ArrayLike = 0.99,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
) -> GradientTransformationExtraArgs:
    r"""Rescales updates with Adan (adaptive Nesterov momentum), optax's numbers.

    With ``d_t = g_t - g_{t-1}`` (0 at the first step):

    .. math::
      m_t = b_1 m + (1 - b_1) g_t, \quad v_t = b_2 v + (1 - b_2) d_t, \quad
      n_t = b_3 n + (1 - b_3) (g_t + (1 - b_2) d_t)^2,

    .. math::
      u_t = (\hat m_t + (1 - b_2) \hat v_t) / (\sqrt{\hat n_t + \epsilon_{root}}
      + \epsilon),

    where the hats are the bias-corrected averages (``m_t / (1 - b_1^t)``, ...).
    The ``b``'s are the decays of the averages (the paper's ``1 - beta``).

    Args:
      b1: decay of the average of the gradients, in ``[0, 1)``.
      b2: decay of the average of the gradient differences, in ``[0, 1)``.
      b3: decay of the average of the squared term, in ``[0, 1)``.
      eps: added to the denominator outside the square root, ``>= 0``.
      eps_root: added inside the square root, ``>= 0``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` with state
      :class:`ScaleByAdanState`.

    Raises:
      ValueError: for an out-of-range plain-number argument.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_adan()
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([1.0, -2.0]), state)
      >>> updates, state.t
      (Array([ 1., -1.], dtype=float32), Array(1, dtype=int32))

    References:
      Xie et al., `Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models <https://arxiv.org/abs/2208.06677>`_, 2022
    """
    check_range("b1", b1, 0.0, 1.0)
    check_range("b2", b2, 0.0, 1.0)
    check_range("b3", b3, 0.0, 1.0)
    check_range("eps", eps, 0.0)
    check_range("eps_root", eps_root, 0.0)

    def init_fn(params):
        zeros = lambda: tree.zeros_like(params)  # noqa: E731
        return ScaleByAdanState(
            m=zeros(), v=zeros(), n=zeros(), g=zeros(), t=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.m, updates, "state.m", "updates")
        first = state.t == 0
        diff = _map(
            lambda g, prev: jnp.where(first, jnp.zeros_like(g), g - prev),
            updates,
            state.g,
        )
        m = tree.update_moment(updates, state.m, b1, 1)
        v = tree.update_moment(diff, state.v, b2, 1)
        nesterov = _map(lambda g, d: g + (1 - b2) * d, updates, diff)
        n = tree.update_moment_per_elem_norm(nesterov, state.n, b3, 2)
        t = _numerics.safe_increment(state.t)
        m_hat = tree.bias_correction(m, b1, t, reciprocal=True)
        v_hat = tree.bias_correction(v, b2, t, reciprocal=True)
        n_hat = tree.bias_correction(n, b3, t, reciprocal=True)
        out = map_updates(
            lambda g, mh, vh, nh: (
                (mh + (1 - b2) * vh) / (jnp.sqrt(nh + eps_root) + eps)
            ),
            updates,
            m_hat,
            v_hat,
            n_hat,
        )
        return out, ScaleByAdanState(
            m=cast_like(m, state.m),
            v=cast_like(v, state.v),
            n=cast_like(n, state.n),
            g=cast_like(updates, state.g),
            t=t,
        )

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))


# ----------------------------------------------------------------------------
# SM3


class ScaleBySM3State(NamedTuple):
    """State of :func:`scale_by_sm3` (optax's field names).

    Attributes:
      mu: the SM3 accumulators: for each param leaf a list with one vector per
        axis (the maximum over the other axes of the last accumulated
        squares); a leaf of rank 0 or 1 keeps one full-size accumulator.
      nu: the momentum (moving average of the preconditioned gradients), one
        array per param.
    """

    mu: Any
    nu: Any


def _axis_zeros(x: jax.Array, axis: int) -> jax.Array:
    # Shaped (and sharded) like a reduction of `x` over its other axes.
    others = tuple(i for i in range(x.ndim) if i != axis)
    return jnp.zeros_like(jax.eval_shape(lambda y: jnp.sum(y, axis=others), x))


def _sm3_accumulators(x: Any) -> list[jax.Array]:
    x = jnp.asarray(x)
    if x.ndim < 2:
        return [jnp.zeros_like(x)]
    return [_axis_zeros(x, i) for i in range(x.ndim)]


def _sm3_as_list(accs: Any) -> list[jax.Array]:
    """A leaf's accumulators as a list, read by position.

    flax ``nnx.Optimizer`` hands the state back with each list turned into a
    dict keyed ``0, 1, ...``; optax reads both the same way.
    """
    return [accs[i] for i in range(len(accs))]


def _sm3_cover_min(g: jax.Array, accs: list[jax.Array]) -> jax.Array:
    """Per element, the smallest accumulator of the sets covering it."""
    if g.ndim < 2:
        return accs[0]
    rows = [
        jnp.reshape(accs[i], [1] * i + [g.shape[i]] + [1] * (g.ndim - i - 1))
        for i in range(g.ndim)
    ]
    return functools.reduce(jnp.minimum, rows)


def _sm3_axis_maxima(acc: jax.Array) -> list[jax.Array]:
    if acc.ndim < 2:
        return [acc]
    # An empty axis has no maximum: 0 (accumulators are >= 0) instead of an error.
    initial = 0 if acc.size == 0 else None
    return [
        jnp.max(acc, axis=tuple(j for j in range(acc.ndim) if j != i), initial=initial)
        for i in range(acc.ndim)
    ]


def scale_by_sm3(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 1.0,
    eps: jax.typing.ArrayLike = 1e-8,
) -> GradientTransformationExtraArgs:
    r"""Rescales updates with SM3, a memory-light Adagrad (optax's numbers).

    A leaf of shape ``(d_1, ..., d_k)`` keeps one accumulator vector per
    axis, ``k`` vectors of sizes ``d_i`` instead of a full second moment. At
    each step, for every element ``j``:

    .. math::
      a_j = c\, g_j^2 + b_2 \min_{i} \mu_i[j_i], \quad
      u_j = g_j / \sqrt{a_j + \epsilon} \;(0 \text{ where } a_j = 0),

    with ``c = 1 - b2`` (``c = 1`` when ``b2 = 1``: plain sums, the SM3-II of
    the paper), then ``mu_i <- max of a over the axes other than i`` and the
    output is the momentum ``nu <- b1 nu + (1 - b1) u``.

    Leaves of rank 0 or 1 keep a full accumulator (``mu`` holds one array of
    the leaf's shape). Deviation from optax: optax fails on rank-0 (scalar)
    leaves; here they are treated as rank 1. Complex params are rejected, as
    in optax.

    Args:
      b1: decay of the momentum ``nu``, in ``[0, 1]``.
      b2: decay of the accumulators, in ``[0, 1]`` (1: no decay).
      eps: added inside the square root, ``>= 0``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` with state
      :class:`ScaleBySM3State`.

    Raises:
      ValueError: for an out-of-range plain-number argument, or (at ``init``)
        complex params.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_sm3(b1=0.0)
      >>> state = tx.init(jnp.zeros((2, 3)))
      >>> g = jnp.array([[3.0, 0.0, 1.0], [4.0, 2.0, 0.0]])
      >>> updates, state = tx.update(g, state)
      >>> [a.tolist() for a in state.mu]  # per-row and per-column maxima of g**2
      [[9.0, 16.0], [16.0, 4.0, 1.0]]
      >>> updates
      Array([[1., 0., 1.],
             [1., 1., 0.]], dtype=float32)

    References:
      Anil et al., `Memory-Efficient Adaptive Optimization
      <https://arxiv.org/abs/1901.11150>`_, 2019
    """
    check_range("b1", b1, 0.0, 1.0, high_inclusive=True)
    check_range("b2", b2, 0.0, 1.0, high_inclusive=True)
    check_range("eps", eps, 0.0)
    if is_plain_number(b2):
        new_weight = 1.0 if b2 == 1.0 else 1.0 - b2
    else:
        new_weight = jnp.where(b2 == 1.0, 1.0, 1.0 - b2)

    def init_fn(params):
        if any(jnp.iscomplexobj(x) for x in jax.tree.leaves(params)):
            raise ValueError("`scale_by_sm3` does not support complex parameters.")
        return ScaleBySM3State(
            mu=jax.tree.map(_sm3_accumulators, params),
            nu=tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_structure(state.nu, updates, "state.nu", "updates")
        old_mu = _map(lambda g, accs: _sm3_as_list(accs), updates, state.mu)
        acc = _map(
            lambda g, accs: new_weight * g**2 + b2 * _sm3_cover_min(g, accs),
            updates,
            old_mu,
        )
        preconditioned = _map(
            lambda g, a: g * jnp.where(a > 0, jax.lax.rsqrt(a + eps), 0.0), updates, acc
        )
        nu = tree.update_moment(preconditioned, state.nu, b1, 1)
        mu = _map(_sm3_axis_maxima, acc)
        return map_updates(lambda g, n: n, updates, nu), ScaleBySM3State(
            mu=cast_like(mu, old_mu), nu=cast_like(nu, state.nu)
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)
