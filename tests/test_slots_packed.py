"""optaxish.slots over packed states (``packing.packed``) and boxed params
(flax ``nnx.Optimizer``): pieces are addressed by parameter name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish as ox
from optaxish import slots
from optaxish.packing import Packed, packed, unpack

LABELS = {"dense": {"kernel": "a", "bias": "b"}, "layers": ["a", "b"], "scale": "b"}


def params_tree():
    k = jax.random.split(jax.random.key(1), 5)
    return {
        "dense": {
            "kernel": jax.random.normal(k[0], (3, 4)),
            "bias": jax.random.normal(k[1], (4,)),
        },
        "layers": [jax.random.normal(k[2], (2,)), jax.random.normal(k[3], (2, 1))],
        "scale": jax.random.normal(k[4], ()),
    }


def grads_at(params, i):
    return jax.tree.map(lambda p: jnp.sin(p * (i + 1.0)), params)


def run(tx, params, state=None, steps=3, start=0):
    state = tx.init(params) if state is None else state
    update = jax.jit(tx.update)
    updates = None
    for i in range(start, start + steps):
        updates, state = update(grads_at(params, i), state, params)
    return updates, state


def lr_adam(learning_rate):
    return packed(ox.adam(learning_rate))


def lr_adam_unpacked(learning_rate):
    return ox.adam(learning_rate)


# (name, the packed transformation, the same transformation unpacked)
CASES = {
    "adam": (packed(ox.adam(0.1)), ox.adam(0.1)),
    "sgd_momentum": (
        packed(ox.sgd(0.1, momentum=0.9, nesterov=True)),
        ox.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    "adamw": (
        packed(ox.adamw(0.05, weight_decay=0.1)),
        ox.adamw(0.05, weight_decay=0.1),
    ),
    "chain_clip": (
        ox.chain(ox.clip_by_global_norm(0.5), packed(ox.adam(0.1))),
        ox.chain(ox.clip_by_global_norm(0.5), ox.adam(0.1)),
    ),
    "packed_chain_clip": (
        packed(ox.chain(ox.clip_by_global_norm(0.5), ox.adam(0.1))),
        ox.chain(ox.clip_by_global_norm(0.5), ox.adam(0.1)),
    ),
    "partition": (
        ox.partition(
            {"a": packed(ox.adam(0.1)), "b": packed(ox.sgd(0.1, momentum=0.5))},
            LABELS,
        ),
        ox.partition({"a": ox.adam(0.1), "b": ox.sgd(0.1, momentum=0.5)}, LABELS),
    ),
    "inject_hyperparams": (
        ox.inject_hyperparams(lr_adam)(learning_rate=0.1),
        ox.inject_hyperparams(lr_adam_unpacked)(learning_rate=0.1),
    ),
    "packed_inject_hyperparams": (
        packed(ox.inject_hyperparams(ox.adam)(learning_rate=0.1)),
        ox.inject_hyperparams(ox.adam)(learning_rate=0.1),
    ),
    "multi_steps": (
        ox.MultiSteps(packed(ox.adam(0.1)), 2).gradient_transformation(),
        ox.MultiSteps(ox.adam(0.1), 2).gradient_transformation(),
    ),
    "loss_scaling": (
        ox.loss_scaling(packed(ox.adam(0.1)), 8.0),
        ox.loss_scaling(ox.adam(0.1), 8.0),
    ),
}


def queries(state):
    """``{query text: kwargs}`` for every piece (the Slot's printed query)."""
    out = {}
    for s in slots.paths(state):
        assert s.query() not in out, s.query()
        out[s.query()] = eval(f"dict({s.query()})")  # noqa: S307 - our own repr
    return out


def has_packed(state):
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, Packed))
    return any(isinstance(x, Packed) for x in leaves)


