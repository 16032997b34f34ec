"""``minimize`` of the Keras-style ``Optimizer`` (a mixin).

The loss closure becomes a pure function of the variables' values through
``Variable._bind``; the gradient and the update are compiled together, once
per (loss function, variable list): the trace binds those very variables, so
another list of the same shapes is another step. Variables the loss reads
without being in ``var_list`` are found by a first abstract trace (before
anything is registered) and passed in as (non-differentiated) arguments, so
their values are never baked in.
"""

from __future__ import annotations

import operator
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from optaxish._variable import Variable
from optaxish.optimizers._checks import (
    check_var,
    gradient_pairs,
    planned_gradients,
    refuse_under_trace,
    unique_variables,
)
from optaxish.optimizers._count_holes import drop_counts, without_counts
from optaxish.optimizers._packing_mixin import packed_step
from optaxish.optimizers._step_plumbing import (
    ApplyPlan,
    MinimizePlan,
    call_step,
    merged_hyperparams,
    packing_gradients,
    scalars_apart,
    scalars_out,
    with_hyperparams,
    with_iterations,
)

_uid = operator.attrgetter("_unique_id")

#: How many (loss function, variable list) steps ``minimize`` keeps compiled;
#: the least recently used beyond it are dropped with what they hold (the
#: loss closure and any batch it captured).
MINIMIZE_CACHE_SIZE = 32
#: This many consecutive ``minimize`` calls compiling a step for new function
#: objects of one code (a lambda made anew for each call) give a warning, as
#: tf.function warns after 5 retraces in 5 calls.
_RETRACE_WARNING_AT = 5


def _uids(variables: list[Variable]) -> tuple[int, ...]:
    """The variables' identities (``_unique_id``: never reused, unlike ``id``)."""
    return tuple(map(_uid, variables))


def unbound_reads(loss: Callable[[], Any], variables: list[Variable]) -> list:
    """The variables ``loss()`` reads besides ``variables``, in reading order.

    Found by an abstract trace with ``variables`` bound (nothing is computed
    or changed; an error of the loss propagates). ``minimize`` passes them to
    its step as arguments, so that their values are never baked in.
    """
    found: list[Variable] = []

    def pure(vals: list) -> Any:
        with Variable._bind(variables, vals) as scope:
            out = jnp.asarray(loss())
        for v in scope.unbound_reads:
            if all(v is not w for w in found):
                found.append(v)
        return out

    jax.eval_shape(pure, [jax.ShapeDtypeStruct(*v._shape_dtype) for v in variables])
    return found


