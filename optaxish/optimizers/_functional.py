"""The functional escape hatch of the Keras-style ``Optimizer`` (a mixin).

For users who write their own ``jax.jit`` step: the optimizer's whole state
as a pytree (:attr:`~FunctionalMixin.state`), a pure
:meth:`~FunctionalMixin.stateless_apply` in Keras 3's spirit, and
:meth:`~FunctionalMixin.transformation`, a core ``GradientTransformation``
over any tree of parameters. All three run the same traced step as
``apply_gradients`` (aggregation, clipping, transformers, the update, the
``iterations`` increment), so the numbers are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optaxish._base import GradientTransformationExtraArgs
from optaxish._variable import Variable
from optaxish.optimizers._checks import refuse_under_trace


def copy_arrays(tree: Any) -> Any:
    """``tree`` with every leaf a copy (a step donates the stored buffers)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def same_arrays(a: Any, b: Any) -> bool:
    """Whether two pytrees have one structure and leaves of one shape and dtype."""
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _loaded(x: Any) -> jax.Array:
    """A fresh, uncommitted copy of ``x``, made through the host.

    A loaded state (from orbax, say) holds arrays committed to a device; the
    compiled steps were made for uncommitted ones, and JAX compiles a step
    again for committed arguments (a device copy of a committed array stays
    committed)."""
    x = jnp.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _loaded(jax.random.key_data(x))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jnp.asarray(np.array(x, copy=True))


def loaded_copy(tree: Any) -> Any:
    """``tree`` with every leaf a fresh, uncommitted copy (see :func:`_loaded`)."""
    return jax.tree.map(_loaded, tree)


def gradient_list_pairs(
    known: Sequence[Variable],
    grads: Sequence[Any],
    trainable_variables: Sequence[Variable] | None,
) -> list[tuple[Any, Variable]] | None:
    """The ``(gradient, variable)`` pairs of Keras 3's ``apply(grads,
    trainable_variables=None)``, or ``None`` for empty ``grads`` (a no-op);
    ``known`` are the variables the optimizer was built on (their order is
    that of ``grads`` when no variables are given)."""
    grads = list(grads)
    if not grads:
        return None
    if trainable_variables is None:
        if not known:
            raise ValueError(
                "When passing `grads` without `variables`, the optimizer must "
                "already be built on a list of variables. Call "
                "`optimizer.build(trainable_variables)` first."
            )
        if len(grads) != len(known):
            raise ValueError(
                "When passing `grads` as a list of gradient tensors, the "
                "gradients must match `optimizer.variables` one-to-one. "
                f"Received a list of {len(grads)} gradients, but the optimizer "
                f"is tracking {len(known)} trainable variables."
            )
        trainable_variables = known
    variables = list(trainable_variables)
    if len(variables) != len(grads):
        raise ValueError(
            "`grads` and `trainable_variables` must have the same length. "
            f"Received: {len(grads)} gradients and {len(variables)} variables."
        )
    return list(zip(grads, variables))


