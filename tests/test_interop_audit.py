"""Interoperability with optax, flax and JAX tools: the audit's findings.

Each fix is checked against the all-optax composition (optax 0.2.8). The
plain cases (our transforms in ``optax.chain``, flax ``TrainState`` and
``nnx.Optimizer`` with Adam/SGD) are in ``tests/test_interop.py``.
"""

from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, serialization

import optaxish as ox
from optaxish import register_flax_serialization
from optaxish.loss_scale import StaticLossScale, dynamic_loss_scaling, loss_scaling
from optaxish.packing import pack, packed


def _params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.normal(k2, (3,))}


_X = jax.random.normal(jax.random.key(7), (8, 4))


def _loss(params):
    return jnp.sum(jnp.tanh(_X @ params["w"] + params["b"]) ** 2)


def _train(tx, steps=20, with_value=False, params=None):
    params = _params() if params is None else params
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(_loss)(params)
        extra = {"value": loss} if with_value else {}
        updates, state = tx.update(grads, state, params, **extra)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _close(a, b, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _paths_and_leaves(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in flat]


_MASK = {"w": True, "b": False}
_LABELS = {"w": "a", "b": "s"}


# -- Mixing the two libraries: the all-optax composition's numbers ------------

MIXED = {
    "optax.MultiSteps(ox.adam)": (
        lambda: optax.MultiSteps(ox.adam(1e-2), 3),
        lambda: optax.MultiSteps(optax.adam(1e-2), 3),
    ),
    "optax.inject_hyperparams(ox.adamw)": (
        lambda: optax.inject_hyperparams(ox.adamw)(
            learning_rate=optax.linear_schedule(1e-2, 1e-3, 10), weight_decay=0.1
        ),
        lambda: optax.inject_hyperparams(optax.adamw)(
            learning_rate=optax.linear_schedule(1e-2, 1e-3, 10), weight_decay=0.1
        ),
    ),
    "optax.masked(ox.adam)": (
        lambda: optax.masked(ox.adam(1e-2), _MASK),
        lambda: optax.masked(optax.adam(1e-2), _MASK),
    ),
    "optax.multi_transform(ox.adamw(mask), ox.sgd)": (
        lambda: optax.multi_transform(
            {"a": ox.adamw(1e-2, mask={"w": True, "b": True}), "s": ox.sgd(1e-2, 0.9)},
            _LABELS,
        ),
        lambda: optax.multi_transform(
            {
                "a": optax.adamw(1e-2, mask={"w": True, "b": True}),
                "s": optax.sgd(1e-2, 0.9),
            },
            _LABELS,
        ),
    ),
    "optax.apply_if_finite(ox.chain(ox.clip_by_global_norm, ox.adam))": (
        lambda: optax.apply_if_finite(
            ox.chain(ox.clip_by_global_norm(0.1), ox.adam(1e-2)), 2
        ),
        lambda: optax.apply_if_finite(
            optax.chain(optax.clip_by_global_norm(0.1), optax.adam(1e-2)), 2
        ),
    ),
    "optax.contrib.schedule_free(ox.sgd)": (
        lambda: optax.contrib.schedule_free(ox.sgd(1e-2), 1e-2),
        lambda: optax.contrib.schedule_free(optax.sgd(1e-2), 1e-2),
    ),
    "ox.MultiSteps(optax.inject_hyperparams(optax.adam))": (
        lambda: ox.MultiSteps(
            optax.inject_hyperparams(optax.adam)(learning_rate=1e-2), 3
        ),
        lambda: optax.MultiSteps(
            optax.inject_hyperparams(optax.adam)(learning_rate=1e-2), 3
        ),
    ),
    "ox.inject_hyperparams(optax.adamw)": (
        lambda: ox.inject_hyperparams(optax.adamw)(
            learning_rate=optax.linear_schedule(1e-2, 1e-3, 10), weight_decay=0.1
        ),
        lambda: optax.inject_hyperparams(optax.adamw)(
            learning_rate=optax.linear_schedule(1e-2, 1e-3, 10), weight_decay=0.1
        ),
    ),
    "ox.partition(optax.adamw(mask), optax.sgd)": (
        lambda: ox.partition(
            {
                "a": optax.adamw(1e-2, mask={"w": True, "b": True}),
                "s": optax.sgd(1e-2, 0.9),
            },
            _LABELS,
        ),
        lambda: optax.multi_transform(
            {
                "a": optax.adamw(1e-2, mask={"w": True, "b": True}),
                "s": optax.sgd(1e-2, 0.9),
            },
            _LABELS,
        ),
    ),
    "ox.masked(optax.adafactor)": (
        lambda: ox.masked(optax.adafactor(1e-2), _MASK),
        lambda: optax.masked(optax.adafactor(1e-2), _MASK),
    ),
    "ox.apply_if_finite(optax.adam)": (
        lambda: ox.apply_if_finite(optax.adam(1e-2), 2),
        lambda: optax.apply_if_finite(optax.adam(1e-2), 2),
    ),
    "ox.inject_hyperparams(optax.sgd), optax stateful schedule": (
        lambda: ox.inject_hyperparams(optax.sgd)(
            learning_rate=optax.schedules.WrappedSchedule(
                optax.linear_schedule(0.1, 0.01, 10)
            )
        ),
        lambda: optax.inject_hyperparams(optax.sgd)(
            learning_rate=optax.schedules.WrappedSchedule(
                optax.linear_schedule(0.1, 0.01, 10)
            )
        ),
    ),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_mixed_compositions_match_optax(name):
    ours, ref = MIXED[name]
    _close(_train(ours())[0], _train(ref())[0], rtol=2e-5)


@pytest.mark.parametrize("inner", ["ours", "optax"])
def test_reduce_on_plateau_chained_with_either_adam(inner):
    plateau = dict(patience=2, cooldown=1, accumulation_size=1, factor=0.5)
    adam = ox.adam(1e-2) if inner == "ours" else optax.adam(1e-2)
    ours = ox.chain(adam, optax.contrib.reduce_on_plateau(**plateau))
    ref = optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(**plateau))
    got, state = _train(ours, steps=30, with_value=True)
    want, ref_state = _train(ref, steps=30, with_value=True)
    _close(got, want, rtol=2e-5)
    np.testing.assert_allclose(state[1].scale, ref_state[1].scale)


# -- Keyword extras through optax's combinators -----------------------------


def test_polyak_error_explains_optax_combinators_drop_extras():
    tx = optax.chain(ox.polyak_sgd(0.1))
    params = _params()
    with pytest.raises(TypeError, match="optax combinator .* dropped it"):
        tx.update(params, tx.init(params), params, value=jnp.asarray(1.0))


def test_documented_workaround_passes_extras_through_optax():
    wrapped = optax.GradientTransformationExtraArgs(*ox.polyak_sgd(0.1))
    got, _ = _train(optax.chain(wrapped), with_value=True)
    want, _ = _train(optax.chain(optax.polyak_sgd(0.1)), with_value=True)
    _close(got, want)


# -- tree_map_params on our states, and ours on optax's -----------------------


def _shape_or_masked(x):
    return "masked" if isinstance(x, ox.MaskedNode | optax.MaskedNode) else x.shape


def _is_masked(x):
    return isinstance(x, ox.MaskedNode | optax.MaskedNode)


@pytest.mark.parametrize(
    "map_params", [ox.tree.map_params, optax.tree_utils.tree_map_params]
)
@pytest.mark.parametrize("labels", ["tree", "function"])
def test_map_params_over_a_partition_state(map_params, labels):
    param_labels = _LABELS if labels == "tree" else (lambda p: _LABELS)

    def run(lib):
        tx = lib.multi_transform(
            {"a": lib.adam(1e-2), "s": lib.sgd(1e-2, 0.9)}, param_labels
        )
        state = tx.init(_params())
        return map_params(
            tx,
            lambda x: str(_shape_or_masked(x)),
            state,
            transform_non_params=lambda _: "-",
            is_leaf=_is_masked,
        )

    got, want = run(ox), run(optax)
    assert _paths_and_leaves(got) == _paths_and_leaves(want)
    assert got.inner_states["a"].inner_state[0].mu == {"w": "(4, 3)", "b": "masked"}


def test_map_params_over_selective_transform():
    tx = ox.selective_transform(ox.adam(1e-2), freeze_mask=_MASK)
    state = tx.init(_params())
    out = optax.tree_utils.tree_map_params(
        tx, lambda x: x.shape, state, transform_non_params=lambda _: None
    )
    assert out.inner_states["train"].inner_state[0].mu["b"] == (3,)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.adamw(1e-2, mask=_MASK),
        lambda: optax.chain(optax.adam(1e-2), optax.freeze(_MASK)),
        lambda: optax.multi_transform(
            {"a": optax.adam(1e-2), "s": optax.sgd(1e-2)}, _LABELS
        ),
    ],
    ids=["adamw_mask", "freeze", "multi_transform"],
)
def test_our_map_params_over_optax_masked_states(make):
    tx = make()
    state = tx.init(_params())
    kwargs = dict(transform_non_params=lambda _: "-", is_leaf=_is_masked)
    got = ox.tree.map_params(tx, lambda x: str(_shape_or_masked(x)), state, **kwargs)
    want = optax.tree_utils.tree_map_params(
        tx, lambda x: str(_shape_or_masked(x)), state, **kwargs
    )
    assert _paths_and_leaves(got) == _paths_and_leaves(want)


