"""The facade's packed Adam step in one pass, with the native kernel.

A packed group holds its variables, their gradients and Adam's moments in a
few float32 buffers that the compiled step donates. XLA:CPU steps them in
three loops; :func:`optaxish._native.adam_step` does it in one, in place, with
XLA's numbers (see ``optaxish/_native``). This module decides when that applies
and builds the step's new state around it; anything else keeps XLA's loops.
"""

from __future__ import annotations

import functools
from typing import Any

from optaxish import _native, _numerics
from optaxish.optimizers._packing_mixin import packed_step
from optaxish.packing import Packed
from optaxish.transforms import ScaleByAdamState
from optaxish.transforms._adam import epsilon_hat_factor

#: The kernel reads a packed group's gradients where they are, one piece per
#: variable, at a cost per piece (about 0.4 us on the development machine, in
#: XLA's custom-call dispatch) that XLA's loops, which gather the pieces as
#: they go, do not pay. Below this mean number of elements per variable, the
#: pieces cost more than the kernel saves (``many_small``, 596 on average:
#: 1.19 ms per step against 0.94 with XLA's loops; ``mixed_400``, 10,486: 3.09
#: against 4.47 ms; ``benchmarks/facade_native.py``).
MIN_MEAN_SIZE = 4096


def native_step_applies(opt: Any, values: list) -> bool:
    """Whether ``opt``'s traced step over ``values`` runs the native kernel:
    one packed group of float32 buffers whose variables average at least
    :data:`MIN_MEAN_SIZE` elements, the class's own update rule (a subclass
    that overrides how the update is built keeps XLA's loops), AMSGrad off,
    on CPU with the kernel built."""
    # Called on every packed step (host side, to choose how the gradients
    # come in): the checks that depend only on the class are cached.
    kernel = opt._native_kernel
    if kernel not in ("adam", "adamw") or not _own_update_rule(type(opt)):
        return False
    if opt.amsgrad or (kernel == "adamw" and opt._excluding()):  # masked decay
        return False
    if len(values) != 1 or not packed_step(values):
        return False
    layout = values[0].layout
    return (
        layout.dtypes == ("float32",)  # one buffer
        and not layout.sharded
        and layout.sizes[0] >= MIN_MEAN_SIZE * len(layout.shapes)
        and _native.adam_available()
    )


@functools.cache
def _own_update_rule(cls: type) -> bool:
    """Whether ``cls`` builds its update as the class that chose the kernel
    does (a subclass overriding one of these keeps XLA's loops)."""
    owner = next(c for c in cls.__mro__ if "_native_kernel" in vars(c))
    return all(
        getattr(cls, name) is getattr(owner, name)
        for name in ("_core", "_step_core", "_compute_updates", "_prepare_step")
    )


def native_step(opt: Any, prepared: Any, values: list) -> tuple[tuple, list]:
    """The step's new inner states and ``[new packed values]`` by the kernel.

    ``prepared`` is the optimizer's ``_prepare_step`` result; the inner state
    is ``chain(scale_by_adam(epsilon_hat=True), scale(-lr))``'s (AdamW's has
    ``add_decayed_weights`` between them), whose counts ``_prepare_step`` set
    to ``iterations``.
    """
    grads = prepared.grads  # [Packed], or the group's per-variable gradients
    ((adam, *rest),) = prepared.inner_state  # then (decay and) scale states
    decayed = opt._native_kernel == "adamw" and opt._decayed
    hp = prepared.hyperparams
    b1, b2 = hp["beta_1"], hp["beta_2"]
    count = _numerics.safe_increment(adam.count)
    (params,) = values
    new_params, mu, nu = _native.adam_step(
        params.buffers[0],
        adam.mu.buffers[0],
        adam.nu.buffers[0],
        grads[0].buffers if packed_step(grads) else grads,
        b1=b1,
        b2=b2,
        factor=epsilon_hat_factor(b1, b2, count),  # as `scale_by_adam` has it
        eps=opt.epsilon,
        eps_root=0.0,
        neg_lr=-prepared.learning_rate,
        weight_decay=hp["weight_decay"] if decayed else None,
    )
    layout = params.layout
    adam = ScaleByAdamState(count, Packed((mu,), layout), Packed((nu,), layout))
    return ((adam, *rest),), [Packed((new_params,), layout)]
