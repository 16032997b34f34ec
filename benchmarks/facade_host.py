"""Host time per call of the Keras-style facade: ``python -m benchmarks.facade_host``.

On a small model the Python work around the compiled step (checks, the plan
lookup, preparing and committing the state, ``jax.jit``'s own dispatch) is the
step time. This times loops of ``--calls`` calls (default 10,000) of

* ``Adam.apply_gradients(zip(grads, vars))``,
* ``Adam.minimize(loss, vars)``,
* ``LossScaleOptimizer(Adam).apply_gradients(...)`` (dynamic scale),
* ``SGD.apply_gradients(...)``,

over eight 4x4 float32 variables (packed, the default), against two floors:
the facade's own compiled step called directly in a loop with its outputs fed
back (``jit dispatch``: the same pytrees and donated buffers, none of our
Python around it), and a hand-written jitted Adam step over the eight arrays
and their two moments, donated (``hand-written jit``). Each loop ends with
``block_until_ready``; the report gives the median of ``--repeats`` loops
(default 5) in microseconds per call, in alternation between the cases. Time
it on a quiet machine; ``--profile CASE`` prints a ``cProfile`` listing of one
loop instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

N_VARS = 8
SHAPE = (4, 4)


def _variables() -> list:
    from optaxish import Variable

    rng = np.random.default_rng(0)
    return [
        Variable(rng.standard_normal(SHAPE).astype(np.float32), name=f"w{i}")
        for i in range(N_VARS)
    ]


def _grads() -> list[jax.Array]:
    rng = np.random.default_rng(1)
    return [
        jnp.asarray(1e-3 * rng.standard_normal(SHAPE).astype(np.float32))
        for _ in range(N_VARS)
    ]


def _apply_case(make_opt: Callable[[], Any]) -> Callable[[int], Any]:
    vs, grads = _variables(), _grads()
    opt = make_opt()

    def run(n: int) -> Any:
        out = None
        apply = opt.apply_gradients
        for _ in range(n):
            out = apply(zip(grads, vs))
        return out

    run.opt = opt  # type: ignore[attr-defined]
    return run


def _adam() -> Any:
    from optaxish.optimizers import Adam

    return Adam(1e-3)


def _sgd() -> Any:
    from optaxish.optimizers import SGD

    return SGD(1e-3)


def _lso() -> Any:
    from optaxish.mixed_precision import LossScaleOptimizer

    opt = LossScaleOptimizer(_adam())
    opt.get_unscaled_gradients([])  # as a training loop does: no warning
    opt.get_scaled_loss(1.0)
    return opt


def _minimize_case() -> Callable[[int], Any]:
    vs = _variables()
    opt = _adam()

    def loss() -> jax.Array:
        return sum((v * v).sum() for v in vs)

    def run(n: int) -> Any:
        out = None
        minimize = opt.minimize
        for _ in range(n):
            out = minimize(loss, vs)
        return out

    run.opt = opt  # type: ignore[attr-defined]
    return run


def _dispatch_floor() -> Callable[[int], Any]:
    """The Adam facade's compiled ``apply_gradients`` step, called directly,
    as the facade calls it (its outputs fed back)."""
    from optaxish.optimizers import _minimize

    vs, grads = _variables(), _grads()
    opt = _adam()
    opt.apply_gradients(zip(grads, vs))
    plan = opt._apply_plan
    (fn,) = plan.steps.values()
    if isinstance(fn, tuple):  # (step, takes gradient buffers), since session 11
        fn = fn[0]
    carry, values, _ = opt._step_inputs(plan.indices)
    group = opt._packed_group(plan.indices)
    box = [carry, values, group.gradient_buffers()]
    group._grads = None  # the loop owns the buffers now
    hp, it = carry.hyperparams, carry.iterations
    apart = hasattr(_minimize, "scalars_apart")  # not donated
    if apart:
        box[0] = carry._replace(iterations=None, hyperparams=None)

    def run(n: int) -> Any:
        nonlocal it
        carry, values, buffers = box
        if apart:  # the carry's own scalar entries are ignored then
            for _ in range(n):
                carry, values, buffers = fn(
                    carry, values, buffers, grads, iterations=it, hyperparams=hp
                )
                it = carry.iterations
        else:  # the facade before: the scalars in the carry
            for _ in range(n):
                carry, values, it, buffers = fn(carry, values, buffers, grads)
        box[:] = [carry, values, buffers]
        return it

    return run


def _hand_floor() -> Callable[[int], Any]:
    """A hand-written jitted Adam step over the eight arrays, donated."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 1e-3

    def step(count, params, mu, nu, grads):
        count = count + 1
        t = count.astype(jnp.float32)
        a = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        mu = [b1 * m + (1 - b1) * g for m, g in zip(mu, grads)]
        nu = [b2 * v + (1 - b2) * g * g for v, g in zip(nu, grads)]
        params = [p - a * m / (jnp.sqrt(v) + eps) for p, m, v in zip(params, mu, nu)]
        return count, params, mu, nu

    fn = jax.jit(step, donate_argnums=(0, 1, 2, 3))
    grads = _grads()
    box = [
        jnp.zeros([], jnp.int32),
        [jnp.array(v.value) for v in _variables()],
        [jnp.zeros(SHAPE) for _ in range(N_VARS)],
        [jnp.zeros(SHAPE) for _ in range(N_VARS)],
    ]

    def run(n: int) -> Any:
        count, params, mu, nu = box
        for _ in range(n):
            count, params, mu, nu = fn(count, params, mu, nu, grads)
        box[:] = [count, params, mu, nu]
        return count

    return run


