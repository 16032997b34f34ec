"""optaxish.slots (state by name) and optaxish.tree.get/set/... (optax's)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxish as ox
from optaxish import slots


def params_tree(dtype=jnp.float32):
    k = jax.random.split(jax.random.key(0), 4)
    return {
        "dense": {
            "kernel": jax.random.normal(k[0], (3, 4), dtype),
            "bias": jax.random.normal(k[1], (4,), dtype),
        },
        "layers": [jax.random.normal(k[2], (2,), dtype)],
        "scale": jax.random.normal(k[3], (), dtype),
    }


LABELS = {"dense": {"kernel": "a", "bias": "b"}, "layers": ["a"], "scale": "b"}


def two_adams(lib=ox):
    return lib.partition({"a": lib.adam(0.1), "b": lib.adam(0.01, b1=0.5)}, LABELS)


def stepped(tx, params, n=2):
    state = tx.init(params)
    update = jax.jit(tx.update)
    for i in range(n):
        grads = jax.tree.map(lambda p, i=i: p * (i + 1.0), params)
        _, state = update(grads, state, params)
    return state


def leaf_paths(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return sorted(jax.tree_util.keystr(p) for p, _ in flat)


def test_two_adams_under_partition():
    params = params_tree()
    tx = two_adams()
    state = stepped(tx, params)
    inner_a = state.inner_states["a"].inner_state[0]
    inner_b = state.inner_states["b"].inner_state[0]
    # The documented form, and the label-free form for an owned parameter.
    mu = slots.get(state, "mu", transform="scale_by_adam", label="a", param="layers")
    assert mu[0] is inner_a.mu["layers"][0]
    assert (
        slots.get(state, "mu", param=("dense", "kernel"))
        is inner_a.mu["dense"]["kernel"]
    )
    assert (
        slots.get(state, "nu", param=("dense", "bias")) is inner_b.nu["dense"]["bias"]
    )
    assert slots.get(state, "mu", param=("layers", 0)) is inner_a.mu["layers"][0]
    assert slots.get(state, "mu", label="b") is inner_b.mu
    assert slots.get(state, "count", label="b") is inner_b.count
    # Ambiguous queries list the candidates.
    with pytest.raises(KeyError) as err:
        slots.get(state, "count")
    message = str(err.value)
    assert "label='a'" in message and "label='b'" in message
    assert "inner_states['a']" in message
    with pytest.raises(KeyError, match="2 pieces"):
        slots.get(state, "mu", param="dense")  # kernel in "a", bias in "b"
    # optax's bare-key search cannot tell the two Adams apart.
    with pytest.raises(KeyError):
        ox.tree.get(state, "mu")


def test_every_group_owns_every_param_of_its_label():
    params = params_tree()
    state = stepped(two_adams(), params)
    labels = dict(zip(leaf_paths(params), [LABELS_FLAT[p] for p in leaf_paths(params)]))
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, _ in flat:
        found = slots.find(state, "mu", param=path)  # a JAX key path works too
        assert len(found) == 1
        assert found[0].label == labels[jax.tree_util.keystr(path)]


LABELS_FLAT = {
    "['dense']['bias']": "b",
    "['dense']['kernel']": "a",
    "['layers'][0]": "a",
    "['scale']": "b",
}


def test_matches_the_optax_state_layout():
    params = params_tree()
    ours, theirs = stepped(two_adams(ox), params), stepped(two_adams(optax), params)
    for s in slots.paths(ours):
        np.testing.assert_allclose(
            slots.get(ours, s), slots.get(theirs, s), rtol=1e-6, atol=1e-7
        )
    # The optax state is addressed the same way (same class and field names).
    np.testing.assert_allclose(
        slots.get(theirs, "nu", label="b", param="scale"),
        slots.get(ours, "nu", label="b", param="scale"),
        rtol=1e-6,
    )


def complex_optimizer():
    return ox.MultiSteps(
        ox.apply_if_finite(
            ox.named_chain(
                ("clip", ox.clip_by_global_norm(1.0)),
                (
                    "opt",
                    ox.inject_hyperparams(ox.partition)(
                        transforms={
                            "a": ox.adam(0.1),
                            "b": ox.chain(ox.trace(0.9), ox.scale(-0.1)),
                        },
                        param_labels=LABELS,
                    ),
                ),
                (
                    "wd",
                    ox.masked(
                        ox.ema(0.9), {"dense": True, "layers": False, "scale": False}
                    ),
                ),
            ),
            max_consecutive_errors=3,
        ),
        every_k_schedule=2,
    ).gradient_transformation()


def test_paths_cover_every_leaf_exactly_once():
    params = params_tree()
    state = stepped(complex_optimizer(), params, n=3)
    found = [jax.tree_util.keystr(s.path) for s in slots.paths(state)]
    assert sorted(found) == leaf_paths(state)
    assert len(set(found)) == len(found)
    assert slots.describe(state).count("\n") == len(found) - 1
    # Each Slot's printed query selects exactly that piece.
    for s in slots.paths(state):
        kwargs = eval(f"dict({s.query()})")  # noqa: S307 - our own repr
        assert slots.get(state, kwargs.pop("slot"), **kwargs) is (slots.get(state, s))


def test_through_every_wrapper():
    params = params_tree()
    tx = complex_optimizer()
    state = stepped(tx, params, n=3)
    inner = state.inner_opt_state.inner_state  # MultiSteps > apply_if_finite
    part = inner["opt"].inner_state.inner_states
    assert (
        slots.get(state, "mu", param=("dense", "kernel"))
        is (part["a"].inner_state[0].mu["dense"]["kernel"])
    )
    assert (
        slots.get(state, "trace", param="scale")
        is part["b"].inner_state[0].trace["scale"]
    )
    assert (
        slots.get(state, "ema", transform="wd", param=("dense", "bias"))
        is (inner["wd"].inner_state.ema["dense"]["bias"])
    )
    assert slots.get(state, "acc_grads", param="scale") is state.acc_grads["scale"]
    assert slots.get(state, "notfinite_count") is state.inner_opt_state.notfinite_count
    assert int(slots.get(state, "gradient_step")) == 1
    assert int(slots.get(state, "count", transform="ema")) == 1
    assert int(slots.get(state, "count", transform=("opt", "inject_hyperparams"))) == 1
    # named_chain names select too; the Slot's str is a working query.
    (piece,) = slots.find(state, "count", transform="scale_by_adam")
    assert "label='a'" in str(piece)
    assert slots.get(state, piece) is part["a"].inner_state[0].count


def test_set_returns_a_new_state_of_the_same_layout():
    params = params_tree()
    tx = two_adams()
    state = stepped(tx, params)
    new = slots.set(state, "mu", jnp.ones(2), label="a", param=("layers", 0))
    np.testing.assert_array_equal(slots.get(new, "mu", param=("layers", 0)), 1.0)
    assert float(jnp.sum(slots.get(state, "mu", param=("layers", 0)))) != 2.0
    assert jax.tree.structure(new) == jax.tree.structure(state)
    new = slots.set(new, "count", 7, label="b")  # cast to int32
    assert slots.get(new, "count", label="b").dtype == jnp.int32
    whole = jax.tree.map(jnp.zeros_like, slots.get(new, "nu", label="a"))
    new = slots.set(new, "nu", whole, label="a")
    assert float(jnp.sum(slots.get(new, "nu", param=("dense", "kernel")))) == 0.0
    # The new state steps under the same compiled update.
    traces = []
    step = jax.jit(lambda g, s: (traces.append(1), tx.update(g, s, params))[1])
    step(params, state)
    step(params, new)
    assert len(traces) == 1
    with pytest.raises(ValueError, match="shape"):
        slots.set(state, "mu", jnp.ones(3), param=("layers", 0))
    with pytest.raises(ValueError, match="structure"):
        slots.set(state, "nu", {"x": 1.0}, label="a")


def test_set_a_hyperparameter_keeps_float32_under_bf16_params():
    params = params_tree(jnp.bfloat16)
    tx = ox.inject_hyperparams(ox.adam)(learning_rate=0.1, b2=0.999)
    state = slots.set(tx.init(params), "learning_rate", 0.05)
    assert slots.get(state, "learning_rate").dtype == jnp.float32
    assert float(slots.get(state, "learning_rate")) == np.float32(0.05)
    assert slots.get(state, "b2") == np.float32(0.999)
    assert slots.get(state, "mu", param="scale").dtype == jnp.bfloat16


def test_errors_name_the_candidates():
    state = ox.adam(0.1).init(params_tree())
    with pytest.raises(KeyError) as err:
        slots.get(state, "m")
    assert "'mu' (scale_by_adam)" in str(err.value)
    with pytest.raises(KeyError) as err:
        slots.get(state, "mu", param="kernel")
    assert "param=('dense', 'kernel')" in str(err.value)
    with pytest.raises(TypeError, match="tuple"):
        slots.get(state, "mu", param=["dense", "kernel"])
    assert isinstance(err.value, slots.SlotKeyError)


def test_find_with_prefix_and_filters():
    state = ox.chain(ox.trace(0.9), ox.ema(0.5)).init(params_tree())
    assert {s.slot for s in slots.find(state, param="dense")} == {"trace", "ema"}
    assert len(slots.find(state, transform="ema")) == 1 + 4
    dense = slots.get(state, "trace", param="dense")
    assert set(dense) == {"kernel", "bias"}
    assert slots.find(state, "nu") == []


def test_transform_names_come_from_state_classes():
    state = ox.chain(
        ox.clip_by_global_norm(1.0), ox.scale_by_schedule(lambda c: 1.0)
    ).init(params_tree())
    assert {s.transform for s in slots.paths(state)} == {"scale_by_schedule"}


# ---- optaxish.tree.get / set / get_all_with_path / map_params (optax's API) ----


def injected_sgd(lib):
    return lib.chain(
        lib.inject_hyperparams(lib.sgd)(learning_rate=lambda c: 1 / (c + 1)),
        lib.trace(0.9),
    )


@pytest.mark.parametrize("key", ["learning_rate", "count", "trace", "TraceState", "x"])
def test_tree_get_all_with_path_matches_optax(key):
    params = {"w": jnp.ones(2)}
    ours = injected_sgd(ox).init(params)
    theirs = injected_sgd(optax).init(params)
    got = ox.tree.get_all_with_path(ours, key)
    want = optax.tree.get_all_with_path(theirs, key)
    assert [jax.tree_util.keystr(p) for p, _ in got] == [
        jax.tree_util.keystr(p) for p, _ in want
    ]
    for (_, a), (_, b) in zip(got, want):
        assert jax.tree.structure(a).num_leaves == jax.tree.structure(b).num_leaves


def test_tree_get_and_set_match_optax():
    params = {"w": jnp.ones(2)}
    ours, theirs = injected_sgd(ox).init(params), injected_sgd(optax).init(params)
    is_array = lambda path, value: isinstance(value, jax.Array)  # noqa: E731
    assert float(ox.tree.get(ours, "learning_rate", filtering=is_array)) == 1.0
    assert ox.tree.get(ours, "missing", default=3) == 3
    with pytest.raises(KeyError):
        ox.tree.get(ours, "count")  # inject's count and the schedule's count
    new = ox.tree.set(ours, is_array, learning_rate=jnp.asarray(0.5))
    want = optax.tree.set(theirs, is_array, learning_rate=jnp.asarray(0.5))
    assert leaf_paths(new) == leaf_paths(want)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)
    swapped = ox.tree.set(ours, TraceState=ox.TraceState(trace={"w": jnp.full(2, 4.0)}))
    assert float(swapped[1].trace["w"][0]) == 4.0
    with pytest.raises(KeyError, match="nope"):
        ox.tree.set(ours, nope=1)


def test_tree_map_params_with_masked_and_optax():
    params = params_tree()
    mask = {"dense": True, "layers": False, "scale": True}
    tx = ox.chain(ox.masked(ox.adam(0.1), mask), ox.trace(0.5))
    state = tx.init(params)
    # optax's map_params works on our masked, and ours on our states.
    for map_params in (ox.tree.map_params, optax.tree.map_params):
        out = map_params(
            tx, lambda x: x.shape, state, transform_non_params=lambda _: "other"
        )
        assert out[1].trace["dense"]["kernel"] == (3, 4)
        assert out[0].inner_state[0].mu["dense"]["bias"] == (4,)
        assert isinstance(out[0].inner_state[0].mu["layers"], ox.MaskedNode)
        assert out[0].inner_state[0].count == "other"
    specs = jax.tree.map(lambda x: x.ndim, params)
    out = ox.tree.map_params(
        tx,
        lambda x, spec: spec,
        state,
        specs,
        is_leaf=lambda x: isinstance(x, ox.MaskedNode),
    )
    assert out[0].inner_state[0].nu["dense"]["kernel"] == 2
