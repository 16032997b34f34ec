"""Arithmetic, reductions and norms over pytrees of arrays."""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp

from optaxish import _native
from optaxish._numerics import abs_sq
from optaxish.tree._cast import keep_inexact_dtype


def add(tree_x: Any, tree_y: Any, *other_trees: Any) -> Any:
    """Leafwise sum of two or more trees.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.tree.add({"a": jnp.ones(2)}, {"a": jnp.ones(2)})["a"]
      Array([2., 2.], dtype=float32)
    """
    return jax.tree.map(
        lambda *xs: functools.reduce(operator.add, xs), tree_x, tree_y, *other_trees
    )


def sub(tree_x: Any, tree_y: Any) -> Any:
    """Leafwise ``x - y``."""
    return jax.tree.map(operator.sub, tree_x, tree_y)


def mul(tree_x: Any, tree_y: Any) -> Any:
    """Leafwise ``x * y``."""
    return jax.tree.map(operator.mul, tree_x, tree_y)


def div(tree_x: Any, tree_y: Any) -> Any:
    """Leafwise ``x / y``."""
    return jax.tree.map(operator.truediv, tree_x, tree_y)


def scale(scalar: jax.typing.ArrayLike, tree: Any) -> Any:
    """Multiplies every leaf by ``scalar``.

    Floating leaves keep their dtype (a float32 ``scalar`` does not promote
    bfloat16); integer leaves are promoted as JAX promotes ``scalar * x``
    (``0.5 * int32`` is a float), and Python numbers stay Python numbers.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.tree.scale(0.5, {"a": jnp.array([1, 3])})["a"].tolist()
      [0.5, 1.5]
      >>> optaxish.tree.scale(jnp.float32(2), {"h": jnp.ones(1, jnp.bfloat16)})["h"]
      Array([2], dtype=bfloat16)
    """
    return jax.tree.map(lambda x: keep_inexact_dtype(scalar * x, x), tree)


def add_scale(tree_x: Any, scalar: jax.typing.ArrayLike, tree_y: Any) -> Any:
    """Leafwise ``x + scalar * y``."""
    return jax.tree.map(lambda x, y: x + scalar * y, tree_x, tree_y)


def vdot(tree_x: Any, tree_y: Any) -> jax.Array:
    """Inner product of two trees, summed over all leaves."""
    leaves = [
        jnp.vdot(x, y, precision=jax.lax.Precision.HIGHEST)
        for x, y in zip(jax.tree.leaves(tree_x), jax.tree.leaves(tree_y))
    ]
    return functools.reduce(operator.add, leaves, jnp.array(0.0))


def sum(tree: Any, associative_reduction: bool = False) -> jax.Array:  # noqa: A001
    """Sum of all entries of all leaves.

    Args:
      tree: the tree.
      associative_reduction: add the leaves' sums pairwise as a balanced tree
        (``jax.tree.reduce_associative``) rather than one after the other:
        a shallower graph, which can compile faster for trees of many leaves;
        the order of the additions, hence the last bits, may differ.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> float(optaxish.tree.sum({"a": jnp.ones(2), "b": jnp.ones(3)}))
      5.0
      >>> float(optaxish.tree.sum({"a": jnp.ones(2)}, associative_reduction=True))
      2.0
    """
    sums = [jnp.sum(x) for x in jax.tree.leaves(tree)]
    if associative_reduction and sums:
        return jnp.array(0.0) + jax.tree.reduce_associative(operator.add, sums)
    return functools.reduce(operator.add, sums, jnp.array(0.0))


def max(tree: Any) -> jax.Array:  # noqa: A001
    """Maximum entry over all leaves."""
    return functools.reduce(
        jnp.maximum,
        (jnp.max(x) for x in jax.tree.leaves(tree) if jnp.size(x)),
        jnp.array(-jnp.inf),
    )


def min(tree: Any) -> jax.Array:  # noqa: A001
    """Minimum entry over all leaves."""
    return functools.reduce(
        jnp.minimum,
        (jnp.min(x) for x in jax.tree.leaves(tree) if jnp.size(x)),
        jnp.array(jnp.inf),
    )


def size(tree: Any) -> int:
    """Total number of entries in the tree."""
    return functools.reduce(
        operator.add, (jnp.size(x) for x in jax.tree.leaves(tree)), 0
    )


def _plain_sum_of_squares(*leaves: jax.Array) -> jax.Array:
    return functools.reduce(
        operator.add, (jnp.sum(abs_sq(x)) for x in leaves), jnp.array(0.0)
    )


def _sum_of_squares_apart(*leaves: jax.Array) -> jax.Array:
    # Adam's second moment squares the same gradients. XLA merges the two
    # `g * g`; on CPU the merged square then feeds two kernels and is
    # written to a fresh buffer, which made an Adam step that also reports
    # the gradients' global norm 1.6-2.4x the step alone. Behind the
    # barrier the squares stay apart and the reduction reads `g` itself.
    return _plain_sum_of_squares(*jax.lax.optimization_barrier(leaves))


