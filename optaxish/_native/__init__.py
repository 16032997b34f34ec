"""Native CPU kernels for the packed engine and the global norm, with XLA's numbers.

XLA:CPU compiles an Adam step into three loops (the first moment, the second,
then the parameters, which read both new moments back): about 40 bytes of
memory traffic per parameter where 28 would do. :func:`adam_step` does the
step in one loop, an XLA FFI custom call on CPU that updates the donated
buffers in place. Its arithmetic is the jaxpr's it replaces, in the same
order, with multiply-adds contracted into FMAs as XLA's LLVM usually contracts
them: the results are XLA's, bit for bit in the common case and otherwise
within the last bit of an operation (tested against XLA's loops).

:func:`sum_of_squares` reads every leaf of a tree in one call, where XLA:CPU
runs a reduction kernel per leaf: ``optaxish.global_norm`` (so
``clip_by_global_norm`` and loss scaling's finiteness check) on a model of
hundreds of tensors. Both kernels share their chunks with XLA's intra-op
threads (``chunks.h``).

XLA:CPU runs a program that it estimates below 1,000 flops inline on the
calling thread, and counts a custom call as none: :func:`adam_step` adds a
reduction of about a microsecond so that a step whose work is all in the
kernel is still dispatched asynchronously, as JAX programs are.

Each kernel is compiled on first use (a few seconds, then cached; see
``_build``). Without a C++ compiler, off CPU, or with ``OPTAXISH_NATIVE=0`` in
the environment, it is unavailable and callers use XLA's own operations;
:func:`unavailable_reason` says why.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

from optaxish._native import _build


class _Kernel(NamedTuple):
    source: Path  # the C++ file
    symbol: str  # its handler
    target: str  # the custom call's name


_KERNELS = {
    "adam": _Kernel(
        Path(__file__).with_name("adam.cc"), "OptaxishAdam", "optaxish_adam"
    ),
    "sum_squares": _Kernel(
        Path(__file__).with_name("sum_squares.cc"),
        "OptaxishSumSquares",
        "optaxish_sum_squares",
    ),
}
#: :func:`_dispatch_hint` adds twice this many flops (about a microsecond) to a
#: kernel step, over the 1,000 under which XLA:CPU runs a program inline,
#: blocking Python (see the module's docstring).
_HINT_LANES = 1024
_LOCK = threading.Lock()
_STATE: dict[str, str | bool] = {}  # kernel name: True, or the reason it is off


def _register(kernel: _Kernel) -> None:
    """Builds ``kernel`` (if not cached), loads it and registers its target
    for CPU; raises what the build, the loader or JAX raise."""
    lib = ctypes.cdll.LoadLibrary(str(_build.build(kernel.source)))
    capsule = jax.ffi.pycapsule(getattr(lib, kernel.symbol))
    jax.ffi.register_ffi_target(kernel.target, capsule, platform="cpu")


def _load(name: str) -> bool | str:
    if os.environ.get("OPTAXISH_NATIVE", "1") == "0":
        return "turned off by OPTAXISH_NATIVE=0"
    try:
        _register(_KERNELS[name])
    except (RuntimeError, OSError, AttributeError, ValueError) as e:  # incl. timeouts
        return f"{type(e).__name__}: {e}"
    return True


def _available(name: str) -> bool:
    if jax.default_backend() != "cpu":
        return False
    if _STATE.get(name) is True:  # every packed step asks: no lock then
        return True
    with _LOCK:
        if name not in _STATE:
            _STATE[name] = _load(name)
    return _STATE[name] is True


def adam_available() -> bool:
    """Whether :func:`adam_step` may be used now: on CPU (the default
    backend), with the kernel built and registered (done on the first call).

    Examples:
      >>> from optaxish import _native
      >>> isinstance(_native.adam_available(), bool)
      True
    """
    return _available("adam")


def sum_squares_available() -> bool:
    """Whether :func:`sum_of_squares` uses the native kernel on CPU (built
    and registered on the first call); it works either way.

    Examples:
      >>> from optaxish import _native
      >>> isinstance(_native.sum_squares_available(), bool)
      True
    """
    return _available("sum_squares")


def unavailable_reason(kernel: str = "adam") -> str | None:
    """Why ``kernel`` (``"adam"`` or ``"sum_squares"``) is off (``None`` when
    it is on or not tried yet)."""
    if kernel not in _KERNELS:
        raise ValueError(
            f"`kernel` must be one of {sorted(_KERNELS)}. Received: kernel={kernel!r}"
        )
    if jax.default_backend() != "cpu":
        return f"the default backend is {jax.default_backend()!r}, not 'cpu'"
    state = _STATE.get(kernel)
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
    # eps_root plus a zero: the hint that gets the step dispatched asynchronously.
    eps_root = jnp.asarray(eps_root, f32) + _dispatch_hint(b1)
    values += [eps_root, eps, neg_lr] + ([] if weight_decay is None else [weight_decay])
    scalars = jnp.stack([jnp.asarray(x, f32) for x in values])
    like = jax.ShapeDtypeStruct(params.shape, params.dtype)
    call = jax.ffi.ffi_call(
        _KERNELS["adam"].target,
        (like, like, like),
        input_output_aliases={0: 0, 1: 1, 2: 2},
        vmap_method="sequential",
    )
    return tuple(call(params, mu, nu, scalars, *(g.reshape(-1) for g in pieces)))


def _dispatch_hint(x: jax.Array) -> jax.Array:
    """A float32 zero (+0.0 or -0.0) that XLA's cost model counts as
    ``2 * _HINT_LANES`` flops: a reduction over ``_HINT_LANES`` multiples of
    ``x``, compared with zero, so a NaN or infinite ``x`` still gives a zero.
    Two different constants keep XLA from folding the choice, and the
    reduction with it. ``x`` should be a runtime value: XLA folds the
    reduction of a constant."""
    lanes = jnp.arange(_HINT_LANES, dtype=jnp.float32)
    positive = jnp.sum(lanes * jnp.asarray(x, jnp.float32)) > 0
    return jnp.where(positive, jnp.float32(0.0), jnp.float32(-0.0))


def _xla_sum_of_squares(*leaves: jax.Array) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for x in leaves:
        total = total + jnp.sum(jnp.square(x))
    return total


def _kernel_sum_of_squares(*leaves: jax.Array) -> jax.Array:
    call = jax.ffi.ffi_call(
        _KERNELS["sum_squares"].target,
        jax.ShapeDtypeStruct((), jnp.float32),
        vmap_method="sequential",  # not reached: `_unbatched_sum` batches itself
    )
    return call(*leaves)


@jax.custom_batching.custom_vmap
def _unbatched_sum(*leaves: jax.Array) -> jax.Array:
    # Only the CPU lowering calls the kernel: a program lowered for another
    # platform (or exported for several) keeps XLA's reductions.
    return jax.lax.platform_dependent(
        *leaves, cpu=_kernel_sum_of_squares, default=_xla_sum_of_squares
    )


@_unbatched_sum.def_vmap
def _batched_sum(axis_size, in_batched, *leaves):
    # Under vmap (per-example norms) XLA reduces each example's rows; the
    # kernel would run once per example. Batched leaves lead with the axis.
    total = jnp.zeros((axis_size,), jnp.float32)
    for x, batched in zip(leaves, in_batched, strict=True):
        if batched:
            total = total + jnp.sum(jnp.square(x).reshape(axis_size, -1), axis=1)
        else:
            total = total + jnp.sum(jnp.square(x))
    return total, True


@jax.custom_jvp
def _native_sum_of_squares(*leaves: jax.Array) -> jax.Array:
    return _unbatched_sum(*leaves)


@_native_sum_of_squares.defjvp
def _native_sum_of_squares_jvp(primals, tangents):
    # A custom call has no derivative of its own: d(sum x^2) = sum 2 x dx.
    out = _native_sum_of_squares(*primals)
    tangent = jnp.zeros((), jnp.float32)
    for x, dx in zip(primals, tangents, strict=True):
        tangent = tangent + 2 * jnp.sum(x * dx)
    return out, tangent


# Smaller float32 trees (toy models, doctests) keep XLA's reductions and their
# exact bits: the kernel would save them microseconds (a 65,536-element leaf:
# 82 against 7 us, standalone).
MIN_SUM_SQUARES_SIZE = 1 << 16


def sum_of_squares_applies(leaves: Sequence[jax.typing.ArrayLike]) -> bool:
    """Whether :func:`sum_of_squares` should replace XLA's reductions here:
    two or more float32 leaves of at least ``MIN_SUM_SQUARES_SIZE`` elements
    in all, with the kernel available (on CPU). One leaf (a packed buffer)
    keeps XLA's single reduction, which measured as fast inside a clipped
    Adam step (1.03-1.10x against the kernel's 1.11-1.16x)."""
    arrays = [jnp.asarray(x) for x in leaves]
    return (
        len(arrays) >= 2
        and all(x.dtype == jnp.float32 for x in arrays)
        and sum(x.size for x in arrays) >= MIN_SUM_SQUARES_SIZE
        and sum_squares_available()
    )


def sum_of_squares(leaves: Sequence[jax.Array]) -> jax.Array:
    """The sum of the squares of every element of float32 ``leaves``.

    On CPU with the kernel available, one native pass over all leaves (see the
    module docstring): the same value as XLA's reductions up to their float32
    rounding (it sums in float32 blocks and in double across them), the
    same from run to run whatever the thread timing. Elsewhere, and under
    ``vmap``, XLA's reductions. Differentiable.

    Raises:
      ValueError: a leaf is not float32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from optaxish import _native
      >>> float(_native.sum_of_squares([jnp.array([3.0]), jnp.array([4.0])]))
      25.0
    """
    leaves = [jnp.asarray(x) for x in leaves]
    wrong = [str(x.dtype) for x in leaves if x.dtype != jnp.float32]
    if wrong:
        raise ValueError(f"`leaves` must all be float32. Received dtypes {wrong}")
    if not leaves:
        return jnp.zeros((), jnp.float32)
    if not sum_squares_available():
        return _xla_sum_of_squares(*leaves)
    return _native_sum_of_squares(*leaves)
