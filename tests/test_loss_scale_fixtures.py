"""Parity with tf-keras ``LossScaleOptimizer`` on recorded trajectories.

The fixture is written by ``tools/make_loss_scale_fixtures.py`` (tf-keras
2.21); these tests read only the JSON. Each scenario is replayed two ways:
with the already-unscaled gradients tf-keras received (``unscale=False``) and
with the gradients multiplied by the scale of the step (``unscale=True``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from optaxish import loss_scale as lsm

FIXTURE = (
    Path(__file__).parent / "fixtures" / "loss_scale" / "tf_keras_trajectories.json"
)
DATA = json.loads(FIXTURE.read_text())


def dec(x):
    if isinstance(x, list):
        return [dec(v) for v in x]
    return float(x)  # float("nan"), float("inf") and "-inf" parse


def _inner(spec):
    spec = dict(spec)
    assert spec.pop("kind") == "sgd"
    clipnorm = spec.pop("clipnorm", None)
    sgd = ox.sgd(spec["learning_rate"], momentum=spec.get("momentum"))
    return sgd if clipnorm is None else ox.chain(ox.clip_by_norm(clipnorm), sgd)


def _replay(sc, unscale):
    shapes = [tuple(s) for s in sc["shapes"]]
    params = [
        jnp.asarray(np.asarray(dec(v), np.float32).reshape(s))
        for v, s in zip(sc["init_vars"], shapes)
    ]
    if sc["dynamic"]:
        value = lsm.DynamicLossScale(
            sc["initial_scale"], period=sc["dynamic_growth_steps"]
        )
    else:
        value = lsm.StaticLossScale(sc["initial_scale"])
    tx = lsm.loss_scaling(_inner(sc["inner"]), value, unscale=unscale)
    grads = jnp.asarray(
        np.stack(
            [
                np.concatenate([np.asarray(dec(g), np.float32) for g in step])
                for step in sc["grads"]
            ]
        )
    )
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]

    def step(carry, g_flat):
        params, state = carry
        scale = lsm.get_loss_scale(state)
        if unscale:
            g_flat = g_flat * scale
        g = [x.reshape(s) for x, s in zip(jnp.split(g_flat, sizes), shapes)]
        skipped = state.skipped_steps
        updates, state = tx.update(g, state, params)
        params = ox.apply_updates(params, updates)
        out = (
            lsm.get_loss_scale(state),
            state.loss_scale.counter if sc["dynamic"] else jnp.zeros([], jnp.int32),
            state.skipped_steps == skipped,
            params,
        )
        return (params, state), out

    _, (scales, counters, applied, ps) = jax.jit(
        lambda p, gs: jax.lax.scan(step, (p, tx.init(p)), gs)
    )(params, grads)
    return scales, counters, applied, ps


@pytest.mark.parametrize("unscale", [False, True], ids=["unscaled", "scaled"])
@pytest.mark.parametrize("sc", DATA["scenarios"], ids=lambda s: s["name"])
def test_trajectory_matches_tf_keras(sc, unscale):
    scales, counters, applied, ps = _replay(sc, unscale)
    steps = sc["steps"]
    np.testing.assert_array_equal(
        np.asarray(scales), np.float32([dec(s["scale"]) for s in steps])
    )
    np.testing.assert_array_equal(counters, [s["counter"] for s in steps])
    np.testing.assert_array_equal(applied, [s["applied"] for s in steps])
    for i, s in enumerate(steps):
        for j, v in enumerate(s["vars"]):
            np.testing.assert_allclose(
                np.asarray(ps[j][i]).ravel(),
                np.float32(dec(v)),
                rtol=1e-6,
                atol=1e-6,
                err_msg=f"{sc['name']} step {i} var {j}",
            )


def test_scenarios_cover_the_spec():
    names = {s["name"] for s in DATA["scenarios"]}
    assert {
        "skip_then_apply",
        "growth_period_3",
        "floor_from_1.5",
        "no_growth_to_inf",
        "inner_clipnorm",
        "static_applies_nonfinite",
    } <= names
    skipped = sum(not st["applied"] for s in DATA["scenarios"] for st in s["steps"])
    assert skipped >= 30


@pytest.mark.parametrize("path", ["value_and_grad", "scale_loss"])
def test_seed_example(path):
    # §5 item 47: LSO(SGD(0.25)), var = 1, loss = var**2: 0.5, then 0.25.
    ref = DATA["seed_example"]
    unscale = path == "scale_loss"
    tx = lsm.loss_scaling(ox.sgd(ref["lr"]), unscale=unscale)
    var = jnp.float32(ref["var0"])
    state = tx.init(var)
    history = []
    for _ in range(2):
        if unscale:
            grads = jax.grad(lambda v, s=state: lsm.scale_loss(v**2, s))(var)
        else:
            _, grads = lsm.scaled_value_and_grad(lambda v: v**2)(state, var)
        updates, state = tx.update(grads, state, var)
        var = ox.apply_updates(var, updates)
        history.append(float(var))
    assert history == [ref["after_minimize"], ref["after_apply"]]
    assert int(state.loss_scale.counter) == ref["counter"]
    assert float(lsm.get_loss_scale(state)) == ref["scale"]
    # The manual path's intermediate numbers.
    scaled_loss = lsm.scale_loss(jnp.float32(ref["loss"]), state)
    assert float(scaled_loss) == ref["scaled_loss"]
    scaled_grad = jax.grad(lambda v: lsm.scale_loss(v**2, state))(jnp.float32(0.5))
    assert float(scaled_grad) == ref["scaled_grad"]
    assert float(lsm.unscale_gradients(scaled_grad, state)) == ref["unscaled_grad"]


def test_defaults_long_run():
    # tf-keras defaults (2**15, 2000 steps, factor 2): growth after exactly
    # 2000 finite steps, two back-offs, growth again, a NaN.
    ref = DATA["defaults_long"]
    assert ref["defaults"] == {
        "dynamic": True,
        "initial_scale": 32768.0,
        "dynamic_growth_steps": 2000,
    }
    n = ref["n_steps"]
    g = np.ones(n, np.float32)
    for k, v in ref["nonfinite_steps"].items():
        g[int(k)] = float(v)
    tx = lsm.loss_scaling(ox.sgd(ref["lr"]), unscale=False)

    def step(carry, gi):
        var, state = carry
        updates, state = tx.update(gi[None], state, var)
        var = ox.apply_updates(var, updates)
        return (var, state), (
            lsm.get_loss_scale(state),
            state.loss_scale.counter,
            var[0],
        )

    var0 = jnp.zeros(1)
    _, (scales, counters, vars_) = jax.jit(
        lambda gs: jax.lax.scan(step, (var0, tx.init(var0)), gs)
    )(jnp.asarray(g))
    for t, rec in ref["records"].items():
        t = int(t)
        assert float(scales[t]) == rec["scale"], t
        assert int(counters[t]) == rec["counter"], t
        np.testing.assert_allclose(float(vars_[t]), rec["var"], rtol=1e-5, atol=1e-9)
