"""Sharding checks on 8 fake CPU devices, run by ``tests/test_sharding.py``.

Run as a script in a fresh process (the device count is fixed when JAX
starts): it sets ``XLA_FLAGS`` before importing JAX, runs every check for a
(4, 2) mesh of each axis type (``Auto``, the default of ``jax.sharding.Mesh``,
and ``Explicit``, the default of ``jax.make_mesh``), and prints one JSON
report on its last line. Every check catches its own errors, so one failure
shows up in the report instead of hiding the others.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # never in the test process (pytest imports modules)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402
import traceback  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import optaxish as ox  # noqa: E402
from optaxish.packing import Packed, pack, packed  # noqa: E402

NAMES = ("rows", "cols", "both", "bias", "scale")
SHARDED = ("rows", "cols", "both")
STEPS = 3
#: The cases run under mesh axes of type ``Explicit`` too (one per kind of
#: code path: per-leaf norms, factored moments, cond, while loop, partition).
EXPLICIT_CASES = (
    "sgd_momentum", "adam", "adafactor", "lamb", "multi_steps",
    "inject_hyperparams", "apply_if_finite", "partition", "loss_scaling",
)  # fmt: skip


def _host_tree(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = {"rows": (8, 6), "cols": (6, 4), "both": (8, 4), "bias": (4,), "scale": ()}
    return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}


def _specs(mesh) -> dict:
    spec = {"rows": P("x"), "cols": P(None, "y"), "both": P("x", "y")}
    return {k: NamedSharding(mesh, spec.get(k, P())) for k in NAMES}


def _put(tree: dict, specs: dict) -> dict:
    return {k: jax.device_put(v, specs[k]) for k, v in tree.items()}


def _same_place(a, b) -> bool:
    """Whether ``a`` lives where ``b`` does (same devices, same split)."""
    return a.sharding.is_equivalent_to(b.sharding, np.ndim(b))


def _replicated(a) -> bool:
    return a.sharding.is_fully_replicated and len(a.sharding.device_set) == 8


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6), initial=0.0))


def _misplaced_moments(state, params) -> list[str]:
    """Per-parameter leaves of ``state`` not placed like their parameter
    (a leaf at a path naming the parameter, with its shape)."""
    bad = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if not isinstance(leaf, jax.Array):
            continue
        where = jax.tree_util.keystr(path)
        for name, p in params.items():
            if f"['{name}']" in where and np.shape(leaf) == np.shape(p) and p.ndim:
                if not _same_place(leaf, p):
                    bad.append(where)
    return bad


def _cases(lib) -> dict:
    labels = {"rows": "a", "cols": "a", "both": "s", "bias": "s", "scale": "a"}
    cases = {
        "sgd_momentum": lambda: lib.sgd(0.1, momentum=0.9),
        "adam": lambda: lib.adam(1e-2),
        "adamw": lambda: lib.adamw(1e-2),
        "lion": lambda: lib.lion(1e-3),
        "rmsprop": lambda: lib.rmsprop(1e-2),
        "adafactor": lambda: lib.adafactor(1e-2, min_dim_size_to_factor=4),
        "lamb": lambda: lib.lamb(1e-2),
        "lars": lambda: lib.lars(1e-2),
        "clip_chain": lambda: lib.chain(lib.clip_by_global_norm(1.0), lib.adam(1e-2)),
        "multi_steps": lambda: lib.MultiSteps(lib.adam(1e-2), 2),
        "inject_hyperparams": lambda: lib.inject_hyperparams(lib.adam)(1e-2),
        "apply_if_finite": lambda: lib.apply_if_finite(lib.adam(1e-2), 3),
        "partition": lambda: lib.partition(
            {"a": lib.adam(1e-2), "s": lib.sgd(0.1, momentum=0.9)}, labels
        ),
    }
    if lib is ox:
        cases["loss_scaling"] = lambda: ox.loss_scaling(ox.adam(1e-2))
    return cases


def _step_fn(tx, lib):
    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return lib.apply_updates(p, u), s, u

    return jax.jit(step)


def _reference(make, host: dict, host_grads: dict) -> dict:
    """The parameters after the steps of ``_core_case`` on one device."""
    tx = make()
    step = _step_fn(tx, ox)
    p, s = host, tx.init(host)
    for _ in range(STEPS):
        p, s, _ = step(p, s, host_grads)
    return p


def _core_case(lib, make, params, grads, ref, steps: bool) -> dict:
    out: dict = {}
    tx = make()
    out["init"] = _misplaced_moments(tx.init(params), params)
    out["jit_init"] = _misplaced_moments(jax.jit(tx.init)(params), params)
    if not steps:
        return out
    step = _step_fn(tx, lib)
    p, s = params, tx.init(params)
    for _ in range(STEPS):
        p, s, u = step(p, s, grads)
    out["state_after_step"] = _misplaced_moments(s, params)
    out["updates"] = [k for k in NAMES if not _same_place(u[k], params[k])]
    out["params"] = [k for k in NAMES if not _same_place(p[k], params[k])]
    out["rel_err"] = max(_rel_err(p[k], ref[k]) for k in NAMES)
    return out


def _guarded(fn, *args) -> dict:
    try:
        return fn(*args)
    except Exception as e:  # reported, so that the other checks still run
        tb = traceback.format_exc(limit=-2)
        return {"error": f"{type(e).__name__}: {str(e)[:300]}", "traceback": tb}


def _packed_checks(params, grads, host, host_grads) -> dict:
    out: dict = {}
    # pack / unpack
    pp = pack(params)
    layout = pp.layout
    out["num_buffers"] = len(pp.buffers)
    out["sharded_buffers"] = len(layout.sharded)
    out["sharded_buffers_placed"] = all(
        _same_place(pp.buffers[layout.groups[sorted(NAMES).index(k)]], params[k])
        for k in SHARDED
    )
    flat = [b for g, b in enumerate(pp.buffers) if g not in layout.sharded]
    out["flat_buffers_replicated"] = bool(flat) and all(_replicated(b) for b in flat)
    back = pp.unpack()
    out["unpack_placed"] = [k for k in NAMES if not _same_place(back[k], params[k])]
    out["unpack_exact"] = all(
        np.array_equal(np.asarray(back[k]), host[k]) for k in NAMES
    )

    # packed(adam) with trees: eager init, jitted steps
    tx = packed(ox.adam(1e-2))
    state = tx.init(params)
    mu = state.inner_state[0].mu
    out["state_buffers_like_params"] = all(
        _same_place(m, b) for m, b in zip(mu.buffers, pp.buffers)
    )
    traces = []

    def step(p, s, g):
        traces.append(1)
        u, s = tx.update(g, s, p)
        return ox.apply_updates(p, u), s, u

    jstep = jax.jit(step)
    p, s = params, state
    for _ in range(STEPS):
        p, s, u = jstep(p, s, grads)
    out["tree_traces"] = len(traces)
    out["tree_updates_placed"] = [k for k in NAMES if not _same_place(u[k], params[k])]
    out["tree_params_placed"] = [k for k in NAMES if not _same_place(p[k], params[k])]
    mu = s.inner_state[0].mu
    out["tree_state_kept"] = all(
        _same_place(m, b) for m, b in zip(mu.buffers, pp.buffers)
    )
    ref = ox.adam(1e-2)
    ref_p, ref_s = host, ref.init(host)
    for _ in range(STEPS):
        u_, ref_s = ref.update(host_grads, ref_s, ref_p)
        ref_p = ox.apply_updates(ref_p, u_)
    out["tree_rel_err"] = max(_rel_err(p[k], ref_p[k]) for k in NAMES)

    # The fast path: packed parameters, a Packed gradient.
    def loss(values):
        return sum(jnp.sum(values[k] * grads[k]) for k in NAMES)

    def fast(pp, s):
        g = jax.grad(lambda q: loss(q.unpack()))(pp)
        u, s = tx.update(g, s, pp)
        return ox.apply_updates(pp, u), s

    jfast = jax.jit(fast)
    q, s = pp, tx.init(pp)
    for _ in range(STEPS):
        q, s = jfast(q, s)
    out["fast_buffers_kept"] = all(
        _same_place(a, b) for a, b in zip(q.buffers, pp.buffers)
    )
    fast_values = q.unpack()
    out["fast_rel_err"] = max(_rel_err(fast_values[k], ref_p[k]) for k in NAMES)

    # slots: a sharded leaf's moment and a replicated one, read and written.
    from flax import serialization

    from optaxish import slots

    for k in ("both", "bias"):
        got = slots.get(s, "mu", param=k)
        out[f"slots_get_{k}_exact"] = bool(
            np.array_equal(np.asarray(got), np.asarray(s.inner_state[0].mu.unpack()[k]))
        )
        new_state = slots.set(s, "mu", jnp.full(host[k].shape, 2.0), param=k)
        back = new_state.inner_state[0].mu.unpack()
        out[f"slots_set_{k}_ok"] = bool(np.all(np.asarray(back[k]) == 2.0)) and all(
            _same_place(a, b)
            for a, b in zip(new_state.inner_state[0].mu.buffers, pp.buffers)
        )
    # flax msgpack of a packed state with sharded buffers.
    ox.register_flax_serialization()
    restored = serialization.from_bytes(tx.init(pp), serialization.to_bytes(s))
    out["flax_round_trip_exact"] = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(s))
    )

    # init under jit: what the layout knows there.
    jstate = jax.jit(tx.init)(params)
    jmu = jstate.inner_state[0].mu
    out["jit_init_sharded_buffers"] = len(jmu.layout.sharded)
    p2, s2, _ = jax.jit(step)(params, jstate, grads)
    out["jit_init_step_ok"] = isinstance(s2.inner_state[0].mu, Packed)
    return out


def _facade_checks(mesh, specs, host) -> dict:
    from optaxish import optimizers

    out: dict = {}
    w = ox.Variable(jax.device_put(host["both"], specs["both"]), name="w")
    b = ox.Variable(jax.device_put(host["bias"], specs["bias"]), name="b")
    opt = optimizers.Adam(0.1)
    grads = [jnp.ones_like(w.value), jnp.ones_like(b.value)]
    for _ in range(2):
        opt.apply_gradients(zip(grads, [w, b]))
    out["value_kept"] = _same_place(
        w.value, jax.device_put(host["both"], specs["both"])
    )
    groups = opt.__dict__.get("_groups") or {}
    out["packed"] = bool(groups)
    for group in groups.values():
        out["group_buffers"] = [str(x.sharding) for x in group.values.buffers]
    try:
        w.assign(jnp.zeros((8, 4)))
        out["assign_ok"] = True
    except Exception as e:
        out["assign_ok"] = f"{type(e).__name__}: {str(e)[:200]}"
    m = opt.get_slot(w, "m")
    out["slot_kept"] = _same_place(m, jax.device_put(host["both"], specs["both"]))
    return out


def main() -> None:
    host, host_grads = _host_tree(0), _host_tree(1)
    host_grads = {k: 0.1 * v for k, v in host_grads.items()}
    report: dict = {"devices": jax.device_count()}
    h = jax.tree.map(jnp.asarray, host)
    hg = jax.tree.map(jnp.asarray, host_grads)
    refs = {
        name: _guarded(_reference, make, h, hg) for name, make in _cases(ox).items()
    }
    for mode in ("Auto", "Explicit"):
        mesh = jax.make_mesh(
            (4, 2), ("x", "y"), axis_types=(getattr(AxisType, mode),) * 2
        )
        specs = _specs(mesh)
        with jax.set_mesh(mesh):
            params, grads = _put(host, specs), _put(host_grads, specs)
            wanted = _cases(ox) if mode == "Auto" else EXPLICIT_CASES
            core, base = {}, {}
            for name in wanted:
                make = _cases(ox)[name]
                core[name] = _guarded(
                    _core_case, ox, make, params, grads, refs[name], True
                )
                if name in _cases(optax):
                    make = _cases(optax)[name]
                    base[name] = _guarded(
                        _core_case, optax, make, params, grads, None, False
                    )
            report[mode] = {
                "core": core,
                "optax": base,
                "packed": _guarded(_packed_checks, params, grads, h, hg),
                "facade": _guarded(_facade_checks, mesh, specs, host),
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