def test_map_params_over_a_packed_state_maps_the_buffers():
    tx = packed(ox.adam(1e-2))
    state = tx.init(_params())
    out = optax.tree_utils.tree_map_params(
        tx, lambda x: x.shape, state, transform_non_params=lambda _: None
    )
    assert out.inner_state[0].mu.buffers == ((15,),)
    assert out.inner_state[0].count is None


def test_map_params_over_lookahead_does_not_warn(caplog):
    tx = ox.lookahead(ox.adam(1e-2), sync_period=2, slow_step_size=0.5)
    params = ox.LookaheadParams.init_synced(_params())
    state = tx.init(params)
    with caplog.at_level(logging.WARNING):
        ox.tree.map_params(tx, lambda x: x.shape, state)
    assert not caplog.records


# -- flax nnx.Optimizer ------------------------------------------------------


class _Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(4, 5, rngs=rngs)
        self.l2 = nnx.Linear(5, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def _fit_nnx(tx, steps=8):
    model = _Model(nnx.Rngs(0))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        grads = nnx.grad(lambda m: jnp.sum(m(_X) ** 2))(model)
        opt.update(model, grads)

    for _ in range(steps):
        step(model, opt)
    return nnx.state(model, nnx.Param)


@pytest.mark.parametrize(
    "ours,ref",
    [
        (
            lambda: packed(ox.adamw(1e-2, weight_decay=0.1)),
            lambda: optax.adamw(1e-2, weight_decay=0.1),
        ),
        (lambda: ox.sm3(1e-2), lambda: optax.sm3(1e-2)),
        (
            lambda: ox.adamw(1e-2, weight_decay=0.1),
            lambda: optax.adamw(1e-2, weight_decay=0.1),
        ),
    ],
    ids=["packed_adamw", "sm3", "adamw"],
)
def test_nnx_optimizer_matches_optax(ours, ref):
    _close(_fit_nnx(ours()), _fit_nnx(ref()))


def test_pack_still_rejects_a_tree_with_other_keys():
    layout = pack({"a": jnp.zeros(3), "b": jnp.zeros(3)}).layout
    with pytest.raises(ValueError, match="does not match the packed layout"):
        pack({"x": jnp.zeros(3), "y": jnp.zeros(3)}, layout)


def test_packed_updates_come_back_in_the_gradients_structure():
    boxed = nnx.state(_Model(nnx.Rngs(0)), nnx.Param)  # Variables, as nnx inits
    plain = nnx.as_pure(boxed)
    tx = packed(ox.adam(1e-2))
    state = tx.init(boxed)
    grads = jax.tree.map(jnp.ones_like, plain)
    updates, _ = tx.update(grads, state, plain)
    assert jax.tree.structure(updates) == jax.tree.structure(plain)
    ref, _ = optax.adam(1e-2).update(grads, optax.adam(1e-2).init(plain), plain)
    _close(updates, ref)


# -- Donated states ----------------------------------------------------------


def _donating_step(tx):
    def step(params, state):
        grads = jax.grad(_loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def test_noisy_sgd_state_can_be_donated_and_init_again():
    tx = ox.noisy_sgd(1e-2, eta=0.01, key=0)
    step = _donating_step(tx)
    for _ in range(2):  # the second init needs the key the first state took
        params = jax.tree.map(jnp.copy, _params())
        state = tx.init(params)
        for _ in range(5):
            params, state = step(params, state)
    ref, _ = _train(optax.noisy_sgd(1e-2, eta=0.01, key=0), steps=5)
    _close(params, ref)


def test_dog_params_and_state_donated_together():
    tx = ox.chain(ox.scale_by_distance_over_gradients(), ox.scale(-1.0))
    params = jax.tree.map(jnp.copy, _params())
    state = tx.init(params)
    step = _donating_step(tx)
    for _ in range(5):
        params, state = step(params, state)
    ref_tx = optax.chain(optax.scale_by_distance_over_gradients(), optax.scale(-1.0))
    ref, _ = _train(ref_tx, steps=5)
    _close(params, ref)


# -- named_chain states restored as plain dicts ------------------------------


def test_named_chain_takes_a_state_with_keys_in_another_order():
    def run(lib):
        tx = lib.named_chain(("momentum", lib.trace(0.9)), ("adam", lib.adam(1e-2)))
        params = _params()
        state = tx.init(params)
        state = {"adam": state["adam"], "momentum": state["momentum"]}  # sorted
        grads = jax.grad(_loss)(params)
        return tx.update(grads, state, params)[0]

    _close(run(ox), run(optax))


def test_named_chain_still_rejects_other_keys():
    tx = ox.named_chain(("momentum", ox.trace(0.9)), ("adam", ox.adam(1e-2)))
    params = _params()
    state = tx.init(params)
    with pytest.raises(ValueError, match="does not belong to this named_chain"):
        tx.update(params, {"adam": state["adam"]}, params)


# -- flax.serialization ------------------------------------------------------

STATES = {
    "inject_hyperparams": lambda: ox.inject_hyperparams(ox.adamw)(
        learning_rate=ox.linear_schedule(1e-2, 1e-3, 10)
    ),
    "MultiSteps": lambda: ox.MultiSteps(
        ox.adam(1e-2), 3, should_skip_update_fn=ox.skip_not_finite
    ),
    "partition": lambda: ox.partition(
        {"a": ox.adam(1e-2), "s": ox.sgd(1e-2, 0.9)}, _LABELS
    ),
    "packed": lambda: packed(ox.adam(1e-2)),
    "packed_inject": lambda: packed(ox.inject_hyperparams(ox.adam)(learning_rate=1e-2)),
    # Loss-scale values are registered pytrees, not NamedTuples: msgpack
    # refused them until `register_flax_serialization` covered them.
    "dynamic_loss_scaling": lambda: dynamic_loss_scaling(
        ox.adam(1e-2), initial_scale=4.0, dynamic_growth_steps=2
    ),
    "static_loss_scaling": lambda: loss_scaling(ox.adam(1e-2), StaticLossScale(8.0)),
}


@pytest.mark.parametrize("name", list(STATES))
def test_flax_msgpack_round_trip_resumes_training(name):
    register_flax_serialization()
    tx = STATES[name]()
    params, state = _train(tx, steps=4)
    data = serialization.to_bytes(state)
    restored = serialization.from_bytes(tx.init(_params()), data)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    step = jax.jit(lambda p, s: tx.update(jax.grad(_loss)(p), s, p))
    _close(step(params, restored), step(params, state), rtol=0, atol=0)


def test_flax_restore_into_another_packed_layout_fails_clearly():
    register_flax_serialization()
    tx = packed(ox.adam(1e-2))
    data = serialization.to_bytes(tx.init({"w": jnp.ones(5)}))
    with pytest.raises(ValueError, match=r"packed from other parameters"):
        serialization.from_bytes(tx.init({"w": jnp.ones(4)}), data)
    # Same buffer length, another parameter: refused too (was silently mixed).
    with pytest.raises(ValueError, match=r"packed from other parameters"):
        serialization.from_bytes(tx.init({"v": jnp.ones(5)}), data)


def test_flax_restores_a_dynamic_loss_scale_mid_training():
    register_flax_serialization()
    tx = dynamic_loss_scaling(ox.sgd(0.1), initial_scale=64.0, dynamic_growth_steps=3)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    for g in (1.0, jnp.inf, 1.0, 1.0):  # a skip halves the scale; two finite steps
        state = tx.update({"w": jnp.full(2, g)}, state, params)[1]
    restored = serialization.from_bytes(tx.init(params), serialization.to_bytes(state))
    for field in ("loss_scale", "counter", "period", "factor", "min_loss_scale"):
        assert getattr(restored.loss_scale, field) == getattr(state.loss_scale, field)
    assert float(restored.loss_scale.loss_scale) == 32.0
    assert int(restored.loss_scale.counter) == 2
    with pytest.raises(ValueError, match="is not a StaticLossScale"):
        target = loss_scaling(ox.sgd(0.1), StaticLossScale(8.0)).init(params)
        serialization.from_bytes(target, serialization.to_bytes(state))


def test_register_flax_serialization_twice_is_harmless():
    register_flax_serialization()
    register_flax_serialization()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = pack({"a": jnp.ones(2), "n": jnp.arange(3)})
        restored = serialization.msgpack_restore(
            serialization.msgpack_serialize(serialization.to_state_dict(value))
        )
    assert sorted(restored) == ["0", "1", "layout"]
