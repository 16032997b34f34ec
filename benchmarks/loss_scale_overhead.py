"""Overhead of loss scaling: ``python -m benchmarks.loss_scale_overhead [--quick]``.

For each tree of ``../shared/bench/shapes.py`` it times, round-robin in one
process (donated buffers, median after warm-up, ``block_until_ready``):

* ``optaxish.adam(1e-3)``, ``loss_scale.loss_scaling(optaxish.adam(1e-3))``
  followed by ``apply_updates``, and the fused
  ``loss_scale.loss_scaling_step(adam, ...)`` (dynamic scale, finite
  gradients: the check runs and the step is applied);
* ``optax.adam(1e-3)`` and ``optax.apply_if_finite(optax.adam(1e-3), 5)``.

and prints the wrapper/inner ratios (the target is <= 1.10 for ours; optax's
``apply_if_finite`` is the comparison). Timings reuse
:mod:`benchmarks._harness`; the Markdown table is printed and, unless
``--no-write``, saved under ``benchmarks/results/loss_scale_<name>.md``.
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

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LR = 1e-3


def _impls() -> dict[str, H.Impl]:
    import optax

    import optaxish as ox
    from optaxish import loss_scale as lsm

    return {
        "adam": H.transform_impl(ox.adam(LR), ox.apply_updates),
        "loss_scaling(adam)": H.transform_impl(
            lsm.loss_scaling(ox.adam(LR)), ox.apply_updates
        ),
        "loss_scaling_step(adam)": H.Impl(
            init=lsm.loss_scaling(ox.adam(LR)).init,
            step=lambda p, g, s: lsm.loss_scaling_step(ox.adam(LR), g, s, p),
        ),
        "optax.adam": H.transform_impl(optax.adam(LR), optax.apply_updates),
        "optax.apply_if_finite(adam)": H.transform_impl(
            optax.apply_if_finite(optax.adam(LR), 5), optax.apply_updates
        ),
    }


PAIRS = [
    ("loss_scaling(adam)", "adam"),
    ("loss_scaling_step(adam)", "adam"),
    ("optax.apply_if_finite(adam)", "optax.adam"),
]


def _paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    ratios = sorted(x / y for x, y in zip(a, b))
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), q[0], q[2]


def measure(shape: str, params_np: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """Times every impl on one tree; returns medians and paired ratios."""
    grads = H.tree_to_device(jax.tree.map(lambda x: 0.01 * x, params_np))
    runners = {n: H.StepRunner(impl, params_np, grads) for n, impl in _impls().items()}
    for run in runners.values():
        run(cfg["warmup"])
    inner, per_call = H.calibrate_inner(runners, cfg["min_sample_s"])
    reps = int(cfg["budget_s"] / max(inner * sum(per_call.values()), 1e-9))
    reps = min(max(reps, cfg["min_reps"]), cfg["max_reps"])
    samples = H.time_interleaved(runners, reps, inner)
    row: dict[str, Any] = {
        "shape": shape,
        "reps": reps,
        "inner": inner,
        "median_ms": {n: 1e3 * statistics.median(s) for n, s in samples.items()},
    }
    for a, b in PAIRS:
        med, lo, hi = _paired(samples[a], samples[b])
        row[f"{a} / {b}"] = {
            "ratio_of_medians": statistics.median(samples[a])
            / statistics.median(samples[b]),
            "paired_median": med,
            "paired_iqr": (lo, hi),
        }
    return row


def render(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    head = (
        "| shape | leaves | adam ms | loss_scaling(adam) ms | ratio (IQR) "
        "| loss_scaling_step ms | ratio (IQR) "
        "| optax.adam ms | apply_if_finite ms | optax ratio (IQR) |"
    )
    sep = "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    lines = [
        "# Loss-scaling overhead",
        "",
        f"- {machine['date']}; {machine['cpu_model']}, {machine['cpu_count']} cores; "
        f"backend {machine['backend']}; jax {machine['jax']}, optax {machine['optax']}",
        f"- load average at start: {machine['load_average']}",
        "- ratio = wrapper / inner (median of the per-round paired ratios; IQR "
        "in brackets), finite gradients, donated buffers.",
        "",
        head,
        sep,
    ]
    for r in rows:
        m = r["median_ms"]
        ours = r["loss_scaling(adam) / adam"]
        fused = r["loss_scaling_step(adam) / adam"]
        ref = r["optax.apply_if_finite(adam) / optax.adam"]
        lines.append(
            f"| {r['shape']} | {r['leaves']} | {m['adam']:.2f} | "
            f"{m['loss_scaling(adam)']:.2f} | **{ours['paired_median']:.2f}** "
            f"({ours['paired_iqr'][0]:.2f}–{ours['paired_iqr'][1]:.2f}) | "
            f"{m['loss_scaling_step(adam)']:.2f} | **{fused['paired_median']:.2f}** "
            f"({fused['paired_iqr'][0]:.2f}–{fused['paired_iqr'][1]:.2f}) | "
            f"{m['optax.adam']:.2f} | {m['optax.apply_if_finite(adam)']:.2f} | "
            f"{ref['paired_median']:.2f} "
            f"({ref['paired_iqr'][0]:.2f}–{ref['paired_iqr'][1]:.2f}) |"
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
        else dict(warmup=5, budget_s=6.0, min_reps=15, max_reps=300, min_sample_s=0.01)
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
        ours = row["loss_scaling(adam) / adam"]["paired_median"]
        fused = row["loss_scaling_step(adam) / adam"]["paired_median"]
        ref = row["optax.apply_if_finite(adam) / optax.adam"]["paired_median"]
        print(
            f"  {shape:14s} loss_scaling/adam {ours:.2f}   step/adam {fused:.2f}   "
            f"apply_if_finite/adam {ref:.2f}   ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        jax.clear_caches()
    report = render(rows, machine)
    print(report)
    if not args.no_write:
        RESULTS_DIR.mkdir(exist_ok=True)
        name = args.name or time.strftime("%Y%m%d-%H%M%S")
        (RESULTS_DIR / f"loss_scale_{name}.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
