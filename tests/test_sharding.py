"""Parameters sharded over several devices: the core and ``packing.packed``.

The checks run in one subprocess on 8 fake CPU devices
(``tests/_sharding_checks.py``; this process has one device), for a (4, 2)
mesh of each axis type, with leaves sharded ``P("x")`` (rows),
``P(None, "y")`` (columns), ``P("x", "y")`` and replicated (a bias and a
scalar). They check that the numbers equal a one-device run, that every
per-parameter moment is sharded like its parameter (a replicated moment of a
sharded parameter costs the device count in memory) after ``init`` and after
jitted steps, and that updates and parameters keep their sharding.

Baseline, optax 0.2.8, for the same cases: ``init`` called eagerly keeps
each parameter's sharding; ``jax.jit(tx.init)`` does too under mesh axes of
type ``Explicit`` (the sharding is part of the types), but under ``Auto``
axes (the default of ``jax.sharding.Mesh``) XLA returns the moments
replicated, as it does for any jitted function without ``out_shardings``.
We must be no worse: the test compares with optax live.
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import pytest

from optaxish.packing import Layout, pack
from tests._subprocess_report import run_report

SCRIPT = pathlib.Path(__file__).with_name("_sharding_checks.py")
MODES = ("Auto", "Explicit")
NEAREST = {"loss_scaling": "apply_if_finite"}


@pytest.fixture(scope="module")
def report() -> dict:
    # The script sets the device count itself, before importing jax.
    return run_report(SCRIPT, {}, drop=("XLA_FLAGS",))


def _core(report: dict):
    for mode in MODES:
        for name, case in report[mode]["core"].items():
            yield mode, name, case


def test_runs_on_eight_devices(report):
    assert report["devices"] == 8


def test_core_runs_and_matches_one_device(report):
    bad = {}
    for mode, name, case in _core(report):
        if "error" in case:
            bad[mode, name] = case["error"]
        elif not case["rel_err"] <= 1e-6:
            bad[mode, name] = case["rel_err"]
    assert not bad, bad


def test_core_eager_init_shards_moments_like_params(report):
    # Before the fix, `buffer_like` built moments with `jnp.full(shape)`:
    # Adam's, RMSprop's, Lion's, LAMB's moments were replicated.
    bad = {(m, n): c["init"] for m, n, c in _core(report) if c.get("init")}
    assert not bad, bad


def test_core_jit_init_no_worse_than_optax(report):
    bad = {}
    for mode, name, case in _core(report):
        if "error" in case:
            continue
        # optax has no loss_scaling: its nearest wrapper has the same paths.
        base = report[mode]["optax"].get(NEAREST.get(name, name))
        allowed = set(base["jit_init"]) if base is not None else set()
        if mode == "Explicit":
            allowed = set()  # the types carry the sharding: nothing may move
        extra = set(case["jit_init"]) - allowed
        if extra:
            bad[mode, name] = sorted(extra)
    assert not bad, bad


def test_core_jitted_steps_keep_sharding(report):
    # Before the fix, MultiSteps (while loop) and loss_scaling (cond) raised
    # under Explicit axes: their zeros lost the sharding of the body's output.
    bad = {}
    for mode, name, case in _core(report):
        if "error" in case:
            bad[mode, name] = case["error"]
            continue
        moved = {
            k: case[k] for k in ("state_after_step", "updates", "params") if case[k]
        }
        if moved:
            bad[mode, name] = moved
    assert not bad, bad


@pytest.mark.parametrize("mode", MODES)
def test_pack_groups_by_sharding(report, mode):
    r = report[mode]["packed"]
    assert "error" not in r, r
    # rows, cols, both: a buffer each in the leaf's shape and sharding;
    # bias and scale (replicated): one flat buffer, replicated.
    assert (r["num_buffers"], r["sharded_buffers"]) == (4, 3)
    assert r["sharded_buffers_placed"] and r["flat_buffers_replicated"]
    assert r["unpack_placed"] == [] and r["unpack_exact"]


@pytest.mark.parametrize("mode", MODES)
def test_packed_adam_keeps_sharding(report, mode):
    r = report[mode]["packed"]
    assert "error" not in r, r
    assert r["state_buffers_like_params"] and r["tree_state_kept"]
    assert r["tree_updates_placed"] == [] and r["tree_params_placed"] == []
    assert r["tree_traces"] == 1
    assert r["tree_rel_err"] <= 1e-6
    assert r["fast_buffers_kept"] and r["fast_rel_err"] <= 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_slots_and_flax_read_packed_states_with_sharded_buffers(report, mode):
    r = report[mode]["packed"]
    assert "error" not in r, r
    for k in ("both", "bias"):  # sharded over 8 devices; replicated
        assert r[f"slots_get_{k}_exact"] and r[f"slots_set_{k}_ok"]
    assert r["flax_round_trip_exact"]


def test_packed_init_under_jit(report):
    # Under Auto axes a tracer does not know its sharding: everything packs
    # as on one device (documented in `Layout.of`); Explicit types know it.
    assert report["Auto"]["packed"]["jit_init_sharded_buffers"] == 0
    assert report["Explicit"]["packed"]["jit_init_sharded_buffers"] == 3
    assert all(report[m]["packed"]["jit_init_step_ok"] for m in MODES)


@pytest.mark.parametrize("mode", MODES)
def test_facade_sharded_variable(report, mode):
    # A variable on several devices is not packed: it steps as one array,
    # keeping its sharding, and its slots get the same sharding.
    r = report[mode]["facade"]
    assert r.get("packed") is False, r
    assert r.get("value_kept") and r.get("slot_kept") and r.get("assign_ok") is True


def test_unsharded_layout_unchanged():
    tree = {"b": jnp.zeros(3), "i": jnp.zeros(2, jnp.int32), "w": jnp.ones((2, 2))}
    layout = pack(tree).layout
    assert layout.sharded == ()
    assert layout == Layout(
        layout.treedef, ((3,), (2,), (2, 2)), (0, 1, 0), (0, 0, 3),
        ("float32", "int32"), (7, 2),
    )  # fmt: skip
    assert [layout.buffer_shape(g) for g in range(2)] == [(7,), (2,)]
    assert layout.describe() == "3 leaves in 2 buffer(s): float32[7], int32[2]"
