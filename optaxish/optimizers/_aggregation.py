"""Gradient aggregation across devices and gradient transformers.

tf-keras' ``apply_gradients`` runs, in this order: the ``gradient_aggregator``
(by default a sum over the replicas), the clipping of the ``clipvalue``,
``clipnorm`` and ``global_clipnorm`` kwargs, then each of the
``gradient_transformers``. Here the replicas are the devices of a named JAX
mapped axis (``jax.shard_map``, ``jax.pmap``, ``jax.vmap``): the optimizer's
``axis_name`` (a constructor keyword or a plain attribute) names it, and the
default aggregator sums over it with ``jax.lax.psum`` when the step is traced
inside that axis (outside it there is one replica and the sum is the
identity).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from optaxish._base import GradientTransformation, GradientTransformationExtraArgs
from optaxish._elementwise import mark_elementwise
from optaxish._norm_hint import global_norm_known, known_global_norm
from optaxish.transforms import clip, clip_by_global_norm, clip_by_norm
from optaxish.tree import global_norm

GradsAndVars = list[tuple[Any, Any]]


def _axis_names(axis_name: Any) -> tuple[Any, ...]:
    if axis_name is None:
        return ()
    return tuple(axis_name) if isinstance(axis_name, tuple | list) else (axis_name,)


def axis_is_bound(axis_name: Any) -> bool:
    """Whether every name in ``axis_name`` is a mapped axis of the current trace.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from optaxish.optimizers import axis_is_bound
      >>> axis_is_bound("batch")
      False
      >>> jax.vmap(lambda x: x * axis_is_bound("batch"), axis_name="batch")(
      ...     jnp.ones(2)
      ... )
      Array([1., 1.], dtype=float32)
    """
    names = _axis_names(axis_name)
    if not names:
        return False
    for name in names:
        try:
            jax.lax.axis_size(name)
        except NameError:
            return False
    return True


def all_reduce_sum_gradients(
    grads_and_vars: Sequence[tuple[Any, Any]], axis_name: Any = None
) -> GradsAndVars:
    """Sums each gradient over the devices of ``axis_name`` (tf-keras' default).

    The default ``gradient_aggregator`` of the Keras-style optimizers (with
    the optimizer's ``axis_name``). Outside a mapped axis of that name, or
    with ``axis_name=None``, there is one replica and the pairs come back
    unchanged. ``None`` gradients are kept as ``None``.

    Args:
      grads_and_vars: ``(gradient, variable)`` pairs.
      axis_name: a mapped axis name (or a tuple of them), or ``None``.

    Returns:
      The list of ``(summed gradient, variable)`` pairs.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from optaxish.optimizers import all_reduce_sum_gradients
      >>> def per_device(g):
      ...     ((out, _),) = all_reduce_sum_gradients([(g, None)], "i")
      ...     return out
      >>> jax.vmap(per_device, axis_name="i")(jnp.array([1.0, 2.0, 4.0]))
      Array([7., 7., 7.], dtype=float32)
    """
    pairs = list(grads_and_vars)
    if not axis_is_bound(axis_name):
        return pairs
    names = _axis_names(axis_name)
    present = [g for g, _ in pairs if g is not None]
    summed = iter(jax.lax.psum(present, names if len(names) > 1 else names[0]))
    return [(None if g is None else next(summed), v) for g, v in pairs]


def keras_clip_by_global_norm(max_norm: float) -> GradientTransformationExtraArgs:
    """``clip_by_global_norm`` with ``tf.clip_by_global_norm``'s rule for a
    non-finite norm: every gradient becomes NaN (internal).

    optax's rule scales by ``max_norm / norm``, which leaves the finite
    gradients at 0 when the norm is infinite. Here the clip is told a NaN
    norm then (``norm + (norm - norm)``, which is ``norm`` itself when it is
    finite), so the numbers are otherwise bit for bit optax's, and a norm
    computed earlier (the loss-scaling hint) is still reused.
    """
    inner = clip_by_global_norm(max_norm)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = known_global_norm(updates)
        if norm is None:
            norm = global_norm(updates)
        with global_norm_known(updates, norm + (norm - norm)):
            return inner.update(updates, state)

    return mark_elementwise(GradientTransformationExtraArgs(inner.init, update_fn))


def clip_transforms(clip_kwargs: dict[str, Any]) -> list[GradientTransformation]:
    """The clipping of ``clipvalue``, ``clipnorm``, ``global_clipnorm``, in
    tf-keras' order (internal)."""
    out = []
    if clip_kwargs["clipvalue"] is not None:
        out.append(clip(clip_kwargs["clipvalue"]))
    if clip_kwargs["clipnorm"] is not None:
        out.append(clip_by_norm(clip_kwargs["clipnorm"]))
    if clip_kwargs["global_clipnorm"] is not None:
        out.append(keras_clip_by_global_norm(clip_kwargs["global_clipnorm"]))
    return out


def check_transformers(
    gradient_transformers: Any, clip_kwargs: dict[str, Any]
) -> list[Callable]:
    """``gradient_transformers`` as a list; tf-keras' error when a clip kwarg
    is set too (internal)."""
    transformers = list(gradient_transformers or [])
    for fn in transformers:
        if not callable(fn):
            raise TypeError(
                "`gradient_transformers` must be a list of callables on "
                f"(gradient, variable) pairs. Received: {fn!r}"
            )
    if transformers:
        for key in ("clipnorm", "global_clipnorm", "clipvalue"):
            if clip_kwargs[key] is not None:
                raise ValueError(
                    f"`{key}` cannot be set when `gradient_transformers` is set. "
                    "Instead, use the `gradient_transformers` to specify clipping "
                    "and other transformations. Received: "
                    f"val={clip_kwargs[key]}, "
                    f"gradient_transformers={transformers}."
                )
    return transformers


def process_gradients(
    optimizer: Any, grads: list[Any], variables: Sequence[Any], aggregate: bool
) -> list[Any]:
    """Aggregation, clipping and transformers in tf-keras' order (internal).

    Traced inside the compiled step: ``variables`` are the ``Variable``
    objects of the gradients (or ``None`` in the functional forms); the
    result keeps each gradient's dtype.
    """
    pairs = list(zip(grads, variables))

    def unpack(pairs: Any, where: str) -> list[Any]:
        dtypes = [g.dtype for g in grads]
        out = [g for g, _ in pairs]
        if len(out) != len(grads):
            raise ValueError(
                f"`{where}` must return one (gradient, variable) pair per input "
                f"pair: expected {len(grads)}, received {len(out)}."
            )
        return [jnp.asarray(g).astype(d) for g, d in zip(out, dtypes)]

    if aggregate:
        aggregator = optimizer.gradient_aggregator
        if aggregator is all_reduce_sum_gradients:
            pairs = all_reduce_sum_gradients(pairs, optimizer.axis_name)
        else:
            pairs = list(
                zip(unpack(aggregator(pairs), "gradient_aggregator"), variables)
            )
    grads = [g for g, _ in pairs]
    for tx in clip_transforms(optimizer._clip):
        grads, _ = tx.update(grads, tx.init(grads))
    pairs = list(zip(grads, variables))
    for fn in optimizer.gradient_transformers:
        pairs = list(zip(unpack(fn(pairs), "gradient_transformers"), variables))
    return [g for g, _ in pairs]


def check_one_norm_clip(clip_kwargs: dict[str, Any]) -> None:
    """tf-keras' error when both ``clipnorm`` and ``global_clipnorm`` are set."""
    clipnorm, global_clipnorm = clip_kwargs["clipnorm"], clip_kwargs["global_clipnorm"]
    if clipnorm is not None and global_clipnorm is not None:
        raise ValueError(
            "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
            f"`clipnorm`={clipnorm}, `global_clipnorm`={global_clipnorm}."
        )


def clip_property(key: str) -> property:
    """The ``clipnorm``/``global_clipnorm``/``clipvalue`` attribute of the
    Keras optimizers: readable, and settable as in tf-keras (the next step
    compiles with the new clipping; ``_config_key`` includes it).

    Setting checks what the constructor checks, before anything changes: a
    non-negative number or ``None``, not beside ``gradient_transformers``, and
    ``clipnorm`` and ``global_clipnorm`` not both set (tf-keras' setter would
    then apply both; its constructor refuses them together).
    """

    def fget(self: Any) -> Any:
        return self._clip[key]

    def fset(self: Any, value: Any) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"`{key}` must be a number or None. Received: {key}={value!r}"
                )
            if not value >= 0:  # NaN too
                raise ValueError(f"Expected {key} >= 0, received: {value}")
        clip = {**self._clip, key: value}
        check_transformers(self.gradient_transformers, clip)
        check_one_norm_clip(clip)
        self._clip = clip

    return property(fget, fset, doc=f"The ``{key}`` clipping (``None``: off).")
