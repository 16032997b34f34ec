"""Benchmarks optaxish against optax: ``python -m benchmarks.run [--quick]``.

Prints Markdown tables and writes them to ``benchmarks/results/<name>.md``, with
every raw sample in ``benchmarks/results/<name>.json``. See ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks import _harness as H
from benchmarks._cases import CASES, Case

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OURS = "optaxish"
N_4M = 4_194_304

# (default, --quick) settings.
SETTINGS = {
    "warmup": (5, 2),  # untimed steps per side (the first one compiles)
    "row_budget_s": (4.0, 0.3),  # timed seconds per row (all sides together)
    "min_reps": (15, 3),
    "max_reps": (400, 10),
    "min_sample_s": (0.01, 0.002),  # each sample runs enough calls to last this long
    "compile_reps": (3, 1),
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
    ap.add_argument("--shapes", help="comma-separated subset of the shapes")
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


def _select(spec: str | None, available: list[str], what: str) -> list[str]:
    if not spec:
        return available
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise SystemExit(f"unknown {what}: {unknown}; choose from {available}")
    return chosen


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- rows


def _step_row(
    case: Case, params_np: Any, grads: Any, n_params: int, cfg: dict, reps: int | None
) -> dict[str, Any]:
    """Per-step timing of one case on one tree (and the triad, when wanted)."""
    impls = {OURS: case.ours(), case.ref_name: case.ref()}
    runners: dict[str, Any] = {
        name: H.StepRunner(impl, params_np, grads) for name, impl in impls.items()
    }
    for run in runners.values():
        run(cfg["warmup"])
    diff = H.max_rel_diff(runners[OURS].params, runners[case.ref_name].params)
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


def _compile_row(case: Case, params_np: Any, reps: int) -> dict[str, Any]:
    impls = {OURS: case.ours(), case.ref_name: case.ref()}
    warm = H.abstract({"a": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)})
    times = H.time_compile_interleaved(impls, H.abstract(params_np), reps, warm)
    out: dict[str, Any] = {"reps": reps, "samples": times, "median": {}}
    for name, t in times.items():
        out["median"][name] = {
            "lower": statistics.median(t["lower"]),
            "compile": statistics.median(t["compile"]),
            "total": statistics.median(a + b for a, b in zip(t["lower"], t["compile"])),
        }
    out["ratio"] = out["median"][OURS]["total"] / out["median"][case.ref_name]["total"]
    return out


# --------------------------------------------------------------------------- tables


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if i >= right_from else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i >= right_from else "-" * (w + 2)
            for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def _ratio(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.2f}"


def render(result: dict[str, Any]) -> str:
    """The Markdown report of a run."""
    m = result["machine"]
    ref_names = sorted({r["ref_name"] for r in result["rows"]}) or ["optax"]
    ref_col = ref_names[0] if len(ref_names) == 1 else "reference"
    out = [
        f"# optaxish vs {ref_col}: {result['name']}",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu_model']}, {m['cpu_count']} cores "
        f"({m['affinity_cpus']} usable), {m['platform']}",
        f"- backend: {m['backend']} ({m['devices']}); jax {m['jax']}, "
        f"jaxlib {m['jaxlib']}, optax {m['optax']}, optaxish {m['optaxish']}, "
        f"python {m['python']}",
        f"- load average at start: {m['load_average']}",
        f"- mode: {result['mode']}; settings: {result['settings']}",
        "",
        "## Per-step time",
        "",
        "Median ms per `jit(step, donate_argnums=(params, opt_state))` call "
        "(`update` + `apply_updates`), sides timed round-robin in one process. "
        "ratio = optaxish / reference (< 1: optaxish is faster); "
        "IQR = quartiles of the per-round paired ratios. "
        "max rel diff = parameters after the warm-up steps.",
        "",
    ]
    rows = []
    for r in result["rows"]:
        st = r.get("step")
        if r.get("skipped"):
            rows.append([r["shape"], str(r["leaves"]), f"{r['params']:,}", r["case"],
                         "–", "–", "–", "–", r["skipped"]])  # fmt: skip
            continue
        if st is None:
            continue
        iqr = st["paired_ratio_iqr"]
        rows.append([
            r["shape"], str(r["leaves"]), f"{r['params']:,}", r["case"],
            _ms(st["seconds"][OURS]["median"]),
            _ms(st["seconds"][r["ref_name"]]["median"]),
            _ratio(st["ratio"]),
            f"{iqr[0]:.2f}–{iqr[1]:.2f}" if iqr else "–",
            f"{st['max_rel_diff']:.1e}" + ("" if st["agree"] else " (!)"),
        ])  # fmt: skip
    header = ["shape", "leaves", "params", "case", "optaxish ms", f"{ref_col} ms",
              "ratio", "IQR", "max rel diff"]  # fmt: skip
    if ref_col == "reference":
        header[5] = "reference ms"
    out += [_table(header, rows, right_from=1) if rows else "(no rows)", ""]

    bw_rows = []
    for r in result["rows"]:
        st = r.get("step")
        if not st or "triad_gbps" not in st:
            continue
        ref = r["ref_name"]
        bw_rows.append([
            r["shape"], r["case"], f"{r['params']:,}", f"{st['triad_gbps']:.1f}",
            f"{st['effective_gbps'][OURS]:.1f}", f"{st['pct_of_triad'][OURS]:.0f}%",
            f"{st['effective_gbps'][ref]:.1f}", f"{st['pct_of_triad'][ref]:.0f}%",
        ])  # fmt: skip
    t4 = result.get("triad_4m")
    out += [
        "## Memory-bandwidth reference",
        "",
        "triad = jitted fused `a + b*c` on float32 arrays of the tree's total size, "
        "output donated, 16 bytes/element, timed in the same round-robin as the row. "
        "Effective GB/s = bytes/param x params / median step time "
        "(Adam fp32: 28 = read p, g, m, v + write p, m, v).",
        "",
    ]
    if t4:
        out += [
            f"triad on {t4['n']:,} float32 elements: **{t4['gbps']:.1f} GB/s** "
            f"(median {_ms(t4['seconds']['median'])} ms).",
            "",
        ]
    if bw_rows:
        header = ["shape", "case", "params", "triad GB/s", "optaxish GB/s",
                  "optaxish % triad", f"{ref_col} GB/s", f"{ref_col} % triad"]  # fmt: skip
        out += [_table(header, bw_rows, right_from=2), ""]

    c_rows = []
    for r in result["rows"]:
        c = r.get("compile")
        if not c:
            continue
        mo, mr = c["median"][OURS], c["median"][r["ref_name"]]
        c_rows.append([
            r["shape"], str(r["leaves"]), r["case"],
            _ms(mo["lower"]), _ms(mo["compile"]), _ms(mo["total"]),
            _ms(mr["lower"]), _ms(mr["compile"]), _ms(mr["total"]),
            _ratio(c["ratio"]),
        ])  # fmt: skip
    if c_rows:
        header = ["shape", "leaves", "case", "ours lower ms", "ours compile ms",
                  "ours total ms", "ref lower ms", "ref compile ms", "ref total ms",
                  "ratio"]  # fmt: skip
        out += [
            "## Fresh compile time",
            "",
            "`jax.clear_caches()`, then `jax.jit(step).lower(...)` (trace + lower) and "
            "`.compile()` (XLA), timed separately; median of "
            f"{result['settings']['compile_reps']} per side, round-robin. "
            "ratio = optaxish total / reference total.",
            "",
            _table(header, c_rows, right_from=1),
            "",
        ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    idx = 1 if args.quick else 0
    cfg = {k: v[idx] for k, v in SETTINGS.items()}
    if args.compile_reps:
        cfg["compile_reps"] = args.compile_reps
    shapes_mod = H.load_shapes()
    shape_names = _select(args.shapes, list(shapes_mod.ALL), "shapes")
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
        spec = shapes_mod.ALL[shape]()
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
                case.ours(), case.ref()
            except AttributeError as e:
                row["skipped"] = f"unavailable: {e}"
                _log(f"  {shape:14s} {case.name:14s} skipped ({e})")
                continue
            t0 = time.perf_counter()
            row["step"] = _step_row(case, params_np, grads, n_params, cfg, args.reps)
            st = row["step"]
            _log(
                f"  {shape:14s} {case.name:14s} step "
                f"{_ms(st['seconds'][OURS]['median'])} vs "
                f"{_ms(st['seconds'][case.ref_name]['median'])} ms "
                f"(ratio {st['ratio']:.2f}, {st['reps']}x{st['inner']}, "
                f"{time.perf_counter() - t0:.1f}s)"
            )
            if not args.no_compile:
                t0 = time.perf_counter()
                row["compile"] = _compile_row(case, params_np, cfg["compile_reps"])
                c = row["compile"]
                _log(
                    f"  {shape:14s} {case.name:14s} compile "
                    f"{c['median'][OURS]['total']:.2f} vs "
                    f"{c['median'][case.ref_name]['total']:.2f} s "
                    f"(ratio {c['ratio']:.2f}, {time.perf_counter() - t0:.1f}s)"
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