def _sum_of_squares(leaves: list[jax.Array]) -> jax.Array:
    """Sum of ``|x|**2`` over the leaves; on CPU behind an optimization barrier.

    On other backends XLA fuses the reduction with its siblings instead
    (GPU multi-output fusion), and the barrier would only cost a read. On CPU
    a float32 tree of two or more leaves and 65,536 elements or more is read
    in one native pass (``_native.sum_of_squares``), where XLA:CPU runs a
    reduction kernel per leaf; a custom call keeps its squares apart as the
    barrier does.
    """
    if not leaves:
        return jnp.array(0.0)
    if _native.sum_of_squares_applies(leaves):
        # The dtype XLA's sum would have (float64 under x64).
        dtype = jnp.result_type(jnp.array(0.0), jnp.float32)
        return _native.sum_of_squares(leaves).astype(dtype)
    return jax.lax.platform_dependent(
        *leaves, cpu=_sum_of_squares_apart, default=_plain_sum_of_squares
    )


def norm(
    tree: Any, ord: int | float | str | None = None, squared: bool = False
) -> jax.Array:
    """The norm of the tree seen as one flat vector.

    On CPU the squares of the Euclidean norm are taken behind
    ``jax.lax.optimization_barrier``; the numbers are the same, and XLA can no
    longer merge them with another ``x * x`` of the same leaves, a merge that
    on CPU puts the squares in a buffer of their own.

    Deviation from optax: the max-norm (``ord="inf"``) of a tree without
    entries is ``0.0``, like its 1- and 2-norms; optax returns ``-inf`` there
    (the initial value of its maximum), which no norm can be.

    Args:
      tree: the tree.
      ord: ``None`` or ``2`` (Euclidean), ``1``, or ``"inf"``/``"infinity"``/
        ``jnp.inf``.
      squared: return the square of the norm (any ``ord``, as in optax).

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> float(optaxish.tree.norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])}))
      5.0
      >>> float(optaxish.tree.norm({"a": jnp.array([3.0, -4.0])}, ord=1, squared=True))
      49.0
    """
    leaves = jax.tree.leaves(tree)
    if ord in (None, 2, "fro"):
        sq = _sum_of_squares(leaves)
        return sq if squared else jnp.sqrt(sq)
    if ord == 1:
        norm_ = functools.reduce(
            operator.add, (jnp.sum(jnp.abs(x)) for x in leaves), jnp.array(0.0)
        )
    elif ord in ("inf", "infinity", jnp.inf):
        norm_ = functools.reduce(
            jnp.maximum,
            (jnp.max(jnp.abs(x)) for x in leaves if jnp.size(x)),
            jnp.array(0.0),
        )
    else:
        raise ValueError(f"`ord` must be None, 1, 2 or 'inf'. Received: ord={ord!r}")
    return jnp.square(norm_) if squared else norm_


def global_norm(updates: Any) -> jax.Array:
    """Euclidean norm of all entries of all leaves (optax's ``global_norm``).

    Cheap to log beside an optimizer step: on CPU its squares stay apart from
    the identical ``g * g`` of Adam's second moment (see :func:`norm`), so the
    norm costs one read of the gradients. ``optax.global_norm`` there makes
    XLA write the merged squares to a gradient-sized buffer every step.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> float(optaxish.global_norm([jnp.array([3.0]), jnp.array([4.0])]))
      5.0
    """
    return norm(updates)


def all_finite(tree: Any) -> jax.Array:
    """A scalar bool: True when no leaf holds a NaN or infinity.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> bool(optaxish.tree.all_finite({"a": jnp.array([1.0, jnp.nan])}))
      False
    """
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, flags, jnp.array(True))


def where(condition: Any, tree_x: Any, tree_y: Any) -> Any:
    """``jnp.where`` leafwise; ``condition`` is a scalar or a matching tree."""
    if jax.tree.structure(condition).num_leaves == 1 and not isinstance(
        condition, dict | list | tuple
    ):
        return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)
    return jax.tree.map(jnp.where, condition, tree_x, tree_y)


def select(pred: jax.typing.ArrayLike, on_true: Any, on_false: Any) -> Any:
    """Picks one of two same-structured trees with a scalar predicate."""
    return jax.tree.map(lambda x, y: jax.lax.select(pred, x, y), on_true, on_false)


def clip(tree: Any, min_value=None, max_value=None) -> Any:
    """Clips every entry to ``[min_value, max_value]``."""
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def conj(tree: Any) -> Any:
    """Complex conjugate of every leaf."""
    return jax.tree.map(jnp.conj, tree)


def real(tree: Any) -> Any:
    """Real part of every leaf."""
    return jax.tree.map(jnp.real, tree)


def zeros_like(tree: Any, dtype: jax.typing.DTypeLike | None = None) -> Any:
    """Zeros with the structure and shapes of ``tree`` (dtype optional).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> optaxish.tree.zeros_like({"a": jnp.ones(2)}, dtype=jnp.bfloat16)["a"]
      Array([0, 0], dtype=bfloat16)
    """
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def ones_like(tree: Any, dtype: jax.typing.DTypeLike | None = None) -> Any:
    """Ones with the structure and shapes of ``tree`` (dtype optional)."""
    return jax.tree.map(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def full_like(
    tree: Any,
    fill_value: jax.typing.ArrayLike,
    dtype: jax.typing.DTypeLike | None = None,
) -> Any:
    """``fill_value`` with the structure and shapes of ``tree``."""
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)
