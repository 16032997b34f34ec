"""``AdamW`` with weight-decay exclusions: ``python -m benchmarks.facade_exclusions``.

Times ``AdamW(1e-3, weight_decay=0.004).apply_gradients`` on the benchmark
shapes with three sides, in the same process, round-robin (median of
``--reps`` rounds of 5 calls, after warm-up, blocking on the results):

* ``none exempt``: no exclusion (packed where the shape packs);
* ``1-D exempt``: the 1-D variables exempt (``exclude_from_weight_decay``),
  the usual "no decay on biases and norms" (packed, the decay masked);
* ``1-D exempt, unpacked``: the same with ``packing = False``, which is how
  a list mixing decayed and exempt variables stepped before it was packed.

It also reports whether each side packed and the largest relative
difference between the packed and unpacked exempt sides (the numbers must
agree).
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _harness as H
from optaxish import Variable
from optaxish.optimizers import AdamW

SIDES = ("none exempt", "1-D exempt", "1-D exempt, unpacked")


def _side(name: str, tree: dict, grads: list) -> tuple:
    variables = [Variable(jnp.asarray(x), name=k) for k, x in tree.items()]
    opt = AdamW(1e-3, weight_decay=0.004)
    if name != "none exempt":
        opt.exclude_from_weight_decay(var_list=[v for v in variables if v.ndim == 1])
    if name.endswith("unpacked"):
        opt.packing = False
    pairs = list(zip(grads, variables))

    def run(k: int) -> None:
        for _ in range(k):
            opt.apply_gradients(pairs)
        jax.block_until_ready([opt.iterations, variables[0].value])

    return run, opt, variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="mixed_400,mlp")
    parser.add_argument("--reps", type=int, default=60)
    args = parser.parse_args()
    shapes = H.load_shapes()
    for shape in args.shapes.split(","):
        spec = shapes.ALL[shape]()
        tree = shapes.make_tree(spec, seed=0)
        grads = [jnp.asarray(g) for g in shapes.make_tree(spec, seed=1).values()]
        sides = {name: _side(name, tree, grads) for name in SIDES}
        for run, _, _ in sides.values():
            run(5)
        exempt = [np.asarray(v.value) for v in sides["1-D exempt"][2]]
        unpacked = [np.asarray(v.value) for v in sides["1-D exempt, unpacked"][2]]
        diff = max(
            float(np.max(np.abs(a - b) / (np.abs(b) + 1e-30)))
            for a, b in zip(exempt, unpacked)
        )
        samples = H.time_interleaved(
            {name: run for name, (run, _, _) in sides.items()}, args.reps, inner=5
        )
        print(
            f"{shape}: max relative difference, packed vs unpacked exempt: {diff:.1e}"
        )
        for name, (_, opt, _) in sides.items():
            ms = statistics.median(samples[name]) * 1e3
            print(f"  {name:22s} {ms:8.3f} ms  packed={bool(opt._groups)}")
        for a, b in (
            ("1-D exempt", "none exempt"),
            ("1-D exempt, unpacked", "none exempt"),
        ):
            r, lo, hi = H.paired_ratio(samples[a], samples[b])
            print(f"  {a} / {b}: {r:.2f} (IQR {lo:.2f}-{hi:.2f})")


if __name__ == "__main__":
    main()