class FunctionalMixin:
    """``state``, ``stateless_apply`` and ``transformation``; relies on the
    base's ``_vars``, ``_state``, ``_prepare``, ``_register``, ``_core``,
    ``_compute_updates``, ``_update_values`` and ``_non_slot_weights``."""

    def apply(
        self,
        grads: Sequence[Any],
        trainable_variables: Sequence[Variable] | None = None,
    ) -> jax.Array | None:
        """Keras 3's ``apply``: ``apply_gradients(zip(grads, trainable_variables))``.

        Without ``trainable_variables``, ``grads`` go one-to-one to the
        variables of :meth:`build` (or of the first steps), in that order. An
        empty ``grads`` list does nothing.

        Returns:
          The new ``iterations`` (``None`` for empty ``grads``).

        Raises:
          ValueError: without ``trainable_variables`` before the optimizer
            knows any variable, or for a number of gradients that does not
            match; as :meth:`apply_gradients` otherwise. Nothing changes then.

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import SGD
          >>> a, b = Variable([1.0]), Variable([2.0])
          >>> opt = SGD(0.5)
          >>> opt.build([a, b])
          >>> _ = opt.apply([[1.0], [2.0]])
          >>> a.numpy(), b.numpy()
          (array([0.5], dtype=float32), array([1.], dtype=float32))
        """
        pairs = gradient_list_pairs(self._vars, grads, trainable_variables)
        return None if pairs is None else self.apply_gradients(pairs)

    @property
    def state(self) -> Any:
        """A copy of the optimizer state over its variables (``OptimizerState``).

        The ``optimizer_variables`` of :meth:`stateless_apply` (Keras 3's
        ``optimizer.variables`` values): ``iterations``, the hyperparameters
        (float32; a callable learning rate holds its current value) and one
        core state per variable, in the order of ``build``/first use.
        Assigning a state of the same structure (e.g. the result of a
        hand-written loop) loads it.

        Raises:
          ValueError: when an assigned state has another structure, shape or
            dtype (nothing changes then).

        Examples:
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import Adam
          >>> opt = Adam(0.1)
          >>> opt.build([Variable([1.0, 2.0])])
          >>> state = opt.state
          >>> int(state.iterations), sorted(state.hyperparams)
          (0, ['beta_1', 'beta_2', 'decay', 'learning_rate'])
        """
        sub, _ = self._prepare(list(range(len(self._vars))), hot=False)
        return copy_arrays(sub)

    @state.setter
    def state(self, value: Any) -> None:
        refuse_under_trace("optimizer.state = ...")
        current = self._state
        if not same_arrays(value, current):
            raise ValueError(
                f"The state assigned to optimizer {self._name} must have the "
                "structure, shapes and dtypes of `optimizer.state`. Received: "
                f"{jax.tree.structure(value)}; expected {jax.tree.structure(current)}."
            )
        object.__setattr__(self, "_state", loaded_copy(value))
        self._create_hypers()  # configs now read the loaded float32 values

    def stateless_apply(
        self,
        optimizer_variables: Any,
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
        experimental_aggregate_gradients: bool = True,
    ) -> tuple[list[jax.Array], Any]:
        """One pure step: ``(new_trainable_values, new_optimizer_variables)``.

        Keras 3's ``stateless_apply`` for a JAX training step:
        ``optimizer_variables`` is an :attr:`state`, ``grads`` and
        ``trainable_variables`` (values or ``Variable`` objects) are lists in
        the order of the optimizer's variables (those of :meth:`build` or of
        the first steps). Nothing in the optimizer or the variables changes,
        so it can be ``jax.jit``-ed; it runs the same step as
        ``apply_gradients``: the ``gradient_aggregator`` (by default a
        ``psum`` over ``axis_name`` when called inside ``jax.shard_map`` or
        ``pmap`` with that axis), the clipping, the ``gradient_transformers``,
        the update, the variables' constraints, then ``iterations + 1``.
        Static settings (clipping, schedule objects, ``epsilon``, ...) are read
        when traced; numeric hyperparameters come from the state.

        Raises:
          ValueError: before :meth:`build`, or for a wrong state structure, a
            wrong list length or a gradient of the wrong shape.

        Examples:
          >>> import jax
          >>> from optaxish import Variable
          >>> from optaxish.optimizers import Adam
          >>> a = Variable([1.0, 2.0])
          >>> opt = Adam(0.1)
          >>> opt.build([a])
          >>> step = jax.jit(opt.stateless_apply)
          >>> (new_a,), state = step(opt.state, [[1.0, -1.0]], [a.value])
          >>> new_a.round(4), int(state.iterations), int(opt.iterations)
          (Array([0.9, 2.1], dtype=float32), 1, 0)
        """
        values, gs = self._stateless_inputs(
            optimizer_variables, grads, trainable_variables
        )
        new_state, new_values = self._update_values(
            optimizer_variables,
            values,
            gs,
            list(self._vars),
            bool(experimental_aggregate_gradients),
        )
        return self._constrained(new_values), new_state

    def _stateless_inputs(
        self,
        optimizer_variables: Any,
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
    ) -> tuple[list[jax.Array], list[jax.Array]]:
        """``stateless_apply``'s checks: the values and gradients as arrays of
        the variables' dtypes (also the ``LossScaleOptimizer``'s)."""
        name = self._name
        if not self._vars:
            raise ValueError(
                f"To call `stateless_apply`, {name} must be built (i.e. its "
                "variables must have been created). You can build it via "
                "`optimizer.build(trainable_variables)`."
            )
        n = len(self._vars)
        for arg, items in (
            ("trainable_variables", trainable_variables),
            ("grads", grads),
        ):
            if len(items) != n:
                raise ValueError(
                    f"Argument `{arg}` must be a list of tensors corresponding "
                    f"1:1 to {name}'s variables. Received list with length "
                    f"{len(items)}, but expected {n} variables."
                )
        if jax.tree.structure(optimizer_variables) != jax.tree.structure(self._state):
            hint = (
                " (Keras 3 passes the values of `optimizer.variables` as a list; "
                "here pass `optimizer.state`, or the state a previous "
                "`stateless_apply` returned)"
                if isinstance(optimizer_variables, list | tuple)
                and not hasattr(optimizer_variables, "_fields")
                else ""
            )
            raise ValueError(
                "Argument `optimizer_variables` must have the structure of "
                f"`optimizer.state`{hint}. Received: "
                f"{jax.tree.structure(optimizer_variables)}"
            )
        values, gs = [], []
        for var, value, grad in zip(self._vars, trainable_variables, grads):
            value = value.value if isinstance(value, Variable) else value
            values.append(jnp.asarray(value).astype(var.dtype))
            grad = jnp.asarray(grad).astype(var.dtype)
            if grad.shape != var.shape:
                raise ValueError(
                    f"The gradient of variable '{var.name}' has shape "
                    f"{tuple(grad.shape)}; the variable has shape {var.shape}."
                )
            gs.append(grad)
        self._register(list(self._vars))  # nothing new; marks the step's variables
        return values, gs

    def _constrained(self, new_values: list) -> list:
        """The new values with the variables' constraints applied."""
        for i, var in enumerate(self._vars):
            if var.constraint is not None:
                new_values[i] = jnp.asarray(var.constraint(new_values[i])).astype(
                    var.dtype
                )
        return new_values

    def transformation(self) -> GradientTransformationExtraArgs:
        """This optimizer as a core transformation over any tree of params.

        ``init(params)`` gives an ``OptimizerState`` (``iterations`` 0, the
        current hyperparameters, non-slot weights at their initial values,
        one core state per leaf) and ``update(grads, state, params)`` the
        updates to add (``optaxish.apply_updates``), the same step as
        ``apply_gradients``. ``params`` is required. Change a hyperparameter
        by replacing ``state.hyperparams[name]``; a callable learning rate is
        read once, at ``init``. Constraints are not applied (there are no
        variables).

        Examples:
          >>> import jax.numpy as jnp
          >>> import optaxish
          >>> from optaxish.optimizers import SGD
          >>> tx = SGD(0.1, momentum=0.9).transformation()
          >>> params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(0.5)}
          >>> state = tx.init(params)
          >>> updates, state = tx.update({"w": jnp.ones(2), "b": 1.0}, state, params)
          >>> optaxish.apply_updates(params, updates)["w"]
          Array([0.9, 1.9], dtype=float32)
        """
        if self._uses_hooks():
            raise NotImplementedError(
                "`transformation()` is not available for optimizers written with "
                "`_resource_apply_dense`; use `stateless_apply`."
            )
        hyperparams = self.state.hyperparams
        for _, key, initial in self._non_slot_weights():
            hyperparams[key] = jnp.asarray(initial, hyperparams[key].dtype)
        make_state = type(self._state)

        def init_fn(params: Any) -> Any:
            core = self._core(hyperparams["learning_rate"], hyperparams)
            leaves = jax.tree.leaves(params)
            inner = tuple(core.init(jnp.asarray(p)) for p in leaves)
            return make_state(jnp.zeros([], jnp.int32), copy_arrays(hyperparams), inner)

        def update_fn(updates: Any, state: Any, params: Any = None, **extra: Any):
            del extra
            if params is None:
                raise ValueError(
                    f"The transformation of optimizer {self._name} needs "
                    "`params` in `update`."
                )
            leaves, treedef = jax.tree.flatten(params)
            grads = treedef.flatten_up_to(updates)
            values = [jnp.asarray(p) for p in leaves]
            grads = [jnp.asarray(g).astype(v.dtype) for g, v in zip(grads, values)]
            new_state, steps = self._compute_updates(state, values, grads)
            return jax.tree.unflatten(treedef, steps), new_state

        return GradientTransformationExtraArgs(init_fn, update_fn)
