"""What this machine allows: ``python -m benchmarks.floors``.

Issue 5 and issue 3 set ratio targets for a 2-core CPU. Some of them sit past
bounds that no implementation of the same step can cross here. This script
measures those bounds in one process, interleaved (median of ``--reps`` rounds
after warm-up, donated buffers, blocking), per shape of
``../shared/bench/shapes.py``:

* ``optax``: ``optax.adam`` then ``optax.apply_updates``, the reference;
* ``optaxish``: ``optaxish.adam`` then ``optaxish.apply_updates`` on the tree;
* ``boundary``: a jitted step that returns the parameters and Adam's state
  unchanged, donated, with the gradients passed in: what crossing the ``jit``
  boundary with a tree of that many leaves costs before any arithmetic;
* ``check``: loss scaling's finiteness check alone (the gradients' global
  norm, as ``loss_scaling_step`` computes it).

From these it prints the best ratio each target allows:

* a step that hands the parameters and a per-leaf Adam state across the
  ``jit`` boundary takes at least the boundary's time, however fast its
  arithmetic: it cannot beat ``optax / boundary``;
* a loss-scaling wrapper around a plain ``adam`` runs the check before the
  step (the step's ``lax.cond`` waits for it), so it cannot beat
  ``(optaxish + check) / optaxish``. The same bound holds for
  ``chain(clip_by_global_norm, adamw)`` against ``adamw`` (issue 5's row,
  <= 1.15): every moment kernel multiplies by the clip's scale, so the same
  global norm must be read first (AdamW moves Adam's bytes: the decay reads
  the parameters the step reads anyway);
* the optax-protocol wrapper (``apply_if_finite``, ``loss_scaling`` then
  ``apply_updates``) moves at least 52 bytes per parameter against the fused
  step's 40 with XLA's loops: the check reads the gradients (4), the updates
  leave the ``cond`` in a buffer of their own (written, then read: 8) before
  ``apply_updates`` reads the parameters again. That bound is arithmetic, not
  measured.

No bound is given for a packed step (the facade): XLA's fused ``a + b*c``
is not the memory's limit here, and the native Adam kernel runs past it.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import jax
import numpy as np
import optax

import optaxish
from benchmarks import _harness as H

PROTOCOL_FLOOR = 52 / 40  # bytes per parameter, optax protocol against fused


class CheckRunner:
    """Runs loss scaling's finiteness check (the raw global norm) ``k`` times."""

    def __init__(self, grads_np):
        self.grads = H.tree_to_device(grads_np)
        self.fn = jax.jit(optaxish.global_norm)

    def __call__(self, k: int) -> None:
        out = None
        for _ in range(k):
            out = self.fn(self.grads)
        jax.block_until_ready(out)


def measure(shape: str, spec: dict, reps: int) -> list[str]:
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.items()}
    grads = {
        k: 0.01 * rng.standard_normal(s).astype(np.float32) for k, s in spec.items()
    }
    adam = optax.adam(1e-3)
    boundary = H.Impl(init=adam.init, step=lambda p, g, s: (p, s))
    runners = {
        "optax": H.StepRunner(
            H.transform_impl(adam, optax.apply_updates), params, grads
        ),
        "optaxish": H.StepRunner(
            H.transform_impl(optaxish.adam(1e-3), optaxish.apply_updates), params, grads
        ),
        "boundary": H.StepRunner(boundary, params, grads),
        "check": CheckRunner(grads),
    }
    for run in runners.values():
        run(3)
    inner, _ = H.calibrate_inner(runners, 0.02)
    samples = H.time_interleaved(runners, reps, inner)
    ms = {name: statistics.median(s) * 1e3 for name, s in samples.items()}
    tree_best = ms["optax"] / ms["boundary"]
    check_floor = (ms["optaxish"] + ms["check"]) / ms["optaxish"]
    return [
        f"| {shape} | {len(spec)} | {ms['optax']:.3f} | {ms['optaxish']:.3f} "
        f"| {ms['boundary']:.3f} | {ms['check']:.3f} | **{tree_best:.2f}x** "
        f"| **{check_floor:.2f}** | {PROTOCOL_FLOOR:.2f} |"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default="mixed_400,many_small,single_4m,mlp,resnet50_like"
    )
    parser.add_argument("--reps", type=int, default=30, help="timed rounds per shape")
    args = parser.parse_args(argv)
    shapes = H.load_shapes()
    for line in H.machine_lines(H.machine_info()):
        print(line)
    print()
    print(
        "| shape | leaves | optax ms | optaxish ms | boundary ms | check ms "
        "| best x optax, user-held tree | check-first floor (loss scaling, clip) "
        "| optax-protocol floor |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for shape in args.shapes.split(","):
        for line in measure(shape, dict(shapes.ALL[shape]()), args.reps):
            print(line, flush=True)
    print(
        "\nTargets: user-held trees >= 2x; loss-scaling overhead <= 1.10; "
        "chain(clip_by_global_norm, adamw) <= 1.15x adamw."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
