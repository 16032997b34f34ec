"""Timing primitives: interleaved step timing, fresh-compile timing, bandwidth.

Everything here is library-agnostic: a side of a comparison is an :class:`Impl`
(an ``init`` and a ``step``), and timings are taken round-robin between the
sides in the same process so that machine noise hits all of them alike.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SHAPES_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench"

#: Bytes one element of the fused ``a + b*c`` moves: reads a, b, c; writes the result.
TRIAD_BYTES_PER_ELEMENT = 16


# --------------------------------------------------------------------------- setup


#: Environment variable naming another copy of ``shapes.py``, for machines
#: that receive the repository without ``../shared`` beside it (the lent GPU).
SHAPES_ENV = "OPTAXISH_BENCH_SHAPES"


def load_shapes() -> ModuleType:
    """Imports ``../shared/bench/shapes.py`` (relative to the repository root),
    or the file that ``$OPTAXISH_BENCH_SHAPES`` names."""
    path = Path(os.environ.get(SHAPES_ENV) or SHAPES_DIR / "shapes.py")
    if not path.is_file():
        raise SystemExit(
            f"benchmark shapes not found: expected {path}.\n"
            "The benchmarks measure the fixed parameter trees defined there; the "
            "file lives next to the repository, in ../shared/bench/shapes.py "
            f"(or set ${SHAPES_ENV} to a copy of it)."
        )
    spec = importlib.util.spec_from_file_location("_optaxish_bench_shapes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return "not installed"


#: Nominal memory bandwidth (GB/s, vendor data sheets) by device kind, most
#: specific first: the ceiling a step's effective bandwidth is read against.
NOMINAL_PEAK_GBPS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),  # SXM, "NVIDIA H100 80GB HBM3"
    ("A100 80GB PCIe", 1935.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100", 1555.0),  # 40 GB
    ("L4", 300.0),
    ("TPU v5 lite", 819.0),
    ("TPU v5p", 2765.0),
    ("TPU v4", 1200.0),
)


def nominal_peak_gbps(device_kind: str) -> float | None:
    """The data-sheet memory bandwidth of a device kind (``None`` if unknown).

    Examples:
      >>> nominal_peak_gbps("NVIDIA H100 80GB HBM3"), nominal_peak_gbps("cpu")
      (3350.0, None)
    """
    for key, gbps in NOMINAL_PEAK_GBPS:
        if key in device_kind:
            return gbps
    return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    devices = jax.devices()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "optax": _version("optax"),
        "optaxish": _version("optaxish"),
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "peak_gbps": nominal_peak_gbps(devices[0].device_kind),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "env": {
            k: os.environ[k]
            for k in ("JAX_PLATFORMS", "XLA_FLAGS", "JAX_ENABLE_X64")
            if k in os.environ
        },
    }


def summarize(samples: list[float]) -> dict[str, float]:
    """Order statistics of a list of timings (seconds)."""
    xs = sorted(samples)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else xs * 3
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "p25": q[0],
        "p75": q[2],
        "min": xs[0],
        "max": xs[-1],
    }


def tree_to_device(tree_np: Any) -> Any:
    """Fresh device buffers holding a copy of a (numpy) tree.

    One jitted copy for the whole tree: eager per-leaf ops would compile one
    small program per distinct leaf shape (thousands on ``many_small``). The
    copy also guarantees that no buffer aliases the numpy arrays, which later
    rows reuse, before it is donated.
    """
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t))(tree_np)


def abstract(tree: Any) -> Any:
    """The ``ShapeDtypeStruct`` tree of ``tree``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


# --------------------------------------------------------------------------- impls


