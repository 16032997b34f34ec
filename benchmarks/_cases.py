"""The optimizer rows of the benchmark table.

A :class:`Case` builds the two sides of a comparison lazily (so a missing
optaxish name only skips its row). Rows that are plain gradient transformations
with the same API in both libraries are one :func:`transform_case` call; other
rows (a loss-scaling wrapper, the stateful facade against Keras or flax) give
their own ``ours``/``ref`` builders returning a :class:`~benchmarks._harness.Impl`
and set ``ref_name``.
"""

from __future__ import annotations

import dataclasses
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


def _held_packed(impl: Impl) -> Impl:
    """``impl`` run on parameters (and gradients) held packed."""
    import optaxish

    return dataclasses.replace(
        impl, wrap=optaxish.packing.pack, unwrap=lambda p: p.unpack()
    )


def _optaxish_impl(build: Callable[[Any], Any], packed_params: bool = False) -> Impl:
    import optaxish

    impl = transform_impl(build(optaxish), optaxish.apply_updates)
    return _held_packed(impl) if packed_params else impl


def _optax_impl(build: Callable[[Any], Any]) -> Callable[[], Impl]:
    def make() -> Impl:
        import optax

        return transform_impl(build(optax), optax.apply_updates)

    return make


def _against_ours(
    name: str,
    description: str,
    build: Callable[[Any], Any],
    ref_label: str,
    ref_build,
    packed_params: bool = False,
) -> Case:
    """A row comparing two optaxish transformations (a wrapper against its inner)."""
    return Case(
        name=name,
        description=description,
        ours=lambda: _optaxish_impl(build, packed_params),
        ref=lambda: _optaxish_impl(ref_build, packed_params),
        ref_name=ref_label,
        rtol=float("inf"),  # different math on purpose: no agreement check
    )


def _multisteps_step_impl(k: int, packed_params: bool = False) -> Impl:
    """``MultiSteps(adam).step``: update and ``apply_updates`` fused; with
    ``packed_params``, ``MultiSteps(packed(adam))`` on packed parameters (the
    accumulator is then one buffer too)."""
    import optaxish

    inner = optaxish.adam(1e-3)
    if packed_params:
        inner = optaxish.packing.packed(inner)
    ms = optaxish.MultiSteps(inner, every_k_schedule=k)
    impl = Impl(init=ms.init, step=lambda p, g, s: ms.step(g, s, p))
    return _held_packed(impl) if packed_params else impl


def _adam(lib: Any) -> Any:
    return lib.adam(1e-3)


def _adam_reporting_norm(module_name: str) -> Callable[[], Impl]:
    """An Adam step that also returns the gradients' global norm (for logging)."""

    def make() -> Impl:
        import jax.numpy as jnp

        lib = importlib.import_module(module_name)
        tx = lib.adam(1e-3)

        def step(params, grads, state):
            updates, inner = tx.update(grads, state[0], params)
            return lib.apply_updates(params, updates), (inner, lib.global_norm(grads))

        return Impl(init=lambda p: (tx.init(p), jnp.zeros(())), step=step)

    return make


