"""Loss-scale values: the dynamic rule, validation and pytree round trips."""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import loss_scale as ls_mod
from optaxish.loss_scale import (
    DynamicLossScale,
    NoOpLossScale,
    StaticLossScale,
    all_finite,
)

F32_MAX = float(np.finfo(np.float32).max)


def _fields(v):
    return {f: np.asarray(getattr(v, f)) for f in type(v)._fields}


def _assert_same_value(a, b):
    assert type(a) is type(b)
    fa, fb = _fields(a), _fields(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].dtype == fb[k].dtype, k
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _custom():
    return DynamicLossScale(
        loss_scale=96.0,
        counter=3,
        period=7,
        factor=3.0,
        min_loss_scale=4.0,
        max_loss_scale=2.0**20,
    )


ALL_KINDS = [NoOpLossScale(), StaticLossScale(128.0), _custom()]


# ----------------------------------------------------------------- the rule


def _run(ls, finite_seq):
    out = []
    for f in finite_seq:
        ls = ls.adjust(f)
        out.append((float(ls.loss_scale), int(ls.counter)))
    return out


def test_growth_sequence_period_3():
    # keras-behaviour.md §5 item 50 (tf-keras, jmp and Keras 3 agree).
    seq = _run(DynamicLossScale(2.0, period=3), [True] * 7)
    assert seq == [(2, 1), (2, 2), (4, 0), (4, 1), (4, 2), (8, 0), (8, 1)]


def test_defaults_are_tf_keras():
    ls = DynamicLossScale()
    assert float(ls.loss_scale) == 32768.0
    assert int(ls.counter) == 0 and int(ls.period) == 2000
    assert float(ls.factor) == 2.0 and float(ls.min_loss_scale) == 1.0
    assert math.isinf(float(ls.max_loss_scale))
    assert ls.loss_scale.dtype == np.float32 and ls.counter.dtype == np.int32


@pytest.mark.parametrize(
    "start, expected",
    [(1.5, [1.0, 1.0]), (1.0, [1.0, 1.0]), (400.0, [200.0, 100.0])],
)
def test_backoff_is_floored_at_one(start, expected):
    # §5 item 51: tf-keras and jmp floor the back-off at 1.
    seq = _run(DynamicLossScale(start), [False, False])
    assert [s for s, _ in seq] == expected and [c for _, c in seq] == [0, 0]


def test_growth_to_inf_is_not_assigned_but_counter_resets():
    # §5 item 52.
    ls = DynamicLossScale(3e38, counter=0, period=1)
    ls = ls.adjust(True)
    assert float(ls.loss_scale) == float(np.float32(3e38))
    assert int(ls.counter) == 0


def test_counter_resets_on_overflow():
    ls = DynamicLossScale(8.0, counter=5, period=10).adjust(False)
    assert float(ls.loss_scale) == 4.0 and int(ls.counter) == 0


def test_max_loss_scale_caps_growth():
    ls = DynamicLossScale(16.0, period=1, max_loss_scale=40.0)
    seq = _run(ls, [True] * 4 + [False])
    assert seq == [(32, 0), (40, 0), (40, 0), (40, 0), (20, 0)]


def test_custom_factor_and_floor():
    seq = _run(_custom(), [False, False, False, True, True, True, True])
    # 96/3 = 32, 32/3 -> 10.67, 10.67/3 = 3.56 -> floor 4; then growth after 7.
    assert [s for s, _ in seq[:3]] == pytest.approx([32.0, 32.0 / 3, 4.0])
    assert [c for _, c in seq[3:]] == [1, 2, 3, 4]


def test_adjust_rejects_non_scalar_flag():
    with pytest.raises(ValueError, match="scalar bool"):
        DynamicLossScale().adjust(jnp.array([True, False]))


def test_static_and_noop_never_change():
    for ls in (StaticLossScale(8.0), NoOpLossScale()):
        assert ls.adjust(False) is ls
    assert float(NoOpLossScale().loss_scale) == 1.0


