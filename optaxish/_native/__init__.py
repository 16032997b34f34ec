"""Native CPU kernels for the packed engine, with XLA's numbers.

XLA:CPU compiles an Adam step into three loops (the first moment, the second,
then the parameters, which read both new moments back): about 40 bytes of
memory traffic per parameter where 28 would do. :func:`adam_step` does the
step in one loop, an XLA FFI custom call on CPU that updates the donated
buffers in place. Its arithmetic is the jaxpr's it replaces, in the same
order, with multiply-adds contracted into FMAs as XLA's LLVM usually contracts
them: the results are XLA's, bit for bit in the common case and otherwise
within the last bit of an operation (tested against XLA's loops).

The kernel is compiled on first use (a few seconds, then cached; see
``_build``). Without a C++ compiler, off CPU, or with ``OPTAXISH_NATIVE=0`` in
the environment, :func:`adam_available` is false and callers use XLA's loops;
:func:`unavailable_reason` says why.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp

from optaxish._native import _build

_ADAM_TARGET = "optaxish_adam"
_SOURCE = Path(__file__).with_name("adam.cc")
_LOCK = threading.Lock()
_STATE: dict[str, str | bool] = {}  # "adam": True, or the reason it is off


def _load_adam() -> bool | str:
    if os.environ.get("OPTAXISH_NATIVE", "1") == "0":
        return "turned off by OPTAXISH_NATIVE=0"
    try:
        lib = ctypes.cdll.LoadLibrary(str(_build.build(_SOURCE)))
        capsule = jax.ffi.pycapsule(lib.OptaxishAdam)
        jax.ffi.register_ffi_target(_ADAM_TARGET, capsule, platform="cpu")
    except (RuntimeError, OSError, AttributeError, ValueError) as e:  # incl. timeouts
        return f"{type(e).__name__}: {e}"
    return True


def adam_available() -> bool:
    """Whether :func:`adam_step` may be used now: on CPU (the default
    backend), with the kernel built and registered (done on the first call).

    Examples:
      >>> from optaxish import _native
      >>> isinstance(_native.adam_available(), bool)
      True
    """
    if jax.default_backend() != "cpu":
        return False
    if _STATE.get("adam") is True:  # every packed step asks: no lock then
        return True
    with _LOCK:
        if "adam" not in _STATE:
            _STATE["adam"] = _load_adam()
    return _STATE["adam"] is True


def unavailable_reason() -> str | None:
    """Why the Adam kernel is off (``None`` when it is on or not tried yet)."""
    if jax.default_backend() != "cpu":
        return f"the default backend is {jax.default_backend()!r}, not 'cpu'"
    state = _STATE.get("adam")
    return None if state is None or state is True else str(state)


def adam_step(
    params: jax.Array,
    mu: jax.Array,
    nu: jax.Array,
    grads: jax.Array | Sequence[jax.Array],
    *,
    b1: jax.Array,
    b2: jax.Array,
    factor: jax.Array,
    eps: jax.typing.ArrayLike,
    eps_root: jax.typing.ArrayLike,
    neg_lr: jax.Array,
    weight_decay: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One epsilon-hat Adam step on 1-D float32 buffers: ``(params, mu, nu)``.

    With ``mu <- (1 - b1) g + b1 mu`` and ``nu <- (1 - b2) g^2 + b2 nu``:
    ``params <- params + neg_lr * (factor * mu) / (sqrt(nu + eps_root) +
    eps)``, as ``chain(scale_by_adam(b1, b2, eps, eps_root,
    epsilon_hat=True), scale(-lr))`` followed by adding the updates computes
    it, with ``factor = sqrt(1 - b2^t) / (1 - b1^t)``. With ``weight_decay``
    (AdamW), ``weight_decay * params`` joins the update before ``neg_lr``
    scales it, as ``add_decayed_weights`` between the two. ``grads`` is one
    array or a list of arrays whose elements, in order, tile ``params`` (a
    packed group's per-variable gradients: read in place, not gathered). Call
    it only when :func:`adam_available`; inside ``jax.jit``, with the buffers
    donated, it updates them in place.

    Raises:
      ValueError: when the gradients do not tile ``params``.
    """
    pieces = [grads] if isinstance(grads, jax.Array) else list(grads)
    if sum(g.size for g in pieces) != params.size or any(
        g.dtype != params.dtype for g in pieces
    ):
        raise ValueError(
            "`grads` must tile `params` in its dtype. Received pieces "
            f"{[(g.shape, str(g.dtype)) for g in pieces]} for params "
            f"{params.shape} {params.dtype}"
        )
    f32 = jnp.float32
    values = [b1, 1 - jnp.asarray(b1, f32), b2, 1 - jnp.asarray(b2, f32), factor]
    values += [eps_root, eps, neg_lr] + ([] if weight_decay is None else [weight_decay])
    scalars = jnp.stack([jnp.asarray(x, f32) for x in values])
    like = jax.ShapeDtypeStruct(params.shape, params.dtype)
    call = jax.ffi.ffi_call(
        _ADAM_TARGET,
        (like, like, like),
        input_output_aliases={0: 0, 1: 1, 2: 2},
        vmap_method="sequential",
    )
    return tuple(call(params, mu, nu, scalars, *(g.reshape(-1) for g in pieces)))
