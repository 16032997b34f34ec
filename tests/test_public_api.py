"""The public API: layering, docstrings and examples."""

from __future__ import annotations

import inspect
import subprocess
import sys

import optaxish as ox


def test_core_imports_neither_optax_nor_the_facade():
    code = (
        "import sys, optaxish;"
        "bad = [m for m in sys.modules if m == 'optax' or m.startswith('optax.')"
        " or m.startswith('optaxish.optimizers') or m.startswith('flax')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_is_documented():
    undocumented = []
    for name in ox.__all__:
        obj = getattr(ox, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue  # modules, constants and typing aliases
        if not (obj.__doc__ or "").strip():
            undocumented.append(name)
    assert not undocumented


def test_public_factories_have_examples():
    """Every public factory function carries a runnable `>>>` example."""
    lacking = []
    for name in ox.__all__:
        obj = getattr(ox, name)
        if inspect.isfunction(obj) and ">>>" not in (obj.__doc__ or ""):
            lacking.append(name)
    assert not lacking


def test_public_signatures_are_annotated():
    unannotated = []
    for name in ox.__all__:
        obj = getattr(ox, name)
        if not inspect.isfunction(obj):
            continue
        sig = inspect.signature(obj)
        if sig.return_annotation is inspect.Signature.empty:
            unannotated.append(name)
    assert not unannotated
