"""Benchmarks the Keras-style facade (issue 4, "Compiled"): ``python -m benchmarks.facade``.

On each benchmark shape (``../shared/bench/shapes.py``), Adam(1e-3) in float32,
one variable per leaf, time per step of:

- ``jit core``: a hand-written ``jax.jit`` step over the core (the tf-keras
  Adam of the facade, ``chain(scale_by_adam(epsilon_hat=True), scale(-lr))``,
  on the list of arrays, then ``apply_updates``; params and state donated):
  the reference of ``facade apply``;
- ``facade apply``: ``optaxish.optimizers.Adam.apply_gradients(zip(grads, vars))``
  (packed storage, the default: one buffer per dtype, packed slots);
- ``facade apply (unpacked)``: the same with ``opt.packing = False`` (one
  array per variable and per slot);
- ``facade apply (XLA loops)``: packed, with the native one-pass kernel off
  (XLA:CPU's three loops; see ``optaxish/_native``);
- ``optax jit``: a hand-written ``jax.jit`` step of optax's own
  ``optax.adam(1e-3)`` (``update`` + ``apply_updates``, donated), the
  reference library's fastest plain form;
- ``jit core+grad``: the same hand-written step computing the gradient of
  ``sum(vdot(p, c))`` first (the reference of ``facade minimize``);
- ``facade minimize``: ``Adam.minimize(loss, vars)`` on that loss;
- ``keras eager``: Keras 3 (JAX backend)
  ``keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, keras_vars))``;
- ``nnx eager`` / ``nnx jit``: flax ``nnx.Optimizer(model, optax.adam(1e-3),
  wrt=nnx.Param).update(model, grads)``, called directly and inside ``nnx.jit``.

The gradients are fixed device arrays, and the loss's gradient is the same
array (``c = grads``), so every side follows the same trajectory: after the
warm-up steps the parameters of every side are compared with ``jit core``'s
(Keras 3 uses the same epsilon-hat form; optax's ``adam`` puts ``eps=1e-8``
inside, so ``nnx`` and ``optax jit`` rows differ slightly, as reported).
The facade sides must agree with ``jit core`` within ``AGREE_RTOL``.

Samples are taken round-robin between the sides (``_harness.time_interleaved``),
the sides running the same number of steps per sample (``calls_per_sample``)
and blocking on their parameters; medians are reported. Keras and flax are imported lazily,
here only (``pip install -e .[bench]``); a side whose library is missing is
skipped. See ``README.md`` ("Facade (issue 4)").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np

import optaxish
from benchmarks import _harness as H
from optaxish.optimizers import Adam

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LR = 1e-3

# (default, --quick) settings.
SETTINGS = {
    "warmup": (3, 2),  # steps per side before comparing and timing (1st compiles)
    "budget_s": (15.0, 0.5),  # timed seconds per shape (all sides together)
    "min_reps": (7, 3),
    "max_reps": (200, 10),
    "min_sample_s": (0.02, 0.005),  # a sample lasts at least this long per side
}

#: Sides up to this many times slower than the fastest take as many steps per
#: sample as it does (see `calls_per_sample`).
SAME_INNER_SPAN = 4.0

REF = "jit core"
REF_MIN = "jit core+grad"
OURS = ("facade apply", "facade minimize")
UNPACKED = "facade apply (unpacked)"
XLA_LOOPS = "facade apply (XLA loops)"
FACADES = (OURS[0], UNPACKED, XLA_LOOPS, OURS[1])
OPTAX = "optax jit"
KERAS = "keras eager"
NNX = ("nnx eager", "nnx jit")
OPTAX_FORM = (*NNX, OPTAX)  # sides following optax's eps-inside form
EAGER = (KERAS, NNX[0])  # compile one program per op and leaf shape
AGREE_RTOL = 1e-6  # facade sides against jit core
SIDE_NAMES = [REF, OURS[0], UNPACKED, XLA_LOOPS, REF_MIN, OURS[1], OPTAX, KERAS, *NNX]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sides


def _core() -> Any:
    """The facade Adam's core transformation, written by hand."""
    return optaxish.chain(
        optaxish.scale_by_adam(0.9, 0.999, 1e-7, epsilon_hat=True),
        optaxish.scale(-LR),
    )


