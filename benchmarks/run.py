"""Benchmarks optaxish against optax: ``python -m benchmarks.run [--quick]``.

Prints Markdown tables and writes them to ``benchmarks/results/<name>.md``, with
every raw sample in ``benchmarks/results/<name>.json``. See ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks import _harness as H
from benchmarks._cases import CASES, Case
from benchmarks._large_shapes import LARGE
from benchmarks._report import OURS, fmt_ms, render

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_4M = 4_194_304

# (default, --quick) settings.
SETTINGS = {
    "warmup": (5, 2),  # untimed steps per side before timing
    "row_budget_s": (4.0, 0.3),  # timed seconds per row (all sides together)
    "min_reps": (15, 3),
    "max_reps": (400, 10),
    "min_sample_s": (0.01, 0.002),  # each sample runs enough calls to last this long
    "compile_reps": (3, 1),
    "compile_budget_s": (30.0, 0.0),  # no new compile round after this per row
    "triad_reps": (50, 5),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument(
        "--reps",
        type=int,
        help="timed rounds per row (default: sized to a time budget per row)",
    )
    ap.add_argument("--compile-reps", type=int, help="fresh compiles per side")
    ap.add_argument("--no-compile", action="store_true", help="skip compile timing")
    ap.add_argument(
        "--shapes",
        help="comma-separated shapes (default: all of ../shared/bench/shapes.py; "
        "also, by name only: " + ", ".join(LARGE) + ")",
    )
    ap.add_argument(
        "--cases",
        help="comma-separated subset of: " + ", ".join(c.name for c in CASES),
    )
    ap.add_argument("--name", help="results file name (default: date-time)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.compile_reps is not None and args.compile_reps < 1:
        ap.error("--compile-reps must be >= 1")
    return args


def _select(
    spec: str | None, available: list[str], what: str, by_name: tuple[str, ...] = ()
) -> list[str]:
    """The names in ``spec`` (all of ``available`` if none); ``by_name`` are
    valid too but never chosen by default."""
    if not spec:
        return available
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in available and s not in by_name]
    if unknown:
        raise SystemExit(f"unknown {what}: {unknown}; choose from {available}")
    return chosen


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- rows


def _step_row(
    case: Case,
    impls: dict[str, H.Impl],
    executables: dict[str, Any],
    params_np: Any,
    grads: Any,
    n_params: int,
    cfg: dict,
    reps: int | None,
) -> dict[str, Any]:
    """Per-step timing of one case on one tree (and the triad, when wanted)."""
    runners: dict[str, Any] = {
        name: H.StepRunner(impl, params_np, grads, executables.get(name))
        for name, impl in impls.items()
    }
    for run in runners.values():
        run(cfg["warmup"])
    diff = H.max_rel_diff(runners[OURS].params_tree, runners[case.ref_name].params_tree)
    if case.bytes_per_param:
        runners["triad"] = H.TriadRunner(n_params)
        runners["triad"](3)
    inner, per_call = H.calibrate_inner(runners, cfg["min_sample_s"])
    if reps is None:
        round_s = inner * sum(per_call.values())
        reps = int(cfg["row_budget_s"] / max(round_s, 1e-9))
        reps = min(max(reps, cfg["min_reps"]), cfg["max_reps"])
    samples = H.time_interleaved(runners, reps, inner)
    del runners

    ours, ref = samples[OURS], samples[case.ref_name]
    paired = sorted(a / b for a, b in zip(ours, ref))
    q = (
        statistics.quantiles(paired, n=4, method="inclusive")
        if len(paired) > 1
        else None
    )
    row: dict[str, Any] = {
        "reps": reps,
        "inner": inner,
        "max_rel_diff": diff,
        "agree": diff <= case.rtol,
        "seconds": {name: H.summarize(s) for name, s in samples.items()},
        "ratio": statistics.median(ours) / statistics.median(ref),
        "paired_ratio_iqr": [q[0], q[2]] if q else None,
        "samples": samples,
    }
    if case.bytes_per_param:
        triad_s = statistics.median(samples["triad"])
        triad_gbps = H.TRIAD_BYTES_PER_ELEMENT * n_params / triad_s / 1e9
        row["triad_gbps"] = triad_gbps
        row["bytes_per_param"] = case.bytes_per_param
        row["effective_gbps"] = {}
        row["pct_of_triad"] = {}
        for name in (OURS, case.ref_name):
            gbps = (
                case.bytes_per_param * n_params / statistics.median(samples[name]) / 1e9
            )
            row["effective_gbps"][name] = gbps
            row["pct_of_triad"][name] = 100 * gbps / triad_gbps
    return row


def _compile_row(
    case: Case, impls: dict[str, H.Impl], params_np: Any, cfg: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fresh-compile timing of one case; also returns the compiled steps."""
    warm = H.abstract({"a": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)})
    times, executables = H.time_compile_interleaved(
        impls, H.abstract(params_np), cfg["compile_reps"], warm, cfg["compile_budget_s"]
    )
    out: dict[str, Any] = {
        "reps": len(times[OURS]["lower"]),
        "samples": times,
        "median": {},
    }
    for name, t in times.items():
        out["median"][name] = {
            "lower": statistics.median(t["lower"]),
            "compile": statistics.median(t["compile"]),
            "total": statistics.median(a + b for a, b in zip(t["lower"], t["compile"])),
        }
    out["ratio"] = out["median"][OURS]["total"] / out["median"][case.ref_name]["total"]
    return out, executables


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    idx = 1 if args.quick else 0
    cfg = {k: v[idx] for k, v in SETTINGS.items()}
    if args.compile_reps:  # an explicit count is honoured whatever the time
        cfg["compile_reps"] = args.compile_reps
        cfg["compile_budget_s"] = None
    shapes_mod = H.load_shapes()
    shape_names = _select(args.shapes, list(shapes_mod.ALL), "shapes", tuple(LARGE))
    case_names = _select(args.cases, [c.name for c in CASES], "cases")
    cases = [c for c in CASES if c.name in case_names]
    name = args.name or time.strftime("%Y%m%d-%H%M%S") + (
        "-quick" if args.quick else ""
    )

    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "name": name,
        "mode": "quick" if args.quick else "default",
        "settings": {**cfg, "reps": args.reps or "auto", "dtype": "float32"},
        "machine": H.machine_info(),
        "rows": [],
    }
    _log(
        f"benchmarks: {len(shape_names)} shapes x {len(cases)} cases, {result['mode']}"
    )
    result["triad_4m"] = H.triad_bandwidth(N_4M, cfg["triad_reps"])
    _log(f"  triad 4,194,304: {result['triad_4m']['gbps']:.1f} GB/s")

    for shape in shape_names:
        spec = (shapes_mod.ALL.get(shape) or LARGE[shape])()
        params_np = shapes_mod.make_tree(spec, seed=0)
        grads_np = shapes_mod.make_tree(spec, seed=1)
        n_params = sum(int(np.prod(s)) for s in spec.values())
        grads = H.tree_to_device(grads_np)
        for case in cases:
            row: dict[str, Any] = {
                "shape": shape,
                "leaves": len(spec),
                "params": n_params,
                "case": case.name,
                "description": case.description,
                "ref_name": case.ref_name,
            }
            result["rows"].append(row)
            try:
                impls = {OURS: case.ours(), case.ref_name: case.ref()}
            except AttributeError as e:
                row["skipped"] = f"unavailable: {e}"
                _log(f"  {shape:14s} {case.name:14s} skipped ({e})")
                continue
            executables: dict[str, Any] = {}
            if not args.no_compile:
                t0 = time.perf_counter()
                row["compile"], executables = _compile_row(case, impls, params_np, cfg)
                c = row["compile"]
                _log(
                    f"  {shape:14s} {case.name:14s} compile "
                    f"{c['median'][OURS]['total']:.2f} vs "
                    f"{c['median'][case.ref_name]['total']:.2f} s "
                    f"(ratio {c['ratio']:.2f}, {c['reps']} rounds, "
                    f"{time.perf_counter() - t0:.1f}s)"
                )
            t0 = time.perf_counter()
            row["step"] = _step_row(
                case, impls, executables, params_np, grads, n_params, cfg, args.reps
            )
            del executables
            st = row["step"]
            _log(
                f"  {shape:14s} {case.name:14s} step "
                f"{fmt_ms(st['seconds'][OURS]['median'])} vs "
                f"{fmt_ms(st['seconds'][case.ref_name]['median'])} ms "
                f"(ratio {st['ratio']:.2f}, {st['reps']}x{st['inner']}, "
                f"{time.perf_counter() - t0:.1f}s)"
            )
        del grads
        jax.clear_caches()

    result["wall_seconds"] = time.perf_counter() - t_start
    report = render(result) + f"\nTotal run time: {result['wall_seconds']:.0f} s.\n"
    print(report)
    if not args.no_write:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"{name}.md").write_text(report)
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=1))
        _log(f"wrote {RESULTS_DIR / name}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
