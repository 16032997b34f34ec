"""One entry point for developers: ``python3 dev.py {demo,test,bench,lint}``.

Creates (or reuses) an isolated virtual environment in ``.venv``, installs the
package with the extras the task needs, and runs it. Only a Python >= 3.10
interpreter is required; nothing is installed outside ``.venv``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"demo": "", "test": "[test]", "lint": "[test]", "bench": "[test,bench]"}


def _run(*cmd: str | os.PathLike) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def _ensure_env(extras: str) -> None:
    """Creates .venv and installs the package when pyproject.toml changed."""
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".installed{extras or '[]'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    code = _run(
        PY,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-e",
        f".{extras}",
    )
    if code:
        sys.exit(code)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        print("usage: python3 dev.py {demo,test,lint,bench} [args...]")
        return 2
    task, rest = argv[0], argv[1:]
    _ensure_env(EXTRAS[task])
    if task in ("demo", "test"):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if task == "demo":
        return _run(PY, "-m", "optaxish.demo", *rest)
    if task == "lint":
        return _run(PY, "-m", "ruff", "check", ".")
    if task == "bench":
        return _run(PY, "-m", "benchmarks.run", *rest)
    code = _run(PY, "-m", "ruff", "check", ".")
    if code:
        return code
    # Two workers: the suite is compile-bound and CI machines have 2 cores.
    workers = [] if any(a.startswith("-n") for a in rest) else ["-n", "2"]
    return _run(PY, "-m", "pytest", "-q", *workers, *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