def closed_form(params_np: list, grads_np: list, steps: int, epsilon_hat: bool) -> list:
    """Adam's parameters after ``steps`` steps of a constant gradient (float64).

    With a constant ``g`` the bias-corrected moments are exactly ``g`` and
    ``g**2``, so each step moves by ``-lr g / (|g| + e_t)``: ``e_t = 1e-8`` in
    optax's form, ``1e-7 / sqrt(1 - 0.999**t)`` in tf-keras' epsilon-hat form.
    """
    out = []
    for p, g in zip(params_np, grads_np):
        x, g = p.astype(np.float64), g.astype(np.float64)
        for t in range(1, steps + 1):
            eps = 1e-7 / math.sqrt(1 - 0.999**t) if epsilon_hat else 1e-8
            x = x - LR * g / (np.abs(g) + eps)
        out.append(x)
    return out


def _vdot_loss(params: list, consts: list) -> jax.Array:
    return sum(jnp.vdot(p, c) for p, c in zip(params, consts))


class Side:
    """One side: ``run(k)`` takes ``k`` steps and blocks; ``params()`` reads them."""

    def __init__(self, run: Callable[[int], None], params: Callable[[], list]):
        self.run = run
        self.params = params


def jit_core_side(params_np: list, grads: list, with_grad: bool) -> Side:
    tx = _core()

    if with_grad:  # the gradient of sum(vdot(p, c)) with c = grads: closed over

        def step(params, state):
            g = jax.grad(_vdot_loss)(params, grads)
            updates, state = tx.update(g, state, params)
            return optaxish.apply_updates(params, updates), state
    else:

        def step(params, grads, state):
            updates, state = tx.update(grads, state, params)
            return optaxish.apply_updates(params, updates), state

    fn = jax.jit(step, donate_argnums=(0, 1) if with_grad else (0, 2))
    box = {"p": H.tree_to_device(params_np)}
    box["s"] = jax.jit(lambda p: jax.tree.map(jnp.copy, tx.init(p)))(box["p"])

    def run(k: int) -> None:
        p, s = box["p"], box["s"]
        for _ in range(k):
            p, s = fn(p, s) if with_grad else fn(p, grads, s)
        jax.block_until_ready((p, s))
        box["p"], box["s"] = p, s

    return Side(run, lambda: box["p"])


def facade_side(
    params_np: list,
    grads: list,
    minimize: bool,
    packing: bool = True,
    native: bool = True,
    optimizer: Callable[[float], Any] = Adam,
) -> Side:
    values = H.tree_to_device(params_np)
    variables = [optaxish.Variable(v, name=f"v{i}") for i, v in enumerate(values)]
    opt = optimizer(LR)
    opt.packing = packing
    if not native:
        opt._native_kernel = None  # XLA's loops for the packed step
    pairs_grads = list(grads)

    def loss():
        return sum(jnp.vdot(v.value, c) for v, c in zip(variables, grads))

    def run(k: int) -> None:
        if minimize:
            for _ in range(k):
                opt.minimize(loss, variables)
        else:
            for _ in range(k):
                opt.apply_gradients(zip(pairs_grads, variables))
        jax.block_until_ready(_step_outputs(opt, variables))

    side = Side(run, lambda: [v.value for v in variables])
    side.opt = opt  # type: ignore[attr-defined]
    side.variables = variables  # type: ignore[attr-defined]
    return side


def _step_outputs(opt: Any, variables: list) -> list:
    """What a facade step wrote, without making per-variable views.

    A packed variable's ``.value`` is a view made on demand (one host copy
    of the buffers per step, then one small device array per variable), a
    cost a step does not pay: the timed loop blocks on the packed buffers
    (and ``iterations``) instead; ``value_read_s`` times the views apart.
    """
    groups = opt.__dict__.get("_groups") or {}
    packed = {id(v) for g in groups.values() for v in g.variables}
    out: list = [opt.iterations]
    out += [g.values.buffers for g in groups.values()]
    out += [v.value for v in variables if id(v) not in packed]
    return out


