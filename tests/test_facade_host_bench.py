"""``python -m benchmarks.facade_host`` still runs (a few calls; timings are
reported in ``benchmarks/``, never asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_facade_host_benchmark_runs():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.facade_host", "--calls", "20"]
        + ["--repeats", "1"],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for case in ("Adam apply", "Adam minimize", "LSO(Adam) apply", "SGD apply"):
        assert f"| {case} |" in out.stdout, out.stdout
