"""Step and compile time against the number of leaves (issue 5's sweep).

``python -m benchmarks.leaves_sweep [--leaves 100,200,400,800,1600] [--quick]``

On ``shapes.many_small(n)`` trees (n leaves of 1 to 63**2 elements) it times,
for Adam(1e-3) in float32, four sides in the same process:

* ``optax``: ``optax.adam`` on the parameter tree (the reference);
* ``optaxish``: ``optaxish.adam`` on the tree;
* ``packed (tree)``: ``optaxish.packing.packed(adam)`` on the tree (gradients
  packed and updates split on every step);
* ``packed``: the same with the parameters held packed (``packing.pack``).

Fresh compile time (trace + lower + XLA compile, caches cleared) and per-step
time (interleaved, median after warm-up, donated buffers). Writes a Markdown
table to ``benchmarks/results/leaves-sweep-<name>.md`` and the plot
``benchmarks/results/leaves-sweep-<name>.png`` (matplotlib, from the ``bench``
extra).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _harness as H
from benchmarks._cases import _optax_impl, _optaxish_impl

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _sides() -> dict[str, H.Impl]:
    return {
        "optax": _optax_impl(lambda lib: lib.adam(1e-3))(),
        "optaxish": _optaxish_impl(lambda lib: lib.adam(1e-3)),
        "packed (tree)": _optaxish_impl(lambda lib: lib.packing.packed(lib.adam(1e-3))),
        "packed": _optaxish_impl(
            lambda lib: lib.packing.packed(lib.adam(1e-3)), packed_params=True
        ),
    }


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(n: int, quick: bool) -> dict[str, Any]:
    """Compile and step times of every side on a tree of ``n`` leaves."""
    shapes = H.load_shapes()
    params_np = shapes.make_tree(shapes.many_small(n))
    grads_np = shapes.make_tree(shapes.many_small(n), seed=1, scale=1e-2)
    impls = _sides()
    warm = H.abstract({"a": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)})
    reps = 1 if quick or n > 400 else 2
    compile_times, executables = H.time_compile_interleaved(
        impls, H.abstract(params_np), reps, warm
    )
    grads = H.tree_to_device(grads_np)
    runners = {
        name: H.StepRunner(impl, params_np, grads, executables[name])
        for name, impl in impls.items()
    }
    for run in runners.values():
        run(2 if quick else 5)
    diff = max(
        H.max_rel_diff(runners[name].params_tree, runners["optax"].params_tree)
        for name in runners
    )
    inner, _ = H.calibrate_inner(runners, 0.002 if quick else 0.01)
    samples = H.time_interleaved(runners, 5 if quick else 25, inner)
    out: dict[str, Any] = {"n": n, "max_rel_diff": diff, "compile": {}, "step": {}}
    for name in impls:
        t = compile_times[name]
        out["compile"][name] = statistics.median(
            a + b for a, b in zip(t["lower"], t["compile"])
        )
        out["step"][name] = statistics.median(samples[name])
    return out


def render(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The Markdown report."""
    names = list(rows[0]["step"])
    lines = [
        "# Adam step and compile time against the number of leaves",
        "",
        f"Machine: {info['cpu_model']}, {info['affinity_cpus']} cores, "
        f"{info['platform']}, jax {info['jax']}; {info['date']}. "
        "Trees: `shapes.many_small(n)`.",
        "",
        "| leaves | "
        + " | ".join(f"step {n} (ms)" for n in names)
        + " | "
        + " | ".join(f"compile {n} (s)" for n in names)
        + " | max rel diff |",
        "|" + " --- |" * (1 + 2 * len(names) + 1),
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | "
            + " | ".join(f"{1e3 * r['step'][n]:.3f}" for n in names)
            + " | "
            + " | ".join(f"{r['compile'][n]:.2f}" for n in names)
            + f" | {r['max_rel_diff']:.1e} |"
        )
    lines += ["", "Ratios against optax (below 1: faster):", ""]
    lines.append(
        "| leaves | "
        + " | ".join(f"step {n}" for n in names[1:])
        + " | "
        + " | ".join(f"compile {n}" for n in names[1:])
        + " |"
    )
    lines.append("|" + " --- |" * (1 + 2 * (len(names) - 1)))
    for r in rows:
        step = [r["step"][n] / r["step"]["optax"] for n in names[1:]]
        comp = [r["compile"][n] / r["compile"]["optax"] for n in names[1:]]
        lines.append(
            f"| {r['n']} | "
            + " | ".join(f"{x:.2f}" for x in step)
            + " | "
            + " | ".join(f"{x:.2f}" for x in comp)
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Two log-log panels: step time and compile time against leaves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leaves = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, unit, scale in (
        ("step", axes[0], "step time (ms)", 1e3),
        ("compile", axes[1], "fresh compile time (s)", 1.0),
    ):
        for name in rows[0][key]:
            ax.plot(
                leaves, [scale * r[key][name] for r in rows], marker="o", label=name
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("leaves")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle("Adam(1e-3), float32, shapes.many_small(n): optaxish vs optax")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.leaves_sweep")
    ap.add_argument("--leaves", default="100,200,400,800,1600")
    ap.add_argument("--quick", action="store_true", help="one compile, few reps")
    ap.add_argument("--name", default=time.strftime("%Y-%m-%d"))
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.leaves.split(",")]
    info = H.machine_info()
    rows = []
    for n in counts:
        t0 = time.perf_counter()
        rows.append(measure(n, args.quick))
        _log(f"{n} leaves done in {time.perf_counter() - t0:.0f} s")
    text = render(rows, info)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"leaves-sweep-{args.name}.md").write_text(text)
    plot(rows, RESULTS_DIR / f"leaves-sweep-{args.name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
