"""Input checks of the Keras-style optimizers (nothing changes on error)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._variable import Variable, _share_in_deepcopy

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_FLOAT_DTYPES = frozenset(np.dtype(jnp.dtype(d)) for d in FLOAT_DTYPES)
_ARRAY_TYPE = type(jnp.zeros(()))  # a concrete device array (never a tracer)


def _trace_state_reader() -> Any:
    """JAX's public reader of the current trace (``None`` on a JAX without it)."""
    try:
        from jax.extend import core as extend_core

        return extend_core.get_opaque_trace_state
    except (ImportError, AttributeError):  # pragma: no cover - older JAX
        return getattr(jax.core, "get_opaque_trace_state", None)


_TRACE_STATE = _trace_state_reader()
# The top level's trace is one object for every thread, so one reading taken
# at import tells "outside any transformation" apart for the whole process.
_TOP_LEVEL = None if _TRACE_STATE is None else _TRACE_STATE(convention="optaxish")


def refuse_under_trace(method: str, instead: str = "stateless_apply") -> None:
    """Raises when called inside ``jit``/``vmap``/``grad``/...: ``method``
    updates state in place, which a transformation would leave holding
    tracers (even when every argument is concrete, e.g. closed over).

    Checked before anything changes, so the optimizer stays usable. Costs a
    microsecond or two per call.
    """
    if _TRACE_STATE is not None and _TRACE_STATE(convention="optaxish") != _TOP_LEVEL:
        raise RuntimeError(
            f"`{method}` updates variables and optimizer state in place, so it "
            "cannot be called inside a JAX transformation (jit, vmap, grad, "
            "shard_map, ...): the state would keep the transformation's "
            f"tracers. Call it outside, or use `optimizer.{instead}(...)` inside "
            "and return the new values."
        )


def check_var(var: Any) -> None:
    """A float ``Variable``, or a ``TypeError`` (tf-keras' "Invalid type")."""
    if not isinstance(var, Variable):
        raise TypeError(f"Expected an optaxish.Variable. Received: {var!r}")
    if var._shape_dtype[1] not in _FLOAT_DTYPES:
        raise TypeError(
            f"Invalid type {var.dtype} for {var.name}, expected: {list(FLOAT_DTYPES)}."
        )


def check_grad(grad: Any, var: Variable) -> jax.Array:
    """``grad`` as an array of ``var``'s shape and dtype, or an error naming it.

    Arrays must already have the variable's dtype; Python numbers and lists
    are converted to it.
    """
    check_var(var)
    shape, dtype = var._shape_dtype
    if (
        isinstance(grad, jax.Array) and grad.dtype == dtype and grad.shape == shape
    ):  # the common case, checked without a conversion
        return grad
    if hasattr(grad, "dtype"):
        if np.dtype(grad.dtype) != np.dtype(var.dtype):
            raise TypeError(
                f"The gradient of variable '{var.name}' has dtype {grad.dtype}; "
                f"the variable has dtype {var.dtype}."
            )
        array = jnp.asarray(grad)
    else:
        try:
            array = jnp.asarray(np.asarray(grad, np.dtype(var.dtype)))
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"The gradient of variable '{var.name}' is not numeric. "
                f"Received: {grad!r}"
            ) from e
    if array.shape != var.shape:
        raise ValueError(
            f"The gradient of variable '{var.name}' has shape "
            f"{tuple(array.shape)}; the variable has shape {var.shape}."
        )
    return array


def parse_pairs(grads_and_vars: Iterable[Any]) -> list[tuple[Any, Variable]]:
    """``[(grad, var)]``; malformed items raise what unpacking raises, with
    their position."""
    pairs = []
    for n, item in enumerate(grads_and_vars):
        try:
            grad, var = item
        except (TypeError, ValueError) as e:
            raise type(e)(
                "`grads_and_vars` must hold (gradient, variable) pairs. "
                f"Received at position {n}: {item!r} ({e})"
            ) from None
        if not isinstance(var, Variable):
            raise TypeError(
                "`grads_and_vars` must hold (gradient, variable) pairs with an "
                f"optaxish.Variable. Received at position {n}: var={var!r}"
            )
        pairs.append((grad, var))
    return pairs


def unique_variables(variables: list[Variable], where: str) -> None:
    """A ``ValueError`` naming the first variable that appears twice."""
    seen: set[int] = set()
    for v in variables:
        if id(v) in seen:
            raise ValueError(
                f"Variable '{v.name}' appears twice in `{where}`; sum its "
                "gradients first."
            )
        seen.add(id(v))


