"""Gradient accumulation over mini-steps: ``MultiSteps``.

Deviation from optax: the inner optimizer runs only on the mini-step that
emits (in a while loop of zero or one iteration, whose carried buffers XLA
updates in place). optax runs it on every mini-step and keeps or drops the
result with ``jnp.where``, so each accumulating mini-step costs several
optimizer steps. Numbers and state layout are optax's; the update is
differentiable in forward mode only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from optaxish import _numerics, tree
from optaxish._base import (
    GradientTransformationExtraArgs,
    Params,
    Updates,
    with_extra_args_support,
)
from optaxish._errors import check_same_shapes
from optaxish._update import apply_updates


class ShouldSkipUpdateFunction(Protocol):
    """``fn(updates, gradient_step, params) -> (skip, debug_tree)``.

    ``skip`` is a bool scalar array: True drops the mini-step entirely (as if
    it never happened). ``debug_tree`` is stored in
    ``MultiStepsState.skip_state``.
    """

    def __call__(
        self,
        updates: Updates,
        gradient_step: jax.typing.ArrayLike,
        params: Params | None,
    ) -> tuple[jax.Array, Any]: ...


def skip_not_finite(
    updates: Updates, gradient_step: jax.typing.ArrayLike, params: Params | None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Skips mini-steps whose updates hold a NaN or infinity (for MultiSteps).

    Args:
      updates: the mini-step's updates.
      gradient_step: unused.
      params: unused.

    Returns:
      ``(should_skip, {"should_skip": ..., "num_not_finite": ...})``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> skip, info = optaxish.skip_not_finite(jnp.array([1.0, jnp.inf]), 0, None)
      >>> bool(skip), int(info["num_not_finite"])
      (True, 1)
    """
    del gradient_step, params
    counts = [jnp.sum(~jnp.isfinite(x)) for x in jax.tree.leaves(updates)]
    num_not_finite = functools.reduce(jnp.add, counts, jnp.zeros([], jnp.int32))
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates,
    gradient_step: jax.typing.ArrayLike,
    params: Params | None,
    max_squared_norm: jax.typing.ArrayLike,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Skips mini-steps whose squared global norm is not below a bound.

    Bind the bound with ``functools.partial(skip_large_updates,
    max_squared_norm=...)``. A NaN norm is skipped too. Complex entries count
    with ``|x|**2`` (optax sums ``x**2``, a complex number whose comparison
    with the bound is meaningless).

    Args:
      updates: the mini-step's updates.
      gradient_step: unused.
      params: unused.
      max_squared_norm: the largest squared norm accepted (exclusive).

    Returns:
      ``(should_skip, {"should_skip": ..., "norm_squared": ...})``.

    Examples:
      >>> import functools
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> fn = functools.partial(optaxish.skip_large_updates, max_squared_norm=4.0)
      >>> bool(fn(jnp.array([3.0]), 0, None)[0])
      True
    """
    del gradient_step, params
    squares = [jnp.sum(_numerics.abs_sq(x)) for x in jax.tree.leaves(updates)]
    norm_sq = functools.reduce(jnp.add, squares, jnp.zeros([], jnp.float32))
    should_skip = jnp.logical_not(norm_sq < max_squared_norm)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_sq}


class MultiStepsState(NamedTuple):
    """State of :class:`MultiSteps`.

    Attributes:
      mini_step: mini-steps accumulated since the last emitted update (int32).
      gradient_step: updates emitted so far (int32 scalar).
      inner_opt_state: the wrapped optimizer's state.
      acc_grads: the running mean (or sum) of this cycle's updates.
      skip_state: what ``should_skip_update_fn`` returned for debugging.
    """

    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


def _never_skip(updates, gradient_step, params):
    del updates, gradient_step, params
    return jnp.asarray(False), ()


def _cast_like(new: Any, old: Any) -> Any:
    """Casts each leaf of ``new`` to the dtype of the matching ``old`` leaf."""

    def cast(n, o):
        dtype = getattr(o, "dtype", None)
        if dtype is None or jnp.result_type(n) == dtype:
            return n
        return jnp.asarray(n).astype(dtype)

    return jax.tree.map(cast, new, old)


class MultiSteps:
    """Accumulates updates over ``k`` mini-steps, then runs the optimizer once.

    Each call to :meth:`update` adds the incoming updates to an accumulator
    (their running mean, or sum with ``use_grad_mean=False``). Every ``k``-th
    call passes the accumulated updates to the wrapped optimizer and returns
    its output; the other calls return zeros. ``k`` may follow a schedule of
    the number of updates emitted so far.

    Unlike optax, mini-steps that only accumulate (and skipped ones) do not
    run the wrapped optimizer: it sits in a while loop of zero or one
    iteration, whose buffers XLA passes through in place. With :meth:`step`
    (update and ``apply_updates`` fused) a mini-step costs one pass over the
    accumulator. Like any ``jax.lax.while_loop``, ``update`` and ``step`` can
    be differentiated in forward mode (``jax.jvp``) but not in reverse mode.

    Gradients whose structure or shapes differ from the parameters given to
    :meth:`init` raise a ``ValueError`` naming the first differing key path.

    Args:
      opt: the wrapped transformation.
      every_k_schedule: ``k`` as an int, or a function of ``gradient_step``.
      use_grad_mean: average the accumulated updates (else sum them).
      should_skip_update_fn: an optional :class:`ShouldSkipUpdateFunction`;
        a skipped mini-step leaves everything but ``skip_state`` unchanged
        (e.g. :func:`skip_not_finite`).
      accumulator_dtype: dtype of the accumulator (float32 by default; ``None``
        follows the params). Complex parameters get the complex dtype of that
        precision (complex64 for float32), so the imaginary part is kept;
        optax casts it away.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optaxish
      >>> opt = optaxish.MultiSteps(optaxish.scale(-1.0), every_k_schedule=2)
      >>> state = opt.init(jnp.zeros(1))
      >>> u, state = opt.update(jnp.array([1.0]), state)
      >>> u, state = opt.update(jnp.array([3.0]), state)
      >>> u, bool(opt.has_updated(state))
      (Array([-2.], dtype=float32), True)
    """

    def __init__(
        self,
        opt: Any,
        every_k_schedule: int | Callable[[jax.Array], jax.typing.ArrayLike],
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipUpdateFunction | None = None,
        accumulator_dtype: jax.typing.DTypeLike | None = jnp.float32,
    ):
        if isinstance(every_k_schedule, int) and not isinstance(every_k_schedule, bool):
            if every_k_schedule < 1:
                raise ValueError(
                    "`every_k_schedule` must be a positive int or a schedule. "
                    f"Received: every_k_schedule={every_k_schedule}"
                )
            k = every_k_schedule
            every_k_schedule = lambda step: k  # noqa: E731
        elif not callable(every_k_schedule):
            raise TypeError(
                "`every_k_schedule` must be a positive int or a function of the "
                f"gradient step. Received: every_k_schedule={every_k_schedule!r}"
            )
        self._opt = with_extra_args_support(opt)
        self._every_k_schedule = every_k_schedule
        self._use_grad_mean = use_grad_mean
        self._should_skip_update_fn = should_skip_update_fn or _never_skip
        self._accumulator_dtype = accumulator_dtype

    @property
    def inner_opt(self) -> GradientTransformationExtraArgs:
        """The wrapped transformation."""
        return self._opt

    def _acc_dtype(self, leaf: Any) -> jnp.dtype | None:
        """The accumulator dtype of a leaf: complex leaves stay complex."""
        dtype = self._accumulator_dtype
        if dtype is None:
            return None
        if jnp.iscomplexobj(leaf) and not jnp.issubdtype(dtype, jnp.complexfloating):
            # float32 -> complex64, float64 -> complex128: keep the imaginary part.
            return jnp.promote_types(dtype, jnp.complex64)
        return jnp.dtype(dtype)

    def init(self, params: Params) -> MultiStepsState:
        """Zero counters, a zero accumulator and the inner optimizer's state."""
        gradient_step = jnp.zeros([], jnp.int32)
        _, skip_state = self._should_skip_update_fn(
            tree.zeros_like(params), gradient_step, params
        )
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=gradient_step,
            inner_opt_state=self._opt.init(params),
            acc_grads=jax.tree.map(
                lambda p: jnp.zeros_like(p, dtype=self._acc_dtype(p)), params
            ),
            skip_state=skip_state,
        )

    def _accumulate(self, updates, acc, n_acc):
        if self._use_grad_mean:  # Welford: numerically stable running mean
            step = lambda g, a: a + (g - a) / (n_acc + 1)  # noqa: E731
        else:
            step = lambda g, a: g + a  # noqa: E731
        return _cast_like(jax.tree.map(step, updates, acc), acc)

    def update(
        self,
        updates: Updates,
        state: MultiStepsState,
        params: Params | None = None,
        **extra_args: Any,
    ) -> tuple[Updates, MultiStepsState]:
        """Accumulates ``updates``; every k-th call returns the optimizer's output."""
        return self._advance(updates, state, params, extra_args, apply=False)

    def step(
        self,
        grads: Updates,
        state: MultiStepsState,
        params: Params,
        **extra_args: Any,
    ) -> tuple[Params, MultiStepsState]:
        """One fused step: :meth:`update` followed by ``apply_updates``.

        The same numbers and state as::

            updates, state = multi_steps.update(grads, state, params)
            params = optaxish.apply_updates(params, updates)

        but the parameters are updated inside the emitting branch, so a
        mini-step that only accumulates returns ``params`` untouched (no zero
        updates are written, no parameter is read): with donated buffers it
        costs one pass over the accumulator, about 0.3x an Adam step on CPU
        (``benchmarks/``). Use it in a hand-written training step.

        Args:
          grads: this mini-step's gradients.
          state: a :class:`MultiStepsState` from :meth:`init`.
          params: the parameters.
          **extra_args: passed to the wrapped optimizer's ``update``.

        Returns:
          ``(new_params, new_state)``.

        Examples:
          >>> import jax.numpy as jnp
          >>> import optaxish
          >>> opt = optaxish.MultiSteps(optaxish.sgd(1.0), every_k_schedule=2)
          >>> params = jnp.zeros(1)
          >>> state = opt.init(params)
          >>> params, state = opt.step(jnp.array([1.0]), state, params)
          >>> params  # accumulated only
          Array([0.], dtype=float32)
          >>> opt.step(jnp.array([3.0]), state, params)[0]  # the mean, applied
          Array([-2.], dtype=float32)

        Raises:
          ValueError: if ``params`` is None.
        """
        if params is None:
            raise ValueError(
                "`MultiSteps.step` updates the parameters: `params` must be the "
                "parameter tree. Received: params=None"
            )
        return self._advance(grads, state, params, extra_args, apply=True)

    def _advance(self, updates, state, params, extra_args, apply):
        """One mini-step: ``(updates, state)``, or ``(params, state)`` if ``apply``."""
        # Before the while loop, whose carry error would name no leaf.
        check_same_shapes(state.acc_grads, updates, "state.acc_grads", "updates")
        k_steps = self._every_k_schedule(state.gradient_step)
        should_skip, skip_state = self._should_skip_update_fn(
            updates, state.gradient_step, params
        )
        should_skip = jnp.asarray(should_skip)
        if should_skip.dtype != jnp.bool_ or should_skip.shape != ():
            raise ValueError(
                "`should_skip_update_fn` must return a bool scalar first. Received "
                f"dtype {should_skip.dtype} and shape {should_skip.shape}."
            )
        next_mini_step = jnp.asarray(
            _numerics.safe_increment(state.mini_step) % k_steps, jnp.int32
        )
        dynamic = {k: v for k, v in extra_args.items() if isinstance(v, jax.Array)}
        static = {k: v for k, v in extra_args.items() if k not in dynamic}

        def accumulated(acc, grads):  # the running mean (or sum) with this mini-step
            return self._accumulate(grads, acc, state.mini_step)

        def run_inner(acc, grads, inner_state, params, dynamic):
            return self._opt.update(
                tree.cast_like(accumulated(acc, grads), grads),
                inner_state,
                params,
                **dynamic,
                **static,
            )

        emits = state.mini_step == k_steps - 1
        run = jnp.logical_and(emits, jnp.logical_not(should_skip))

        # The wrapped optimizer runs in a while loop of zero or one iteration
        # rather than a `lax.cond`: XLA updates a loop's carried buffers in
        # place, so a mini-step passes the parameters and the inner state
        # through untouched, while a cond materialised the accumulated value
        # and the zero updates in fresh temporaries (on CPU, page faults on
        # every mini-step: 3.6x an Adam step on one 4M leaf, now 0.3x with
        # `step`; an emitting step 1.4x). The loop-invariant inputs go through an
        # optimization barrier tied to the loop counter, or XLA would hoist
        # their share of the inner update out of the loop and run it on every
        # mini-step. The price: like any while loop, this update can be
        # differentiated in forward mode only.
        def body(carry):
            i, out, inner_state = carry
            # (With `apply`, the parameters are the carried `out`: reading the
            # `params` argument here would keep the old buffer alive, a copy.)
            _, grads, acc, current, dynamic_in = jax.lax.optimization_barrier(
                (i, updates, state.acc_grads, out if apply else params, dynamic)
            )
            new_updates, new_state = run_inner(
                acc, grads, inner_state, current, dynamic_in
            )
            if apply:
                new_out = apply_updates(current, new_updates)
            else:
                new_out = _cast_like(new_updates, out)
            return i + 1, new_out, _cast_like(new_state, inner_state)

        if apply:
            out = params
        else:
            # The emitted updates' structure and dtypes, for the zeros of a
            # mini-step (traces the inner update once more, runs nothing).
            out_shape, _ = jax.eval_shape(
                run_inner,
                state.acc_grads,
                updates,
                state.inner_opt_state,
                params,
                dynamic,
            )
            # `zeros_like` keeps a sharding the trace knows (explicit mesh
            # axes): the loop's carry must keep the body's types.
            out = jax.tree.map(lambda s: jnp.zeros_like(s, s.dtype), out_shape)
        trips, out, inner_state = jax.lax.while_loop(
            lambda carry: carry[0] < run.astype(jnp.int32),
            body,
            (jnp.zeros([], jnp.int32), out, state.inner_opt_state),
        )
        # The accumulator's update reads the loop's trip count (`ran` implies
        # `emits`), so XLA schedules it after the loop, which reads the old
        # accumulator: one fused pass, in place, and no copy to keep the old
        # values alive.
        emitted = jnp.logical_or(emits, trips > 0)
        keep = lambda new, old: jnp.where(should_skip, old, new)  # noqa: E731
        acc_grads = jax.tree.map(
            lambda new, old: keep(jnp.where(emitted, jnp.zeros_like(new), new), old),
            accumulated(state.acc_grads, updates),
            state.acc_grads,
        )
        return out, MultiStepsState(
            mini_step=keep(next_mini_step, state.mini_step),
            gradient_step=jnp.where(
                run, _numerics.safe_increment(state.gradient_step), state.gradient_step
            ),
            inner_opt_state=inner_state,
            acc_grads=acc_grads,
            skip_state=skip_state,
        )

    def has_updated(self, state: MultiStepsState | Any) -> jax.Array:
        """True right after an update was emitted (mini_step 0, gradient_step > 0).

        Examples:
          >>> import jax.numpy as jnp
          >>> import optaxish
          >>> opt = optaxish.MultiSteps(optaxish.identity(), every_k_schedule=3)
          >>> bool(opt.has_updated(opt.init(jnp.zeros(1))))
          False
        """
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformationExtraArgs:
        """This wrapper as a plain ``(init, update)`` transformation.

        Examples:
          >>> import optaxish
          >>> opt = optaxish.MultiSteps(optaxish.identity(), every_k_schedule=2)
          >>> tx = opt.gradient_transformation()
          >>> isinstance(tx, optaxish.GradientTransformation)
          True
        """
        return GradientTransformationExtraArgs(init=self.init, update=self.update)
