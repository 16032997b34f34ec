"""Overhead of loss scaling: ``python -m benchmarks.loss_scale_overhead [--quick]``.

For each tree of ``../shared/bench/shapes.py`` it times, in one process, each
wrapper against its inner step in alternation, a pair at a time (donated
buffers, median after warm-up, ``block_until_ready``), for
four inner transformations, ``adam(1e-3)``,
``chain(clip_by_global_norm(1.0), adam(1e-3))`` and both under
``packing.packed`` with the parameters held packed:

* the inner step itself (``update`` + ``apply_updates``);
* ``loss_scale.loss_scaling(inner)`` followed by ``apply_updates`` (the optax
  protocol: the updates leave the ``lax.cond`` in their own buffer);
* the fused ``loss_scale.loss_scaling_step(inner, ...)`` (what the Keras-style
  facade and a hand-written step use);
* ``optaxish.apply_if_finite(inner, 5)``;
* and, for comparison, ``optax.apply_if_finite`` around optax's same inner
  (for the unpacked inners).

The gradients are finite and the scale dynamic, so the check runs and the step
is applied. It prints the wrapper/inner ratios (the target is <= 1.10) as a
Markdown table, saved, unless ``--no-write``, under
``benchmarks/results/loss_scale_<name>.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks import _harness as H
from benchmarks._cases import _held_packed

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LR = 1e-3


INNERS = ("adam", "clip+adam", "packed adam", "packed clip+adam")
#: The inners optax has a counterpart for (the packed ones hold packed parameters).
OPTAX_INNERS = ("adam", "clip+adam")


def _fused_impl(inner: Any, lsm: Any) -> H.Impl:
    def step(params, grads, state):
        return lsm.loss_scaling_step(inner, grads, state, params)

    return H.Impl(init=lsm.loss_scaling(inner).init, step=step)


def _impls() -> dict[str, H.Impl]:
    import optax

    import optaxish as ox
    from optaxish import loss_scale as lsm

    def clip_adam():
        return ox.chain(ox.clip_by_global_norm(1.0), ox.adam(LR))

    ours = {
        "adam": lambda: ox.adam(LR),
        "clip+adam": clip_adam,
        "packed adam": lambda: ox.packing.packed(ox.adam(LR)),
        "packed clip+adam": lambda: ox.packing.packed(clip_adam()),
    }
    theirs = {
        "adam": lambda: optax.adam(LR),
        "clip+adam": lambda: optax.chain(
            optax.clip_by_global_norm(1.0), optax.adam(LR)
        ),
    }
    impls = {}
    for name in INNERS:
        make = ours[name]
        sides = {
            name: H.transform_impl(make(), ox.apply_updates),
            f"loss_scaling({name})": H.transform_impl(
                lsm.loss_scaling(make()), ox.apply_updates
            ),
            f"loss_scaling_step({name})": _fused_impl(make(), lsm),
            f"apply_if_finite({name})": H.transform_impl(
                ox.apply_if_finite(make(), 5), ox.apply_updates
            ),
        }
        if name.startswith("packed"):
            sides = {k: _held_packed(v) for k, v in sides.items()}
        impls.update(sides)
        if name in OPTAX_INNERS:
            impls[f"optax {name}"] = H.transform_impl(
                theirs[name](), optax.apply_updates
            )
            impls[f"optax apply_if_finite({name})"] = H.transform_impl(
                optax.apply_if_finite(theirs[name](), 5), optax.apply_updates
            )
    return impls


#: (column label, wrapper impl, inner impl), per inner.
COLUMNS = [
    ("loss_scaling + apply", "loss_scaling({})", "{}"),
    ("loss_scaling_step", "loss_scaling_step({})", "{}"),
    ("apply_if_finite", "apply_if_finite({})", "{}"),
    ("optax apply_if_finite", "optax apply_if_finite({})", "optax {}"),
]
PAIRS = [
    (w.format(i), b.format(i))
    for i in INNERS
    for _, w, b in COLUMNS
    if i in OPTAX_INNERS or not w.startswith("optax")
]


def measure(shape: str, params_np: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Times every wrapper against its inner on one tree, a pair at a time.

    Each pair alternates on its own, so a wrapper's sample and its inner's
    sample of the same round run back to back. In one rotation of all the
    impls, a pair's two samples sat up to fifteen other impls apart, with
    whatever those left in the cache in between; the ratios' interquartile
    ranges on `mlp` reached 0.5-2.0.
    """
    grads = H.tree_to_device(jax.tree.map(lambda x: 0.01 * x, params_np))
    runners = {n: H.StepRunner(impl, params_np, grads) for n, impl in _impls().items()}
    inner, timed = H.time_pairs(runners, PAIRS, cfg)
    pooled: dict[str, list[float]] = {n: [] for n in runners}
    row: dict[str, Any] = {"shape": shape, "inner": inner, "reps": {}}
    for (a, b), (samples_a, samples_b, reps) in timed.items():
        pooled[a] += samples_a
        pooled[b] += samples_b
        med, lo, hi = H.paired_ratio(samples_a, samples_b)
        row["reps"][a] = reps
        row[f"{a} / {b}"] = {
            "ratio_of_medians": statistics.median(samples_a)
            / statistics.median(samples_b),
            "paired_median": med,
            "paired_iqr": (lo, hi),
        }
    row["median_ms"] = {n: 1e3 * statistics.median(s) for n, s in pooled.items() if s}
    return row