def gradient_pairs(
    grads_and_vars: Any, stacklevel: int = 3
) -> tuple[list[Variable], list[jax.Array]] | None:
    """``apply_gradients``' input checks: ``(variables, gradients)`` to step.

    ``None`` gradients are dropped with a warning naming their variables;
    ``None`` is returned for an empty input.

    Raises:
      TypeError: for a malformed pair or a wrong dtype.
      ValueError: when no variable has a gradient, a variable appears twice,
        or a gradient's shape differs from its variable's.
      RuntimeError: for traced gradients (a call inside a JAX transform).
    """
    items = list(grads_and_vars)
    fast = _common_pairs(items)
    if fast is not None:
        return fast
    pairs = parse_pairs(items)
    if not pairs:
        return None
    variables = [v for g, v in pairs if g is not None]
    if not variables:
        names = [v.name for _, v in pairs]
        raise ValueError(
            f"No gradients provided for any variable: {names}. Provided "
            f"`grads_and_vars` is {tuple(pairs)}."
        )
    unique_variables(variables, "grads_and_vars")
    grads = [check_grad(g, v) for g, v in pairs if g is not None]
    if any(isinstance(g, jax.core.Tracer) for g in grads):
        raise RuntimeError(
            "`apply_gradients` updates variables in place and cannot be "
            "called inside a JAX transformation (jit, shard_map, pmap, ...). "
            "Use `optimizer.stateless_apply(...)` there."
        )
    if len(variables) != len(pairs):
        missing = [v.name for g, v in pairs if g is None]
        warnings.warn(
            f"Gradients do not exist for variables {missing} when minimizing "
            "the loss. If you're using `model.compile()`, did you forget to "
            "provide a `loss` argument?",
            UserWarning,
            stacklevel=stacklevel,
        )
    return variables, grads


def _common_pairs(items: list) -> tuple[list[Variable], list[jax.Array]] | None:
    """``gradient_pairs``' answer when every item is the common case (a pair
    of a device array and a distinct float ``Variable`` of its shape and
    dtype), found in one pass; ``None`` sends the caller the long way, which
    also finds and reports what is wrong."""
    if not items:
        return None
    variables, grads = [], []
    for item in items:
        if type(item) is not tuple or len(item) != 2:
            return None
        grad, var = item
        if type(grad) is not _ARRAY_TYPE or type(var) is not Variable:
            return None
        shape, dtype = var.__dict__.get("_shape_dtype_cache") or var._shape_dtype
        aval = grad.aval  # one attribute read (`.shape` and `.dtype` are two)
        if aval.shape != shape or aval.dtype != dtype or dtype not in _FLOAT_DTYPES:
            return None
        variables.append(var)
        grads.append(grad)
    if len(set(map(id, variables))) != len(variables):
        return None
    return variables, grads


def planned_gradients(
    items: list, variables: tuple, avals: tuple
) -> list[jax.Array] | None:
    """The gradients of ``items`` when they pair, in order, a device array of
    the shape and dtype in ``avals`` with each of ``variables`` (the last
    call's, checked then: distinct float variables); else ``None``, and
    :func:`gradient_pairs` checks ``items`` (it also reports what is wrong).

    ``apply_gradients``' common case in one pass, with no ``Variable``
    attribute read and no uniqueness check (it holds for the last call's).
    """
    if len(items) != len(variables):
        return None
    grads = []
    for item, var, (shape, dtype) in zip(items, variables, avals):
        if type(item) is not tuple or len(item) != 2:
            return None
        grad, v = item
        if v is not var or type(grad) is not _ARRAY_TYPE:
            return None
        aval = grad.aval
        if aval.shape != shape or aval.dtype != dtype:
            return None
        grads.append(grad)
    return grads


def deepcopy_fresh_steps(obj: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of an optimizer with an empty compiled-step cache.

    The cached steps close over ``obj`` itself, so the copy compiles its own.
    jax arrays (slots, ``iterations``, hyperparameters) are copied into new
    buffers (a step donates its inputs). The variables it updates are the
    user's, not its own: as in tf-keras, the copy tracks the same
    ``Variable`` objects and their slots continue, unless the same
    ``copy.deepcopy`` call copies them too (``copy.deepcopy((opt, vars))``,
    in any order): then it tracks those copies.
    """
    cool = getattr(obj, "_cool", None)
    if cool is not None:  # per-variable arrays, not packed groups
        cool()
    clone = object.__new__(type(obj))
    memo[id(obj)] = clone
    tracked = obj.__dict__.get("_vars")
    seeded: list[int] = []
    if tracked is not None:
        clone.__dict__["_vars"] = [
            _share_in_deepcopy(v, memo, _retarget(clone, v)) for v in tracked
        ]
        # A tracked variable met in another attribute (custom-slot records) is
        # the one the copy tracks, never a copy made here.
        for v in tracked:
            if id(v) not in memo:
                memo[id(v)] = v
                seeded.append(id(v))
    try:
        for key, value in obj.__dict__.items():
            if key in ("_apply_plan", "_minimize_plan", "_vars"):  # plans: steps
                continue
            if key in (
                "_steps",
                "_traces",
                "_index",
                "_packable",
                "_minimize_recent",
                "_minimize_codes",
            ):  # start afresh
                fresh = type(value)()
            else:
                fresh = copy.deepcopy(value, memo)
            clone.__dict__[key] = fresh
    finally:
        for key in seeded:  # a later copy of the variable in this call is new
            del memo[key]
    return clone


def _retarget(clone: Any, original: Variable) -> Any:
    """Makes ``clone`` track ``copy`` instead of ``original`` (see
    ``deepcopy_fresh_steps``)."""

    def on_copy(copied: Variable) -> None:
        tracked = clone.__dict__["_vars"]
        tracked[:] = [copied if v is original else v for v in tracked]
        records = clone.__dict__.get("_hook_recs")
        if records is not None:
            records.current = [copied if v is original else v for v in records.current]

    return on_copy
