"""Markdown rendering of a benchmark run (the dict that ``run.py`` builds)."""

from __future__ import annotations

import math
from typing import Any

OURS = "optaxish"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


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


def _sec(seconds: float) -> str:
    return (
        f"{seconds:.3f}"
        if seconds < 1
        else f"{seconds:.2f}"
        if seconds < 10
        else f"{seconds:.1f}"
    )


def _header(result: dict[str, Any], ref_col: str) -> list[str]:
    m = result["machine"]
    settings = ", ".join(f"{k}={v}" for k, v in result["settings"].items())
    return [
        f"# optaxish vs {ref_col}: {result['name']}",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu_model']}, {m['cpu_count']} cores "
        f"({m['affinity_cpus']} usable), {m['platform']}",
        f"- backend: {m['backend']} ({m['devices']}); jax {m['jax']}, "
        f"jaxlib {m['jaxlib']}, optax {m['optax']}, optaxish {m['optaxish']}, "
        f"numpy {m['numpy']}, python {m['python']}",
        f"- load average at start: {m['load_average']}; environment: "
        f"{m.get('env') or 'no JAX/XLA variables set'}",
        f"- mode: {result['mode']} ({settings})",
        "",
    ]


def _step_table(result: dict[str, Any], ref_col: str) -> list[str]:
    rows = []
    for r in result["rows"]:
        head = [r["shape"], r["case"], str(r["leaves"]), f"{r['params']:,}"]
        if r.get("skipped"):
            rows.append(head + ["–"] * 4 + [r["skipped"]])
            continue
        st = r["step"]
        iqr = st["paired_ratio_iqr"]
        rows.append(
            head
            + [
                fmt_ms(st["seconds"][OURS]["median"]),
                fmt_ms(st["seconds"][r["ref_name"]]["median"]),
                _ratio(st["ratio"]),
                f"{iqr[0]:.2f}–{iqr[1]:.2f}" if iqr else "–",
                f"{st['max_rel_diff']:.1e}" + ("" if st["agree"] else " (!)"),
            ]
        )
    header = ["shape", "case", "leaves", "params", "optaxish ms", f"{ref_col} ms",
              "ratio", "paired IQR", "max rel diff"]  # fmt: skip
    return [
        "## Per-step time",
        "",
        "Median ms per call of `jax.jit(step, donate_argnums=(params, opt_state))`, "
        "`step` = `update` + `apply_updates`, the sides timed round-robin in one "
        "process. ratio = optaxish / reference (< 1: optaxish is faster); paired "
        "IQR = quartiles of the per-round ratios; max rel diff = largest relative "
        "difference of the parameters after the warm-up steps ((!) above the row's "
        "tolerance).",
        "",
        _table(header, rows, right_from=2) if rows else "(no rows)",
        "",
    ]


def _bandwidth_table(result: dict[str, Any], ref_col: str) -> list[str]:
    out = [
        "## Memory-bandwidth reference",
        "",
        "triad = jitted fused `a + b*c` on float32 arrays, output donated, 16 "
        "bytes/element. In the table it runs on the tree's total size, timed in the "
        "same round-robin as the row. Effective GB/s = bytes/param x params / median "
        "step time (Adam fp32: 28 bytes = read p, g, m, v + write p, m, v).",
        "",
    ]
    t4 = result.get("triad_4m")
    if t4:
        out += [
            f"triad on {t4['n']:,} float32 elements: **{t4['gbps']:.1f} GB/s** "
            f"(median {fmt_ms(t4['seconds']['median'])} ms per call).",
            "",
        ]
    peak = result.get("machine", {}).get("peak_gbps")
    if peak:
        out += [
            f"Nominal memory bandwidth of {result['machine']['devices']}: "
            f"{peak:,.0f} GB/s (data sheet); `% of peak` reads the effective "
            "GB/s against it.",
            "",
        ]
    rows = []
    for r in result["rows"]:
        st = r.get("step")
        if not st or "triad_gbps" not in st:
            continue
        ref = r["ref_name"]
        cells = [
            r["shape"], r["case"], f"{r['params']:,}", str(st["bytes_per_param"]),
            f"{st['triad_gbps']:.1f}",
            f"{st['effective_gbps'][OURS]:.1f}", f"{st['pct_of_triad'][OURS]:.0f}%",
            f"{st['effective_gbps'][ref]:.1f}", f"{st['pct_of_triad'][ref]:.0f}%",
        ]  # fmt: skip
        if peak:
            cells += [
                f"{100 * st['effective_gbps'][n] / peak:.0f}%" for n in (OURS, ref)
            ]
        rows.append(cells)
    if rows:
        header = ["shape", "case", "params", "bytes/param", "triad GB/s",
                  "optaxish GB/s", "optaxish % of triad", f"{ref_col} GB/s",
                  f"{ref_col} % of triad"]  # fmt: skip
        if peak:
            header += ["optaxish % of peak", f"{ref_col} % of peak"]
        out += [_table(header, rows, right_from=2), ""]
    return out


def _compile_table(result: dict[str, Any], ref_col: str) -> list[str]:
    rows = []
    for r in result["rows"]:
        c = r.get("compile")
        if not c:
            continue
        mo, mr = c["median"][OURS], c["median"][r["ref_name"]]
        rows.append([
            r["shape"], r["case"], str(r["leaves"]), str(c["reps"]),
            _sec(mo["lower"]), _sec(mo["compile"]), _sec(mo["total"]),
            _sec(mr["lower"]), _sec(mr["compile"]), _sec(mr["total"]),
            _ratio(c["ratio"]),
        ])  # fmt: skip
    if not rows:
        return []
    header = ["shape", "case", "leaves", "n", "optaxish lower s", "compile s",
              "total s", f"{ref_col} lower s", "compile s", "total s",
              "ratio"]  # fmt: skip
    return [
        "## Fresh compile time",
        "",
        "Before each measurement `jax.clear_caches()`; then "
        "`jax.jit(step, donate_argnums=...).lower(...)` (trace + lower) and "
        "`.compile()` (XLA) are timed separately. Median of n per side, round-robin "
        "(n is smaller where one round exceeds the row's compile budget). "
        "ratio = optaxish total / reference total.",
        "",
        _table(header, rows, right_from=2),
        "",
    ]


def render(result: dict[str, Any]) -> str:
    """The Markdown report of a run."""
    ref_names = sorted({r["ref_name"] for r in result["rows"]}) or ["optax"]
    ref_col = ref_names[0] if len(ref_names) == 1 else "reference"
    return "\n".join(
        _header(result, ref_col)
        + _step_table(result, ref_col)
        + _bandwidth_table(result, ref_col)
        + _compile_table(result, ref_col)
    )
