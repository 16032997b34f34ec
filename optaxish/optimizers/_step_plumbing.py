"""How the facade's compiled steps are called: wrappers of a traced step
(the ``iterations`` output, packing the gradients into donated buffers,
passing ``iterations`` and the hyperparameters apart from the donated
carry) and the plans ``apply_gradients`` and ``minimize`` reuse between
calls with the same variables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from optaxish.packing._layout import pack_into


def with_iterations(step: Callable, iterations_of: Callable) -> Callable:
    """``step`` also returning the new ``iterations`` as its own output.

    That output is a buffer of its own, so it survives a next step that
    donates the whole carry (a call without ``scalars_apart``'s keyword
    arguments; the facade's calls pass them and take ``iterations`` from the
    carry, which is then not donated).
    """

    def wrapped(carry, values, *args):
        new_carry, new_values = step(carry, values, *args)
        return new_carry, new_values, iterations_of(new_carry)

    return wrapped


def packing_gradients(step: Callable) -> Callable:
    """``step(carry, values, grads, *rest)`` of a packed group, taking the
    group's gradient buffers after ``values`` and packing ``grads`` into them
    first; the buffers are returned last (donated in, written in place)."""

    def wrapped(carry, values, buffers, grads, *rest):
        packed = pack_into(buffers, list(grads))
        return (*step(carry, values, [packed], *rest), packed)

    return wrapped


def scalars_apart(step: Callable, get_sub: Callable, put_sub: Callable) -> Callable:
    """``step(carry, values, *rest)`` (returning ``(new carry, new values,
    new iterations, *more)``) taking the carry's ``iterations`` and
    hyperparameters as the keyword arguments ``iterations`` and
    ``hyperparams`` (the carry's own entries are then ignored).

    Keyword arguments are never donated. So the compiled step neither
    donates nor returns the unchanged hyperparameters (most steps change
    none; a schedule changes the learning rate), and the new ``iterations``
    in the carry is a buffer that the next step reads without donating:
    returned once, not also as an output of its own. Each argument and
    output of a compiled call costs dispatch time, about 0.2 us each on CPU.
    In the carry's hyperparameter entry the step returns ``(changed,
    full)``: the entries it changed (all but those it returns as given), or,
    with ``full`` (an empty tuple rather than ``None``), the whole new dict
    when it removed or added keys; the separate ``iterations`` output is
    left out. Without the keyword arguments the step is ``step`` itself
    (the carry's entries are donated with it).
    """

    def wrapped(carry, values, *rest, iterations=None, hyperparams=None):
        if hyperparams is None:
            return step(carry, values, *rest)
        sub = get_sub(carry)
        carry = put_sub(
            carry, sub._replace(iterations=iterations, hyperparams=hyperparams)
        )
        new_carry, new_values, _, *more = step(carry, values, *rest)
        new_sub = get_sub(new_carry)
        new = new_sub.hyperparams
        if new.keys() == hyperparams.keys():
            changed = {k: v for k, v in new.items() if v is not hyperparams[k]}
            back = (changed, None)
        else:
            back = (dict(new), ())
        new_carry = put_sub(new_carry, new_sub._replace(hyperparams=back))
        return (new_carry, new_values, *more)

    return wrapped


def scalars_out(sub: Any) -> Any:
    """``sub._replace(iterations=None, hyperparams=None)`` for an
    ``OptimizerState`` (its fields in order), without ``_replace``'s cost."""
    return type(sub)(None, None, sub.inner_state)


def with_hyperparams(sub: Any, hyperparams: Any) -> Any:
    """``sub._replace(hyperparams=...)``, without ``_replace``'s cost."""
    return type(sub)(sub.iterations, hyperparams, sub.inner_state)


class ApplyPlan(NamedTuple):
    """What ``apply_gradients`` worked out for one list of variables, reused
    while the next call passes the same variables and the settings in
    ``config`` are unchanged: their positions, the step key, the compiled
    steps by packing (so the key is not hashed on every call), and the
    variables' shapes and dtypes (so that a call with the same variables
    checks its gradients against them in one pass)."""

    variables: tuple  # held, so that no other object takes one of `ids`
    ids: tuple
    config: tuple
    aggregate: bool
    unscale: bool
    indices: list[int]
    key: tuple
    steps: dict  # by packing: (compiled step, takes gradient buffers)
    avals: tuple


class MinimizePlan(NamedTuple):
    """What the last ``minimize`` call worked out, reused by the next call
    with the same loss function, variables, settings and kind of seed: its
    step key (``base``), the variables' positions and the variables the loss
    reads besides them. Only the last call's: its key is the most recently
    used, so its compiled step is never the one dropped."""

    loss: Callable
    variables: tuple  # held, checked and registered
    config: tuple
    unseeded: bool
    base: tuple
    indices: list[int]
    extras: list
    steps: dict  # by packing: (compiled step of `base`, takes gradient buffers)


def call_step(
    fn: Callable,
    carry: Any,
    values: list,
    args: tuple,
    group: Any,
    iterations: Any,
    hyperparams: dict,
) -> tuple[Any, list]:
    """Calls a compiled step with ``iterations`` and ``hyperparams`` apart
    (see :func:`scalars_apart`); with a packed ``group``, the step also takes
    and returns its donated gradient buffers (see :func:`packing_gradients`).
    Returns ``(new carry, new values)``."""
    if group is None:
        return fn(carry, values, *args, iterations=iterations, hyperparams=hyperparams)
    new_carry, new_values, buffers = fn(
        carry,
        values,
        group.gradient_buffers(),
        *args,
        iterations=iterations,
        hyperparams=hyperparams,
    )
    group.set_gradient_buffers(buffers)
    return new_carry, new_values


def merged_hyperparams(returned: tuple, given: dict) -> dict:
    """The hyperparameters after a step: ``given`` with the entries the step
    changed, from the ``(changed, full)`` pair it returned (see
    :func:`scalars_apart`)."""
    changed, full = returned
    if full is not None:
        return changed
    return {**given, **changed} if changed else given
