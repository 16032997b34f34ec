"""The benchmark rows still build and run (quick mode, one small shape).

Timings are not checked (speed is reported in ``benchmarks/``, never asserted):
this only keeps every row of ``python -m benchmarks.run`` working.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optaxish import _native

ROOT = Path(__file__).resolve().parents[1]
SHARED_SHAPES = ROOT.parent / "shared" / "bench" / "shapes.py"


def _benchmarks_module(name: str):
    """Imports ``benchmarks.<name>`` from the repository root."""
    sys.path.insert(0, str(ROOT))
    try:
        return __import__(f"benchmarks.{name}", fromlist=[name])
    finally:
        sys.path.remove(str(ROOT))


def _case_names() -> list[str]:
    return [case.name for case in _benchmarks_module("_cases").CASES]


def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """Runs ``python -m module *args`` on CPU from the repository root; it must exit 0."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_every_row_runs_on_a_small_shape():
    assert SHARED_SHAPES.exists(), f"the benchmark shapes are missing: {SHARED_SHAPES}"
    out = _run_module(
        "benchmarks.run", "--quick", "--no-write", "--no-compile", "--shapes", "mlp"
    )
    for name in _case_names():
        row = re.search(rf"^\| mlp +\| {re.escape(name)} +\|.*$", out.stdout, re.M)
        assert row is not None, f"no row for {name!r}:\n{out.stdout[-3000:]}"
        assert "(!)" not in row.group(0), row.group(0)


def test_training_step_loss_scaling_rows_run():
    out = _run_module(
        "benchmarks.loss_scale_training_step", "--quick", "--no-write", "--batches", "4"
    )
    for wrapper, reference in _benchmarks_module("loss_scale_training_step").PAIRS:
        row = rf"^\| 4 \| {re.escape(wrapper)} \| {re.escape(reference)} \| [\d.]+ \| \*\*[\d.]+\*\*"
        assert re.search(row, out.stdout, re.M), (
            f"no row for {wrapper!r}:\n{out.stdout}"
        )


def test_sampling_order_and_counts_treat_the_sides_alike():
    """No side follows itself (its buffers would still be cached), each
    round runs every side once, and sides of similar speed take the same
    number of steps per sample (a per-sample fixed cost spreads alike)."""
    round_orders = _benchmarks_module("_harness").round_orders
    calls_per_sample = _benchmarks_module("facade").calls_per_sample
    names = ["a", "b", "c", "d"]
    orders = round_orders(names, 200)
    assert all(sorted(order) == names for order in orders)
    sequence = [name for order in orders for name in order]
    assert all(x != y for x, y in zip(sequence, sequence[1:]))
    firsts = {name: sum(order[0] == name for order in orders) for name in names}
    assert min(firsts.values()) > 25  # no side is always (or never) first
    two = [name for order in round_orders(["a", "b"], 6) for name in order]
    assert two in (["a", "b"] * 6, ["b", "a"] * 6)  # two sides alternate
    counts = calls_per_sample({"core": 6e-4, "facade": 7e-4, "eager": 1e-2}, 0.02)
    assert counts == {"core": 34, "facade": 34, "eager": 2}


def test_large_shapes_hold_about_100m_parameters():
    large = _benchmarks_module("_large_shapes").LARGE
    counts = {
        name: (len(spec), sum(math.prod(s) for s in spec.values()))
        for name, spec in ((name, make()) for name, make in large.items())
    }
    assert counts == {
        "single_100m": (1, 100_000_000),
        "gpt2_small_like": (148, 124_439_808),  # GPT-2 small's 124 M
    }