def assert_same_pieces(ours, reference):
    got, want = queries(ours), queries(reference)
    assert sorted(got) == sorted(want)
    for text, kwargs in want.items():
        kwargs = dict(kwargs)
        slot = kwargs.pop("slot")
        np.testing.assert_allclose(
            slots.get(ours, slot, **kwargs),
            slots.get(reference, slot, **kwargs),
            rtol=1e-6,
            atol=1e-7,
            err_msg=text,
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_get_on_a_packed_state_matches_the_unpacked_state(name):
    params = params_tree()
    tx_packed, tx_plain = CASES[name]
    _, ours = run(tx_packed, params)
    _, reference = run(tx_plain, params)
    assert has_packed(ours)
    assert_same_pieces(ours, reference)
    # Per-parameter reads have the parameter's shape and dtype.
    for s in slots.find(ours, "nu"):
        value = slots.get(ours, s)
        assert value.shape == jnp.shape(
            slots.get(reference, s.slot, param=s.param, label=s.label)
        )
        assert value.dtype == jnp.float32


@pytest.mark.parametrize("name", ["adam", "chain_clip", "partition", "multi_steps"])
def test_set_then_step_matches_the_unpacked_state(name):
    params = params_tree()
    tx_packed, tx_plain = CASES[name]
    _, ours = run(tx_packed, params)
    _, reference = run(tx_plain, params)
    slot = "trace" if name == "partition" else "mu"
    label = "b" if name == "partition" else None
    kernel = jnp.full((3, 4), 0.25)

    def edit(state):
        state = slots.set(state, "mu", kernel, param=("dense", "kernel"))
        return slots.set(state, slot, jnp.array(-2.0), label=label, param="scale")

    new_ours, new_reference = edit(ours), edit(reference)
    assert jax.tree.structure(new_ours) == jax.tree.structure(ours)
    for a, b in zip(jax.tree.leaves(new_ours), jax.tree.leaves(ours)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    np.testing.assert_array_equal(
        slots.get(new_ours, "mu", param=("dense", "kernel")), kernel
    )
    # Nothing else changed.
    np.testing.assert_array_equal(
        slots.get(new_ours, "mu", param=("layers", 0)),
        slots.get(ours, "mu", param=("layers", 0)),
    )
    up_ours, after_ours = run(tx_packed, params, new_ours, steps=2, start=3)
    up_ref, after_ref = run(tx_plain, params, new_reference, steps=2, start=3)
    assert_same_pieces(after_ours, after_ref)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        up_ours,
        up_ref,
    )


def test_whole_slots_and_subtrees_read_and_write_as_trees():
    params = params_tree()
    tx_packed, tx_plain = CASES["partition"]
    _, ours = run(tx_packed, params)
    _, reference = run(tx_plain, params)
    # A whole slot is the per-parameter tree (MaskedNode where not owned).
    whole = slots.get(ours, "mu", label="a")
    want = slots.get(reference, "mu", label="a")
    assert jax.tree.structure(whole) == jax.tree.structure(want)
    jax.tree.map(np.testing.assert_array_equal, whole, want)
    # A prefix selects a subtree.
    layers = slots.get(ours, "trace", param="layers")
    assert isinstance(layers, list) and isinstance(layers[0], ox.MaskedNode)
    np.testing.assert_array_equal(
        layers[1], slots.get(reference, "trace", param=("layers", 1))
    )
    # Written back as trees; the buffers keep their layout.
    zeros = jax.tree.map(jnp.zeros_like, whole)
    new = slots.set(ours, "mu", zeros, label="a")
    mu = new.inner_states["a"].inner_state.inner_state[0].mu
    old = ours.inner_states["a"].inner_state.inner_state[0].mu
    assert isinstance(mu, Packed) and mu.layout == old.layout
    assert float(jnp.abs(mu.buffers[0]).sum()) == 0.0
    new = slots.set(ours, "trace", [ox.MaskedNode(), jnp.ones((2, 1))], param="layers")
    np.testing.assert_array_equal(slots.get(new, "trace", param=("layers", 1)), 1.0)
    np.testing.assert_array_equal(
        slots.get(new, "trace", param="scale"), slots.get(ours, "trace", param="scale")
    )
    with pytest.raises(ValueError, match="structure"):
        slots.set(ours, "trace", [jnp.ones(2), jnp.ones((2, 1))], param="layers")
    # find with a prefix, and the printed paths name the parameters.
    found = slots.find(ours, "mu", param="dense")
    assert [s.param for s in found] == [("dense", "kernel")]
    assert ".mu.unpack()['dense']['kernel']" in str(found[0])
    assert "flat index" not in slots.describe(ours)


def test_unknown_params_list_the_parameter_names():
    _, state = run(packed(ox.adam(0.1)), params_tree(), steps=1)
    with pytest.raises(KeyError) as err:
        slots.get(state, "mu", param="kernel")
    message = str(err.value)
    assert "param=('kernel',)" in message
    assert "param=('dense', 'kernel')" in message
    assert "param=('layers', 1)" in message
    assert "mu.unpack()['dense']['kernel']" in message
    assert set(slots.get(state, "mu", param="dense")) == {"kernel", "bias"}
    with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
        slots.set(state, "nu", jnp.ones(4), param=("dense", "kernel"))


def test_jit_reads_and_writes_without_retracing():
    params = params_tree()
    tx = packed(ox.chain(ox.clip_by_global_norm(1.0), ox.adam(0.1)))
    _, state = run(tx, params)
    traces = []

    @jax.jit
    def step(state):
        traces.append(1)
        return tx.update(grads_at(params, 0), state, params)

    step(state)
    edited = slots.set(state, "mu", jnp.ones((4,)), param=("dense", "bias"))
    edited = slots.set(edited, "count", 7)
    step(edited)
    assert len(traces) == 1
    # Inside jit: the same values as eagerly.
    read = jax.jit(lambda s: slots.get(s, "mu", param=("dense", "bias")))
    np.testing.assert_array_equal(read(edited), 1.0)
    write = jax.jit(lambda s, v: slots.set(s, "nu", v, param="layers"))
    new = write(state, [jnp.full(2, 3.0), jnp.full((2, 1), 4.0)])
    eager = slots.set(
        state, "nu", [jnp.full(2, 3.0), jnp.full((2, 1), 4.0)], param="layers"
    )
    jax.tree.map(np.testing.assert_array_equal, new, eager)
    step(new)
    assert len(traces) == 1


DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


@st.composite
def trees(draw):
    n = draw(st.integers(1, 6))
    shapes = draw(
        st.lists(
            st.lists(st.integers(1, 3), min_size=0, max_size=2), min_size=n, max_size=n
        )
    )
    dtypes = draw(st.lists(st.sampled_from(DTYPES), min_size=n, max_size=n))
    nest = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    tree = {}
    for i, (shape, dtype, deep) in enumerate(zip(shapes, dtypes, nest)):
        leaf = jnp.asarray(rng.normal(size=shape), dtype)
        if deep:
            tree.setdefault("block", {})[f"p{i}"] = leaf
        else:
            tree[f"p{i}"] = leaf
    return tree


@settings(max_examples=15, deadline=None)
@given(trees())
def test_every_leaf_reads_and_writes_like_the_unpacked_tree(params):
    tx = packed(ox.sgd(0.1, momentum=0.9))
    _, state = tx.update(jax.tree.map(lambda p: p + 1, params), tx.init(params))
    trace = unpack(state).inner_state[0].trace
    flat, _ = jax.tree_util.tree_flatten_with_path(trace)
    assert len(slots.find(state, "trace")) == len(flat)
    new = state
    for path, leaf in flat:
        np.testing.assert_array_equal(slots.get(state, "trace", param=path), leaf)
        new = slots.set(new, "trace", jnp.full(leaf.shape, 2, leaf.dtype), param=path)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(state)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
        np.testing.assert_array_equal(a, 2)
    whole = jax.tree.map(lambda x: jnp.full(x.shape, -1, x.dtype), trace)
    new = slots.set(state, "trace", whole)
    jax.tree.map(np.testing.assert_array_equal, unpack(new).inner_state[0].trace, whole)


def test_facade_state_is_per_variable():
    from optaxish import Variable
    from optaxish.optimizers import Adam

    variables = [Variable(jnp.ones(3)), Variable(jnp.ones((2, 2)))]
    opt = Adam(0.1)
    for _ in range(3):  # the optimizer packs a list it steps again and again
        opt.apply_gradients(zip([jnp.ones(3), jnp.ones((2, 2))], variables))
    state = opt.state
    assert not has_packed(state)
    mu = slots.find(state, "mu")
    assert [slots.get(state, s).shape for s in mu] == [(3,), (2, 2)]
    np.testing.assert_allclose(opt.get_slot(variables[1], "m"), slots.get(state, mu[1]))


# ---- flax nnx: params are boxed in Variables --------------------------------

nnx = pytest.importorskip("flax.nnx")


class Model(nnx.Module):
    def __init__(self):
        self.linear = nnx.Linear(2, 3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("pack", [False, True])
def test_nnx_optimizer_params_by_name_without_the_value_step(pack):
    model = Model()
    tx = packed(ox.adam(0.1)) if pack else ox.adam(0.1)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    grads = nnx.grad(lambda m: jnp.sum(m.linear(jnp.ones((1, 2))) ** 2))(model)
    opt.update(model, grads)
    state = opt.opt_state
    assert has_packed(state) == pack
    params = {s.param for s in slots.find(state, "mu")}
    assert params == {("linear", "kernel"), ("linear", "bias")}
    kernel = slots.get(state, "mu", param=("linear", "kernel"))
    assert isinstance(kernel, jax.Array) and kernel.shape == (2, 3)
    long_form = slots.get(state, "mu", param=("linear", "kernel", "value"))
    np.testing.assert_array_equal(kernel, long_form)
    assert isinstance(slots.get(state, "count"), jax.Array)
    assert set(slots.get(state, "nu", param="linear")) == {"kernel", "bias"}
    new = slots.set(state, "mu", jnp.ones((2, 3)), param=("linear", "kernel"))
    new = slots.set(new, "count", 5)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    np.testing.assert_array_equal(slots.get(new, "mu", param=("linear", "kernel")), 1)
    assert int(slots.get(new, "count")) == 5
    assert type(new.inner_state[0].count if pack else new[0].count) is type(
        state.inner_state[0].count if pack else state[0].count
    )


def test_none_leaves_stay_in_the_tree():
    params = {"w": jnp.ones((2, 2)), "frozen": None, "b": jnp.ones(2)}
    tx = packed(ox.adam(0.1))
    _, state = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params))
    mu = slots.get(state, "mu")
    assert mu["frozen"] is None and mu["w"].shape == (2, 2)
    new = slots.set(
        state, "mu", {"w": jnp.zeros((2, 2)), "frozen": None, "b": 5.0 * mu["b"]}
    )
    np.testing.assert_allclose(slots.get(new, "mu", param="b"), 5.0 * mu["b"])
    np.testing.assert_array_equal(slots.get(new, "mu", param="w"), 0.0)
    assert slots.find(state, "mu", param="frozen") == []
