"""``python -m optaxish.demo``: train a small classifier twice and report.

The same 2-64-64-3 tanh MLP learns generated spirals (no downloads) twice:
with the Keras-style facade (``optaxish.Variable`` weights, float16 compute,
``LossScaleOptimizer(Adam).minimize`` each step) and with the functional API
(``chain(clip_by_global_norm, adamw)`` in one ``jax.jit`` step). Progress bars
go to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import math

from optaxish.demo._data import spirals
from optaxish.demo._facade import GROWTH_STEPS, train_facade
from optaxish.demo._functional import train_functional


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _scale(value: float) -> str:
    """``2**24`` for a power of two, else the number."""
    exponent = math.log2(value) if value > 0 else 0.5
    return f"2**{int(exponent)}" if exponent.is_integer() else f"{value:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m optaxish.demo",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument(
        "--steps", type=_positive, default=1500, help="training steps per run"
    )
    parser.add_argument("--batch", type=_positive, default=128, help="batch size")
    parser.add_argument("--seed", type=int, default=0, help="data and init seed")
    parser.add_argument(
        "--run",
        choices=("both", "facade", "functional"),
        default="both",
        help="which half to run",
    )
    parser.add_argument(
        "--growth-steps",
        type=_positive,
        default=GROWTH_STEPS,
        help="facade: finite steps before the loss scale doubles "
        "(tf-keras' dynamic_growth_steps)",
    )
    args = parser.parse_args(argv)
    x, y = spirals(seed=args.seed)
    print(
        f"dataset: {len(y)} points, 2 features, {int(y.max()) + 1} classes "
        f"(spirals); {args.steps} steps of {args.batch} per run",
        flush=True,
    )
    common = dict(steps=args.steps, batch=args.batch, seed=args.seed)
    if args.run in ("both", "facade"):
        r = train_facade(x, y, growth_steps=args.growth_steps, **common)
        print(
            "facade     (LossScaleOptimizer(Adam).minimize, mixed_float16): "
            f"loss {r['loss']:.4f}  accuracy {r['accuracy']:.3f}  "
            f"{r['steps_per_second']:.0f} steps/s  "
            f"loss scale {_scale(r['loss_scale'])} "
            f"({r['skipped']} overflowing steps skipped)",
            flush=True,
        )
    if args.run in ("both", "functional"):
        r = train_functional(x, y, **common)
        print(
            "functional (jax.jit, chain(clip_by_global_norm, adamw), float32): "
            f"loss {r['loss']:.4f}  accuracy {r['accuracy']:.3f}  "
            f"{r['steps_per_second']:.0f} steps/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