class MinimizeMixin:
    """``minimize``, ``get_gradients``, ``get_updates`` and the compiled-step
    runner; relies on the base's ``_key``, ``_register``, ``_prepare``,
    ``_commit``, ``_update_values``, ``_clipper``, ``_uses_hooks``,
    ``_steps`` and ``_traces``.

    The compiled step threads a *carry* (the base's: the optimizer state of
    the stepped variables) through a few hooks, so a wrapper such as
    ``LossScaleOptimizer`` reuses ``minimize`` and ``_run`` with its own carry
    (the inner state and the loss scale) instead of copying them.
    """

    def _run(
        self,
        key: Any,
        make: Callable,
        indices: list[int],
        args: tuple,
        grads_first: bool = False,
        *,
        steps: dict,
        mark: Any = None,
    ) -> jax.Array:
        """Runs ``make()``'s step, compiled once per ``key``; returns
        ``iterations``.

        The carry and the values are donated; the carry's ``iterations`` and
        hyperparameters go in apart, not donated, and the hyperparameters the
        step leaves unchanged are not returned (``scalars_apart``).
        Unpacked, the per-variable step counts stay outside the compiled step
        and are stored as holes (see ``_count_holes``). Packed, with
        ``grads_first`` (``args[0]`` is the list of per-variable gradients),
        the gradients are packed into the group's donated gradient buffers
        before the step, unless the step reads them where they are
        (``_reads_grads_in_place``). ``steps`` (an ``ApplyPlan``'s or a
        ``MinimizePlan``'s) remembers, by packing, the compiled step of
        ``key`` and whether it takes the gradient buffers: decided once, at
        compile time, so the call always matches the compiled step.

        ``mark`` (``_registry_mark()``'s, taken before the variables were
        registered) says what to forget when tracing or running the step
        raises: the variables this call registered, so that the optimizer's
        weights are as before the call.
        """
        if type(self)._commit_carry is _plain_commit:
            compiled = steps.get(True)
            group = None if compiled is None else self._groups.get(tuple(indices))
            if group is not None and self._packing_allowed():
                return self._run_packed(group, *compiled, args, mark)
        try:
            carry, values, holes = self._step_inputs(indices)
            packed = packed_step(values)
            compiled = steps.get(packed)
            if compiled is None:
                into = packed and grads_first
                into = into and not self._reads_grads_in_place(values)
                fn = self._compiled(make, (key, packed), holes, into)
                compiled = steps[packed] = (fn, into)
            fn, into = compiled
            # `iterations` and the hyperparameters go in apart, not donated
            # (see `scalars_apart`).
            sub = self._carry_sub(carry)
            hyperparams = sub.hyperparams
            carry = self._carry_with_sub(carry, scalars_out(sub))
            group = self._packed_group(indices) if into else None
            new_carry, new_values = call_step(
                fn, carry, values, args, group, sub.iterations, hyperparams
            )
        except BaseException:
            self._step_failed(mark)
            raise
        new_sub = self._carry_sub(new_carry)
        hyperparams = merged_hyperparams(new_sub.hyperparams, hyperparams)
        new_carry = self._carry_with_sub(
            new_carry, with_hyperparams(new_sub, hyperparams)
        )
        self._commit_carry(indices, new_carry, new_values)  # counts stay holes
        if holes:  # the next step over them need not look for counts
            self.__dict__["_holey"] = new_sub.inner_state
        return new_sub.iterations  # never donated (see `scalars_apart`)

    def _run_packed(
        self,
        group: Any,
        fn: Callable,
        into: bool,
        args: tuple,
        mark: Any,
    ) -> jax.Array:
        """:meth:`_run` once the step ``fn`` of the packed ``group`` is
        compiled (taking the group's gradient buffers when ``into``), for an
        optimizer whose carry is its own state: the same work as
        ``_prepare``, the call and ``_commit`` (keep them in step), in fewer
        calls (a small model's step is mostly this host work)."""
        cold = self._cold
        hyperparams = self._step_hyperparams()
        carry = type(cold)(None, None, (group.state,))
        try:
            new, new_values = call_step(
                fn,
                carry,
                [group.values],
                args,
                group if into else None,
                cold.iterations,
                hyperparams,
            )
        except BaseException:
            self._step_failed(mark)
            raise
        hyperparams = merged_hyperparams(new.hyperparams, hyperparams)
        # `_commit`'s packed case (a packed group has no constraints to apply).
        if "_hypers_made" not in self.__dict__:
            self._create_hypers()
        group.state = new.inner_state[0]
        group.set_values(new_values[0])
        self.__dict__["_cold"] = type(cold)(
            new.iterations, hyperparams, self._cold.inner_state
        )
        return new.iterations  # never donated (see `scalars_apart`)

    def _reads_grads_in_place(self, values: list) -> bool:
        """Whether the step over ``values`` (a packed group's) reads the
        per-variable gradients where they are (a native kernel), so that
        they are not gathered into the group's gradient buffers first."""
        del values
        return False

    def _step_failed(self, mark: Any) -> None:
        """Forgets what a step that raised may have left stale: the plans
        (their indices may be forgotten) and, with ``mark``, the variables
        the call registered."""
        self.__dict__.pop("_apply_plan", None)
        self.__dict__.pop("_minimize_plan", None)
        if mark is not None:
            self._registry_rollback(mark)

    def _compiled(self, make: Callable, key: Any, holes: bool, into: bool) -> Callable:
        """The jitted step of ``key``, built from ``make()`` the first time."""
        fn = self._steps.get(key)
        if fn is None:
            step = with_iterations(
                self._with_holes(make(), holes),
                lambda c: self._carry_sub(c).iterations,
            )
            donate = (0, 1)  # the carry and the values
            if into:
                step, donate = packing_gradients(step), (0, 1, 2)
            step = scalars_apart(step, self._carry_sub, self._carry_with_sub)
            fn = self._steps[key] = jax.jit(step, donate_argnums=donate)
        return fn

    def _step_inputs(self, indices: list[int]) -> tuple[Any, list, bool]:
        """The carry and values a step starts from, and whether the carry's
        per-variable step counts are holes (unpacked, built-in optimizers)."""
        carry, values = self._prepare_carry(indices)
        holes = not packed_step(values) and not self._uses_hooks()
        if holes:
            sub = self._carry_sub(carry)
            last = self.__dict__.get("_holey") or ()
            if last is not sub.inner_state and (
                len(last) != len(sub.inner_state)
                or not all(map(operator.is_, sub.inner_state, last))
            ):
                inner = drop_counts(sub.inner_state)
                carry = self._carry_with_sub(carry, sub._replace(inner_state=inner))
        return carry, values, holes

    def _with_holes(self, step: Callable, holes: bool) -> Callable:
        """``step`` taking and returning a carry whose counts are holes."""
        if not holes:
            return step
        return without_counts(step, self._carry_sub, self._carry_with_sub)

    def _packed_group(self, indices: list[int]) -> Any:
        """The packed group the variables ``indices`` are stepped in."""
        return self._groups[tuple(indices)]

    def _carry_sub(self, carry: Any) -> Any:
        """The ``OptimizerState`` inside the carry."""
        return carry

    def _carry_with_sub(self, carry: Any, sub: Any) -> Any:
        """The carry with its ``OptimizerState`` replaced by ``sub``."""
        del carry
        return sub

    def _commit_carry(self, indices: list[int], carry: Any, values: list) -> None:
        """Stores a step's new carry and values."""
        self._commit(indices, carry, values)

    def _apply_pairs(
        self, grads_and_vars: Any, aggregate: bool, unscale: bool = False
    ) -> jax.Array | None:
        """``apply_gradients``' work: checks, then one compiled step.

        Shared by the optimizers and the wrappers that reuse these hooks
        (``LossScaleOptimizer``), which differ only in their carry. Their
        ``apply_gradients`` refuse a call inside a transformation first.
        With ``unscale``, the step first unscales the gradients
        (``_unscale_traced``: Keras 3's ``LossScaleOptimizer.apply``).
        """
        plan = self.__dict__.get("_apply_plan")
        grads = None
        if plan is not None:  # the same variables as last time: one pass
            items = list(grads_and_vars)
            grads = planned_gradients(items, plan.variables, plan.avals)
            grads_and_vars = items
        if grads is None:
            checked = gradient_pairs(grads_and_vars, stacklevel=4)
            if checked is None:
                return None
            variables, grads = checked
            ids = tuple(map(id, variables))
        else:
            variables, ids = plan.variables, plan.ids
        config = self._config_key()
        mark = None
        if (
            plan is None
            or plan.aggregate is not aggregate
            or plan.unscale is not unscale
            or plan.config != config
            or plan.ids != ids
        ):
            variables = list(variables)
            mark = self._registry_mark(variables)
            indices = self._register(variables)
            # The step passes the variables themselves to the gradient
            # aggregator and transformers, which may look at them (names):
            # then it is compiled per variable list, not per shapes.
            seen = _uids(variables) if self._variables_seen(aggregate) else ()
            key = ("apply", aggregate, unscale, self._key(variables), seen)
            plan = ApplyPlan(
                tuple(variables),
                ids,
                config,
                aggregate,
                unscale,
                indices,
                key,
                {},
                tuple(v._shape_dtype for v in variables),
            )
            self.__dict__["_apply_plan"] = plan

        def make():
            stepped = list(plan.variables)

            def step(carry, values, grads):
                self._traces += 1
                if unscale:
                    grads = self._unscale_traced(carry, grads)
                return self._apply_traced(carry, values, grads, stepped, aggregate)

            return step

        return self._run(
            plan.key,
            make,
            plan.indices,
            (grads,),
            grads_first=True,
            steps=plan.steps,
            mark=mark,
        )

    def _remember_minimize(self, base: tuple, loss: Callable) -> None:
        """Keeps the compiled steps of the last ``MINIMIZE_CACHE_SIZE`` bases;
        warns when ``loss`` looks made anew for each call.

        As tf.function's retracing warning: the last ``_RETRACE_WARNING_AT``
        calls each compiled a step for a function object never seen before,
        all of one code (a lambda written inside the loop). Several losses
        made by one factory warn only when five or more are first used in a
        row.
        """
        recent = self.__dict__.setdefault("_minimize_recent", OrderedDict())
        if base in recent:
            recent.move_to_end(base)
            self.__dict__["_minimize_streak"] = (None, 0)
            return
        recent[base] = None
        self._new_loss_streak(loss)
        while len(recent) > MINIMIZE_CACHE_SIZE:
            old, _ = recent.popitem(last=False)
            for key in (("extras", *old), (old, True), (old, False)):
                self._steps.pop(key, None)
            if not any(b[1] is old[1] for b in recent):
                self._steps.pop(("loss seen", old[1]), None)

    def _new_loss_streak(self, loss: Callable) -> None:
        """Counts consecutive compiles for new function objects of one code."""
        code = getattr(loss, "__code__", None)
        seen = self.__dict__.setdefault("_minimize_codes", {})  # code -> ids
        ids = seen.setdefault(code, set())
        if code is None or ids is None:  # not a Python function, or warned
            return
        # By id: holding the functions would keep their closures alive (a
        # reused id only undercounts).
        new = id(loss) not in ids
        ids.add(id(loss))
        last, count = self.__dict__.get("_minimize_streak", (None, 0))
        count = (count + 1 if last is code else 1) if new else 0
        self.__dict__["_minimize_streak"] = (code, count)
        if count < _RETRACE_WARNING_AT:
            return
        seen[code] = None  # warn once per code
        warnings.warn(
            f"The last {count} `minimize` calls each compiled a new step, for "
            f"a new function object of the loss `{code.co_name}` "
            f"({code.co_filename}:{code.co_firstlineno}): a lambda or closure "
            "made anew for each call is traced and compiled again, which is "
            "slow. Define the loss once, outside the loop, and read the data "
            "that changes (batches) through Variables; its compiled step is "
            f"then reused. Only the last {MINIMIZE_CACHE_SIZE} (loss, variable "
            "list) steps are kept.",
            UserWarning,
            stacklevel=4,
        )

    def _prepare_carry(self, indices: list[int]) -> tuple[Any, list]:
        """The carry and the variables' values a step starts from."""
        return self._prepare(indices)

    def _scale_traced(self, carry: Any, loss: jax.Array) -> jax.Array:
        """The loss ``minimize`` differentiates (traced)."""
        del carry
        return loss

    def _unscale_traced(self, carry: Any, grads: list) -> list:
        """The gradients of the scaled loss, as the step wants them (traced)."""
        del carry
        return grads

    def _apply_traced(
        self, carry: Any, values: list, grads: list, variables: list, aggregate=True
    ) -> tuple[Any, list]:
        """One traced step: ``(new carry, new values)``."""
        return self._update_values(carry, values, grads, variables, aggregate)

    def get_gradients(self, loss: Callable[[], Any], params: Any) -> list[jax.Array]:
        """The gradients of ``loss()`` with respect to ``params``, clipped.

        ``loss`` is a zero-argument callable over variables (there are no
        graph tensors here); ``params`` a variable or a list of them. The
        gradients are clipped as the ``clipvalue``/``clipnorm``/
        ``global_clipnorm`` kwargs say (as TF 2.0-2.3's ``get_gradients``;
        later tf-keras versions clip only in ``apply_gradients``). A variable
        the loss does not depend on gets zeros (tf-keras raises for a
        ``None`` gradient). Runs eagerly: nothing is stepped or compiled.

        Raises:
          ValueError: when ``loss`` is not callable.
          TypeError: for a non-variable in ``params``.

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import SGD
          >>> v = Variable([3.0, 4.0])
          >>> grads = SGD(clipnorm=1.0).get_gradients(lambda: 5.0 * (v * v).sum(), [v])
          >>> grads[0]
          Array([0.6, 0.8], dtype=float32)
        """
        if not callable(loss):
            raise ValueError(
                "`loss` must be a zero-argument callable here (no graph tensors). "
                f"Received: loss={loss!r}"
            )
        variables = [params] if isinstance(params, Variable) else list(params)
        for v in variables:
            check_var(v)
        unique_variables(variables, "params")

        def pure(vals):
            with Variable._bind(variables, list(vals)):
                return jnp.asarray(loss())

        out, vjp = jax.vjp(pure, [v.value for v in variables])
        (grads,) = vjp(jnp.ones_like(out))
        for tx in self._clipper():
            grads, _ = tx.update(grads, tx.init(grads))
        return list(grads)

    def get_updates(self, loss: Callable[[], Any], params: Any) -> list[jax.Array]:
        """The legacy (Keras 1) step: applies one step, returns ``[iterations]``.

        Same as tf-keras' ``[apply_gradients(zip(get_gradients(loss, params),
        params))]`` run eagerly: the step happens now (it is
        :meth:`minimize`, compiled, with the gradients clipped once) and the
        list holds the new ``iterations``. New code should call
        :meth:`minimize` or :meth:`apply_gradients`.

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import SGD
          >>> v = Variable(1.0)
          >>> opt = SGD(0.5)
          >>> [int(i) for i in opt.get_updates(lambda: v * v, [v])], v.numpy()
          ([1], array(0., dtype=float32))
        """
        variables = [params] if isinstance(params, Variable) else list(params)
        return [self.minimize(loss, variables)]

    def _minimize_with_tape(
        self, loss: Any, var_list: Any, grad_loss: Any, tape: Any
    ) -> jax.Array:
        """``minimize`` of a loss value with a gradient function as ``tape``."""
        if grad_loss is not None:
            raise ValueError(
                "`grad_loss` is not supported with `tape`: pass it to your "
                f"gradient function instead. Received: grad_loss={grad_loss!r}"
            )
        if callable(var_list) and not isinstance(var_list, Variable):
            var_list = var_list()
        variables = [var_list] if isinstance(var_list, Variable) else list(var_list)
        gradient = getattr(tape, "gradient", None)
        if not callable(gradient) and not callable(tape):
            raise TypeError(
                "`tape` must have a `gradient(loss, var_list)` method or be a "
                f"function `(loss, var_list) -> gradients`. Received: {tape!r}"
            )
        grads = (
            gradient(loss, variables) if callable(gradient) else tape(loss, variables)
        )
        return self.apply_gradients(zip(list(grads), variables))

    def minimize(
        self,
        loss: Callable[[], Any],
        var_list: Any,
        grad_loss: Any = None,
        name: str | None = None,
        tape: Any = None,
    ) -> jax.Array | None:
        """Differentiates ``loss()`` and applies one step (compiled together).

        ``loss`` is a zero-argument callable over variables; it is traced once
        per (loss function, variable list), so it must read changing data
        through variables, not through Python state. ``var_list`` is a
        variable, a list or tuple of them, or a callable returning one; as in
        tf-keras the callable is evaluated after the loss (the first time a
        loss function is seen, the loss runs once eagerly before it, so
        variables the loss creates exist). Variables that the loss reads but
        ``var_list`` omits are passed in as constants. Every variable in
        ``var_list`` gets a gradient (zero when the loss does not depend on
        it; tf-keras skips those). ``grad_loss`` is the upstream gradient
        (ones by default). An empty ``var_list`` steps nothing: the loss runs
        once, eagerly, and ``None`` is returned (as tf-keras). When the loss
        or the step raises, the optimizer is as before the call (the
        variables are not registered).

        ``tape`` stands in for tf's ``GradientTape`` when ``loss`` is a value
        rather than a callable: an object with ``gradient(loss, var_list)``
        or a function ``tape(loss, var_list)`` returning the gradients,
        which are then applied with :meth:`apply_gradients`.

        Returns:
          The new ``iterations``, or ``None`` for an empty ``var_list``.

        Raises:
          ValueError: when ``loss`` is not callable and no ``tape`` is given.
          TypeError: for a non-variable in ``var_list``.
          RuntimeError: when called inside a JAX transformation (``jit``,
            ``vmap``, ``grad``, ...); use :meth:`stateless_apply` there.

        Examples:
          >>> import jax.numpy as jnp
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import SGD
          >>> w = Variable([1.0, -2.0])
          >>> opt = SGD(0.1)
          >>> _ = opt.minimize(lambda: jnp.sum(w * w), [w])
          >>> w.numpy()
          array([ 0.8, -1.6], dtype=float32)
          >>> # A value and a gradient function in place of a tape:
          >>> grad_fn = lambda loss, var_list: [2 * v.value for v in var_list]
          >>> _ = opt.minimize(jnp.sum(w * w), [w], tape=grad_fn)
          >>> w.numpy()
          array([ 0.64, -1.28], dtype=float32)
        """
        del name
        refuse_under_trace("minimize")
        if tape is not None:
            return self._minimize_with_tape(loss, var_list, grad_loss, tape)
        if not callable(loss):
            raise ValueError(
                "`tape` is required when a `Tensor` loss is passed. Received: "
                f"loss={loss!r}, tape={tape!r}."
            )
        ran = False
        if callable(var_list) and not isinstance(var_list, Variable):
            if ("loss seen", loss) not in self._steps:
                loss()  # tf-keras: the loss runs first, creating its variables
                self._steps[("loss seen", loss)] = ran = True
            var_list = var_list()
        variables = [var_list] if isinstance(var_list, Variable) else list(var_list)
        config = self._config_key()
        plan = self.__dict__.get("_minimize_plan")
        if (
            plan is not None
            and plan.loss is loss
            and plan.unseeded is (grad_loss is None)
            and plan.config == config
            and len(variables) == len(plan.variables)
            and all(map(operator.is_, variables, plan.variables))
            and MINIMIZE_CACHE_SIZE > 0
        ):  # the last call's loss and variables (checked and registered then)
            self.__dict__["_minimize_streak"] = (None, 0)  # `_remember_minimize`'s
            base, indices, extras, mark = plan.base, plan.indices, plan.extras, None
            steps = plan.steps
        else:
            self.__dict__.pop("_minimize_plan", None)
            for v in variables:
                check_var(v)
            if not variables:  # tf-keras: the loss runs, nothing is stepped
                if not ran:
                    loss()
                return None
            unique_variables(variables, "var_list")
            # The step is traced with these variables bound (the loss reads
            # them by identity), so it is compiled per variable list, not per
            # shapes.
            base = ("minimize", loss, _uids(variables), config, grad_loss is None)
            self._remember_minimize(base, loss)
            extras = self._steps.get(("extras", *base))
            if extras is None:  # before registering: a loss that raises changes nothing
                extras = self._steps[("extras", *base)] = unbound_reads(loss, variables)
            mark = self._registry_mark(variables)
            indices = self._register(variables)
            steps = {}

        def make():
            def step(carry, values, extra_values, seed):
                self._traces += 1

                def pure(vals):
                    # A packed group's values bind as views of the buffers.
                    own = vals[0].unpack() if packed_step(vals) else list(vals)
                    with Variable._bind(variables + extras, own + list(extra_values)):
                        return self._scale_traced(carry, jnp.asarray(loss()))

                out, vjp = jax.vjp(pure, list(values))
                (grads,) = vjp(jnp.ones_like(out) if seed is None else seed)
                grads = self._unscale_traced(carry, grads)
                return self._apply_traced(carry, values, grads, variables)

            return step

        seed = None if grad_loss is None else jnp.asarray(grad_loss)
        extra_values = [v.value for v in extras]  # not donated: no copy
        iterations = self._run(
            base, make, indices, (extra_values, seed), steps=steps, mark=mark
        )
        self.__dict__["_minimize_plan"] = MinimizePlan(
            loss,
            tuple(variables),
            config,
            grad_loss is None,
            base,
            indices,
            extras,
            steps,
        )
        return iterations


#: The base's ``_commit_carry``: an optimizer that keeps it steps its own
#: ``OptimizerState`` (``_run_packed`` applies).
_plain_commit = MinimizeMixin._commit_carry
