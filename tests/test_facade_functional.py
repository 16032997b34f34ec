"""The functional escape hatch (``state``, ``stateless_apply``,
``transformation``) gives ``apply_gradients``' numbers; the non-slot weight
hook (Nadam's ``momentum_cache``, Ftrl's variable-major order)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish
from optaxish import Variable, optimizers
from optaxish.optimizers import schedules

STEPS = 50
SHAPES = {"w": (3, 2), "b": (4,), "s": ()}

FACTORIES = {
    "adam_clip_schedule": lambda: optimizers.Adam(
        schedules.ExponentialDecay(0.05, 10, 0.7), amsgrad=True, clipnorm=0.8
    ),
    "nadam": lambda: optimizers.Nadam(0.02),
    "ftrl": lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.01, decay=0.1),
    "sgd_nesterov_transformer": lambda: optimizers.SGD(
        0.05,
        momentum=0.9,
        nesterov=True,
        gradient_transformers=[lambda gv: [(jnp.tanh(g), v) for g, v in gv]],
    ),
    "rmsprop_centered": lambda: optimizers.RMSprop(
        0.01, momentum=0.5, centered=True, global_clipnorm=1.0
    ),
}


def _data(seed):
    rng = np.random.default_rng(seed)
    init = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = {
        k: rng.normal(size=(STEPS, *s)).astype(np.float32) for k, s in SHAPES.items()
    }
    return init, grads


def _reference(make, init, grads):
    opt = make()
    vs = {k: Variable(v, name=k) for k, v in init.items()}
    for t in range(STEPS):
        opt.apply_gradients([(grads[k][t], vs[k]) for k in SHAPES])
    return opt, {k: v.numpy() for k, v in vs.items()}


@pytest.mark.parametrize("case", sorted(FACTORIES))
def test_jitted_stateless_loop_matches_apply_gradients(case):
    make = FACTORIES[case]
    init, grads = _data(hash(case) % 1000)
    ref_opt, ref = _reference(make, init, grads)

    opt = make()
    vs = {k: Variable(v, name=k) for k, v in init.items()}
    opt.build([vs[k] for k in SHAPES])

    @jax.jit
    def run(state, values, grads):
        def body(carry, g):
            values, state = carry
            values, state = opt.stateless_apply(state, [g[k] for k in SHAPES], values)
            return (values, state), None

        (values, state), _ = jax.lax.scan(body, (values, state), grads)
        return values, state

    values, state = run(opt.state, [vs[k].value for k in SHAPES], grads)
    for k, value in zip(SHAPES, values):
        np.testing.assert_allclose(value, ref[k], rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == 0  # the object did not move
    np.testing.assert_array_equal(vs["b"].numpy(), init["b"])
    opt.state = state  # write the loop's state back: same weights as tf-keras'
    for a, b in zip(opt.get_weights(), ref_opt.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(FACTORIES))
def test_transformation_over_a_tree_matches_apply_gradients(case):
    make = FACTORIES[case]
    init, grads = _data(1 + hash(case) % 1000)
    _, ref = _reference(make, init, grads)
    tx = make().transformation()
    params = {k: jnp.asarray(v) for k, v in init.items()}

    @jax.jit
    def run(params, grads):
        def body(carry, g):
            params, state = carry
            updates, state = tx.update(g, state, params)
            return (optaxish.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), grads)
        return params, state

    params, state = run(params, grads)
    assert int(state.iterations) == STEPS
    for k in SHAPES:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-5, atol=1e-6)


def test_transformation_hyperparams_live_in_state():
    tx = optimizers.SGD(0.5).transformation()
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    state.hyperparams["learning_rate"] = jnp.float32(0.1)
    updates, state = tx.update(jnp.ones(2), state, params)
    np.testing.assert_allclose(updates, [-0.1, -0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.ones(2), state)


def test_stateless_apply_errors_and_constraints():
    opt = optimizers.SGD(1.0)
    with pytest.raises(ValueError, match="must be built"):
        opt.stateless_apply(None, [1.0], [1.0])
    v = Variable([0.5, 0.5], constraint=lambda x: jnp.clip(x, 0.0, 1.0))
    opt.build([v])
    with pytest.raises(ValueError, match="length 2, but expected 1"):
        opt.stateless_apply(opt.state, [[1.0, 1.0], [1.0, 1.0]], [v])
    with pytest.raises(ValueError, match="shape"):
        opt.stateless_apply(opt.state, [[1.0]], [v])
    with pytest.raises(ValueError, match="optimizer_variables"):
        opt.stateless_apply({}, [[1.0, 1.0]], [v])
    keras3_values = [w.value for w in opt.variables()]  # Keras 3's habit
    with pytest.raises(ValueError, match="pass `optimizer.state`"):
        opt.stateless_apply(keras3_values, [[1.0, 1.0]], [v])
    (new,), _ = opt.stateless_apply(opt.state, [[1.0, -1.0]], [v])
    np.testing.assert_array_equal(new, [0.0, 1.0])  # constraint applied
    with pytest.raises(ValueError, match="structure"):
        opt.state = {}
    np.testing.assert_array_equal(v.numpy(), [0.5, 0.5])


def test_state_follows_a_callable_learning_rate():
    lr = [0.5]
    opt = optimizers.SGD(lambda: lr[0])
    v = Variable(1.0)
    opt.build([v])
    lr[0] = 0.25
    (new,), state = opt.stateless_apply(opt.state, [1.0], [v])
    assert float(new) == 0.75
    assert float(state.hyperparams["learning_rate"]) == 0.25


# -- the non-slot weight hook -------------------------------------------------------


def test_nadam_momentum_cache_is_a_non_slot_weight():
    a = Variable([1.0, 2.0], name="a")
    opt = optimizers.Nadam(0.1)
    for g in ([1.0, -1.0], [0.5, 0.25], [-2.0, 1.0]):
        opt.apply_gradients([(g, a)])
    names = [w.name for w in opt.weights]
    assert names == [
        "Nadam/iter:0",
        "Nadam/momentum_cache:0",
        "Nadam/a/m:0",
        "Nadam/a/v:0",
    ]
    weights = opt.get_weights()
    b = Variable(a.numpy(), name="a")
    clone = optimizers.Nadam(0.1)
    clone.build([b])
    clone.set_weights(weights)
    np.testing.assert_array_equal(clone.get_weights()[1], weights[1])
    opt.apply_gradients([([0.3, 0.3], a)])
    clone.apply_gradients([([0.3, 0.3], b)])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"weight shape \(\) not compatible"):
        clone.set_weights([weights[0], np.ones(2), *weights[2:]])
    # A fresh transformation starts the cache at 1 even after steps.
    state = opt.transformation().init(jnp.zeros(2))
    assert float(state.hyperparams["momentum_cache"]) == 1.0


def test_ftrl_weights_are_variable_major():
    x, y = Variable([1.0], name="x"), Variable([2.0, 3.0], name="y")
    opt = optimizers.Ftrl(0.1)
    opt.apply_gradients([([1.0], x), ([1.0, 1.0], y)])
    assert [w.name for w in opt.weights] == [
        "Ftrl/iter:0",
        "Ftrl/x/accumulator:0",
        "Ftrl/x/linear:0",
        "Ftrl/y/accumulator:0",
        "Ftrl/y/linear:0",
    ]
    adam = optimizers.Adam()
    adam.apply_gradients([([1.0], x), ([1.0, 1.0], y)])
    assert [w.name for w in adam.weights][1:3] == ["Adam/x/m:0", "Adam/y/m:0"]
