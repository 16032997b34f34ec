"""Loss-scale values: immutable pytrees that scale, unscale and adjust.

Three kinds, with jmp's method names (``scale``, ``unscale``, ``adjust``):

* :class:`NoOpLossScale`: a scale of 1; nothing changes.
* :class:`StaticLossScale`: a fixed scale; ``adjust`` never changes it.
* :class:`DynamicLossScale`: tf-keras' rule. After ``period`` finite steps in a
  row the scale grows by ``factor`` (capped at ``max_loss_scale``; a grown value
  that is not finite is not assigned); a non-finite step divides it by
  ``factor`` (floored at ``min_loss_scale``) and resets the counter.

Every field, the bounds included, is a pytree *leaf*, so a value survives
``jax.jit``, ``jax.vmap``, ``jax.tree.map`` and any checkpointer that stores
leaves. (jmp keeps ``min_loss_scale`` nowhere in its flattened form, so it
silently resets to 1 after a ``jit``.)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish.tree import global_norm

_F32 = np.float32
_I32 = np.int32


def _leaf(value: Any, dtype: Any) -> Any:
    """A scalar leaf of ``dtype``: host numpy for Python numbers, else jax."""
    if isinstance(value, jax.Array):  # jax arrays and tracers
        return value if value.dtype == dtype else value.astype(dtype)
    return np.asarray(value, dtype)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool
    )


def _check(name: str, value: Any, ok: bool, what: str) -> None:
    if _is_number(value) and not ok:
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")


_I32_MAX = int(np.iinfo(np.int32).max)


def _finite_f32(value: Any) -> bool:
    """``value`` stays finite once stored as float32 (``1e39`` does not)."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(value)))


def _check_scale(name: str, value: Any) -> None:
    """A Python-number scale must be positive and finite in float32."""
    _check(
        name,
        value,
        _is_number(value) and 0 < value and _finite_f32(value),
        "positive and finite in float32",
    )


def _check_period(name: str, value: Any) -> None:
    """A Python-number period must be an integer that fits an int32."""
    _check(
        name,
        value,
        _is_number(value) and 1 <= value <= _I32_MAX and float(value).is_integer(),
        f"an integer in [1, {_I32_MAX}] (an int32)",
    )


def _unscale_leaf(x: jax.Array, scale: jax.Array) -> jax.Array:
    """``x / scale`` in at least float32, as a multiplication by ``1 / scale``.

    A multiplication, not a division: XLA duplicates a cheap multiply into
    every consumer (Adam's two moment updates) but materialises a divided copy
    of the gradients. tf-keras and jmp also multiply by the reciprocal, but in
    the gradient's dtype, where 1/scale underflows early in float16. A scale
    above 2**126 has a subnormal reciprocal (flushed to zero on CPU), so it is
    applied in two exact power-of-two steps.
    """
    x = jnp.asarray(x)
    wide = jnp.promote_types(x.dtype, jnp.float32)
    scale = scale.astype(jnp.float32)
    big = scale > 2.0**126
    inv = jnp.where(big, jnp.float32(2.0**63), jnp.float32(1.0)) / scale
    post = jnp.where(big, jnp.float32(2.0**-63), jnp.float32(1.0))
    return (x.astype(wide) * inv.astype(wide) * post.astype(wide)).astype(x.dtype)


def _rebuild(cls: type, children: Any) -> Any:
    return cls._unflatten(None, children)


