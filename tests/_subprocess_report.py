"""Runs a check script in a fresh Python (for settings fixed at JAX's start:
the device count, x64) and returns the JSON report it prints last."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys


def run_report(script: pathlib.Path, env: dict[str, str], drop: tuple = ()) -> dict:
    """``script``'s last printed line, parsed as JSON.

    Args:
      script: a file beside the tests.
      env: variables added to this process's environment.
      drop: variables removed from it.
    """
    full = dict(os.environ, JAX_PLATFORMS="cpu", **env)
    for name in drop:
        full.pop(name, None)
    root = str(script.parent.parent)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [root, full.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=full,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