@dataclass(frozen=True)
class Impl:
    """One side of a comparison.

    Attributes:
      init: ``init(params) -> state``.
      step: ``step(params, grads, state) -> (params, state)``; it is jitted by the
        harness with ``donate_argnums``.
      donate_argnums: which ``step`` arguments are donated (params and state).
      wrap: turns the parameter (and gradient) tree into the form ``step``
        holds them in, e.g. ``optaxish.packing.pack``; ``None`` keeps the tree.
      unwrap: the inverse of ``wrap``, to compare parameters between sides.
    """

    init: Callable[[Any], Any]
    step: Callable[[Any, Any, Any], tuple[Any, Any]]
    donate_argnums: tuple[int, ...] = (0, 2)
    wrap: Callable[[Any], Any] | None = None
    unwrap: Callable[[Any], Any] | None = None

    def as_tree(self, params: Any) -> Any:
        """``params`` in this impl's form, back as the plain tree."""
        return params if self.unwrap is None else self.unwrap(params)

    def held(self, tree: Any) -> Any:
        """``tree`` in the form this impl holds parameters and gradients in."""
        return tree if self.wrap is None else self.wrap(tree)


def transform_impl(tx: Any, apply_updates: Callable[[Any, Any], Any]) -> Impl:
    """An :class:`Impl` for a gradient transformation: ``update`` + ``apply_updates``."""

    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return Impl(init=tx.init, step=step)


# --------------------------------------------------------------------------- timing


def round_orders(names: list[str], reps: int, seed: int = 0) -> list[list[str]]:
    """The order of the runners in each round: a fresh shuffle per round,
    never starting with the runner the previous round ended with.

    No runner follows itself (its buffers would still be in the cache), and
    each follows every other one about equally often. A fixed order
    alternating forward and backward made the first and the last runner
    follow themselves once per two rounds: on ``mlp`` (18 MB of Adam
    buffers, partly cache-resident) that made the first side 10-15 %
    faster than an identical side in the middle.
    """
    rng = np.random.default_rng(seed)
    orders: list[list[str]] = []
    for _ in range(reps):
        order = [names[i] for i in rng.permutation(len(names))]
        if orders and len(names) > 1 and order[0] == orders[-1][-1]:
            order[0], order[-1] = order[-1], order[0]
        orders.append(order)
    return orders


