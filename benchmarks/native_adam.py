"""The native one-pass Adam kernel on flat buffers: ``python -m benchmarks.native_adam``.

XLA:CPU compiles an Adam step into three loops (the first moment, the second,
then the parameters, which read both new moments back), about 40 bytes per
parameter; ``optaxish._native.adam_step`` (``optaxish/_native/adam.cc``, an
XLA FFI custom call, built on first use with the system's C++ compiler) does
it in one loop over the buffers, the 28 bytes per parameter of the design's
limit, updating them in place.

Sides, each stepping one flat float32 buffer of a shape's total size (as the
packed engine holds it), jitted with the parameters and state donated, timed
round-robin (median of ``--reps`` rounds, after warm-up, blocking):

* ``native``: the kernel, with optax's update written in its epsilon-hat form
  (``m_hat / (sqrt(v_hat) + eps)`` equals ``f m / (sqrt(v) + eps')`` with
  ``f = sqrt(1 - b2^t) / (1 - b1^t)`` and ``eps' = eps sqrt(1 - b2^t)``);
* ``optaxish``: ``optaxish.adam`` then ``apply_updates``;
* ``optax``: ``optax.adam`` then ``optax.apply_updates``;
* ``triad``: a fused ``a + b*c`` (16 bytes per element), the bandwidth
  reference.

Printed per size: milliseconds per step, the ratio to optax (median and
quartiles of the per-round ratios), GB/s counting 28 bytes per parameter, the
triad's GB/s, and the largest relative difference of the parameters from
optax's after the warm-up steps.
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp
import numpy as np
import optax

import optaxish
from benchmarks import _harness as H
from optaxish import _native

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def native_impl() -> H.Impl:
    """The kernel as a harness side over ``{"w": buffer}``."""

    def init(params):
        w = params["w"]
        return jnp.zeros([], jnp.int32), jnp.zeros_like(w), jnp.zeros_like(w)

    def step(params, grads, state):
        count, mu, nu = state
        count = count + 1
        t = count.astype(jnp.float32)
        root = jnp.sqrt(1 - jnp.float32(B2) ** t)
        w, mu, nu = _native.adam_step(
            params["w"],
            mu,
            nu,
            grads["w"],
            b1=B1,
            b2=B2,
            factor=root / (1 - jnp.float32(B1) ** t),
            eps=EPS * root,
            eps_root=0.0,
            neg_lr=-LR,
        )
        return {"w": w}, (count, mu, nu)

    return H.Impl(init=init, step=step)


def sides() -> dict[str, H.Impl]:
    return {
        "native": native_impl(),
        "optaxish": H.transform_impl(optaxish.adam(LR), optaxish.apply_updates),
        "optax": H.transform_impl(optax.adam(LR), optax.apply_updates),
    }


def measure(n: int, reps: int) -> None:
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal(n, dtype=np.float32)}
    grads = {"w": 0.01 * rng.standard_normal(n, dtype=np.float32)}
    runners = {
        name: H.StepRunner(impl, params, grads) for name, impl in sides().items()
    }
    for run in runners.values():
        run(3)
    reference = runners["optax"].params_tree
    diffs = {
        name: H.max_rel_diff(run.params_tree, reference)
        for name, run in runners.items()
        if name != "optax"
    }
    timed = dict(runners, triad=H.TriadRunner(n))
    timed["triad"](3)
    inner, _ = H.calibrate_inner(timed, 0.02)
    samples = H.time_interleaved(timed, reps, inner)
    names = list(runners)
    triad_ms, triad_gbps, lines = H.adam_rows(samples, n, "optax", names, 10)
    print(f"{n:,} float32 parameters; triad {triad_ms:.3f} ms = {triad_gbps:.1f} GB/s")
    for name, line in zip(names, lines):
        diff = "" if name == "optax" else f"  max rel diff {diffs[name]:.1e}"
        print(line + diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes",
        default="single_4m,mlp,resnet50_like",
        help="shapes whose total parameter count sizes the buffer",
    )
    parser.add_argument("--reps", type=int, default=40, help="timed rounds per size")
    args = parser.parse_args(argv)
    shapes = H.load_shapes()
    if not _native.adam_available():
        print(f"native kernel off: {_native.unavailable_reason()}", file=sys.stderr)
        return 2
    for shape in args.shapes.split(","):
        spec = shapes.ALL[shape]()
        n = sum(int(np.prod(s)) for s in dict(spec).values())
        print(f"{shape}: ", end="")
        measure(n, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