CASES += [
    # A training step that logs the gradient norm beside the update.
    Case(
        "adam_reporting_norm",
        "adam(1e-3) step that also returns global_norm(grads)",
        ours=_adam_reporting_norm("optaxish"),
        ref=_adam_reporting_norm("optax"),
        bytes_per_param=32,
    ),
    # The packed engine on user-held trees: gradients packed, updates split per step.
    Case(
        "adam_packed_tree",
        "packing.packed(adam(1e-3)) on parameter trees",
        ours=lambda: _optaxish_impl(lambda lib: lib.packing.packed(lib.adam(1e-3))),
        ref=_optax_impl(_adam),
        bytes_per_param=28,
    ),
    # The packed engine with parameters held packed (packing.pack): no per-leaf work.
    Case(
        "adam_packed",
        "packing.packed(adam(1e-3)) on packed parameters",
        ours=lambda: _optaxish_impl(
            lambda lib: lib.packing.packed(lib.adam(1e-3)), packed_params=True
        ),
        ref=_optax_impl(_adam),
        bytes_per_param=28,
    ),
    _against_ours(
        "clip_adamw_vs_adamw",
        "chain(clip_by_global_norm(1.0), adamw(1e-3)) vs adamw(1e-3)",
        lambda lib: lib.chain(lib.clip_by_global_norm(1.0), lib.adamw(1e-3)),
        "optaxish.adamw",
        lambda lib: lib.adamw(1e-3),
    ),
    _against_ours(
        "inject_adam_vs_adam",
        "inject_hyperparams(adam)(learning_rate=1e-3) vs adam(1e-3)",
        lambda lib: lib.inject_hyperparams(lib.adam)(learning_rate=1e-3),
        "optaxish.adam",
        _adam,
    ),
    _against_ours(
        "multisteps_mini_vs_adam",
        "MultiSteps(adam(1e-3), every_k_schedule=10**9) mini-step vs adam(1e-3)",
        lambda lib: lib.MultiSteps(lib.adam(1e-3), every_k_schedule=10**9),
        "optaxish.adam",
        _adam,
    ),
    Case(
        "multisteps_step_mini_vs_adam",
        "MultiSteps(adam(1e-3), every_k_schedule=10**9).step mini-step vs adam(1e-3)",
        ours=lambda: _multisteps_step_impl(10**9),
        ref=lambda: _optaxish_impl(_adam),
        ref_name="optaxish.adam",
        rtol=float("inf"),  # a mini-step applies nothing: no agreement check
    ),
    transform_case(
        "multisteps_mini",
        "MultiSteps(adam(1e-3), every_k_schedule=10**9) mini-step, ours vs optax's",
        lambda lib: lib.MultiSteps(lib.adam(1e-3), every_k_schedule=10**9),
    ),
    _against_ours(
        "apply_if_finite_vs_adam",
        "apply_if_finite(adam(1e-3), 10) vs adam(1e-3)",
        lambda lib: lib.apply_if_finite(lib.adam(1e-3), 10),
        "optaxish.adam",
        _adam,
    ),
    _against_ours(
        "loss_scaling_vs_adam",
        "loss_scaling(adam(1e-3)) vs adam(1e-3)",
        lambda lib: lib.loss_scaling(lib.adam(1e-3)),
        "optaxish.adam",
        _adam,
    ),
    # The wrappers over the packed engine (parameters held packed).
    _against_ours(
        "packed_loss_scaling_vs_adam",
        "packed(loss_scaling(adam(1e-3))) vs packed(adam(1e-3)), packed params",
        lambda lib: lib.packing.packed(lib.loss_scaling(lib.adam(1e-3))),
        "optaxish.packed(adam)",
        lambda lib: lib.packing.packed(lib.adam(1e-3)),
        packed_params=True,
    ),
    _against_ours(
        "packed_apply_if_finite_vs_adam",
        "packed(apply_if_finite(adam(1e-3), 10)) vs packed(adam(1e-3)), packed params",
        lambda lib: lib.packing.packed(lib.apply_if_finite(lib.adam(1e-3), 10)),
        "optaxish.packed(adam)",
        lambda lib: lib.packing.packed(lib.adam(1e-3)),
        packed_params=True,
    ),
    Case(
        "packed_multisteps_step_mini_vs_adam",
        "MultiSteps(packed(adam(1e-3)), 10**9).step mini-step vs packed(adam(1e-3)), "
        "packed params",
        ours=lambda: _multisteps_step_impl(10**9, packed_params=True),
        ref=lambda: _optaxish_impl(
            lambda lib: lib.packing.packed(lib.adam(1e-3)), packed_params=True
        ),
        ref_name="optaxish.packed(adam)",
        rtol=float("inf"),  # a mini-step applies nothing: no agreement check
    ),
    _against_ours(
        "packed_clip_adamw_vs_adamw",
        "packed(chain(clip_by_global_norm(1.0), adamw(1e-3))) vs packed(adamw(1e-3))",
        lambda lib: lib.packing.packed(
            lib.chain(lib.clip_by_global_norm(1.0), lib.adamw(1e-3))
        ),
        "optaxish.packed(adamw)",
        lambda lib: lib.packing.packed(lib.adamw(1e-3)),
        packed_params=True,
    ),
]
