"""Audit of the schedules against optax 0.2.8 and tf-keras 2.21.

Covers what `test_schedules.py` and `test_keras_schedules.py` leave out: the
names of ``optax.schedules``, float step counts and gradients through the count
(compared with optax directly), the output type, and tf-keras' legacy
serialization form (literal numbers and dicts from tf-keras).
"""

from __future__ import annotations

import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optaxish
import optaxish.schedules
from optaxish.optimizers import schedules as keras_schedules

# -- optax.schedules' names ---------------------------------------------------


def test_every_optax_schedules_name_is_in_optaxish_schedules():
    # `import optaxish as optax; optax.schedules.inject_hyperparams(...)` must
    # work as it does with optax, and give the top-level object.
    names = sorted(n for n in dir(optax.schedules) if not n.startswith("_"))
    missing = [n for n in names if not hasattr(optaxish.schedules, n)]
    assert not missing, f"missing from optaxish.schedules: {missing}"
    for name in names:
        assert getattr(optaxish.schedules, name) is getattr(optaxish, name), name


def test_inject_hyperparams_from_the_schedules_module():
    m = optaxish.schedules
    tx = m.inject_hyperparams(optaxish.sgd)(
        learning_rate=m.linear_schedule(1.0, 0.0, transition_steps=4)
    )
    params = jnp.ones(2)
    state = tx.init(params)
    assert isinstance(state, m.InjectHyperparamsState)
    for want in (1.0, 0.75, 0.5):
        updates, state = tx.update(jnp.ones(2), state, params)
        np.testing.assert_allclose(updates, [-want, -want])


# -- float counts and gradients, against optax ---------------------------------

BUILDERS = {
    "constant": lambda m: m.constant_schedule(0.5),
    "linear": lambda m: m.linear_schedule(1.0, 0.1, 10, 3),
    "polynomial": lambda m: m.polynomial_schedule(1.0, 0.1, 2.5, 10, 3),
    "exponential": lambda m: m.exponential_decay(1.0, 5, 0.5, 2, end_value=0.05),
    "exponential_up": lambda m: m.exponential_decay(1.0, 4, 1.5, end_value=3.0),
    "staircase": lambda m: m.exponential_decay(1.0, 2.5, 0.5, 1.5, staircase=True),
    "cosine": lambda m: m.cosine_decay_schedule(1.0, 10, 0.1, 2.0),
    "piecewise_constant": lambda m: m.piecewise_constant_schedule(
        1.0, {5: 0.5, 2: 0.1, 0: 2.0}
    ),
    "piecewise_linear": lambda m: m.piecewise_interpolate_schedule(
        "linear", 1.0, {5: 0.5, 2.5: 0.1}
    ),
    "piecewise_cosine": lambda m: m.piecewise_interpolate_schedule(
        "cosine", 1.0, {0: 0.5, 8: 0.1}
    ),
    "linear_onecycle": lambda m: m.linear_onecycle_schedule(12, 1.0),
    "cosine_onecycle": lambda m: m.cosine_onecycle_schedule(12, 1.0, 0.25),
    "warmup_constant": lambda m: m.warmup_constant_schedule(0.0, 1.0, 4),
    "warmup_cosine": lambda m: m.warmup_cosine_decay_schedule(0.0, 1.0, 4, 14, 0.1),
    "warmup_exponential": lambda m: m.warmup_exponential_decay_schedule(
        0.1, 1.0, 4, 3, 0.5, 2
    ),
    "sgdr": lambda m: m.sgdr_schedule(
        [dict(init_value=0.0, peak_value=1.0, warmup_steps=2, decay_steps=6)] * 3
    ),
    "join": lambda m: m.join_schedules(
        [m.constant_schedule(1.0), m.linear_schedule(1.0, 0.0, 4)], [3]
    ),
}

# Negative counts, every quarter step to past the end, boundaries included.
FLOAT_COUNTS = np.arange(-3.0, 25.25, 0.25, dtype=np.float32)


def _optax_reference(schedule, counts):
    # optax's piecewise schedules only take scalar counts: one call each.
    return np.asarray([np.float32(schedule(c)) for c in counts], np.float32)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_float_counts_match_optax(name):
    ours, ref = BUILDERS[name](optaxish), BUILDERS[name](optax)
    want = _optax_reference(ref, FLOAT_COUNTS)
    eager = np.asarray([ours(c) for c in FLOAT_COUNTS])
    np.testing.assert_allclose(eager, want, rtol=1e-6, atol=1e-7)
    # Compiled, divisions by constants become multiplications by reciprocals:
    # values may move by an ulp of the schedule's scale (for optax too).
    traced = jax.jit(jax.vmap(ours))(jnp.asarray(FLOAT_COUNTS))
    assert traced.dtype == jnp.float32
    np.testing.assert_allclose(traced, want, rtol=1e-5, atol=1e-6)


