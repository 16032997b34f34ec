"""``minimize`` of the Keras-style ``Optimizer`` (a mixin).

The loss closure becomes a pure function of the variables' values through
``Variable._bind``; the gradient and the update are compiled together, once
per (loss function, variable structure). Variables the loss reads without
being in ``var_list`` are found by a first abstract trace and passed in as
(non-differentiated) arguments, so their values are never baked in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from optaxish._variable import Variable
from optaxish.optimizers._checks import check_var, unique_variables


class MinimizeMixin:
    """``minimize``; relies on the base's ``_key``, ``_register``, ``_run``,
    ``_update_values``, ``_state``, ``_steps`` and ``_traces``."""

    def minimize(
        self,
        loss: Callable[[], Any],
        var_list: Any,
        grad_loss: Any = None,
        name: str | None = None,
        tape: Any = None,
    ) -> jax.Array:
        """Differentiates ``loss()`` and applies one step (compiled together).

        ``loss`` is a zero-argument callable over variables; it is traced once
        per (loss function, variable structure), so it must read changing
        data through variables, not through Python state. ``var_list`` is a
        variable, a list or tuple of them, or a callable returning one
        (called before the loss, unlike tf-keras). Variables that the loss
        reads but ``var_list`` omits are passed in as constants. Every
        variable in ``var_list`` gets a gradient (zero when the loss does not
        depend on it; tf-keras skips those). ``grad_loss`` is the upstream
        gradient (ones by default).

        Raises:
          ValueError: when ``loss`` is not callable.
          TypeError: for a non-variable in ``var_list``.
        """
        del name
        if not callable(loss) or tape is not None:
            raise ValueError(
                "`tape` is required when a `Tensor` loss is passed, and only a "
                "callable loss is supported here. Received: "
                f"loss={loss!r}, tape={tape!r}."
            )
        if callable(var_list) and not isinstance(var_list, Variable):
            var_list = var_list()
        variables = [var_list] if isinstance(var_list, Variable) else list(var_list)
        for v in variables:
            check_var(v)
        unique_variables(variables, "var_list")
        seed = None if grad_loss is None else jnp.asarray(grad_loss)
        base = ("minimize", loss, self._key(variables), seed is None)
        extras: list[Variable] = self._steps.get(("extras", *base), [])
        indices = self._register(variables)

        def make(extra_vars, counting=True):
            def step(state, values, extra_values, seed):
                self._traces += counting

                def pure(vals):
                    with Variable._bind(
                        variables + extra_vars, list(vals) + list(extra_values)
                    ) as scope:
                        out = jnp.asarray(loss())
                    unbound.extend(scope.unbound_reads)
                    return out

                out, vjp = jax.vjp(pure, list(values))
                (grads,) = vjp(jnp.ones_like(out) if seed is None else seed)
                return self._update_values(state, values, grads)

            return step

        unbound: list[Variable] = []
        key = (*base, tuple(id(v) for v in extras))
        if key not in self._steps:
            # Trace once to find the variables the loss reads but nobody binds.
            sub = self._state._replace(
                inner_state=tuple(self._state.inner_state[i] for i in indices)
            )
            args = ([v.value for v in variables], [v.value for v in extras], seed)
            jax.eval_shape(make(extras, counting=False), sub, *args)
            for v in unbound:
                if all(v is not w for w in extras):
                    extras = [*extras, v]
            self._steps[("extras", *base)] = extras
            key = (*base, tuple(id(v) for v in extras))
        extra_values = [jnp.array(v.value) for v in extras]
        return self._run(key, lambda: make(extras), indices, (extra_values, seed))