CASES: dict[str, Callable[[], Callable[[int], Any]]] = {
    "Adam apply": lambda: _apply_case(_adam),
    "Adam minimize": _minimize_case,
    "LSO(Adam) apply": lambda: _apply_case(_lso),
    "SGD apply": lambda: _apply_case(_sgd),
    "jit dispatch": _dispatch_floor,
    "hand-written jit Adam": _hand_floor,
}


def _loop_us(run: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """Wall and calling-thread CPU µs per call of one loop."""
    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    jax.block_until_ready(run(calls))
    t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    return (t1 - t0) / calls / 1e3, (c1 - c0) / calls / 1e3


def measure(
    calls: int, repeats: int, names: list[str]
) -> dict[str, list[tuple[float, float]]]:
    runners = {name: CASES[name]() for name in names}
    for run in runners.values():  # compile, then warm up
        jax.block_until_ready(run(1))
        jax.block_until_ready(run(min(calls, 1000)))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(repeats):  # alternating, a different order each round
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(_loop_us(runners[name], calls))
    return samples


def profile(name: str, calls: int, top: int) -> None:
    run = CASES[name]()
    jax.block_until_ready(run(1000))
    prof = cProfile.Profile()
    prof.enable()
    jax.block_until_ready(run(calls))
    prof.disable()
    stats = pstats.Stats(prof).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.facade_host", description=__doc__
    )
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cases", help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--profile", metavar="CASE", help="cProfile one loop of CASE")
    ap.add_argument("--top", type=int, default=30, help="rows of --profile")
    args = ap.parse_args(argv)
    warnings.simplefilter("error")  # a warning per call would be timed too
    if args.profile:
        profile(args.profile, args.calls, args.top)
        return 0
    names = [s.strip() for s in (args.cases or ",".join(CASES)).split(",")]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases: {unknown}; choose from {list(CASES)}")
    samples = measure(args.calls, args.repeats, names)
    print(
        f"µs per call, median of {args.repeats} loops of {args.calls:,} calls "
        f"(jax {jax.__version__}, backend {jax.default_backend()}); wall time "
        "and the calling thread's CPU time (what other processes and XLA's "
        "threads take is not in it)"
    )
    print(
        "| case | wall | wall min-max | thread CPU | thread CPU min "
        "| thread CPU / jit dispatch |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    ref = samples.get("jit dispatch")
    ref_cpu = statistics.median(c for _, c in ref) if ref else float("nan")
    for name in names:
        wall = [w for w, _ in samples[name]]
        cpus = [c for _, c in samples[name]]
        cpu = statistics.median(cpus)
        print(
            f"| {name} | {statistics.median(wall):.1f} | {min(wall):.1f}-"
            f"{max(wall):.1f} | {cpu:.1f} | {min(cpus):.1f} | {cpu / ref_cpu:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