def render(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [
        "# Loss-scaling overhead",
        "",
        *H.machine_lines(machine),
        "- ratio = wrapper step / inner step (median of the per-round paired "
        "ratios; interquartile range in brackets), finite gradients, donated "
        "buffers; optax's wrapper against optax's inner.",
        "",
        "| shape | inner | inner ms | "
        + " | ".join(label for label, _, _ in COLUMNS)
        + " |",
        "|---|---|--:|" + "--:|" * len(COLUMNS),
    ]
    for r in rows:
        for inner in INNERS:
            cells = []
            for _, w, b in COLUMNS:
                pair = r.get(f"{w.format(inner)} / {b.format(inner)}")
                if pair is None:
                    cells.append("–")
                    continue
                lo, hi = pair["paired_iqr"]
                cells.append(f"**{pair['paired_median']:.2f}** ({lo:.2f}–{hi:.2f})")
            lines.append(
                f"| {r['shape']} | {inner} | {r['median_ms'][inner]:.2f} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.loss_scale_overhead", description=__doc__
    )
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--shapes", help="comma-separated subset of the shapes")
    ap.add_argument("--name", help="results file name (default: date-time)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    cfg = (
        dict(warmup=2, budget_s=0.5, min_reps=3, max_reps=10, min_sample_s=0.002)
        if args.quick
        else dict(warmup=5, budget_s=4.0, min_reps=15, max_reps=300, min_sample_s=0.01)
    )
    shapes_mod = H.load_shapes()
    names = list(shapes_mod.ALL)
    if args.shapes:
        names = [s.strip() for s in args.shapes.split(",") if s.strip()]
        unknown = sorted(set(names) - set(shapes_mod.ALL))
        if unknown:
            ap.error(f"unknown shapes {unknown}; choose from {list(shapes_mod.ALL)}")
    machine = H.machine_info()
    rows = []
    for shape in names:
        spec = shapes_mod.ALL[shape]()
        params_np = shapes_mod.make_tree(spec, seed=0)
        t0 = time.perf_counter()
        row = measure(shape, params_np, cfg)
        row["leaves"] = len(spec)
        row["params"] = int(sum(np.prod(s) for s in spec.values()))
        rows.append(row)
        summary = "  ".join(
            f"{a} {row[f'{a} / {b}']['paired_median']:.2f}" for a, b in PAIRS
        )
        print(
            f"  {shape:14s} {summary}  ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        jax.clear_caches()
    path_for = None if args.no_write else lambda n: RESULTS_DIR / f"loss_scale_{n}.md"
    H.emit_report(render(rows, machine), path_for, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
