"""Benchmarks comparing optaxish with optax: ``python -m benchmarks.run``.

Not part of the package and never collected by pytest. See ``README.md``.
"""
