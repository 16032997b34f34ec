"""``python -m optaxish.demo``: train a small classifier and report the results."""

from __future__ import annotations

import argparse

from optaxish.demo._data import spirals
from optaxish.demo._functional import train_functional


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m optaxish.demo", description=__doc__
    )
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    x, y = spirals()
    print(f"dataset: {len(y)} points, 2 features, {int(y.max()) + 1} classes (spirals)")
    results = train_functional(x, y, steps=args.steps)
    print(
        f"functional API (jax.jit, chain(clip_by_global_norm, adamw)): "
        f"loss {results['loss']:.4f}  accuracy {results['accuracy']:.3f}  "
        f"{results['steps_per_second']:.0f} steps/s"
    )


if __name__ == "__main__":
    main()
