"""Adam and AMSGrad scalings, with the tf-keras variants as options.

One implementation covers optax's ``scale_by_adam`` (plain and Nesterov),
``scale_by_amsgrad``, tf-keras' "epsilon-hat" Adam and AMSGrad, and the
Nadam of tf-keras / Keras 3 with Dozat's momentum schedule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics, tree
from optaxish._base import GradientTransformationExtraArgs
from optaxish._elementwise import mark_elementwise
from optaxish._errors import check_same_shapes
from optaxish.transforms._adaptive_utils import (
    buffer_like,
    canonical_dtype,
    cast_like,
    check_range,
    map_updates,
)


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam` (also used by ``scale_by_adamax``,
    ``scale_by_radam`` and ``scale_by_yogi``, as in optax).

    Attributes:
      count: number of updates so far (int32 scalar).
      mu: first moment (moving average of the gradients), one array per param.
      nu: second moment (moving average of the squared gradients; for
        Adamax the moving maximum of ``|g|``), one array per param.
    """

    count: jax.Array  # shape=(), int32
    mu: Any
    nu: Any


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_amsgrad` and ``scale_by_adam(amsgrad=True)``.

    Attributes:
      count: number of updates so far (int32 scalar).
      mu: first moment, one array per param.
      nu: second moment, one array per param.
      nu_max: running maximum of the (bias-corrected or raw) second moment.
    """

    count: jax.Array  # shape=(), int32
    mu: Any
    nu: Any
    nu_max: Any


class ScaleByNadamState(NamedTuple):
    """State of ``scale_by_adam(nesterov=True, momentum_schedule_decay=...)``.

    Attributes:
      count: number of updates so far (int32 scalar).
      mu: first moment, one array per param.
      nu: second moment, one array per param.
      mu_product: product of the scheduled momentum coefficients so far
        (float32 scalar, starts at 1); tf-keras calls it ``momentum_cache``.
        A state given a float64 one keeps it, advanced in float64 (the
        Keras-style ``Nadam`` does so for a float64 first variable).
    """

    count: jax.Array  # shape=(), int32
    mu: Any
    nu: Any
    mu_product: jax.Array  # shape=(), float32


def check_adam_args(b1: Any, b2: Any, eps: Any, eps_root: Any) -> None:
    """Eager checks shared by the Adam-like transforms (plain numbers only)."""
    check_range("b1", b1, 0.0, 1.0)
    check_range("b2", b2, 0.0, 1.0)
    check_range("eps", eps, 0.0)
    check_range("eps_root", eps_root, 0.0)


def nesterov_mu_hat(updates: Any, mu: Any, b1: Any, count: jax.Array) -> Any:
    """Dozat's Nesterov estimate with a constant ``b1`` (optax's ``nesterov``)."""
    return jax.tree.map(
        lambda m, g: b1 * m + (1 - b1) * g,
        tree.bias_correction(mu, b1, _numerics.safe_increment(count)),
        tree.bias_correction(updates, b1, count),
    )


def _scheduled_mu_hat(updates, mu, b1, count, schedule_decay, mu_product):
    """Dozat's Nadam estimate with momentum coefficients ``mu_t = b1 (1 - 0.5
    0.96^(d t))``, and the new product of the ``mu_t``.

    The scalars are computed in float32 (times a wider ``b1``), and in
    float64 for float64 leaves (``_numerics.LeafScalars``), as tf-keras does:
    from ``b1``, the float32 ``0.96`` and ``mu_product`` cast to float64.
    Float32 scalars start from ``mu_product`` cast to float32 (tf-keras, for a
    float32 variable when its momentum cache is float64). The new product
    keeps ``mu_product``'s dtype and is computed in it when that is wider.
    """

    def compute(dt):
        t = count.astype(jnp.float32 if dt is None else dt)
        b = _numerics.cast_to(b1, dt)
        # tf-keras' `tf.cast(0.96, var_dtype)` rounds 0.96 to float32 first.
        base = 0.96 if dt is None else jnp.asarray(0.96, jnp.float32).astype(dt)
        mu_t = b * (1.0 - 0.5 * base ** (schedule_decay * t))
        mu_next = b * (1.0 - 0.5 * base ** (schedule_decay * (t + 1.0)))
        product = mu_product.astype(mu_t.dtype) * mu_t
        if dt is None:  # the narrower of `mu_product` and `mu_t`, >= float32
            narrow = min(mu_product.dtype, mu_t.dtype, key=_numerics.bits)
            product = product.astype(jnp.promote_types(narrow, jnp.float32))
        return mu_t, mu_next, product, product * mu_next

    scalars = _numerics.LeafScalars(compute, precision=jnp.float32)

    def estimate(m, g):
        mu_t, mu_next, product, product_next = scalars.like(m)
        return mu_next * m / (1 - product_next) + (1 - mu_t) * g / (1 - product)

    mu_hat = jax.tree.map(estimate, mu, updates)
    return mu_hat, scalars.like(mu_product)[2].astype(mu_product.dtype)


def epsilon_hat_factor(b1: Any, b2: Any, count: jax.Array, dtype: Any = None) -> Any:
    """tf-keras' two bias corrections folded into one scalar, ``sqrt(1 -
    b2^t) / (1 - b1^t)`` (``sqrt(1 - b2^t)`` without ``b1``), computed in
    ``dtype`` (``None``: the hyperparameters' own). The facade's native Adam
    kernel takes it from here too, so both compute the same number."""
    t = _numerics.cast_to(count, dtype)
    factor = jnp.sqrt(_numerics.one_minus_pow(_numerics.cast_to(b2, dtype), t))
    if b1 is None:
        return factor
    return factor / _numerics.one_minus_pow(_numerics.cast_to(b1, dtype), t)


def _adaptive_step(mu_hat, v, updates, count, b2, eps, eps_root, epsilon_hat, b1=None):
    """``mu_hat / (sqrt(v + eps_root) + eps)``, or the epsilon-hat form.

    ``b1`` (epsilon-hat form only): the first moment's decay when ``mu_hat``
    is the uncorrected first moment. tf-keras folds both bias corrections
    into one scalar, ``sqrt(1 - b2^t) / (1 - b1^t)``: one per-element
    division fewer than correcting ``mu`` first. The scalar is computed once,
    and in float64 for float64 leaves (``_numerics.LeafScalars``).
    """
    if epsilon_hat:
        factors = _numerics.LeafScalars(
            lambda dt: epsilon_hat_factor(b1, b2, count, dt)
        )
        fn = lambda g, m, s: factors.like(m) * m / (jnp.sqrt(s + eps_root) + eps)  # noqa: E731
    else:
        fn = lambda g, m, s: m / (jnp.sqrt(s + eps_root) + eps)  # noqa: E731
    return map_updates(fn, updates, mu_hat, v)


def scale_by_adam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any | None = None,
    epsilon_hat: bool = False,
    amsgrad: bool = False,
    momentum_schedule_decay: jax.typing.ArrayLike | None = None,
) -> GradientTransformationExtraArgs:
    r"""Rescales updates with Adam (Kingma & Ba), optax's numbers by default.

    With ``m_t = b1 m + (1 - b1) g`` and ``v_t = b2 v + (1 - b2) g^2``:

    .. math::
      u_t = \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon), \quad
      \hat m_t = m_t / (1 - b_1^t), \; \hat v_t = v_t / (1 - b_2^t).

    Keras options (each keeps optax's numbers when left at its default):

    * ``epsilon_hat=True``: tf-keras' form, with epsilon added to the raw
      ``sqrt(v_t)``: ``u_t = sqrt(1 - b2^t) * m_hat / (sqrt(v_t + eps_root) + eps)``.
      ``Adam(epsilon=1e-7)`` of tf-keras (and Keras 3) is
      ``scale_by_adam(eps=1e-7, epsilon_hat=True)``.
    * ``amsgrad=True``: keep a running maximum of the second moment (state
      :class:`ScaleByAmsgradState`). With ``epsilon_hat=True`` the maximum is
      over the raw ``v_t`` (tf-keras ``Adam(amsgrad=True)``); otherwise it is
      optax's :func:`scale_by_amsgrad` (maximum of the bias-corrected ``v``).
    * ``momentum_schedule_decay=d`` (needs ``nesterov=True``): Nadam with
      Dozat's momentum schedule ``mu_t = b1 (1 - 0.5 * 0.96^(d t))`` and the
      estimate ``mu_{t+1} m_t / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) g /
      (1 - prod_{i<=t} mu_i)`` (state :class:`ScaleByNadamState`). tf-keras'
      legacy ``Nadam`` uses ``d=0.004``, Keras 3's ``Nadam`` ``d=1``. With a
      constant ``mu_t = b1`` this is exactly ``nesterov=True``.

    Dtypes: ``mu`` and ``nu`` are stored in ``mu_dtype``/``nu_dtype`` (the
    param dtype by default) and the updates keep the gradient dtype. optax
    instead returns updates promoted to ``mu_dtype`` (e.g. float32 updates for
    bfloat16 params with ``mu_dtype=float32``). The bias corrections (and the
    Nadam schedule) are scalars computed once per update in the dtype of the
    hyperparameters; float64 leaves get them computed again in float64 when
    the hyperparameters are float32 arrays (as tf-keras, which casts them to
    the variable's dtype; optax keeps float32 scalars, ~1e-8 off for float64).

    Args:
      b1: decay of the first moment, in ``[0, 1)``.
      b2: decay of the second moment, in ``[0, 1)``.
      eps: added to the denominator outside the square root.
      eps_root: added inside the square root (for differentiating through).
      mu_dtype: dtype of ``mu``; ``None`` follows the params.
      nesterov: use Nesterov momentum (Dozat's Nadam, as in optax).
      nu_dtype: dtype of ``nu`` (and ``nu_max``); ``None`` follows the params.
      epsilon_hat: use tf-keras' epsilon-hat form (see above).
      amsgrad: keep the running maximum of the second moment (see above).
      momentum_schedule_decay: ``None``, or the Nadam schedule's decay ``d``.

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs`; its state is a
      :class:`ScaleByAdamState` unless ``amsgrad`` or a schedule is set.

    Raises:
      ValueError: for out-of-range plain-number arguments or unsupported
        combinations (``amsgrad`` with ``nesterov``; a schedule without
        ``nesterov``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_adam()
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([1.0, -2.0]), state)
      >>> updates, state.count
      (Array([ 1., -1.], dtype=float32), Array(1, dtype=int32))
    """
    check_adam_args(b1, b2, eps, eps_root)
    if momentum_schedule_decay is not None:
        check_range("momentum_schedule_decay", momentum_schedule_decay, 0.0)
        if not nesterov:
            raise ValueError(
                "`momentum_schedule_decay` is Nadam's momentum schedule and needs "
                "`nesterov=True`. Received: nesterov=False, "
                f"momentum_schedule_decay={momentum_schedule_decay!r}"
            )
    if amsgrad:
        if nesterov:
            raise ValueError(
                "`amsgrad=True` does not support `nesterov=True`. Received: "
                "amsgrad=True, nesterov=True"
            )
        return scale_by_amsgrad(
            b1,
            b2,
            eps,
            eps_root,
            mu_dtype,
            bias_correction_nu=not epsilon_hat,
            nu_dtype=nu_dtype,
            epsilon_hat=epsilon_hat,
        )
    mu_dtype, nu_dtype = canonical_dtype(mu_dtype), canonical_dtype(nu_dtype)
    scheduled = momentum_schedule_decay is not None

    def init_fn(params):
        mu = buffer_like(params, mu_dtype)
        nu = buffer_like(params, nu_dtype)
        count = jnp.zeros([], jnp.int32)
        if scheduled:
            return ScaleByNadamState(count, mu, nu, jnp.ones([], jnp.float32))
        return ScaleByAdamState(count=count, mu=mu, nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.mu, updates, "state.mu", "updates")
        mu = tree.update_moment(updates, state.mu, b1, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = _numerics.safe_increment(state.count)
        mu_decay = None  # the epsilon-hat form's first-moment correction
        if scheduled:
            mu_hat, product = _scheduled_mu_hat(
                updates, mu, b1, count, momentum_schedule_decay, state.mu_product
            )
        elif nesterov:
            mu_hat = nesterov_mu_hat(updates, mu, b1, count)
        elif epsilon_hat:  # corrected inside `_adaptive_step`'s scalar
            mu_hat, mu_decay = mu, b1
        else:
            mu_hat = tree.bias_correction(mu, b1, count, reciprocal=True)
        v = nu if epsilon_hat else tree.bias_correction(nu, b2, count, reciprocal=True)
        updates = _adaptive_step(
            mu_hat, v, updates, count, b2, eps, eps_root, epsilon_hat, mu_decay
        )
        mu, nu = cast_like(mu, state.mu), cast_like(nu, state.nu)
        if scheduled:
            return updates, ScaleByNadamState(count, mu, nu, product)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))


def scale_by_amsgrad(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any | None = None,
    epsilon_hat: bool = False,
) -> GradientTransformationExtraArgs:
    r"""Rescales updates with AMSGrad: Adam with a running maximum of ``v``.

    optax's form: ``nu_max = max(nu_max, v_hat)`` with ``v_hat`` the
    bias-corrected second moment (the raw one with
    ``bias_correction_nu=False``), and ``u = m_hat / (sqrt(nu_max +
    eps_root) + eps)``.

    ``epsilon_hat=True`` (which needs ``bias_correction_nu=False``) gives
    tf-keras' ``Adam(amsgrad=True)``: the maximum of the raw ``v`` in the
    epsilon-hat form ``u = sqrt(1 - b2^t) m_hat / (sqrt(nu_max + eps_root) + eps)``.

    Args:
      b1: decay of the first moment, in ``[0, 1)``.
      b2: decay of the second moment, in ``[0, 1)``.
      eps: added to the denominator outside the square root.
      eps_root: added inside the square root.
      mu_dtype: dtype of ``mu``; ``None`` follows the params.
      bias_correction_mu: bias-correct the first moment.
      bias_correction_nu: take the maximum of the bias-corrected ``v``.
      nu_dtype: dtype of ``nu`` and ``nu_max``; ``None`` follows the params.
      epsilon_hat: tf-keras' epsilon-hat form (see above).

    Returns:
      A :class:`~optaxish.GradientTransformationExtraArgs` with state
      :class:`ScaleByAmsgradState`.

    Raises:
      ValueError: for out-of-range plain-number arguments, or
        ``epsilon_hat=True`` with ``bias_correction_nu=True``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.scale_by_amsgrad()
      >>> state = tx.init(jnp.zeros(2))
      >>> updates, state = tx.update(jnp.array([3.0, -4.0]), state)
      >>> updates, state.nu_max
      (Array([ 1., -1.], dtype=float32), Array([ 9., 16.], dtype=float32))
    """
    check_adam_args(b1, b2, eps, eps_root)
    if epsilon_hat and bias_correction_nu:
        raise ValueError(
            "`epsilon_hat=True` takes the maximum of the raw second moment and "
            "needs `bias_correction_nu=False`. Received: bias_correction_nu=True"
        )
    mu_dtype, nu_dtype = canonical_dtype(mu_dtype), canonical_dtype(nu_dtype)

    def init_fn(params):
        return ScaleByAmsgradState(
            count=jnp.zeros([], jnp.int32),
            mu=buffer_like(params, mu_dtype),
            nu=buffer_like(params, nu_dtype),
            nu_max=buffer_like(params, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_same_shapes(state.mu, updates, "state.mu", "updates")
        mu = tree.update_moment(updates, state.mu, b1, 1)
        nu = tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = _numerics.safe_increment(state.count)
        mu_hat = tree.bias_correction(mu, b1, count) if bias_correction_mu else mu
        nu_eff = tree.bias_correction(nu, b2, count) if bias_correction_nu else nu
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_eff)
        updates = _adaptive_step(
            mu_hat, nu_max, updates, count, b2, eps, eps_root, epsilon_hat
        )
        return updates, ScaleByAmsgradState(
            count=count,
            mu=cast_like(mu, state.mu),
            nu=cast_like(nu, state.nu),
            nu_max=cast_like(nu_max, state.nu_max),
        )

    return mark_elementwise(GradientTransformationExtraArgs(init_fn, update_fn))
