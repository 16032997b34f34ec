"""The Keras-style ``Optimizer`` base class (tf-keras legacy ``OptimizerV2``).

The base class holds no math. A subclass declares its hyperparameters and
slots and builds, from (possibly traced) hyperparameter values, the core
transformation that turns one variable's gradient into its update. The base
owns that transformation's state (one state per variable, so a step may
update any subset of the variables, as in tf-keras), ``iterations``, the
gradient clipping of the ``clipnorm``/``clipvalue``/``global_clipnorm``
kwargs, and one compiled step per variable structure (per loss function for
``minimize``), with the state and the variable values donated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optaxish import _numerics, slots
from optaxish._base import GradientTransformation
from optaxish._norm_hint import global_norm_known, known_global_norm
from optaxish._variable import Variable
from optaxish.optimizers import schedules
from optaxish.optimizers._aggregation import (
    all_reduce_sum_gradients,
    check_one_norm_clip,
    check_transformers,
    clip_property,
    clip_transforms,
    process_gradients,
)
from optaxish.optimizers._checks import (
    check_var,
    deepcopy_fresh_steps,
    refuse_under_trace,
    unique_variables,
)
from optaxish.optimizers._custom import CustomHooksMixin
from optaxish.optimizers._functional import FunctionalMixin
from optaxish.optimizers._hyper import HyperparamsMixin, f32
from optaxish.optimizers._minimize import MinimizeMixin
from optaxish.optimizers._native_step import native_step, native_step_applies
from optaxish.optimizers._packed_group import PackedGroup, add_update
from optaxish.optimizers._packing_mixin import PackingMixin, packed_step
from optaxish.optimizers._slots_weights import SlotsWeightsMixin
from optaxish.optimizers._stacked import update_together
from optaxish.packing import pack

_ALLOWED_KWARGS = {"clipnorm", "clipvalue", "lr", "decay", "global_clipnorm"}
# Keys of the configs of tf-keras' new-style optimizers and of Keras 3's, which
# the legacy classes accept so that those configs load: dropped where they mean
# what the legacy class does, a `ValueError` otherwise (see `_new_style_kwargs`).
_NEW_STYLE_KWARGS = (
    "weight_decay",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "jit_compile",
    "is_legacy_optimizer",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


def _new_style_kwargs(owner: str, kwargs: dict[str, Any]) -> None:
    """Removes the new-style keys from ``kwargs``; raises for a value the
    legacy class ``owner`` cannot honour (nothing is silently ignored)."""

    def refuse(key: str, value: Any, why: str) -> None:
        raise ValueError(
            f"`{key}` cannot be honoured by the legacy optimizer {owner}: {why} "
            f"(new-style tf-keras and Keras 3 configs carry this key; only "
            f"its no-op value is accepted). Received: {key}={value!r}"
        )

    present = {k: kwargs.pop(k) for k in _NEW_STYLE_KWARGS if k in kwargs}
    decay = present.get("weight_decay")
    if decay is not None and (
        isinstance(decay, bool) or not isinstance(decay, int | float) or decay != 0
    ):
        refuse(
            "weight_decay",
            decay,
            "it has no weight decay (use `optaxish.optimizers.AdamW`, or "
            "`optaxish.add_decayed_weights` in a core chain)",
        )
    if present.get("use_ema"):
        refuse("use_ema", present["use_ema"], "it keeps no moving average")
    factor = present.get("loss_scale_factor")
    if factor is not None and factor != 1:
        refuse(
            "loss_scale_factor",
            factor,
            "it does not scale the loss (use "
            "`optaxish.mixed_precision.LossScaleOptimizer`)",
        )
    steps = present.get("gradient_accumulation_steps")
    if steps is not None:
        refuse(
            "gradient_accumulation_steps",
            steps,
            "it does not accumulate gradients (wrap a core optimizer in "
            "`optaxish.MultiSteps`)",
        )


class OptimizerState(NamedTuple):
    """The whole state of a Keras-style optimizer (a pytree).

    Attributes:
      iterations: steps taken (int32 scalar; tf-keras uses int64).
      hyperparams: ``{name: float32 scalar}``; ``learning_rate`` holds the
        last learning rate used when it is a schedule or a callable.
      inner_state: one core state per registered variable, in registration
        order.
    """

    iterations: jax.Array
    hyperparams: dict[str, jax.Array]
    inner_state: tuple[Any, ...]


class PreparedStep(NamedTuple):
    """What a traced step computes before the update (``_prepare_step``)."""

    iterations: jax.Array
    hyperparams: dict[str, Any]
    learning_rate: Any  # scheduled and decayed
    grads: list  # aggregated, clipped, transformed
    inner_state: list  # the counts set to `iterations`


class Optimizer(
    HyperparamsMixin,
    PackingMixin,
    CustomHooksMixin,
    SlotsWeightsMixin,
    MinimizeMixin,
    FunctionalMixin,
):
    """Base class of the Keras-style optimizers (tf-keras ``OptimizerV2``).

    Subclasses call ``super().__init__(name, **kwargs)``, then
    ``_set_hyper(name, value)`` for each hyperparameter, and implement
    ``_core(lr, hyper)`` (the core transformation of one variable's gradient
    into its update, ``-lr`` included; ``lr`` and ``hyper`` values may be
    traced float32 scalars), ``_slot_fields()`` (``[(keras slot name, core
    state field)]`` in tf-keras creation order) and ``_static_key()`` (the
    plain attributes that change the compiled step, e.g. ``epsilon``).

    Each step donates the state buffers and the updated variables' values
    to the compiled step: an array read earlier with ``v.value`` may be
    deleted by the next step (copy it, or read ``v.numpy()``). ``iterations``,
    ``get_slot`` and hyperparameter reads return copies, which survive.

    A list of variables stepped together is kept *packed* when the core
    transformation is elementwise (see :mod:`optaxish.packing`): their values
    and slots live in one buffer per dtype, so a step costs a handful of
    kernels however many variables there are. Reads and ``assign`` go
    through the buffer; per-variable views (``get_slot``, ``get_weights``,
    a step over another list) unpack first. ``apply_gradients`` gathers the
    gradients into one more buffer per dtype, kept between steps and written
    in place. The numbers are the same either way; set ``opt.packing = False``
    to keep one array per variable. A second optimizer over variables another
    one packed takes them back (the other keeps its slots and steps that list
    unpacked while the second holds them, packing it again once the second
    is gone or has unpacked them).

    Thread compatible, not thread-safe (as tf-keras): synchronize concurrent
    calls yourself.

    Args:
      name: the optimizer name (weight names start with it).
      gradient_aggregator: a callable on the list of ``(gradient, variable)``
        pairs returning the aggregated pairs, run first in each step unless
        ``experimental_aggregate_gradients=False``; by default
        :func:`all_reduce_sum_gradients` over ``axis_name``.
      gradient_transformers: callables on the pairs, run in order after the
        aggregation and the clipping (then no clip kwarg may be set).
      axis_name: the name of the mapped axis (``jax.shard_map``/``pmap``)
        whose devices are the replicas: when the step runs inside it (see
        :meth:`stateless_apply`) the default aggregator sums the gradients
        over it. Also a plain attribute; not part of the config.
      **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (clip
        gradients, in that tf-keras order: value, per-variable norm, global
        norm), ``lr`` (deprecated alias of ``learning_rate``) and ``decay``
        (``lr / (1 + decay * iterations)``). With an infinite or NaN global
        norm, ``global_clipnorm`` makes every gradient NaN, as
        ``tf.clip_by_global_norm`` does (optax's ``clip_by_global_norm``
        leaves the finite ones at 0). Also the keys that configs of tf-keras'
        new-style and Keras 3 optimizers add (``weight_decay``, ``use_ema``,
        ``ema_momentum``, ``ema_overwrite_frequency``, ``jit_compile``,
        ``is_legacy_optimizer``, ``loss_scale_factor``,
        ``gradient_accumulation_steps``), so that those configs load: they
        are dropped when they mean what this legacy class does
        (``weight_decay`` ``None`` or 0, ``use_ema`` false, whatever the EMA
        settings then, ``loss_scale_factor`` ``None`` or 1,
        ``gradient_accumulation_steps`` ``None``).

    Raises:
      TypeError: for an unknown keyword argument.
      ValueError: for a negative value, both ``clipnorm`` and
        ``global_clipnorm``, or a new-style key with a value this class cannot
        honour (e.g. a non-zero ``weight_decay``, ``use_ema=True``).

    Examples:
      >>> from optaxish import Variable
      >>> from optaxish.optimizers import SGD
      >>> opt = SGD(0.1, clipvalue=1.0)
      >>> v = Variable([1.0, 2.0])
      >>> _ = opt.apply_gradients([([3.0, -5.0], v)])
      >>> v.numpy(), int(opt.iterations)
      (array([0.9, 2.1], dtype=float32), 1)
    """

    clipnorm = clip_property("clipnorm")
    global_clipnorm = clip_property("global_clipnorm")
    clipvalue = clip_property("clipvalue")
    #: The native kernel that steps this class's packed float32 groups in one
    #: pass (see ``_native_step``), or ``None``: XLA's loops.
    _native_kernel: str | None = None

    def __init__(
        self,
        name: str,
        gradient_aggregator: Callable | None = None,
        gradient_transformers: Iterable[Callable] | None = None,
        axis_name: Any = None,
        **kwargs: Any,
    ) -> None:
        object.__setattr__(self, "_hyper_names", [])
        kwargs = dict(kwargs)
        _new_style_kwargs(type(self).__name__, kwargs)
        for k, v in kwargs.items():
            if k not in _ALLOWED_KWARGS:
                raise TypeError(
                    f"Unexpected keyword argument passed to optimizer: {k}. "
                    f"Allowed kwargs are {_ALLOWED_KWARGS}."
                )
            if v is not None and not callable(v) and v < 0:
                raise ValueError(f"Expected {k} >= 0, received: {v}")
            if k == "lr":
                warnings.warn(
                    "The `lr` argument is deprecated, use `learning_rate` instead.",
                    UserWarning,
                    stacklevel=3,
                )
        clip = {
            key: kwargs.get(key) for key in ("clipnorm", "global_clipnorm", "clipvalue")
        }
        check_one_norm_clip(clip)
        self._name = name or type(self).__name__
        self._clip = clip
        self.gradient_transformers = check_transformers(
            gradient_transformers, self._clip
        )
        self.gradient_aggregator = gradient_aggregator or all_reduce_sum_gradients
        self.axis_name = axis_name
        self._initial_decay = float(kwargs.get("decay", 0.0) or 0.0)
        self._lr_fn: Any = None  # a schedule or a zero-argument callable
        self._vars: list[Variable] = []
        self._index: dict[int, int] = {}  # id(variable) -> position in _vars
        self._batches: list[list[int]] = []
        self._groups: dict[tuple[int, ...], PackedGroup] = {}
        self._state = OptimizerState(jnp.zeros([], jnp.int32), {}, ())
        self._steps: dict[Any, Callable] = {}
        self._traces = 0  # number of step traces (for tests and diagnostics)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return deepcopy_fresh_steps(self, memo)

    # -- subclass hooks ---------------------------------------------------------

    def _core(self, lr: Any, hyper: dict[str, Any]) -> GradientTransformation:
        raise NotImplementedError

    def _slot_fields(self) -> list[tuple[str, str]]:
        return []

    def _static_key(self) -> tuple:
        return ()

    # -- the compiled step -------------------------------------------------------

    def _clipper(self) -> list[GradientTransformation]:
        return clip_transforms(self._clip)

    def _update_values(
        self, state: OptimizerState, values, grads, variables=None, aggregate=True
    ):
        """One traced step over a subset's states and values.

        ``variables`` (the ``Variable`` objects, or ``None``) are what the
        gradient aggregator and transformers see; ``aggregate`` is
        ``experimental_aggregate_gradients``.
        """
        if self._uses_hooks():  # a custom `_resource_apply_dense`
            return self._hook_update_values(state, values, grads, variables, aggregate)
        if native_step_applies(self, values):
            prepared = self._prepare_step(
                state, values, grads, variables, aggregate, gather=False
            )
            inner, new_values = native_step(self, prepared, values)
            it = _numerics.safe_increment(prepared.iterations)
            return OptimizerState(it, prepared.hyperparams, inner), new_values
        new_state, updates = self._compute_updates(
            state, values, grads, variables, aggregate
        )
        new_values = [add_update(v, u) for v, u in zip(values, updates)]
        return new_state, new_values

    def _reads_grads_in_place(self, values: list) -> bool:
        return native_step_applies(self, values)  # the kernel reads the pieces

    def _compute_updates(
        self, state: OptimizerState, values, grads, variables=None, aggregate=True
    ):
        """The traced step's ``(new_state, updates)`` (added to the values)."""
        it, hp, lr, grads, inner = self._prepare_step(
            state, values, grads, variables, aggregate
        )
        core = self._step_core(lr, hp, values, variables)
        together = None
        if len(values) > 1:  # one update for all: shared scalars computed once
            together = update_together(core, list(grads), inner, list(values))
        if together is None:
            together = tuple(
                zip(*(core.update(g, st, v) for v, g, st in zip(values, grads, inner)))
            ) or ((), ())
        updates, new_inner = together
        new_state = OptimizerState(_numerics.safe_increment(it), hp, tuple(new_inner))
        return new_state, list(updates)

    def _prepare_step(
        self,
        state: OptimizerState,
        values,
        grads,
        variables=None,
        aggregate=True,
        gather=True,
    ) -> PreparedStep:
        """What a traced step computes before the update: the learning rate
        (scheduled and decayed), the processed gradients (aggregated,
        clipped, transformed) and the inner states with their counts set to
        ``iterations``. Per-variable gradients of a packed group are gathered
        into its layout unless ``gather`` is false (a native kernel reads
        them where they are)."""
        it = state.iterations
        hp = dict(state.hyperparams)
        step = it.astype(jnp.float32)
        if isinstance(self._lr_fn, schedules.LearningRateSchedule):
            hp["learning_rate"] = jnp.asarray(self._lr_fn(step), jnp.float32)
        lr = hp["learning_rate"]
        if self._initial_decay > 0:
            lr = lr / (1.0 + self._initial_decay * step)
        if variables is None or packed_step(values):
            variables = [None] * len(values)
        norm = known_global_norm(grads)  # packing keeps the norm
        if packed_step(values) and not packed_step(grads):
            if gather:
                grads = [pack(list(grads), values[0].layout)]
            else:
                variables = [None] * len(grads)
        with global_norm_known(grads, norm):
            grads = process_gradients(self, list(grads), variables, aggregate)
        inner = []
        for st in state.inner_state:
            for piece in slots.paths(st):  # every counter follows `iterations`
                if piece.slot == "count":
                    st = slots.set(st, piece, it)
            inner.append(st)
        return PreparedStep(it, hp, lr, list(grads), inner)

    def _step_core(
        self, lr: Any, hyper: dict[str, Any], values: list, variables: Any
    ) -> GradientTransformation:
        """The core of a traced step over ``values`` (the arrays, or one
        packed group's buffers) of ``variables`` (the ``Variable`` objects,
        or ``None`` in :meth:`transformation`): :meth:`_core` unless a
        subclass treats some variables apart (the Keras 3 classes' weight
        decay exclusions)."""
        del values, variables
        return self._core(lr, hyper)

    def _key(self, variables: list[Variable]) -> tuple:
        """The compiled-step cache key of a step over ``variables``."""
        shapes = tuple(v._shape_dtype for v in variables)
        return (shapes, self._config_key(), self._hook_key(variables))

    def _config_key(self) -> tuple:
        """The part of :meth:`_key` that settings can change (not the
        variables): what a step compiled earlier must have been built with."""
        lr_key = (
            self._lr_fn
            if isinstance(self._lr_fn, schedules.LearningRateSchedule)
            else None
        )
        grad_key = (
            self.gradient_aggregator,
            tuple(self.gradient_transformers),
            self.axis_name,
        )
        return (lr_key, tuple(self._clip.values()), grad_key, self._static_key())

    def _register(self, variables: list[Variable]) -> list[int]:
        """Creates slots for new variables; returns every variable's index."""
        if self._uses_hooks():  # a custom `_create_slots`
            return self._hook_register(variables)
        index, stored = self._index, self._vars
        positions = [index.get(id(v)) for v in variables]
        if None not in positions and all(
            stored[i] is v for i, v in zip(positions, variables)
        ):  # every step after the first
            return positions
        if len(self._index) != len(self._vars):  # e.g. after a deep copy
            self._index = {id(v): j for j, v in enumerate(self._vars)}
        new = [v for v in variables if id(v) not in self._index]
        if new:
            cold = self._cold
            start = len(self._vars)
            # Created when first needed: in one packed init when the variables
            # are stepped packed, else per variable (see `_materialize`).
            inner = (None,) * len(new)
            self._vars.extend(new)
            self._index.update({id(v): start + k for k, v in enumerate(new)})
            self._batches.append(list(range(start, start + len(new))))
            self._set_cold(inner_state=cold.inner_state + inner)
        return [self._var_position(v) for v in variables]

    def build(self, var_list: Iterable[Variable]) -> None:
        """Creates the slots of ``var_list`` now (Keras 3's ``build``).

        tf-keras creates slots at the first ``apply_gradients``; call this to
        ``set_weights`` before any step. Known variables are skipped.
        """
        refuse_under_trace("build")
        variables = list(var_list)
        for v in variables:
            check_var(v)
        unique_variables(variables, "var_list")
        self._register(variables)
        self._create_hypers()

    def _prepare(
        self, indices: list[int], hot: bool = True
    ) -> tuple[OptimizerState, list]:
        """The step inputs of variables ``indices``: their state and values.

        The hyperparameter dict holds the current value of a callable
        learning rate; it is the stored dict itself when ``hot`` (a step
        does not donate it, see ``_step_plumbing.scalars_apart``), else a
        copy. With ``hot``, per-variable step counts may be holes (see
        ``_count_holes``). When the variables can be kept packed (see
        ``_packing_mixin``), the state and the values are their packed
        group's: one entry each (unless ``hot`` is False: then always one per
        variable).
        """
        group = self._hot_group(indices) if hot else self._cool(indices)
        cold = self._cold
        hp = self._step_hyperparams(hot)
        if group is not None:
            return OptimizerState(cold.iterations, hp, (group.state,)), [group.values]
        if self._all_in_order(indices):  # the common case: the stored tuple
            inner = cold.inner_state
        else:
            inner = tuple(cold.inner_state[i] for i in indices)
        if not hot:  # handed out
            inner = self._counts_shown(inner)
        # `_value`: the stored array (`value` would first look for a binding).
        return OptimizerState(cold.iterations, hp, inner), [
            self._vars[i]._value for i in indices
        ]

    def _step_hyperparams(self, hot: bool = True) -> dict[str, jax.Array]:
        """The hyperparameters a step starts from (see :meth:`_prepare`)."""
        hp = self._cold.hyperparams
        fn = self._lr_fn
        if fn is not None and not isinstance(fn, schedules.LearningRateSchedule):
            hp = dict(hp)
            hp["learning_rate"] = f32(fn())
        elif not hot:
            hp = dict(hp)
        return hp

    def _all_in_order(self, indices: list[int]) -> bool:
        """Whether ``indices`` are all the variables, in their order."""
        n = len(self._vars)
        if len(indices) != n:
            return False
        every = self.__dict__.get("_every_index")
        if every is None or len(every) != n:
            every = self.__dict__["_every_index"] = list(range(n))
        return indices == every

    def _commit(
        self, indices: list[int], new_sub: OptimizerState, new_values: list
    ) -> None:
        """Stores a step's outputs, then applies the variables' constraints."""
        if "_hypers_made" not in self.__dict__:  # the first step (tf-keras'
            self._create_hypers()  # `_create_all_weights`): configs go float32
        if packed_step(new_values):
            group = self._groups[tuple(indices)]
            group.state = new_sub.inner_state[0]
            group.set_values(new_values[0])
            self.__dict__["_cold"] = OptimizerState(  # `_replace`, faster
                new_sub.iterations, new_sub.hyperparams, self._cold.inner_state
            )
            return
        if self._all_in_order(indices):  # keep the step's tuple (see `_run`)
            self.__dict__["_cold"] = new_sub
        else:
            inner = list(self._cold.inner_state)
            for i, st in zip(indices, new_sub.inner_state):
                inner[i] = st
            self.__dict__["_cold"] = new_sub._replace(inner_state=tuple(inner))
        for i, value in zip(indices, new_values):
            var = self._vars[i]
            var._value = value
            if var._constraint is not None:
                var.assign(var.constraint(var))

    # -- public API ---------------------------------------------------------------

    def apply_gradients(
        self,
        grads_and_vars: Iterable[tuple[Any, Variable]],
        name: str | None = None,
        experimental_aggregate_gradients: bool = True,
    ) -> jax.Array | None:
        """Applies one step; returns ``iterations`` (``None`` for no pairs).

        ``None`` gradients are skipped with a warning. The gradients are
        clipped as the constructor's kwargs say, then each variable gets its
        update, then its constraint (if any), then ``iterations`` grows by 1.
        In tf-keras' order, the gradients first go through
        ``gradient_aggregator`` (skipped with
        ``experimental_aggregate_gradients=False``), then the clipping, then
        the ``gradient_transformers``. This call updates the variables in
        place, so it runs on the host, outside ``jax.jit``/``shard_map``:
        inside a mapped axis use :meth:`stateless_apply`, whose default
        aggregator sums over ``axis_name``. ``name`` is accepted for tf-keras
        compatibility.

        Raises:
          TypeError: for a pair that is not a ``(gradient, Variable)`` pair or
            a non-float variable or gradient dtype.
          RuntimeError: when called inside a JAX transformation (``jit``,
            ``vmap``, ``grad``, ...), even with concrete gradients; nothing
            changes then.
          ValueError: when no variable has a gradient, a variable appears
            twice, or a gradient's shape differs from its variable's. The
            optimizer and the variables are unchanged then.
        """
        del name
        refuse_under_trace("apply_gradients")
        return self._apply_pairs(grads_and_vars, bool(experimental_aggregate_gradients))
