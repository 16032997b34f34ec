"""The optax protocol: gradient transformations as pairs of pure functions.

A transformation is a ``NamedTuple`` of two functions:

* ``init(params) -> state`` builds the state (a pytree) for a parameter tree;
* ``update(updates, state, params=None, **extra_args) -> (updates, state)``
  turns incoming updates (usually gradients) into outgoing updates.

Updates are *added* to parameters (see :func:`optaxish.apply_updates`), so a
descent step carries a negative learning rate. The tuple layout, names and
calling convention match optax, so transforms from either library compose.
The classes (and the state classes) are optaxish's own, not subclasses of
optax's: ``isinstance(optaxish.adam(1e-3), optax.GradientTransformation)`` is
False. optax, flax's ``TrainState`` and ``nnx.Optimizer`` take any
``(init, update)`` pair, so this matters for isinstance checks and for
keyword extras (see :class:`GradientTransformationExtraArgs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from optaxish._elementwise import mark_elementwise

Params = Any  # a pytree of arrays
Updates = Any  # a pytree of arrays with the structure of the params
OptState = Any  # a pytree of arrays
ArrayTree = Any
Numeric = jax.typing.ArrayLike
Schedule = Callable[[Numeric], Numeric]
ScalarOrSchedule = float | jax.Array | Schedule
# A mask tree of booleans, a function of the params returning one, or None.
MaskOrFn = Any | Callable[[Any], Any] | None

NO_PARAMS_MSG = (
    "This transformation needs the current parameters: call "
    "`update(updates, state, params)` with `params` set, not `params=None`."
)


class TransformInitFn(Protocol):
    """Builds the initial state of a transformation for a parameter tree."""

    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    """Transforms updates and advances the state."""

    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]: ...


class TransformUpdateExtraArgsFn(Protocol):
    """Like :class:`TransformUpdateFn`, also accepting (and ignoring) extras."""

    def __call__(
        self,
        updates: Updates,
        state: OptState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions ``(init, update)``; see the module docstring.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None) -> (updates, state)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> double = optaxish.GradientTransformation(
      ...     init=lambda params: optaxish.EmptyState(),
      ...     update=lambda u, s, p=None: (jax.tree.map(lambda x: 2 * x, u), s))
      >>> state = double.init({"w": jnp.ones(2)})
      >>> double.update({"w": jnp.ones(2)}, state)[0]["w"]
      Array([2., 2.], dtype=float32)
    """

    init: TransformInitFn
    update: TransformUpdateFn


class GradientTransformationExtraArgs(GradientTransformation):
    """A transformation whose ``update`` accepts arbitrary keyword extras.

    Extras (for example ``value=loss``) are passed by keyword; a transform
    ignores the ones it does not use. Every combinator returns this type.

    optax's combinators (``optax.chain``, ``optax.MultiSteps``,
    ``optax.inject_hyperparams``, ...) accept any ``(init, update)`` pair, but
    pass extras only to instances of optax's own class of this name, and this
    class is not a subclass of optax's (the core does not import optax):
    inside them an optaxish transformation gets no extras. Where one needs
    them (``polyak_sgd``'s ``value``, a stateful schedule that reads the loss
    under ``inject_hyperparams``), use optaxish's combinators, or wrap it as
    ``optax.GradientTransformationExtraArgs(*tx)``. optaxish's combinators
    pass extras to optax's transformations.
    """

    update: TransformUpdateExtraArgsFn


class EmptyState(NamedTuple):
    """The state of a stateless transformation: a pytree with no leaves."""


def init_empty_state(params: Params) -> EmptyState:
    """Returns :class:`EmptyState`, ignoring ``params``.

    Examples:
      >>> import optaxish
      >>> optaxish.init_empty_state({"w": 1.0})
      EmptyState()
    """
    del params
    return EmptyState()


def _accepts_extra_args(tx: Any) -> bool:
    # optax's own extra-args class is recognised by name so that the core never
    # imports optax.
    return any(
        c.__name__ == "GradientTransformationExtraArgs" for c in type(tx).__mro__
    )


def with_extra_args_support(tx: Any) -> GradientTransformationExtraArgs:
    """Wraps a transformation so that its ``update`` accepts keyword extras.

    Transformations that already accept extras (ours and optax's) are returned
    unchanged; others get an ``update`` that drops the extras.

    Args:
      tx: any object with ``init`` and ``update`` attributes.

    Returns:
      A :class:`GradientTransformationExtraArgs`.

    Raises:
      TypeError: if ``tx`` has no callable ``init``/``update``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> plain = optaxish.GradientTransformation(
      ...     lambda p: optaxish.EmptyState(), lambda u, s, p=None: (u, s))
      >>> tx = optaxish.with_extra_args_support(plain)
      >>> tx.update(jnp.ones(1), tx.init(None), None, loss=0.5)[0]
      Array([1.], dtype=float32)
    """
    if not (
        callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))
    ):
        raise TypeError(
            "Expected a gradient transformation (an object with callable `init` and "
            f"`update`). Received: {tx!r} of type {type(tx).__name__}"
        )
    if _accepts_extra_args(tx):
        return tx

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return tx.update(updates, state, params)

    return GradientTransformationExtraArgs(tx.init, update_fn)


def identity() -> GradientTransformationExtraArgs:
    """A transformation that returns its updates unchanged.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.identity()
      >>> tx.update(jnp.ones(2), tx.init(jnp.ones(2)))[0]
      Array([1., 1.], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )


def set_to_zero() -> GradientTransformationExtraArgs:
    """A transformation that replaces every update by zeros (freezes params).

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.set_to_zero()
      >>> tx.update(jnp.ones(2), tx.init(jnp.ones(2)))[0]
      Array([0., 0.], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(jnp.zeros_like, updates), state

    return mark_elementwise(
        GradientTransformationExtraArgs(init_empty_state, update_fn)
    )


def stateless(
    f: Callable[[Updates, Params | None], Updates],
) -> GradientTransformationExtraArgs:
    """Builds a stateless transformation from ``f(updates, params) -> updates``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.stateless(lambda u, p: jax.tree.map(lambda x: -x, u))
      >>> tx.update(jnp.ones(2), tx.init(None))[0]
      Array([-1., -1.], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        return f(updates, params), state

    return GradientTransformationExtraArgs(init_empty_state, update_fn)


def stateless_with_tree_map(
    f: Callable[[jax.Array, jax.Array | None], jax.Array],
) -> GradientTransformationExtraArgs:
    """Builds a stateless transformation applying ``f(update, param)`` per leaf.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> tx = optaxish.stateless_with_tree_map(lambda u, p: 3 * u)
      >>> tx.update({"a": jnp.ones(1)}, tx.init(None))[0]["a"]
      Array([3.], dtype=float32)
    """

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            return jax.tree.map(lambda u: f(u, None), updates), state
        return jax.tree.map(f, updates, params), state

    return GradientTransformationExtraArgs(init_empty_state, update_fn)
