"""Mixed-precision policies and floating-point tree casts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish as ox
from optaxish import loss_scale as lsm
from optaxish.loss_scale import Policy, get_policy

F32, F16, BF16 = np.dtype("float32"), np.dtype("float16"), np.dtype(jnp.bfloat16)


@pytest.mark.parametrize(
    "name, dtypes",
    [
        ("float32", (F32, F32, F32)),
        ("mixed_float16", (F32, F16, F32)),
        ("mixed_bfloat16", (F32, BF16, F32)),
        ("bfloat16", (BF16, BF16, BF16)),
        ("params=float32,compute=float16,output=float16", (F32, F16, F16)),
        ("p=f32,c=bf16,o=f32", (F32, BF16, F32)),
        ("c=half", (F32, F16, F32)),
    ],
)
def test_presets_and_strings(name, dtypes):
    p = Policy.from_name(name)
    assert (p.param_dtype, p.compute_dtype, p.output_dtype) == dtypes
    assert p.variable_dtype == p.param_dtype
    assert get_policy(p.name) == p and get_policy(p) is p


def test_policy_is_hashable_static_and_immutable():
    p = Policy("float32", "float16")
    assert p.output_dtype == F32 and hash(p) == hash(Policy(F32, F16, F32))
    with pytest.raises(AttributeError):
        p.compute_dtype = F32

    @jax.jit
    def f(x, policy=p):
        return policy.cast_to_compute(x)

    f2 = jax.jit(lambda x, policy: policy.cast_to_compute(x), static_argnums=1)
    assert f(jnp.ones(2)).dtype == F16
    assert f2(jnp.ones(2), p).dtype == F16
    assert repr(p) == (
        "Policy(param_dtype=float32, compute_dtype=float16, output_dtype=float32)"
    )
    assert (
        p.with_output_dtype("float16").name
        == "params=float32,compute=float16,output=float16"
    )


@pytest.mark.parametrize(
    "bad, match",
    [
        ("mixed_float8", "Unknown policy"),
        ("params=float32,colour=red", "Cannot parse"),
        ("params=int32", "floating dtype"),
    ],
)
def test_bad_names(bad, match):
    with pytest.raises(ValueError, match=match):
        Policy.from_name(bad)


def test_bad_dtype_argument_is_named():
    with pytest.raises(ValueError, match="`compute_dtype` must be a floating dtype"):
        Policy("float32", "int8")
    with pytest.raises(TypeError, match="string"):
        Policy.from_name(16)


def test_casts_touch_only_floating_leaves():
    tree = {
        "w": jnp.ones(2),
        "h": jnp.ones(2, jnp.float16),
        "i": jnp.arange(2),
        "b": jnp.array([True]),
        "c": jnp.ones(1, jnp.complex64),
        "n": None,
        "np": np.ones(1, np.float64),
    }
    p = Policy.from_name("mixed_bfloat16")
    out = p.cast_to_compute(tree)
    assert out["w"].dtype == BF16 and out["h"].dtype == BF16 and out["np"].dtype == BF16
    assert out["i"].dtype == tree["i"].dtype and out["b"].dtype == np.bool_
    assert out["c"].dtype == np.complex64 and out["n"] is None
    assert lsm.cast_to_full(out)["w"].dtype == F32
    assert lsm.cast_to_half(tree)["w"].dtype == F16
    assert lsm.cast_to_bfloat16(tree)["h"].dtype == BF16
    assert lsm.cast_floating(tree, "float16")["i"].dtype == tree["i"].dtype


def test_master_params_float32_compute_float16_updates_float32():
    # The recipe: float32 params, float16 forward pass, float32 loss, float32
    # gradients and updates, loss scaling in between.
    policy = Policy.from_name("mixed_float16")
    params = {"w": jnp.full((3, 2), 0.5), "b": jnp.zeros(2)}
    x = jnp.ones((4, 3))

    def loss_fn(p):
        p = policy.cast_to_compute(p)
        y = policy.cast_to_compute(x) @ p["w"] + p["b"]
        assert y.dtype == F16
        return jnp.mean(policy.cast_to_output(y) ** 2)

    tx = lsm.loss_scaling(ox.adam(1e-2), unscale=False)

    @jax.jit
    def step(params, state):
        loss, grads = lsm.scaled_value_and_grad(loss_fn)(state, params)
        updates, state = tx.update(grads, state, params)
        return ox.apply_updates(params, updates), state, loss, grads

    new, _, loss, grads = step(params, tx.init(params))
    assert loss.dtype == F32
    assert jax.tree.map(lambda g: g.dtype, grads) == {"w": F32, "b": F32}
    assert jax.tree.map(lambda g: g.dtype, new) == {"w": F32, "b": F32}
    assert float(loss_fn(new)) < float(loss)
