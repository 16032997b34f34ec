"""Builds and loads the native kernels, once per machine and source.

The shared library is compiled on first use with the system's C++ compiler
(``$CXX``, default ``g++``) against the XLA FFI headers that jaxlib ships, and
kept in a cache directory (``$OPTAXISH_CACHE_DIR``, default
``$XDG_CACHE_HOME/optaxish`` or ``~/.cache/optaxish``) under a name derived
from everything that shapes the binary: the source and the headers beside it,
the flags, the jaxlib version, the compiler and the CPU. Several processes may
build at once: each writes its own temporary file and renames it into place.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jaxlib

# `-ffp-contract=fast` contracts `a * b + c` into FMAs, as XLA:CPU's LLVM does
# (the same bits in the common case); no fast-math (IEEE division and square
# root); no `errno` from `sqrt`, which would keep the loops from vectorizing.
FLAGS = (
    "-O3",
    "-march=native",
    "-ffp-contract=fast",
    "-fno-math-errno",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-w",
)


def cache_dir() -> Path:
    """Where built libraries are kept."""
    explicit = os.environ.get("OPTAXISH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optaxish"


def _cpu_description() -> str:
    # `-march=native` builds for this CPU: its flags are part of the key.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(source: Path) -> Path:
    """The path of ``source``'s shared library, compiled if not cached.

    Raises:
      RuntimeError: no compiler, or the build failed (with its output).
    """
    compiler = os.environ.get("CXX", "g++")
    found = shutil.which(compiler)
    if found is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set $CXX)")
    try:
        version = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{compiler} --version did not answer in 60 s") from e
    key = hashlib.sha256()
    # The headers beside the source (``chunks.h``) are part of the binary too.
    headers = sorted(source.parent.glob("*.h"))
    sources = [source.read_bytes()] + [h.read_bytes() for h in headers]
    for part in (*sources, " ".join(FLAGS).encode(), jaxlib.__version__):
        key.update(part if isinstance(part, bytes) else part.encode())
    key.update((version + _cpu_description() + platform.machine()).encode())
    out_dir = cache_dir()
    lib = out_dir / f"{source.stem}-{key.hexdigest()[:20]}.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{source.stem}-", suffix=".so")
    os.close(fd)
    try:
        includes = [f"-I{jax.ffi.include_dir()}", f"-I{source.parent}"]
        cmd = [found, *FLAGS, *includes, str(source), "-o", tmp]
        try:
            done = subprocess.run(
                [*cmd, "-lpthread"], capture_output=True, text=True, timeout=300
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"building {source.name} took over 300 s") from e
        if done.returncode:
            raise RuntimeError(
                f"building {source.name} failed ({' '.join(cmd)}):\n"
                f"{done.stderr[-2000:]}"
            )
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib
