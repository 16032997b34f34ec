"""The optimizer rows of the benchmark table.

A :class:`Case` builds the two sides of a comparison lazily (so a missing
optaxish name only skips its row). Rows that are plain gradient transformations
with the same API in both libraries are one :func:`transform_case` call; other
rows (a loss-scaling wrapper, the stateful facade against Keras or flax) give
their own ``ours``/``ref`` builders returning a :class:`~benchmarks._harness.Impl`
and set ``ref_name``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import Impl, transform_impl


@dataclass(frozen=True)
class Case:
    """One row: optaxish against a reference on the same math.

    Attributes:
      name: short key, used by ``--cases`` and in the table.
      description: the call being measured, for the table.
      ours: builds the optaxish side.
      ref: builds the reference side.
      ref_name: the reference library, for the table.
      bytes_per_param: the float32 bytes one step must move per parameter, when
        the row should be read against the memory bandwidth (a fused ``a + b*c``
        is then timed in the same round-robin, and the effective GB/s reported).
      rtol: the largest relative difference between the two sides' parameters
        after the warm-up steps that still counts as "same numbers".
    """

    name: str
    description: str
    ours: Callable[[], Impl]
    ref: Callable[[], Impl]
    ref_name: str = "optax"
    bytes_per_param: int | None = None
    rtol: float = 1e-5


def transform_case(
    name: str,
    description: str,
    build: Callable[[Any], Any],
    bytes_per_param: int | None = None,
) -> Case:
    """A row for a transformation spelled the same in optaxish and optax.

    Args:
      name: the row key.
      description: the call being measured.
      build: ``build(lib)`` returns the transformation, ``lib`` being the
        ``optaxish`` or the ``optax`` module.
      bytes_per_param: see :class:`Case`.
    """

    def side(module_name: str) -> Callable[[], Impl]:
        def make() -> Impl:
            lib = importlib.import_module(module_name)
            return transform_impl(build(lib), lib.apply_updates)

        return make

    return Case(
        name=name,
        description=description,
        ours=side("optaxish"),
        ref=side("optax"),
        bytes_per_param=bytes_per_param,
    )


CASES: list[Case] = [
    # fp32 Adam reads params, grads, mu, nu and writes params, mu, nu: 7 x 4 bytes.
    transform_case(
        "adam", "adam(1e-3)", lambda lib: lib.adam(1e-3), bytes_per_param=28
    ),
    transform_case(
        "sgd_momentum",
        "sgd(1e-3, momentum=0.9)",
        lambda lib: lib.sgd(1e-3, momentum=0.9),
    ),
    transform_case(
        "clip_adamw",
        "chain(clip_by_global_norm(1.0), adamw(1e-3))",
        lambda lib: lib.chain(lib.clip_by_global_norm(1.0), lib.adamw(1e-3)),
    ),
]