def value_read_s(side: Side, reps: int = 5) -> float:
    """Median time to read every variable's ``.value`` once after a step."""
    times = []
    for _ in range(reps):
        side.run(1)
        t0 = time.perf_counter()
        jax.block_until_ready([v.value for v in side.variables])  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def keras_side(params_np: list, grads: list) -> Side:
    import keras  # lazy: only this benchmark needs Keras

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"KERAS_BACKEND must be jax, got {keras.backend.backend()}")
    values = H.tree_to_device(params_np)
    kvars = [keras.Variable(v, name=f"v{i}") for i, v in enumerate(values)]
    opt = keras.optimizers.Adam(LR)
    opt.build(kvars)

    def run(k: int) -> None:
        for _ in range(k):
            opt.apply_gradients(zip(grads, kvars))
        jax.block_until_ready([v.value for v in kvars])

    return Side(run, lambda: [v.value for v in kvars])


def optax_side(params_np: list, grads: list) -> Side:
    import optax  # lazy: the reference libraries are benchmark-only

    tx = optax.adam(LR)

    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    fn = jax.jit(step, donate_argnums=(0, 2))
    box = {"p": H.tree_to_device(params_np)}
    box["s"] = jax.jit(lambda p: jax.tree.map(jnp.copy, tx.init(p)))(box["p"])

    def run(k: int) -> None:
        p, s = box["p"], box["s"]
        for _ in range(k):
            p, s = fn(p, grads, s)
        jax.block_until_ready((p, s))
        box["p"], box["s"] = p, s

    return Side(run, lambda: box["p"])


def nnx_side(params_np: list, grads: list, jitted: bool) -> Side:
    import optax  # lazy: the reference libraries are benchmark-only
    from flax import nnx

    names = [f"p{i:05d}" for i in range(len(params_np))]  # sorted = list order

    class Model(nnx.Module):
        def __init__(self, values: list) -> None:
            self.p = nnx.Dict({n: nnx.Param(v) for n, v in zip(names, values)})

    model = Model(H.tree_to_device(params_np))
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
    state = nnx.state(model, nnx.Param)
    treedef = jax.tree.structure(state)
    shapes = [np.shape(x) for x in jax.tree.leaves(state)]
    assert shapes == [np.shape(g) for g in grads], "nnx leaf order differs"
    nnx_grads = jax.tree.unflatten(treedef, list(grads))

    if jitted:

        @nnx.jit(donate_argnums=(0, 1))
        def step(model, opt, grads):
            opt.update(model, grads)

    else:

        def step(model, opt, grads):
            opt.update(model, grads)

    def run(k: int) -> None:
        for _ in range(k):
            step(model, opt, nnx_grads)
        jax.block_until_ready(jax.tree.leaves(nnx.state(model, nnx.Param)))

    return Side(run, lambda: [model.p[n][...] for n in names])


def build_sides(params_np: list, grads: list, skip: set[str]) -> dict[str, Side]:
    makers: dict[str, Callable[[], Side]] = {
        REF: lambda: jit_core_side(params_np, grads, with_grad=False),
        OURS[0]: lambda: facade_side(params_np, grads, minimize=False),
        UNPACKED: lambda: facade_side(params_np, grads, minimize=False, packing=False),
        XLA_LOOPS: lambda: facade_side(params_np, grads, minimize=False, native=False),
        OPTAX: lambda: optax_side(params_np, grads),
        REF_MIN: lambda: jit_core_side(params_np, grads, with_grad=True),
        OURS[1]: lambda: facade_side(params_np, grads, minimize=True),
        KERAS: lambda: keras_side(params_np, grads),
        NNX[0]: lambda: nnx_side(params_np, grads, jitted=False),
        NNX[1]: lambda: nnx_side(params_np, grads, jitted=True),
    }
    sides = {}
    for name, make in makers.items():
        if name in skip:
            continue
        try:
            sides[name] = make()
        except ImportError as e:
            _log(f"    {name}: skipped ({e})")
    return sides


