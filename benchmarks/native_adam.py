"""A one-pass C++ Adam kernel against XLA's: ``python -m benchmarks.native_adam``.

An experiment on the way to issue 5's unmet CPU rows, not part of the package.
XLA:CPU compiles an Adam step into three loops (the first moment, the second,
then the parameters, which read both new moments back), about 40 bytes per
parameter; ``native/fused_adam.cc`` does it in one loop over the buffers, the
28 bytes per parameter of the design's limit, as an XLA FFI custom call that
updates the buffers in place. It is built here with the system's C++ compiler
(``$CXX``, default ``g++``) against the FFI headers that jaxlib ships.

Sides, each stepping one flat float32 buffer of a shape's total size (as the
packed engine holds it), jitted with the parameters and state donated, timed
round-robin (median of ``--reps`` rounds, after warm-up, blocking):

* ``fused C++``: the kernel, with optax's bias corrections computed in the
  graph and passed in;
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
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optaxish
from benchmarks import _harness as H

SOURCE = Path(__file__).with_name("native") / "fused_adam.cc"
TARGET = "optaxish_bench_fused_adam"
B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def build(out_dir: str) -> Path:
    """Compiles the kernel into ``out_dir``; raises ``RuntimeError`` without a
    compiler or on a failed build."""
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler `{compiler}` (set $CXX)")
    lib = Path(out_dir) / "libfused_adam.so"
    # No fast-math: IEEE division and square root, as XLA's; no errno, so the
    # square root vectorizes.
    cmd = [compiler, "-O3", "-march=native", "-fno-math-errno", "-std=c++17"]
    cmd += ["-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}"]
    cmd += [str(SOURCE), "-o", str(lib), "-lpthread"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building {SOURCE.name} failed:\n{done.stderr}")
    return lib


def register(lib: Path) -> None:
    handle = ctypes.cdll.LoadLibrary(str(lib))
    capsule = jax.ffi.pycapsule(handle.FusedAdam)
    jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")


def fused_impl() -> H.Impl:
    """The kernel as a harness side over ``{"w": buffer}``."""

    def init(params):
        w = params["w"]
        return jnp.zeros([], jnp.int32), jnp.zeros_like(w), jnp.zeros_like(w)

    def step(params, grads, state):
        count, mu, nu = state
        count = count + 1
        t = count.astype(jnp.float32)
        scalars = jnp.stack(
            [
                jnp.float32(B1),
                jnp.float32(1 - B1),
                jnp.float32(B2),
                jnp.float32(1 - B2),
                1 / (1 - jnp.float32(B1) ** t),
                1 / (1 - jnp.float32(B2) ** t),
                jnp.float32(LR),
                jnp.float32(EPS),
            ]
        )
        w = params["w"]
        like = jax.ShapeDtypeStruct(w.shape, w.dtype)
        call = jax.ffi.ffi_call(
            TARGET, (like, like, like), input_output_aliases={0: 0, 1: 1, 2: 2}
        )
        w, mu, nu = call(w, mu, nu, grads["w"], scalars)
        return {"w": w}, (count, mu, nu)

    return H.Impl(init=init, step=step)


def sides() -> dict[str, H.Impl]:
    return {
        "fused C++": fused_impl(),
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
    triad_ms = statistics.median(samples["triad"]) * 1e3
    triad_gbps = H.TRIAD_BYTES_PER_ELEMENT * n / triad_ms / 1e6
    print(f"{n:,} float32 parameters; triad {triad_ms:.3f} ms = {triad_gbps:.1f} GB/s")
    for name in runners:
        ms = statistics.median(samples[name]) * 1e3
        ratio, lo, hi = H.paired_ratio(samples[name], samples["optax"])
        gbps = 28 * n / ms / 1e6
        diff = "" if name == "optax" else f"  max rel diff {diffs[name]:.1e}"
        print(
            f"  {name:10s} {ms:8.3f} ms  x optax {ratio:.2f} (IQR {lo:.2f}-{hi:.2f})"
            f"  {gbps:5.1f} GB/s at 28 B = {100 * gbps / triad_gbps:3.0f} % of triad"
            + diff
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes",
        default="single_4m,mlp,resnet50_like",
        help="shapes whose total parameter count sizes the buffer",
    )
    parser.add_argument("--reps", type=int, default=40, help="timed rounds per size")
    args = parser.parse_args(argv)
    if jax.default_backend() != "cpu":
        print("the kernel is CPU-only: run with JAX_PLATFORMS=cpu", file=sys.stderr)
        return 2
    shapes = H.load_shapes()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            lib = build(tmp)
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
        register(lib)
        for shape in args.shapes.split(","):
            spec = shapes.ALL[shape]()
            n = sum(int(np.prod(s)) for s in dict(spec).values())
            print(f"{shape}: ", end="")
            measure(n, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