class _LossScaleBase:
    """Frozen pytree with every field a leaf (shared by the three kinds)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, cls._flatten
        )

    def _flatten(self):
        return tuple(getattr(self, f) for f in self._fields), None

    def _flatten_with_keys(self):
        keys = tuple(jax.tree_util.GetAttrKey(f) for f in self._fields)
        return tuple(zip(keys, self._flatten()[0])), None

    @classmethod
    def _unflatten(cls, aux: None, children: Any):
        del aux
        obj = object.__new__(cls)
        for f, c in zip(cls._fields, children):
            object.__setattr__(obj, f, c)
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; use `.replace({name}=...)`."
        )

    def __reduce__(self):
        return _rebuild, (type(self), self._flatten()[0])

    def replace(self, **changes: Any):
        """A copy with some fields replaced (no validation, no conversion)."""
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no field(s) {unknown}; "
                f"fields are {list(self._fields)}"
            )
        values = [changes.get(f, getattr(self, f)) for f in self._fields]
        return type(self)._unflatten(None, values)

    def __repr__(self) -> str:
        def show(v):
            try:
                return repr(np.asarray(v).item()) if np.ndim(v) == 0 else repr(v)
            except Exception:  # noqa: BLE001 - tracers and sentinels
                return repr(v)

        inner = ", ".join(f"{f}={show(getattr(self, f))}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    # -- behaviour shared by all kinds ------------------------------------
    @property
    def loss_scale(self) -> jax.Array:  # overridden by a field where present
        return jnp.ones([], jnp.float32)

    def scale(self, tree: Any) -> Any:
        """Multiplies every leaf by the scale (cast to the leaf's dtype).

        This is tf-keras' ``get_scaled_loss``: ``loss * cast(scale, loss.dtype)``.
        """
        s = jnp.asarray(self.loss_scale)
        return jax.tree.map(lambda x: x * s.astype(jnp.asarray(x).dtype), tree)

    def unscale(self, tree: Any) -> Any:
        """Divides every leaf by the scale (as ``x * (1 / scale)`` in at least
        float32); dtypes are kept, ``None`` leaves too."""
        scale = jnp.asarray(self.loss_scale, jnp.float32)
        return jax.tree.map(lambda x: _unscale_leaf(x, scale), tree)

    def adjust(self, grads_finite: jax.typing.ArrayLike):
        """The value for the next step given whether this step's gradients were finite."""
        del grads_finite
        return self


class NoOpLossScale(_LossScaleBase):
    """A loss scale of 1: ``scale`` and ``unscale`` return their input.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> ls = loss_scale.NoOpLossScale()
      >>> ls.scale(jnp.float32(3.0)), ls.loss_scale
      (Array(3., dtype=float32), Array(1., dtype=float32))
    """

    __slots__ = ()
    _fields = ()

    def scale(self, tree: Any) -> Any:
        """Returns ``tree`` unchanged."""
        return tree

    def unscale(self, tree: Any) -> Any:
        """Returns ``tree`` unchanged."""
        return tree


class StaticLossScale(_LossScaleBase):
    """A fixed loss scale (tf-keras ``dynamic=False``; jmp ``StaticLossScale``).

    Non-finite gradients are *not* skipped under a static scale: tf-keras applies
    them too.

    Args:
      loss_scale: the scale, a positive number (stored as a float32 leaf).

    Raises:
      ValueError: if ``loss_scale`` is a Python number that is not positive
        and finite in float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> ls = loss_scale.StaticLossScale(128.0)
      >>> ls.unscale({"w": jnp.array([256.0])})["w"]
      Array([2.], dtype=float32)
    """

    __slots__ = ("loss_scale",)
    _fields = ("loss_scale",)
    loss_scale: jax.Array

    def __init__(self, loss_scale: jax.typing.ArrayLike):
        _check_scale("loss_scale", loss_scale)
        object.__setattr__(self, "loss_scale", _leaf(loss_scale, _F32))


class DynamicLossScale(_LossScaleBase):
    """A loss scale adjusted by tf-keras' dynamic rule.

    ``adjust(finite)`` gives the next value:

    * finite and ``counter + 1 >= period``: the scale becomes
      ``min(scale * factor, max_loss_scale)`` if that is finite (else it is
      kept) and ``counter`` becomes 0;
    * finite otherwise: ``counter + 1``;
    * not finite: ``max(scale * (1 / factor), min_loss_scale)`` and
      ``counter = 0``.

    With the defaults this is exactly tf-keras ``LossScaleOptimizer`` (and jmp's
    ``DynamicLossScale``). All six fields are pytree leaves (float32 scales and
    factor, int32 counter and period), so they survive ``jit``, ``vmap`` and
    checkpoint round trips, and can differ between ``vmap`` members. orbax
    restores a value in a state into a target such as
    ``jax.eval_shape(tx.init, params)``; without one it gives a dict of the
    six fields (``orbax.checkpoint.tree.deserialize_tree(raw, target)`` turns
    it back). For ``flax.serialization`` call
    :func:`optaxish.register_flax_serialization` first.

    Args:
      loss_scale: the current scale (default ``2**15``).
      counter: finite steps since the last change (default 0).
      period: finite steps between growths (tf-keras ``dynamic_growth_steps``,
        default 2000).
      factor: growth and back-off factor (default 2).
      min_loss_scale: the floor of the back-off (default 1, as in tf-keras).
      max_loss_scale: an optional ceiling for growth; ``None`` means no ceiling
        (stored as ``inf``).

    Raises:
      ValueError: for Python numbers out of range: ``loss_scale`` must be
        positive and finite in float32 (``1e39`` is not), ``counter`` and
        ``period`` must fit an int32 (``0 <= counter``, ``1 <= period``),
        ``factor >= 1``, ``min_loss_scale >= 0`` and
        ``max_loss_scale >= min_loss_scale``.

    Examples:
      >>> from optaxish import loss_scale
      >>> ls = loss_scale.DynamicLossScale(2.0, period=3)
      >>> for finite in [True, True, True, False]:
      ...     ls = ls.adjust(finite)
      ...     print(float(ls.loss_scale), int(ls.counter))
      2.0 1
      2.0 2
      4.0 0
      2.0 0
    """

    __slots__ = (
        "loss_scale",
        "counter",
        "period",
        "factor",
        "min_loss_scale",
        "max_loss_scale",
    )
    _fields = __slots__
    loss_scale: jax.Array
    counter: jax.Array
    period: jax.Array
    factor: jax.Array
    min_loss_scale: jax.Array
    max_loss_scale: jax.Array

    def __init__(
        self,
        loss_scale: jax.typing.ArrayLike = 2.0**15,
        counter: jax.typing.ArrayLike = 0,
        period: jax.typing.ArrayLike = 2000,
        factor: jax.typing.ArrayLike = 2.0,
        min_loss_scale: jax.typing.ArrayLike = 1.0,
        max_loss_scale: jax.typing.ArrayLike | None = None,
    ):
        if max_loss_scale is None:
            max_loss_scale = math.inf
        _check_scale("loss_scale", loss_scale)
        _check(
            "counter",
            counter,
            _is_number(counter) and 0 <= counter <= _I32_MAX,
            f"in [0, {_I32_MAX}] (an int32)",
        )
        _check_period("period", period)
        _check(
            "factor",
            factor,
            _is_number(factor) and factor >= 1 and _finite_f32(factor),
            ">= 1 and finite in float32",
        )
        _check(
            "min_loss_scale",
            min_loss_scale,
            _is_number(min_loss_scale)
            and 0 <= min_loss_scale
            and _finite_f32(min_loss_scale),
            ">= 0 and finite in float32",
        )
        if (
            _is_number(max_loss_scale)
            and _is_number(min_loss_scale)
            and not max_loss_scale >= min_loss_scale
        ):
            raise ValueError(
                "`max_loss_scale` must be >= `min_loss_scale`. Received: "
                f"max_loss_scale={max_loss_scale!r}, min_loss_scale={min_loss_scale!r}"
            )
        for name, value, dtype in (
            ("loss_scale", loss_scale, _F32),
            ("counter", counter, _I32),
            ("period", period, _I32),
            ("factor", factor, _F32),
            ("min_loss_scale", min_loss_scale, _F32),
            ("max_loss_scale", max_loss_scale, _F32),
        ):
            object.__setattr__(self, name, _leaf(value, dtype))

    def adjust(self, grads_finite: jax.typing.ArrayLike) -> DynamicLossScale:
        """The value after a step whose gradients were (not) all finite.

        Args:
          grads_finite: a scalar bool (e.g. :func:`all_finite` of the gradients).

        Returns:
          A new :class:`DynamicLossScale`; ``period``, ``factor`` and the bounds
          are carried over.
        """
        finite = jnp.asarray(grads_finite)
        if finite.ndim != 0:
            raise ValueError(
                "`grads_finite` must be a scalar bool. Received shape "
                f"{finite.shape}; reduce it with `all_finite(grads)` first."
            )
        scale = jnp.asarray(self.loss_scale, jnp.float32)
        counter = jnp.asarray(self.counter, jnp.int32)
        factor = jnp.asarray(self.factor, jnp.float32)
        grow_now = counter + 1 >= self.period
        grown = jnp.minimum(scale * factor, self.max_loss_scale)
        grown = jnp.where(jnp.isfinite(grown), grown, scale)
        on_finite = jnp.where(grow_now, grown, scale)
        # ``scale * (1 / factor)`` rather than ``scale / factor``: XLA rewrites a
        # division by a constant (a factor folded into a jitted loop) into this
        # product anyway, so writing it gives the same float32 result whether
        # or not the factor is a constant. For factor 2 (tf-keras) both are
        # exact.
        on_overflow = jnp.maximum(scale * (1.0 / factor), self.min_loss_scale)
        new_scale = jnp.where(finite, on_finite, on_overflow)
        new_counter = jnp.where(finite & ~grow_now, counter + 1, 0).astype(jnp.int32)
        return self.replace(loss_scale=new_scale, counter=new_counter)


LossScale = NoOpLossScale | StaticLossScale | DynamicLossScale
LOSS_SCALE_TYPES = (NoOpLossScale, StaticLossScale, DynamicLossScale)


def all_finite(tree: Any) -> jax.Array:
    """A scalar bool: True when no floating leaf of ``tree`` holds a NaN or inf.

    Cheap: one summation pass over the data (``isfinite(sum of all entries)``,
    which is False as soon as one entry is NaN or infinite); only when that sum
    is not finite (a real NaN/inf, or finite values whose sum overflows) does
    an exact ``isfinite`` pass run, under ``jax.lax.cond``. Integer and bool
    leaves are always finite; ``None`` leaves and empty trees give True.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import loss_scale
      >>> bool(loss_scale.all_finite({"a": jnp.ones(3), "b": jnp.array([jnp.inf])}))
      False
      >>> bool(loss_scale.all_finite({}))
      True
    """
    return _all_finite(tree)


def _all_finite(tree: Any, scale: jax.Array | None = None) -> jax.Array:
    """``all_finite(tree / scale)`` (the division in at least float32).

    With ``scale >= 1`` dividing cannot make a finite entry infinite, so the
    fast sum of the undivided entries decides; a smaller scale always takes
    the exact path.
    """
    leaves = [
        jnp.asarray(x)
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    if not leaves:
        return jnp.asarray(True)
    sums = []
    for x in leaves:
        if jnp.iscomplexobj(x):
            sums.append(jnp.sum(jnp.abs(jnp.real(x)) + jnp.abs(jnp.imag(x))))
        else:
            sums.append(jnp.sum(x, dtype=jnp.promote_types(x.dtype, jnp.float32)))
    total = sums[0]
    for t in sums[1:]:
        total = total + t
    exact_needed = ~jnp.isfinite(total)
    if scale is not None:
        exact_needed = exact_needed | ~(scale >= 1)
    return jax.lax.cond(
        exact_needed, lambda: _exactly_finite(leaves, scale), lambda: jnp.asarray(True)
    )


def _exactly_finite(leaves: list[jax.Array], scale: jax.Array | None) -> jax.Array:
    """``isfinite`` of every entry of every leaf (divided by ``scale`` if given)."""
    fn = (lambda x: x) if scale is None else (lambda x: _unscale_leaf(x, scale))
    flags = [jnp.all(jnp.isfinite(fn(x))) for x in leaves]
    return functools.reduce(jnp.logical_and, flags, jnp.asarray(True))


def _squares_safely(dtype: Any) -> bool:
    """Floating (or complex) and at least as wide as float32."""
    return jnp.issubdtype(dtype, jnp.inexact) and jnp.promote_types(
        dtype, jnp.float32
    ) == jnp.dtype(dtype)


def _norm_and_finite(
    tree: Any, scale: jax.Array | None = None
) -> tuple[jax.Array | None, jax.Array]:
    """``(global_norm(tree / scale), all_finite(tree / scale))`` in one reduction.

    The reduction reads the leaves as they are (a producer such as the
    division would be materialised in a fresh buffer before XLA:CPU's
    reduction kernel reads it); the norm is then divided by ``scale``, which
    is exact for the power-of-two scales dynamic loss scaling uses. A finite
    norm means every entry is finite (an inf or NaN makes its square, and the
    sum, non-finite); only a non-finite norm (a real NaN/inf, or finite
    entries whose squares overflow the sum) or a scale below 1 runs the exact
    check, and the norm of the divided leaves, under ``jax.lax.cond``.
    Only for trees of float32 (or wider) leaves: ``global_norm`` squares
    float16/bfloat16 leaves in their own dtype, where gradients of a scaled
    loss overflow (a float16 ``300**2``) and would send every step down the
    exact path, and a non-float leaf has no norm. Those trees get
    ``(None, all_finite(tree / scale))``, whose sum accumulates in float32.
    """
    leaves = jax.tree.leaves(tree)
    if not all(_squares_safely(jnp.asarray(x).dtype) for x in leaves):
        return None, _all_finite(tree, scale)
    raw = global_norm(leaves)  # one native pass on CPU for large float32 trees
    exact_needed = ~jnp.isfinite(raw)
    if scale is not None:
        exact_needed = exact_needed | ~(scale >= 1)

    def fast():
        norm = raw if scale is None else _unscale_leaf(raw, scale)
        return norm, jnp.asarray(True)

    def exact():
        divided = leaves if scale is None else [_unscale_leaf(x, scale) for x in leaves]
        return global_norm(divided).astype(raw.dtype), _exactly_finite(leaves, scale)

    return jax.lax.cond(exact_needed, exact, fast)