def time_interleaved(
    runners: Mapping[str, Callable[[int], None]],
    reps: int,
    inner: int = 1,
) -> dict[str, list[float]]:
    """Times ``runner(inner)`` round-robin between runners, ``reps`` rounds.

    Each runner does ``inner`` calls and blocks until they are done; the
    order changes every round (:func:`round_orders`). Returns seconds per
    call, one sample per round.
    """
    names = list(runners)
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for order in round_orders(names, reps):
            for name in order:
                t0 = time.perf_counter()
                runners[name](inner)
                samples[name].append((time.perf_counter() - t0) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios ``a[i] / b[i]``."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), q[0], q[2]


#: Bytes an fp32 Adam step must move per parameter: reads p, g, m, v; writes p, m, v.
ADAM_BYTES_PER_PARAMETER = 28


def adam_rows(
    samples: Mapping[str, list[float]],
    n: int,
    reference: str,
    names: list[str],
    width: int,
    labels: Mapping[str, str] | None = None,
) -> tuple[float, float, list[str]]:
    """The triad's median ms and GB/s over ``n`` elements (``samples`` has a
    ``"triad"`` entry), and one line per Adam side in ``names`` (shown as
    ``labels[name]`` where given): median ms, the paired ratio to
    ``reference`` with its quartiles, and GB/s counting
    :data:`ADAM_BYTES_PER_PARAMETER` as a share of the triad's."""
    labels = labels or {}
    triad_ms = statistics.median(samples["triad"]) * 1e3
    triad_gbps = TRIAD_BYTES_PER_ELEMENT * n / triad_ms / 1e6
    lines = []
    for name in names:
        ms = statistics.median(samples[name]) * 1e3
        ratio, lo, hi = paired_ratio(samples[name], samples[reference])
        gbps = ADAM_BYTES_PER_PARAMETER * n / ms / 1e6
        lines.append(
            f"  {labels.get(name, name):{width}s} {ms:8.3f} ms  x optax {ratio:.2f} "
            f"(IQR {lo:.2f}-{hi:.2f})  {gbps:5.1f} GB/s at 28 B = "
            f"{100 * gbps / triad_gbps:3.0f} % of triad"
        )
    return triad_ms, triad_gbps, lines


def time_pairs(
    runners: Mapping[str, Callable[[int], None]],
    pairs: list[tuple[str, str]],
    cfg: Mapping[str, Any],
) -> tuple[int, dict[tuple[str, str], tuple[list[float], list[float], int]]]:
    """Warms every runner up, then times each ``(a, b)`` pair on its own.

    Each pair alternates by itself, so the two samples of a round run back to
    back; the number of rounds fills ``cfg["budget_s"]`` within
    ``cfg["min_reps"]``..``cfg["max_reps"]``. Returns the calls per sample
    and, per pair, ``(samples of a, samples of b, rounds)``.
    """
    for run in runners.values():
        run(cfg["warmup"])
    inner, per_call = calibrate_inner(runners, cfg["min_sample_s"])
    timed = {}
    for a, b in pairs:
        reps = int(cfg["budget_s"] / max(inner * (per_call[a] + per_call[b]), 1e-9))
        reps = min(max(reps, cfg["min_reps"]), cfg["max_reps"])
        samples = time_interleaved({a: runners[a], b: runners[b]}, reps, inner)
        timed[(a, b)] = (samples[a], samples[b], reps)
    return inner, timed


def machine_lines(machine: Mapping[str, Any]) -> list[str]:
    """The two Markdown bullet lines that head a report: machine and load."""
    return [
        f"- {machine['date']}; {machine['cpu_model']}, {machine['cpu_count']} cores; "
        f"backend {machine['backend']}; jax {machine['jax']}, optax {machine['optax']}",
        f"- load average at start: {machine['load_average']}",
    ]


def emit_report(
    report: str, path_for: Callable[[str], Path] | None, name: str | None
) -> None:
    """Prints ``report``; with a ``path_for`` (not ``None``), also writes it to
    ``path_for(name)``, the name defaulting to the date and time."""
    print(report)
    if path_for is None:
        return
    path = path_for(name or time.strftime("%Y%m%d-%H%M%S"))
    path.parent.mkdir(exist_ok=True)
    path.write_text(report)


class StepRunner:
    """Runs a jitted, donating ``step`` in place, feeding its outputs back in.

    ``compiled`` is an executable of the same step, compiled ahead of time with
    the same donation (e.g. by :func:`time_compile_interleaved`), to save a
    compile; without it the runner uses ``jax.jit(step, donate_argnums=...)``.
    Both dispatch through JAX's C++ fast path.
    """

    def __init__(
        self, impl: Impl, params_np: Any, grads: Any, compiled: Any | None = None
    ):
        self.fn = compiled or jax.jit(impl.step, donate_argnums=impl.donate_argnums)

        # One jitted call builds both (see `tree_to_device`); the copies keep any
        # state leaf from aliasing a (donated) parameter buffer.
        def setup(p):
            p = impl.held(p)
            return jax.tree.map(jnp.copy, p), jax.tree.map(jnp.copy, impl.init(p))

        self.params, self.state = jax.jit(setup)(params_np)
        self.grads = jax.jit(impl.held)(grads)
        self.impl = impl

    @property
    def params_tree(self) -> Any:
        """The current parameters as the plain tree."""
        return self.impl.as_tree(self.params)

    def __call__(self, k: int) -> None:
        p, s = self.params, self.state
        for _ in range(k):
            p, s = self.fn(p, self.grads, s)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s


class CarriedLoop:
    """Calls ``fn(carry, *rest)`` ``k`` times, each result the next call's
    ``carry`` (jit ``fn`` with ``donate_argnums=0`` to update it in place),
    then blocks on the last."""

    def __init__(self, fn: Callable[..., Any], carry: Any, *rest: Any):
        self.fn, self.carry, self.rest = fn, carry, rest

    def __call__(self, k: int) -> None:
        carry = self.carry
        for _ in range(k):
            carry = self.fn(carry, *self.rest)
        jax.block_until_ready(carry)
        self.carry = carry


class TriadRunner(CarriedLoop):
    """Runs a jitted fused ``a + b*c`` with ``a`` donated (the output reuses it)."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        a, b, c = (
            jnp.asarray(rng.standard_normal(n, dtype=np.float32)) for _ in range(3)
        )
        super().__init__(jax.jit(lambda a, b, c: a + b * c, donate_argnums=0), a, b, c)
        self.n = n


def calibrate_inner(
    runners: Mapping[str, Callable[[int], None]], min_sample_s: float
) -> tuple[int, dict[str, float]]:
    """Calls per sample so that the fastest runner's sample lasts ``min_sample_s``.

    Returns ``(inner, {name: seconds per call})`` (best of three single calls);
    the latter sizes the number of rounds.
    """
    per_call = {}
    for name, run in runners.items():
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            run(1)
            best = min(best, time.perf_counter() - t0)
        per_call[name] = best
    inner = max(1, math.ceil(min_sample_s / max(min(per_call.values()), 1e-7)))
    return inner, per_call


def max_rel_diff(a: Any, b: Any) -> float:
    """max |a - b| / max(|b|, tiny) over all leaves (both trees same structure)."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = max(float(np.max(np.abs(y), initial=0.0)), 1e-30)
        worst = max(worst, float(np.max(np.abs(x - y), initial=0.0)) / scale)
    return worst


def time_compile_interleaved(
    impls: Mapping[str, Impl],
    params_abs: Any,
    reps: int,
    warm_params_abs: Any | None = None,
    budget_s: float | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, Any]]:
    """Fresh-compile times of each impl's step, round-robin, up to ``reps`` rounds.

    Gradients have the structure, shapes and dtypes of ``params_abs``.

    Before every measurement ``jax.clear_caches()`` empties JAX's caches and a
    new Python function wraps ``step``, so nothing traced or compiled earlier is
    reused. ``lower`` (trace + lower to StableHLO) and ``compile`` (XLA) are timed
    separately. An untimed compile on ``warm_params_abs`` (a small tree) first
    warms process-level one-time costs for every impl. No round starts once
    ``budget_s`` seconds (if given) have passed, the first one always running,
    so trees that take long to compile get fewer rounds.

    Returns ``({name: {"lower": [s, ...], "compile": [s, ...]}}, {name: the
    last compiled executable}``), the executables being ready for
    :class:`StepRunner`.
    """
    names = list(impls)

    def once(impl: Impl, p_abs: Any) -> tuple[float, float, Any]:
        p_abs = jax.eval_shape(impl.held, p_abs)
        s_abs = jax.eval_shape(impl.init, p_abs)

        def fresh_step(params, grads, state):
            return impl.step(params, grads, state)

        jax.clear_caches()
        gc.collect()
        t0 = time.perf_counter()
        lowered = jax.jit(fresh_step, donate_argnums=impl.donate_argnums).lower(
            p_abs, p_abs, s_abs
        )
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, compiled

    if warm_params_abs is not None:
        for name in names:
            once(impls[name], warm_params_abs)
    out: dict[str, dict[str, list[float]]] = {
        n: {"lower": [], "compile": []} for n in names
    }
    executables: dict[str, Any] = {}
    t_start = time.perf_counter()
    for r in range(reps):
        if r and budget_s is not None and time.perf_counter() - t_start > budget_s:
            break
        for name in names if r % 2 == 0 else reversed(names):
            lower_s, compile_s, executables[name] = once(impls[name], params_abs)
            out[name]["lower"].append(lower_s)
            out[name]["compile"].append(compile_s)
    jax.clear_caches()
    return out, executables


def triad_bandwidth(n: int, reps: int, min_sample_s: float = 0.02) -> dict[str, Any]:
    """Measures the fused ``a + b*c`` on ``n`` float32 elements; GB/s from the median."""
    runner = TriadRunner(n)
    runner(3)  # compile + warm-up
    inner, _ = calibrate_inner({"triad": runner}, min_sample_s)
    samples = time_interleaved({"triad": runner}, reps, inner)["triad"]
    stats = summarize(samples)
    return {
        "n": n,
        "inner": inner,
        "seconds": stats,
        "gbps": TRIAD_BYTES_PER_ELEMENT * n / stats["median"] / 1e9,
        "samples": samples,
    }
