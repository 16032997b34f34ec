"""Loss scaling inside a whole training step: ``python -m benchmarks.loss_scale_training_step``.

``loss_scale_overhead`` times the optimizer step alone, with the gradients
handed in. Here each side is a full step of the ``mlp`` shape as a model
(784-1024-256-256-10, ReLU, softmax cross-entropy on a fixed random batch):
forward, backward, then the update, all in one ``jax.jit`` with the
parameters and the state donated. Each wrapper is timed against the same step
without it, a pair at a time (median of the per-round ratios, after warm-up):

* ``loss_scaling_step(inner)`` against ``inner`` (update + ``apply_updates``);
* ``apply_if_finite(inner, 5)`` + ``apply_updates`` against ``inner``;
* optax's ``apply_if_finite`` around optax's ``adam`` against optax's ``adam``.

``inner`` is ``adam(1e-3)`` or ``chain(clip_by_global_norm(1.0), adam(1e-3))``.
The loss is not scaled (the scale is dynamic, so the check and the cond run,
and every step is applied). Prints a Markdown table, saved unless
``--no-write`` under ``benchmarks/results/loss_scale_step_<name>.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness as H

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LR = 1e-3
LAYERS = 4  # dense0 ... dense3 of the `mlp` shape


def _batch(size: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((size, 784)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size), jnp.int32)
    return x, y


def _loss(
    params: dict[str, jax.Array], batch: tuple[jax.Array, jax.Array]
) -> jax.Array:
    x, y = batch
    h = x
    for i in range(LAYERS):
        h = h @ params[f"dense{i}/kernel"] + params[f"dense{i}/bias"]
        if i < LAYERS - 1:
            h = jax.nn.relu(h)
    log_p = jax.nn.log_softmax(h)
    return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))


def _protocol_impl(tx: Any, apply_updates: Any) -> H.Impl:
    def step(params, batch, state):
        grads = jax.grad(_loss)(params, batch)
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return H.Impl(init=tx.init, step=step)


def _fused_impl(inner: Any) -> H.Impl:
    from optaxish import loss_scale as lsm

    def step(params, batch, state):
        grads = jax.grad(_loss)(params, batch)
        return lsm.loss_scaling_step(inner, grads, state, params)

    return H.Impl(init=lsm.loss_scaling(inner).init, step=step)


def _impls() -> dict[str, H.Impl]:
    import optax

    import optaxish as ox

    inners = {
        "adam": lambda: ox.adam(LR),
        "clip+adam": lambda: ox.chain(ox.clip_by_global_norm(1.0), ox.adam(LR)),
    }
    impls: dict[str, H.Impl] = {}
    for name, make in inners.items():
        impls[name] = _protocol_impl(make(), ox.apply_updates)
        impls[f"loss_scaling_step({name})"] = _fused_impl(make())
        impls[f"apply_if_finite({name})"] = _protocol_impl(
            ox.apply_if_finite(make(), 5), ox.apply_updates
        )
    impls["optax adam"] = _protocol_impl(optax.adam(LR), optax.apply_updates)
    impls["optax apply_if_finite(adam)"] = _protocol_impl(
        optax.apply_if_finite(optax.adam(LR), 5), optax.apply_updates
    )
    return impls


#: (wrapper, reference) pairs, each timed on its own.
PAIRS = [
    ("loss_scaling_step(adam)", "adam"),
    ("apply_if_finite(adam)", "adam"),
    ("loss_scaling_step(clip+adam)", "clip+adam"),
    ("apply_if_finite(clip+adam)", "clip+adam"),
    ("optax apply_if_finite(adam)", "optax adam"),
]


def measure(batch_size: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Times every pair of :data:`PAIRS` on a batch of ``batch_size`` examples."""
    shapes = H.load_shapes()
    params_np = jax.tree.map(lambda a: 0.05 * a, shapes.make_tree(shapes.mlp(), seed=0))
    batch = _batch(batch_size)
    runners = {n: H.StepRunner(i, params_np, batch) for n, i in _impls().items()}
    _, timed = H.time_pairs(runners, PAIRS, cfg)
    row: dict[str, Any] = {"batch": batch_size, "pairs": {}, "ms": {}}
    for (a, b), (samples_a, samples_b, reps) in timed.items():
        row["pairs"][a] = (*H.paired_ratio(samples_a, samples_b), reps)
        row["ms"][b] = 1e3 * statistics.median(samples_b)
    return row


def render(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [
        "# Loss scaling inside a training step (`mlp` model)",
        "",
        *H.machine_lines(machine),
        "- ratio = whole step with the wrapper / the same step without it (median "
        "of the per-round paired ratios; interquartile range in brackets).",
        "",
        "| batch | wrapper | reference | reference step ms | ratio |",
        "|--:|---|---|--:|--:|",
    ]
    for r in rows:
        for a, b in PAIRS:
            med, lo, hi, _ = r["pairs"][a]
            lines.append(
                f"| {r['batch']} | {a} | {b} | {r['ms'][b]:.2f} | "
                f"**{med:.2f}** ({lo:.2f}–{hi:.2f}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.loss_scale_training_step", description=__doc__
    )
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--batches", default="64,512", help="comma-separated batch sizes")
    ap.add_argument("--name", help="results file name (default: date-time)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    cfg = (
        dict(warmup=2, budget_s=0.3, min_reps=3, max_reps=6, min_sample_s=0.002)
        if args.quick
        else dict(warmup=5, budget_s=6.0, min_reps=15, max_reps=300, min_sample_s=0.02)
    )
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batches takes integers, received {args.batches!r}")
    if not batches or min(batches) < 1:
        ap.error(f"--batches takes positive integers, received {args.batches!r}")
    machine = H.machine_info()
    rows = []
    for size in batches:
        t0 = time.perf_counter()
        rows.append(measure(size, cfg))
        summary = "  ".join(f"{a} {rows[-1]['pairs'][a][0]:.2f}" for a, _ in PAIRS)
        print(
            f"  batch {size:5d}  {summary}  ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        jax.clear_caches()
    path_for = (
        None if args.no_write else lambda n: RESULTS_DIR / f"loss_scale_step_{n}.md"
    )
    H.emit_report(render(rows, machine), path_for, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