# -------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(loss_scale=0.0), "loss_scale"),
        (dict(loss_scale=-2.0), "loss_scale"),
        (dict(loss_scale=math.inf), "loss_scale"),
        (dict(counter=-1), "counter"),
        (dict(period=0), "period"),
        (dict(period=2.5), "period"),
        (dict(factor=0.5), "factor"),
        (dict(min_loss_scale=-1.0), "min_loss_scale"),
        (dict(min_loss_scale=8.0, max_loss_scale=4.0), "max_loss_scale"),
    ],
)
def test_dynamic_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`") as e:
        DynamicLossScale(**kwargs)
    assert "Received" in str(e.value)


def test_static_validation():
    with pytest.raises(ValueError, match="`loss_scale` must be positive"):
        StaticLossScale(0)


def test_traced_values_are_not_validated():
    out = jax.jit(lambda s: DynamicLossScale(s, period=s.astype(jnp.int32)))(
        jnp.float32(-1.0)
    )
    assert float(out.loss_scale) == -1.0 and out.period.dtype == np.int32


def test_values_are_immutable_and_replace_works():
    ls = DynamicLossScale()
    with pytest.raises(AttributeError, match="immutable"):
        ls.loss_scale = 3.0
    assert float(ls.replace(loss_scale=4.0).loss_scale) == 4.0
    with pytest.raises(TypeError, match="no field"):
        ls.replace(scale=1.0)


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("value", ALL_KINDS, ids=lambda v: type(v).__name__)
def test_flatten_unflatten_keeps_every_field(value):
    leaves, treedef = jax.tree.flatten(value)
    assert len(leaves) == len(type(value)._fields)
    _assert_same_value(jax.tree.unflatten(treedef, leaves), value)
    _assert_same_value(jax.tree.map(lambda x: x, value), value)


@pytest.mark.parametrize("value", ALL_KINDS, ids=lambda v: type(v).__name__)
def test_jit_round_trip_keeps_every_field(value):
    _assert_same_value(jax.jit(lambda v: v)(value), value)


@pytest.mark.parametrize("value", ALL_KINDS, ids=lambda v: type(v).__name__)
def test_checkpoint_round_trip_via_numpy(value, tmp_path):
    # What a checkpointer does: leaves to host numpy and a file, then back into
    # the structure of a template.
    leaves, treedef = jax.tree.flatten(value)
    path = tmp_path / "ckpt.npz"
    np.savez(path, *[np.asarray(x) for x in leaves])
    with np.load(path) as f:
        restored = [jnp.asarray(f[f"arr_{i}"]) for i in range(len(leaves))]
    _assert_same_value(jax.tree.unflatten(treedef, restored), value)
    _assert_same_value(pickle.loads(pickle.dumps(jax.device_get(value))), value)


def test_key_paths_name_the_fields():
    paths = [
        jax.tree_util.keystr(p)
        for p, _ in jax.tree_util.tree_flatten_with_path(_custom())[0]
    ]
    assert paths == [
        ".loss_scale",
        ".counter",
        ".period",
        ".factor",
        ".min_loss_scale",
        ".max_loss_scale",
    ]


def test_min_loss_scale_survives_jitted_backoffs():
    # §5 item 58: jmp returns min_loss_scale 1.0 after a jit and falls to 2.0
    # here; every field of ours is a leaf, so the floor of 4 holds.
    ls = DynamicLossScale(8.0, min_loss_scale=4.0)
    step = jax.jit(lambda v: v.adjust(False))
    for _ in range(12):
        ls = step(ls)
    assert float(ls.loss_scale) == 4.0 and float(ls.min_loss_scale) == 4.0


def test_vmap_over_values_with_different_fields():
    batch = jax.tree.map(
        lambda *xs: jnp.stack(xs),
        DynamicLossScale(8.0, period=1, min_loss_scale=1.0),
        DynamicLossScale(8.0, period=2, min_loss_scale=8.0, max_loss_scale=8.0),
        DynamicLossScale(3e38, period=1),
    )
    out = jax.vmap(lambda v, f: v.adjust(f))(batch, jnp.array([True, False, True]))
    np.testing.assert_array_equal(out.loss_scale, np.float32([16.0, 8.0, 3e38]))
    np.testing.assert_array_equal(out.counter, [0, 0, 0])
    np.testing.assert_array_equal(out.min_loss_scale, [1.0, 8.0, 1.0])
    np.testing.assert_array_equal(out.period, [1, 2, 1])
    scaled = jax.vmap(lambda v: v.scale(jnp.float32(1.0)))(batch)
    np.testing.assert_array_equal(scaled, np.float32([8.0, 8.0, 3e38]))


# ----------------------------------------------------------- scale/unscale


def test_scale_and_unscale_keep_dtypes_and_none():
    ls = StaticLossScale(1024.0)
    tree = {"h": jnp.ones(2, jnp.float16), "f": jnp.ones(2), "n": None}
    scaled = ls.scale(tree)
    assert scaled["h"].dtype == jnp.float16 and scaled["n"] is None
    assert float(scaled["h"][0]) == 1024.0
    back = ls.unscale(scaled)
    assert back["h"].dtype == jnp.float16 and back["f"].dtype == jnp.float32
    np.testing.assert_array_equal(back["f"], 1.0)


def test_float16_unscale_does_not_underflow_the_reciprocal():
    # 1/2**30 is below float16's smallest subnormal: a float16 reciprocal
    # (tf-keras) would zero the gradient; the float32 product keeps it.
    ls = StaticLossScale(2.0**30)
    g = jnp.array([2.0**10], jnp.float16)
    assert float(ls.unscale(g)[0]) == 2.0**-20


def test_all_finite():
    assert bool(all_finite({"a": jnp.ones(3), "i": jnp.arange(3), "n": None}))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        tree = {"a": jnp.ones(3), "b": jnp.array([1.0, bad], jnp.float16)}
        assert not bool(all_finite(tree))
        assert not bool(jax.jit(all_finite)(tree))
    assert bool(all_finite([]))
    assert not bool(all_finite(jnp.array([1 + 1j, jnp.inf + 0j])))
    # Large finite values do not overflow the check.
    assert bool(all_finite(jnp.full(1000, F32_MAX)))


def test_public_names():
    for name in (
        "DynamicLossScale",
        "StaticLossScale",
        "NoOpLossScale",
        "loss_scaling",
        "loss_scaling_step",
        "dynamic_loss_scaling",
        "LossScalingState",
        "scale_loss",
        "unscale_gradients",
        "get_loss_scale",
        "scaled_value_and_grad",
        "all_finite",
        "Policy",
    ):
        assert name in ls_mod.__all__


def test_unscale_handles_a_scale_with_a_subnormal_reciprocal():
    # 1/3e38 is subnormal (flushed to zero on CPU): applied in two steps.
    ls = StaticLossScale(3e38)
    unscale = jax.jit(lambda v, x: v.unscale(x))
    assert float(unscale(ls, jnp.float32(3e38))) == 1.0
