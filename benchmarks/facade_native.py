"""The facade's Adam with and without the native kernel: ``python -m benchmarks.facade_native``.

Issue 5's facade row: an Adam step through the facade against ``optax.adam``
and against the memory-bandwidth reference, in the same process. On each
shape, round-robin (median of ``--reps`` rounds, after warm-up, blocking):

* ``apply`` / ``minimize``: ``Adam(1e-3).apply_gradients`` / ``.minimize``
  (packed, the native one-pass kernel on: the default on CPU);
* ``apply (XLA loops)`` / ``minimize (XLA loops)``: the same with the kernel
  off, XLA:CPU's three loops;
* ``AdamW apply`` / ``AdamW apply (XLA loops)``: ``AdamW(1e-3)`` (Keras 3's
  default decay, 0.004) with the kernel on and off;
* ``optax jit``: a hand-written ``jax.jit`` step of ``optax.adam(1e-3)``
  (``update`` + ``apply_updates``, parameters and state donated);
* ``triad``: a fused ``a + b*c`` over as many float32 elements (16 bytes each);
* ``gradients in``: a jitted call that takes the gradient arrays and hands
  three donated buffers of the packed size back unchanged: what passing the
  user's gradients to a step costs, with no arithmetic;
* ``memory floor``: ``stream_floor.cc``, a custom call with the Adam kernel's
  operands, chunks and threads that moves the same 28 bytes per parameter with
  one multiply-add each, the gradient in one buffer: no step of that layout
  can run faster here (``minimize``'s bound);
* ``memory floor, arrays``: the same with the gradient in the user's arrays,
  one operand each, as ``apply_gradients`` receives it (its bound).

Reported: milliseconds per step, the ratio to optax (median and quartiles of
the per-round ratios), and GB/s counting 28 bytes per parameter (an Adam step's
minimum traffic: read the parameter, gradient and both moments, write the
parameter and the moments) as a share of the triad's GB/s; then how much
longer ``apply_gradients`` (the user's gradient arrays) takes than
``minimize`` (gradients made inside the step), next to ``gradients in``; and
each side against its memory floor, with the best ratio to optax each floor
allows. The sides follow
the same trajectory; their largest relative difference from ``optax jit``'s
form is not compared here (``benchmarks.facade`` does).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness as H
from benchmarks.facade import facade_side, optax_side
from optaxish import _native
from optaxish.optimizers import AdamW

XLA_LOOPS = " (XLA loops)"
SIDES = (
    "apply",
    "apply (XLA loops)",
    "minimize",
    "minimize (XLA loops)",
    "AdamW apply",
    "AdamW apply (XLA loops)",
    "optax jit",
)


def gradients_in(grads: list, n: int) -> H.CarriedLoop:
    """A jitted call that takes the gradients and three donated float32
    buffers of ``n`` elements, and returns the buffers unchanged."""
    buffers = [jnp.zeros(n, jnp.float32) for _ in range(3)]
    fn = jax.jit(lambda buffers, grads: buffers, donate_argnums=0)
    return H.CarriedLoop(fn, buffers, grads)


STREAM_FLOOR = _native._Kernel(
    Path(__file__).with_name("stream_floor.cc"),
    "OptaxishStreamFloor",
    "optaxish_stream_floor",
)
SCALARS = np.array([0.9, 0.999, -1e-3], np.float32)  # the floor's b1, b2, lr


def memory_floor(n: int, grads: list | None = None) -> H.CarriedLoop:
    """``stream_floor.cc`` over a parameter and two moments of ``n`` float32
    elements each, updated in place, and a gradient: one buffer, or the
    arrays ``grads`` (whose elements, in order, make up ``n``)."""
    _register_stream_floor()
    like = jax.ShapeDtypeStruct((n,), jnp.float32)
    call = jax.ffi.ffi_call(
        STREAM_FLOOR.target, (like, like, like), input_output_aliases={0: 0, 1: 1, 2: 2}
    )
    fn = jax.jit(
        lambda state, grads: call(*state, SCALARS, *(g.reshape(-1) for g in grads)),
        donate_argnums=0,
    )
    state = [jnp.zeros(n, jnp.float32) for _ in range(3)]
    return H.CarriedLoop(fn, state, grads or [jnp.full(n, 1e-3, jnp.float32)])


@functools.cache
def _register_stream_floor() -> None:
    _native._register(STREAM_FLOOR)


def measure(shape: str, reps: int) -> None:
    shapes = H.load_shapes()
    spec = shapes.ALL[shape]()
    params_np = list(shapes.make_tree(spec, seed=0).values())
    grads = list(H.tree_to_device(list(shapes.make_tree(spec, seed=1).values())))
    n = sum(int(np.prod(s)) for s in spec.values())
    sides = {
        "apply": facade_side(params_np, grads, minimize=False),
        "apply (XLA loops)": facade_side(params_np, grads, False, native=False),
        "minimize": facade_side(params_np, grads, minimize=True),
        "minimize (XLA loops)": facade_side(params_np, grads, True, native=False),
        "AdamW apply": facade_side(params_np, grads, False, optimizer=AdamW),
        "AdamW apply (XLA loops)": facade_side(
            params_np, grads, False, native=False, optimizer=AdamW
        ),
        "optax jit": optax_side(params_np, grads),
    }
    runners = {name: side.run for name, side in sides.items()}
    runners["triad"] = H.TriadRunner(n)
    runners["gradients in"] = gradients_in(grads, n)
    if _native.adam_available():  # the same compiler and FFI
        runners["memory floor"] = memory_floor(n)
        runners["memory floor, arrays"] = memory_floor(n, grads)
    for run in runners.values():
        run(3)
    inner, _ = H.calibrate_inner(runners, 0.02)
    samples = H.time_interleaved(runners, reps, inner)
    # Each side with XLA's loops is shown with the kernel's ratio against it.
    labels = {}
    for name in SIDES:
        if name.endswith(XLA_LOOPS):
            on, *_ = H.paired_ratio(
                samples[name.removesuffix(XLA_LOOPS)], samples[name]
            )
            labels[name] = f"{name}: kernel {on:.2f}x"
    triad_ms, triad_gbps, lines = H.adam_rows(
        samples, n, "optax jit", list(SIDES), 38, labels
    )
    print(
        f"{shape}: {len(spec)} variables, {n:,} parameters; "
        f"triad {triad_ms:.3f} ms = {triad_gbps:.1f} GB/s; {reps} rounds of {inner}"
    )
    print("\n".join(lines))
    ms = {name: float(np.median(samples[name])) * 1e3 for name in samples}
    print(
        f"  apply - minimize: {ms['apply'] - ms['minimize']:.3f} ms; handing the "
        f"{len(grads)} gradient arrays to a jit call alone: {ms['gradients in']:.3f} ms"
    )
    if "memory floor" in ms:
        floor, arrays = ms["memory floor"], ms["memory floor, arrays"]
        print(
            f"  memory floor: {floor:.3f} ms = {28 * n / floor / 1e6:.1f} GB/s at 28 B "
            f"(minimize {ms['minimize'] / floor:.2f}x it); with the gradient in "
            f"{len(grads)} arrays: {arrays:.3f} ms (apply {ms['apply'] / arrays:.2f}x "
            f"it). At best x optax: minimize {ms['optax jit'] / floor:.2f}x, "
            f"apply_gradients {ms['optax jit'] / arrays:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="mixed_400,many_small")
    parser.add_argument("--reps", type=int, default=40, help="timed rounds per shape")
    args = parser.parse_args(argv)
    if not _native.adam_available():
        print(f"native kernel off: {_native.unavailable_reason()}", file=sys.stderr)
    for shape in args.shapes.split(","):
        measure(shape, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
