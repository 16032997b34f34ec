"""optaxish and optax/flax transformations are interchangeable."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import optaxish as ox


def _params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.normal(k2, (3,))}


def _loss(params, x):
    return jnp.sum(jnp.tanh(x @ params["w"] + params["b"]) ** 2)


def _train(tx, steps=50):
    params = _params()
    state = tx.init(params)
    x = jax.random.normal(jax.random.key(7), (8, 4))

    @jax.jit
    def step(params, state):
        grads = jax.grad(_loss)(params, x)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_optax_transform_inside_optaxish_chain():
    ours = ox.chain(optax.clip_by_global_norm(0.5), ox.adam(1e-2))
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2))
    _close(_train(ours), _train(ref))


def test_optax_transform_without_extra_args_inside_optaxish_chain():
    plain = optax.GradientTransformation(
        optax.scale(2.0).init, lambda u, s, p=None: optax.scale(2.0).update(u, s, p)
    )
    tx = ox.chain(plain, ox.sgd(1e-2))
    tx.update(_params(), tx.init(_params()), _params(), value=1.0)  # extras dropped


def test_optaxish_transform_inside_optax_chain():
    ours = optax.chain(ox.clip_by_global_norm(0.5), ox.adamw(1e-2), optax.scale(1.0))
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.adamw(1e-2))
    _close(_train(ours), _train(ref))


def test_flax_train_state():
    x = jax.random.normal(jax.random.key(7), (8, 4))

    def fit(tx):
        state = train_state.TrainState.create(apply_fn=None, params=_params(), tx=tx)
        for _ in range(20):
            grads = jax.grad(_loss)(state.params, x)
            state = jax.jit(lambda s, g: s.apply_gradients(grads=g))(state, grads)
        return state.params

    _close(fit(ox.adam(1e-2)), fit(optax.adam(1e-2)))


class _Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return jnp.tanh(self.linear(x))


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_flax_nnx_optimizer(name):
    x = jax.random.normal(jax.random.key(7), (8, 4))

    def fit(tx):
        model = _Model(nnx.Rngs(0))
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, opt):
            grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
            opt.update(model, grads)

        for _ in range(20):
            step(model, opt)
        return nnx.state(model, nnx.Param)

    kwargs = dict(learning_rate=1e-2)
    if name == "sgd":
        kwargs["momentum"] = 0.9
    _close(fit(getattr(ox, name)(**kwargs)), fit(getattr(optax, name)(**kwargs)))


def test_import_optaxish_as_optax_names():
    """optax's commonly used public names exist with the same meaning."""
    names = """GradientTransformation GradientTransformationExtraArgs EmptyState
    identity stateless stateless_with_tree_map set_to_zero apply_updates
    incremental_update periodic_update global_norm safe_norm safe_increment
    scale scale_by_learning_rate scale_by_schedule clip clip_by_global_norm
    clip_by_block_rms trace ema scale_by_adam scale_by_amsgrad scale_by_adamax
    scale_by_rms scale_by_stddev scale_by_rss scale_by_adadelta scale_by_radam
    scale_by_yogi scale_by_belief scale_by_novograd scale_by_lion
    scale_by_factored_rms scale_by_trust_ratio scale_by_sign add_noise
    add_decayed_weights keep_params_nonnegative zero_nans chain named_chain masked
    MaskedNode partition multi_transform freeze inject_hyperparams apply_if_finite
    MultiSteps skip_not_finite skip_large_updates sgd adam adamw amsgrad nadam
    nadamw adamax adamaxw rmsprop adagrad adadelta adabelief lion lamb lars radam
    yogi novograd adafactor sign_sgd noisy_sgd constant_schedule linear_schedule
    polynomial_schedule exponential_decay cosine_decay_schedule
    warmup_cosine_decay_schedule warmup_exponential_decay_schedule
    piecewise_constant_schedule piecewise_interpolate_schedule
    cosine_onecycle_schedule join_schedules sgdr_schedule ScaleByAdamState
    TraceState EmaState InjectHyperparamsState MultiStepsState""".split()
    missing = [n for n in names if not hasattr(ox, n)]
    assert not missing
    for name in names:
        if hasattr(optax, name) and callable(getattr(optax, name)):
            assert callable(getattr(ox, name)), name