def test_bandwidth_table_reads_steps_against_the_nominal_peak():
    harness = _benchmarks_module("_harness")
    report = _benchmarks_module("_report")
    assert harness.nominal_peak_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert harness.nominal_peak_gbps("NVIDIA H100 PCIe") == 2000.0
    assert harness.nominal_peak_gbps("NVIDIA H200") == 4800.0
    assert harness.nominal_peak_gbps("cpu") is None
    step = {
        "triad_gbps": 3000.0,
        "bytes_per_param": 28,
        "effective_gbps": {"optaxish": 2680.0, "optax": 1340.0},
        "pct_of_triad": {"optaxish": 89.3, "optax": 44.7},
    }
    row = {"shape": "single_100m", "case": "adam", "params": 10**8}
    result = {"rows": [{**row, "ref_name": "optax", "step": step}]}
    without_peak = "\n".join(report._bandwidth_table(result, "optax"))
    assert "% of peak" not in without_peak
    result["machine"] = {"peak_gbps": 3350.0, "devices": "1 x NVIDIA H100 80GB HBM3"}
    with_peak = "\n".join(report._bandwidth_table(result, "optax"))
    assert "3,350 GB/s" in with_peak
    line = next(x for x in with_peak.splitlines() if x.startswith("| single_100m"))
    assert line.replace(" ", "").endswith("|80%|40%|")  # 2680 and 1340 of 3350


def test_facade_host_benchmark_runs():
    # A few calls; the timings are reported in `benchmarks/`, never asserted.
    out = _run_module("benchmarks.facade_host", "--calls", "20", "--repeats", "1")
    for case in ("Adam apply", "Adam minimize", "LSO(Adam) apply", "SGD apply"):
        assert f"| {case} |" in out.stdout, out.stdout


def test_facade_exclusions_benchmark_runs():
    # Timings are reported in `benchmarks/README.md`, never asserted; the
    # packed and unpacked exempt sides must agree.
    out = _run_module("benchmarks.facade_exclusions", "--shapes", "mlp", "--reps", "1")
    assert "mlp: max relative difference" in out.stdout, out.stdout
    assert "1-D exempt / none exempt" in out.stdout, out.stdout


def test_native_adam_benchmark_runs_and_agrees_with_optax():
    # The kernel is built with the system's compiler; on flat buffers its
    # parameters must match optax's within float32 rounding.
    from optaxish import _native

    if not _native.adam_available():
        pytest.skip(f"native kernel unavailable: {_native.unavailable_reason()}")
    out = _run_module("benchmarks.native_adam", "--shapes", "mlp", "--reps", "2")
    diffs = re.findall(r"native .* max rel diff (\S+)", out.stdout)
    assert len(diffs) == 1, out.stdout
    assert float(diffs[0]) < 1e-6, out.stdout


def test_facade_native_benchmark_runs():
    out = _run_module(
        "benchmarks.facade_native", "--shapes", "mixed_400", "--reps", "1"
    )
    for side in ("apply", "minimize", "AdamW apply", "optax jit"):
        assert f"  {side} " in out.stdout, out.stdout
    # Each side with XLA's loops also gives the kernel's ratio against it.
    assert len(re.findall(r"\(XLA loops\): kernel \d+\.\d+x", out.stdout)) == 3
    assert re.search(
        r"400 gradient arrays to a jit call alone: \d+\.\d+ ms", out.stdout
    ), out.stdout
    if _native.adam_available():  # the memory floor is built the same way
        floor = re.search(
            r"memory floor: (\d+\.\d+) ms .* with the gradient in 400 arrays: "
            r"(\d+\.\d+) ms .* At best x optax: minimize \d+\.\d+x, "
            r"apply_gradients \d+\.\d+x",
            out.stdout,
        )
        assert floor and 0 < float(floor.group(1)), out.stdout


def test_floors_benchmark_prints_a_bound_per_target():
    out = _run_module("benchmarks.floors", "--shapes", "mlp", "--reps", "2")
    row = [line for line in out.stdout.splitlines() if line.startswith("| mlp |")]
    assert len(row) == 1, out.stdout
    cells = [c.strip().strip("*") for c in row[0].strip("|").split("|")]
    optax_ms, boundary_ms = float(cells[2]), float(cells[4])
    assert float(cells[6].rstrip("x")) == pytest.approx(
        optax_ms / boundary_ms, rel=0.02
    )
    assert float(cells[7]) > 1.0 and cells[8] == "1.30", row