# --------------------------------------------------------------------------- timing


def calls_per_sample(warm_s: dict[str, float], min_sample_s: float) -> dict[str, int]:
    """Steps per sample: one count for every side within ``SAME_INNER_SPAN``
    of the fastest, so that the fastest one's sample lasts ``min_sample_s``;
    slower sides (the eager ones) their own count.

    A sample ends by blocking, which drains the dispatch pipeline: a fixed
    cost per sample, spread over the sample's steps. With a count per side
    from two noisy warm-up steps, ``jit core`` and an identical twin side
    took 18 and 9 steps per sample on ``mlp``, and the twin measured 1.14x.
    """
    fastest = max(min(warm_s.values()), 1e-7)
    common = max(1, math.ceil(min_sample_s / fastest))
    return {
        name: common
        if s <= SAME_INNER_SPAN * fastest
        else max(1, math.ceil(min_sample_s / s))
        for name, s in warm_s.items()
    }


def measure_shape(shape: str, spec: dict, cfg: dict, skip: set[str]) -> dict[str, Any]:
    tree = H.load_shapes().make_tree(spec, seed=0)
    params_np = list(tree.values())
    grads_np = list(H.load_shapes().make_tree(spec, seed=1).values())
    grads = list(H.tree_to_device(grads_np))
    n_params = sum(int(np.prod(s)) for s in spec.values())
    sides = build_sides(params_np, grads, skip)

    # Warm-up: the first call compiles (timed, as information), then the rest.
    first_call, warm_s = {}, {}
    for name, side in sides.items():
        t0 = time.perf_counter()
        side.run(1)
        first_call[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        side.run(cfg["warmup"] - 1)
        warm_s[name] = (time.perf_counter() - t0) / max(cfg["warmup"] - 1, 1)
        _log(
            f"    {name:16s} first call {first_call[name]:7.2f} s, "
            f"then {1e3 * warm_s[name]:9.3f} ms/step"
        )
    ref_params = sides[REF].params()
    diffs = {
        name: H.max_rel_diff(side.params(), ref_params)
        for name, side in sides.items()
        if name != REF
    }
    exact = {
        form: closed_form(params_np, grads_np, cfg["warmup"], form == "keras")
        for form in ("keras", "optax")
    }
    exact_diffs = {
        name: H.max_rel_diff(
            side.params(), exact["optax" if name in OPTAX_FORM else "keras"]
        )
        for name, side in sides.items()
    }
    traces = {
        name: side.opt._traces  # type: ignore[attr-defined]
        for name, side in sides.items()
        if name in FACADES
    }

    inner = calls_per_sample(warm_s, cfg["min_sample_s"])
    round_s = sum(inner[n] * warm_s[n] for n in sides)
    reps = int(cfg["budget_s"] / max(round_s, 1e-9))
    reps = min(max(reps, cfg["min_reps"]), cfg["max_reps"])
    runners = {
        name: (lambda _k, run=side.run, k=inner[name]: run(k))
        for name, side in sides.items()
    }
    t0 = time.perf_counter()
    raw = H.time_interleaved(runners, reps, inner=1)
    samples = {n: [x / inner[n] for x in xs] for n, xs in raw.items()}
    _log(f"    timed {reps} rounds in {time.perf_counter() - t0:.1f} s")
    reads = {
        name: value_read_s(side) for name, side in sides.items() if name in FACADES
    }
    traces_after = {
        name: side.opt._traces  # type: ignore[attr-defined]
        for name, side in sides.items()
        if name in FACADES
    }
    for name in FACADES:
        if name in diffs and diffs[name] > AGREE_RTOL:
            _log(f"    !! {name} differs from {REF} by {diffs[name]:.1e}")
    del sides
    jax.clear_caches()
    return {
        "shape": shape,
        "leaves": len(spec),
        "skipped": sorted(skip & set(SIDE_NAMES)),
        "params": n_params,
        "reps": reps,
        "inner": inner,
        "first_call_s": first_call,
        "max_rel_diff": diffs,
        "closed_form_diff": exact_diffs,
        "traces": {"after_warmup": traces, "after_timing": traces_after},
        "seconds": {n: H.summarize(s) for n, s in samples.items()},
        "value_read_s": reads,
        "samples": samples,
    }


# --------------------------------------------------------------------------- report


def _ms(s: float) -> str:
    ms = 1e3 * s
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _paired(row: dict, a: str, b: str) -> tuple[float, tuple[float, float] | None]:
    """Ratio of medians a/b and the quartiles of the per-round ratios."""
    sa, sb = row["samples"].get(a), row["samples"].get(b)
    if not sa or not sb:
        return math.nan, None
    ratio = statistics.median(sa) / statistics.median(sb)
    paired = sorted(x / y for x, y in zip(sa, sb))
    if len(paired) < 2:
        return ratio, None
    q = statistics.quantiles(paired, n=4, method="inclusive")
    return ratio, (q[0], q[2])


def _ratio_cell(row: dict, a: str, b: str, iqr: bool = False) -> str:
    ratio, q = _paired(row, a, b)
    if math.isnan(ratio):
        return "–"
    cell = f"{ratio:.2f}"
    if iqr and q is not None:
        cell += f" ({q[0]:.2f}–{q[1]:.2f})"
    return cell


def render(result: dict) -> str:
    m = result["machine"]
    rows = result["rows"]
    names = SIDE_NAMES
    out = [
        f"# Facade benchmark (issue 4): {result['name']}",
        "",
        f"{m['date']} · {m['cpu_model']} ({m['affinity_cpus']} usable cores) · "
        f"backend {m['backend']} · jax {m['jax']} · keras {result['keras']} · "
        f"flax {result['flax']} · optax {m['optax']} · load average at start "
        f"{m['load_average']} · mode {result['mode']}",
        "",
        "Adam(1e-3), float32, one variable per leaf; median ms per step "
        "(interleaved round-robin sampling). `skipped`: the eager Keras and "
        "nnx sides are left out on shapes with many leaves (their first "
        "step compiles one program per op and leaf shape, minutes there).",
        "",
        "| shape | leaves | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for r in rows:
        cells = [
            _ms(r["seconds"][n]["median"])
            if n in r["seconds"]
            else "skipped"
            if n in r.get("skipped", ())
            else "–"
            for n in names
        ]
        out.append(f"| {r['shape']} | {r['leaves']:,} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Ratios of medians (paired per-round IQR in parentheses). Targets: "
        "facade / jit core ≤ 1.15; facade / Keras and facade / nnx < 1.",
        "",
        "| shape | apply / jit core | unpacked / jit core | apply / unpacked "
        "| apply / XLA loops | minimize / jit core+grad | apply / optax jit "
        "| minimize / optax jit | apply / keras eager | apply / nnx eager "
        "| apply / nnx jit | minimize / nnx jit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            _ratio_cell(r, OURS[0], REF, iqr=True),
            _ratio_cell(r, UNPACKED, REF, iqr=True),
            _ratio_cell(r, OURS[0], UNPACKED, iqr=True),
            _ratio_cell(r, OURS[0], XLA_LOOPS, iqr=True),
            _ratio_cell(r, OURS[1], REF_MIN, iqr=True),
            _ratio_cell(r, OURS[0], OPTAX, iqr=True),
            _ratio_cell(r, OURS[1], OPTAX, iqr=True),
            _ratio_cell(r, OURS[0], KERAS),
            _ratio_cell(r, OURS[0], NNX[0]),
            _ratio_cell(r, OURS[0], NNX[1], iqr=True),
            _ratio_cell(r, OURS[1], NNX[1]),
        ]
        out.append(f"| {r['shape']} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Agreement after the warm-up steps: max relative difference of the "
        "parameters against `jit core` / against the float64 closed form of "
        "the side's own Adam (a constant gradient makes the bias-corrected "
        "moments exact): tf-keras' epsilon-hat form (`1e-7` outside "
        "`sqrt(v)`) for the facade, `jit core` and Keras, optax's form "
        "(`1e-8` outside `sqrt(v_hat)`) for nnx and `optax jit`, which "
        "therefore differ from `jit core` where gradients are near zero. "
        f"(!) marks a facade side more than {AGREE_RTOL:.0e} from `jit core` "
        "or any side more than 1e-5 from its closed form. Then the first call "
        "(trace + compile + one step, seconds).",
        "",
        "| shape | " + " | ".join(names) + " | first call: " + " / ".join(names) + " |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for r in rows:
        cells = []
        for n in names:
            d, e = r["max_rel_diff"].get(n), r["closed_form_diff"].get(n)
            if e is None:
                cells.append("–")
                continue
            bad = e > 1e-5 or (d is not None and n in FACADES and d > AGREE_RTOL)
            cells.append(
                ("–" if d is None else f"{d:.0e}")
                + f" / {e:.0e}"
                + (" (!)" if bad else "")
            )
        first = " / ".join(
            f"{r['first_call_s'][n]:.1f}" if n in r["first_call_s"] else "–"
            for n in names
        )
        out.append(f"| {r['shape']} | " + " | ".join(cells) + f" | {first} |")
    out += [
        "",
        "Reading every variable's `.value` once after a step (not in the "
        "step times above; a packed variable's value is a view made on "
        "demand: one host copy of the buffers, then one device array per "
        "variable), median ms: "
        + "; ".join(
            f"{r['shape']}: "
            + ", ".join(f"{n} {_ms(t)}" for n, t in r.get("value_read_s", {}).items())
            for r in rows
        )
        + ".",
    ]
    traces = {r["shape"]: r["traces"]["after_timing"] for r in rows if r["traces"]}
    out += [
        "",
        "Facade traces per optimizer after all steps (1 = compiled once, never "
        f"retraced): {traces}.",
        "",
        f"Total run time: {result['wall_seconds']:.0f} s; load average at the "
        f"end {result.get('load_end', '?')}.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.facade", description=__doc__
    )
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--shapes", help="comma-separated subset of the shapes")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated sides to leave out, e.g. 'nnx eager'",
    )
    ap.add_argument(
        "--name", help="results file name (default: facade-<backend>-<date>)"
    )
    ap.add_argument(
        "--eager-max-leaves",
        type=int,
        default=500,
        help="skip the eager Keras and nnx sides on shapes with more leaves "
        "(their first step compiles one program per op and leaf shape: "
        "minutes on many_small); default 500",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        help="timed seconds per shape, all sides together (default: "
        f"{SETTINGS['budget_s'][0]}); more rounds narrow the medians",
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    return ap.parse_args(argv)


def _version(module: str) -> str:
    return H._version(module)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    cfg = {k: v[1 if args.quick else 0] for k, v in SETTINGS.items()}
    if args.budget_s is not None:
        cfg["budget_s"] = args.budget_s
    shapes_mod = H.load_shapes()
    available = list(shapes_mod.ALL)
    chosen = [s.strip() for s in (args.shapes or ",".join(available)).split(",")]
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise SystemExit(f"unknown shapes: {unknown}; choose from {available}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    name = args.name or (
        f"facade-{jax.default_backend()}-{_dt.date.today().isoformat()}"
        + ("-quick" if args.quick else "")
    )
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "name": name,
        "mode": "quick" if args.quick else "default",
        "settings": cfg,
        "machine": H.machine_info(),
        "keras": _version("keras"),
        "flax": _version("flax"),
        "rows": [],
    }
    for shape in chosen:
        spec = shapes_mod.ALL[shape]()
        _log(f"  {shape} ({len(spec)} leaves)")
        t0 = time.perf_counter()
        shape_skip = set(skip)
        if len(spec) > args.eager_max_leaves:
            shape_skip |= set(EAGER)
            _log(f"    skipping {', '.join(EAGER)} ({len(spec)} leaves)")
        result["rows"].append(measure_shape(shape, spec, cfg, shape_skip))
        _log(f"  {shape} done in {time.perf_counter() - t0:.0f} s")
    result["wall_seconds"] = time.perf_counter() - t_start
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report = render(result)
    print(report)
    if not args.no_write:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"{name}.md").write_text(report)
        _log(f"wrote {RESULTS_DIR / name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