def _count_gradients(schedule, compile):
    d = jax.vmap(jax.grad(lambda c: jnp.asarray(schedule(c), jnp.float32)))
    return np.asarray((jax.jit(d) if compile else d)(jnp.asarray(FLOAT_COUNTS)))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_gradient_through_the_count_matches_optax(name):
    # The reference is optax run op by op: compiled, its fractional-power
    # polynomial has NaN gradients past the end (see test_schedules.py).
    want = _count_gradients(BUILDERS[name](optax), compile=False)
    ours = BUILDERS[name](optaxish)
    for compile in (False, True):
        got = _count_gradients(ours, compile)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_gradient_at_the_end_of_a_linear_transition_is_optax_subgradient():
    # At the last step of the transition the value has a kink; optax's
    # gradient there is half the slope (from `jnp.clip`). Clamping the
    # remaining fraction with `jnp.maximum` halved it once more.
    for module in (optax, optaxish):
        schedule = module.linear_schedule(1.0, 0.0, transition_steps=10)
        grad = jax.grad(lambda c, s=schedule: jnp.asarray(s(c), jnp.float32))
        assert float(grad(10.0)) == pytest.approx(-0.05), module.__name__
        assert float(jax.jit(grad)(10.0)) == pytest.approx(-0.05), module.__name__


def test_gradient_through_the_values_matches_optax():
    def grads(m):
        def value(v):
            parts = (
                m.linear_schedule(v, 0.0, 10)(3),
                m.exponential_decay(1.0, 10, v)(3),
                m.warmup_cosine_decay_schedule(0.0, v, 2, 10, 0.1)(5),
                m.piecewise_interpolate_schedule("cosine", v, {2: 0.5, 6: 0.5})(5),
                m.linear_onecycle_schedule(10, v)(4),
            )
            return jnp.stack([jnp.asarray(p, jnp.float32) for p in parts])

        return np.asarray(jax.jacobian(value)(0.7))

    np.testing.assert_allclose(grads(optaxish), grads(optax), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_output_is_strong_float32_for_every_count_type(name):
    # Deliberate: optax's output is weakly typed for some count types only
    # (documented in `optaxish.schedules`).
    schedule = BUILDERS[name](optaxish)
    for count in (3, np.int64(3), jnp.int32(3), jnp.float32(3.5), 3.5):
        out = schedule(count)
        assert out.dtype == jnp.float32 and not out.weak_type, count
    out = jax.jit(schedule)(jnp.int32(3))
    assert out.dtype == jnp.float32 and not out.weak_type


# -- tf-keras' serialize/deserialize signature and legacy form -----------------


def test_serialize_and_deserialize_have_tf_keras_signature():
    # inspect.signature(tf_keras.optimizers.schedules.serialize / deserialize)
    want = {
        "serialize": [("learning_rate_schedule", inspect.Parameter.empty),
                      ("use_legacy_format", False)],
        "deserialize": [("config", inspect.Parameter.empty),
                        ("custom_objects", None), ("use_legacy_format", False)],
    }  # fmt: skip
    for name, params in want.items():
        got = inspect.signature(getattr(keras_schedules, name)).parameters
        assert [(p.name, p.default) for p in got.values()] == params, name


class _Halving(keras_schedules.LearningRateSchedule):
    def __init__(self, lr):
        self.lr = lr

    def __call__(self, step):
        return self.lr * 0.5 ** jnp.floor(jnp.asarray(step, jnp.float32) / 2)

    def get_config(self):
        return {"lr": self.lr}


def test_serialize_legacy_format_matches_tf_keras():
    s = keras_schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
    # tf_keras.optimizers.schedules.serialize(ExponentialDecay(0.1, 3, 0.5),
    #                                          use_legacy_format=True)
    legacy = {
        "class_name": "ExponentialDecay",
        "config": {
            "initial_learning_rate": 0.1,
            "decay_steps": 3,
            "decay_rate": 0.5,
            "staircase": False,
            "name": None,
        },
    }
    assert keras_schedules.serialize(s, use_legacy_format=True) == legacy
    # The default stays the new form.
    assert keras_schedules.serialize(s)["module"] == "keras.optimizers.schedules"
    # tf-keras gives {'class_name': 'Halving', 'config': {'lr': 0.1}} for a
    # custom schedule in the legacy form.
    assert keras_schedules.serialize(_Halving(0.1), use_legacy_format=True) == {
        "class_name": "_Halving",
        "config": {"lr": 0.1},
    }
    data = json.loads(json.dumps(legacy))
    for flag in (True, False):
        revived = keras_schedules.deserialize(data, use_legacy_format=flag)
        assert revived.get_config() == legacy["config"]
        assert float(revived(3)) == pytest.approx(0.05)
    custom = keras_schedules.deserialize(
        keras_schedules.serialize(_Halving(0.4), use_legacy_format=True),
        custom_objects={"_Halving": _Halving},
        use_legacy_format=True,
    )
    assert isinstance(custom, _Halving) and float(custom(4)) == pytest.approx(0.1)
