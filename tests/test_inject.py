"""inject_hyperparams: parity with optax, schedules, overwriting, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish as ox
from optaxish import slots

STEPS = 50


def random_params(seed, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "w": jax.random.normal(k[0], (3, 4), dtype),
        "b": jax.random.normal(k[1], (4,), dtype),
        "s": jax.random.normal(k[2], (), dtype),
    }


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b
    )


def make_injected(lib, hp):
    schedule = lambda count: hp["lr"] * 0.97**count  # noqa: E731
    return lib.chain(
        lib.inject_hyperparams(lib.adam)(
            learning_rate=schedule, b1=hp["b1"], b2=0.99, eps=1e-6
        ),
        lib.inject_hyperparams(lib.trace, static_args="nesterov")(
            decay=hp["decay"], nesterov=True
        ),
    )


@jax.jit
def run_pair(params, target, hp):
    """The same injected chain in both libraries, STEPS steps each."""

    def run(lib):
        tx = make_injected(lib, hp)

        def step(carry, t):
            p, s = carry
            g = jax.tree.map(lambda x, y: x - y + 0.05 * jnp.sin(t + x), p, target)
            u, s = tx.update(g, s, p)
            return (lib.apply_updates(p, u), s), s[0].hyperparams["learning_rate"]

        init = (params, tx.init(params))
        return jax.lax.scan(step, init, jnp.arange(STEPS))

    return run(ox), run(optax)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 1000),
    lr=st.floats(1e-3, 0.1),
    b1=st.floats(0.5, 0.95),
    decay=st.floats(0.0, 0.9),
)
def test_injected_chain_matches_optax(seed, lr, b1, decay):
    hp = {k: jnp.float32(v) for k, v in dict(lr=lr, b1=b1, decay=decay).items()}
    ours, theirs = run_pair(random_params(seed), random_params(seed + 1), hp)
    (p_ours, s_ours), lrs_ours = ours
    (p_theirs, s_theirs), lrs_theirs = theirs
    assert_close(p_ours, p_theirs)
    assert_close(lrs_ours, lrs_theirs)  # the logged schedule values
    assert_close(jax.tree.leaves(s_ours), jax.tree.leaves(s_theirs))
    assert isinstance(s_ours[0], ox.InjectStatefulHyperparamsState)
    assert int(s_ours[0].count) == STEPS


def test_state_fields_and_schedule_logging():
    tx = ox.inject_hyperparams(ox.sgd)(learning_rate=lambda c: 1.0 / (c + 1))
    state = tx.init(jnp.zeros(2))
    assert state._fields == (
        "count",
        "hyperparams",
        "hyperparams_states",
        "inner_state",
    )
    assert isinstance(state, ox.InjectHyperparamsState)
    assert float(state.hyperparams["learning_rate"]) == 1.0
    assert isinstance(
        state.hyperparams_states["learning_rate"], ox.WrappedScheduleState
    )
    for expected in (1.0, 0.5, 1 / 3):
        updates, state = tx.update(jnp.ones(2), state)
        np.testing.assert_allclose(updates, -expected, rtol=1e-6)
        np.testing.assert_allclose(state.hyperparams["learning_rate"], expected)


def test_overwriting_a_hyperparameter_takes_effect_without_recompiling():
    traces = []

    def factory(learning_rate):
        traces.append(1)
        return ox.sgd(learning_rate)

    tx = ox.inject_hyperparams(factory)(learning_rate=0.1)
    step = jax.jit(tx.update)
    state = tx.init(jnp.zeros(3))
    u, state = step(jnp.ones(3), state)
    np.testing.assert_allclose(u, -0.1, rtol=1e-6)
    # A Python float works (optax's idiom); being weakly typed, it retraces once.
    state.hyperparams["learning_rate"] = 0.5
    u, state = step(jnp.ones(3), state)
    np.testing.assert_allclose(u, -0.5, rtol=1e-6)
    n_traces = len(traces)
    # Values of the stored dtype never retrace: slots.set casts to it.
    state = slots.set(state, "learning_rate", 0.25)
    u, state = step(jnp.ones(3), state)
    np.testing.assert_allclose(u, -0.25, rtol=1e-6)
    state = state._replace(hyperparams={"learning_rate": jnp.float32(0.125)})
    u, state = step(jnp.ones(3), state)
    np.testing.assert_allclose(u, -0.125, rtol=1e-6)
    assert len(traces) == n_traces  # no retrace, so no recompilation
    assert state.hyperparams["learning_rate"].dtype == jnp.float32


def test_bf16_params_keep_float32_hyperparameters():
    params = random_params(0, jnp.bfloat16)
    tx = ox.inject_hyperparams(ox.adam)(learning_rate=0.01, b2=0.999)
    state = tx.init(params)
    assert state.hyperparams["b2"].dtype == jnp.float32
    assert state.hyperparams["b2"] == np.float32(0.999)
    step = jax.jit(tx.update)
    for _ in range(3):
        updates, new_state = step(params, state, params)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
            assert old.dtype == new.dtype
        state = new_state
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
    assert state.hyperparams["b2"] == np.float32(0.999)
    # optax (issue #1414) rounds b2 to bfloat16, where it becomes 1.0.
    optax_b2 = optax.inject_hyperparams(optax.adam)(b2=0.999, learning_rate=0.01)
    assert float(optax_b2.init(params).hyperparams["b2"]) == 1.0


def test_bf16_updates_with_an_optax_inner_factory():
    params = random_params(1, jnp.bfloat16)
    tx = ox.inject_hyperparams(optax.adam)(learning_rate=0.01)
    state = tx.init(params)
    updates, new_state = jax.jit(tx.update)(params, state, params)
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        assert old.dtype == new.dtype


def test_hyperparam_dtype_and_strong_arrays_are_respected():
    tx = ox.inject_hyperparams(ox.adam, hyperparam_dtype=jnp.bfloat16)(
        learning_rate=0.1, b1=jnp.asarray(0.9, jnp.float32)
    )
    hp = tx.init(jnp.zeros(2)).hyperparams
    assert hp["learning_rate"].dtype == jnp.bfloat16
    assert hp["b1"].dtype == jnp.float32  # a strongly typed array is kept


def test_stateful_schedule_receives_extra_args():
    class HalveOnLargeLoss:
        def init(self):
            return jnp.asarray(1.0)

        def update(self, state, loss=0.0, **extra):
            return jnp.where(loss > 1.0, state / 2, state)

        def __call__(self, state, **extra):
            return state

    assert isinstance(HalveOnLargeLoss(), ox.StatefulSchedule)
    for lib in (ox, optax):
        tx = lib.inject_hyperparams(lib.sgd)(learning_rate=HalveOnLargeLoss())
        state = tx.init(jnp.zeros(1))
        _, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(5.0))
        u, state = tx.update(jnp.ones(1), state, loss=jnp.asarray(0.1))
        np.testing.assert_allclose(u, -0.5)


def test_errors():
    with pytest.raises(ValueError, match="static_args"):
        ox.inject_hyperparams(ox.adam, static_args=("nope",))
    with pytest.raises(TypeError, match="adam"):
        ox.inject_hyperparams(ox.adam)(learning_rate=0.1, lr=0.1)
    # Plain numbers are validated eagerly by the factory.
    with pytest.raises(ValueError, match="b1"):
        ox.inject_hyperparams(ox.adam)(learning_rate=0.1, b1=1.5)
    # A schedule is not validated (it only has a value at run time).
    ox.inject_hyperparams(ox.adam)(learning_rate=0.1, b1=lambda c: 1.5)


def test_inject_stateful_hyperparams_alias_and_extra_args():
    assert ox.inject_stateful_hyperparams is ox.inject_hyperparams
    seen = {}

    def factory(step_size):
        def update_fn(updates, state, params=None, **extra):
            seen.update(extra)
            return jax.tree.map(lambda g: step_size * g, updates), state

        return ox.GradientTransformationExtraArgs(ox.init_empty_state, update_fn)

    tx = ox.inject_hyperparams(factory)(step_size=2.0)
    u, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)), value=jnp.asarray(3.0))
    assert float(u[0]) == 2.0 and float(seen["value"]) == 3.0


def test_map_params_through_inject_hyperparams():
    tx = ox.inject_hyperparams(ox.adam)(learning_rate=0.1)
    params = random_params(2)
    state = tx.init(params)
    shapes = ox.tree.map_params(
        tx, lambda x: x.shape, state, transform_non_params=lambda _: None
    )
    assert shapes.inner_state[0].mu["w"] == (3, 4)
    assert shapes.hyperparams["learning_rate"] is None
