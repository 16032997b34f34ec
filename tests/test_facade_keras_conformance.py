"""Keras API conformance of the Keras-style facade (tf-keras 2.21 audit).

Weight order of the Keras 3 classes, configs of tf-keras' new-style and
Keras 3's optimizers loading into the legacy classes, weight decay
exclusions, ``Adagrad(epsilon=0)``, a schedule learning rate that cannot be
replaced, Keras 1 ``Adam`` weight lists, configs before the hyperparameters
are created and ``global_clipnorm`` with a non-finite norm. The reference
numbers and configs were produced with tf-keras 2.21 (``tf_keras``) and are
recorded here as literals: TensorFlow is not needed.
"""

from __future__ import annotations

import copy
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optaxish
from optaxish import Variable, mixed_precision, optimizers
from optaxish.optimizers import (
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Ftrl,
    Lion,
    Nadam,
    RMSprop,
    schedules,
)
from optaxish.optimizers._optimizer import _NEW_STYLE_KWARGS
from tests.keras_fixtures import load_case

F32_0_9 = 0.8999999761581421  # float(np.float32(0.9))
F32_0_999 = 0.9990000128746033
F32_0_1 = 0.10000000149011612


def _grads(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


# -- 4. AdamW's weights: per variable (tf-keras' new-style / Keras 3 order) ----------


def _two_steps(opt, a, b):
    for ga, gb in (([1.0, 1.0], [-3.0, 5.0]), ([0.5, -2.0], [1.0, 0.25])):
        opt.apply_gradients(zip(_grads(ga, gb), [a, b]))


def test_adamw_weights_are_listed_per_variable():
    # tf_keras.optimizers.AdamW(0.1).variables after a step over a, b:
    # ['iteration:0', 'AdamW/m/a:0', 'AdamW/v/a:0', 'AdamW/m/b:0', 'AdamW/v/b:0']
    # and with amsgrad=True: ... 'AdamW/v/b:0', 'AdamW/vhat/a:0', 'AdamW/vhat/b:0'.
    a, b = Variable([1.0, 2.0], name="a"), Variable([3.0, 4.0], name="b")
    opt = AdamW(0.1)
    _two_steps(opt, a, b)
    assert [w.name for w in opt.weights] == [
        "AdamW/iter:0",
        "AdamW/a/m:0",
        "AdamW/a/v:0",
        "AdamW/b/m:0",
        "AdamW/b/v:0",
    ]
    weights = opt.get_weights()
    np.testing.assert_array_equal(weights[1], opt.get_slot(a, "m"))
    np.testing.assert_array_equal(weights[2], opt.get_slot(a, "v"))
    np.testing.assert_array_equal(weights[3], opt.get_slot(b, "m"))
    ams = AdamW(0.1, amsgrad=True)
    _two_steps(ams, Variable([1.0, 2.0], name="a"), Variable([3.0, 4.0], name="b"))
    assert [w.name[6:-2] for w in ams.weights] == [
        "iter",
        "a/m",
        "a/v",
        "b/m",
        "b/v",
        "a/vhat",
        "b/vhat",
    ]
    # Lion has one slot (tf-keras: ['iteration:0', 'Lion/m/a:0', 'Lion/m/b:0']).
    lion = Lion(0.1)
    _two_steps(lion, Variable([1.0, 2.0], name="a"), Variable([3.0, 4.0], name="b"))
    assert [w.name for w in lion.weights] == ["Lion/iter:0", "Lion/a/m:0", "Lion/b/m:0"]


def test_adamw_loads_a_tf_keras_weight_list():
    # The fixture's weights are tf-keras' `variables` in its order; loaded into
    # a fresh optimizer, every slot gets its own value.
    case = load_case("adamw/adamw_amsgrad")
    opt = AdamW(**case.optimizer["kwargs"])
    variables = [Variable(init, name=name) for init, name in zip(case.init, case.names)]
    opt.build(variables)
    opt.set_weights(case.weights)
    assert int(opt.iterations) == case.num_steps
    for (i, name), value in case.slots.items():
        np.testing.assert_array_equal(opt.get_slot(variables[i], name), value)


def test_adamw_set_weights_round_trip_and_wrong_lists():
    a, b = Variable([1.0, 2.0], name="a"), Variable([3.0], name="b")
    opt = AdamW(0.1, amsgrad=True)
    _two_steps(opt, a, Variable([3.0, 4.0], name="c"))
    ran = AdamW(0.1, amsgrad=True)
    a2, b2 = Variable([1.0, 2.0], name="a"), Variable([3.0, 4.0], name="c")
    _two_steps(ran, a2, b2)
    fresh = AdamW(0.1, amsgrad=True)
    a3, b3 = Variable(a2.numpy(), name="a"), Variable(b2.numpy(), name="c")
    fresh.build([a3, b3])
    fresh.set_weights(ran.get_weights())
    for x, y in zip(fresh.get_weights(), ran.get_weights()):
        np.testing.assert_array_equal(x, y)
    for g in (([0.3, 0.3], [1.0, -1.0]), ([2.0, 0.0], [0.5, 0.5])):
        ran.apply_gradients(zip(_grads(*g), [a2, b2]))
        fresh.apply_gradients(zip(_grads(*g), [a3, b3]))
    np.testing.assert_array_equal(a3.numpy(), a2.numpy())
    np.testing.assert_array_equal(b3.numpy(), b2.numpy())
    # Wrong lists raise and change nothing.
    opt2 = AdamW(0.1)
    opt2.build([a, b])
    before = opt2.get_weights()
    with pytest.raises(ValueError, match="expecting 5 weights"):
        opt2.set_weights(before[:-1])
    good = opt2.get_weights()
    good[2] = np.zeros(1, np.float32)  # a's v with b's shape
    with pytest.raises(ValueError, match="not compatible"):
        opt2.set_weights(good)
    for x, y in zip(opt2.get_weights(), before):
        np.testing.assert_array_equal(x, y)


# -- 5. configs of tf-keras' new-style (and Keras 3's) optimizers -----------------------

# tf_keras.optimizers.serialize(tf_keras.optimizers.<Name>(0.1)) (tf-keras 2.21).
_TF_NEW_BASE = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "jit_compile": False,
    "is_legacy_optimizer": False,
    "learning_rate": 0.10000000149011612,
}
TF_NEW_CONFIGS = {
    "SGD": {
        "module": "keras.optimizers",
        "class_name": "SGD",
        "config": {
            "name": "SGD",
            **_TF_NEW_BASE,
            "momentum": 0.0,
            "nesterov": False,
        },
        "registered_name": None,
    },
    "Adam": {
        "module": "keras.optimizers",
        "class_name": "Adam",
        "config": {
            "name": "Adam",
            **_TF_NEW_BASE,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
        "registered_name": None,
    },
    "RMSprop": {
        "module": "keras.optimizers",
        "class_name": "RMSprop",
        "config": {
            "name": "RMSprop",
            **_TF_NEW_BASE,
            "ema_overwrite_frequency": 100,
            "rho": 0.9,
            "momentum": 0.0,
            "epsilon": 1e-07,
            "centered": False,
        },
        "registered_name": None,
    },
    "Adagrad": {
        "module": "keras.optimizers",
        "class_name": "Adagrad",
        "config": {
            "name": "Adagrad",
            **_TF_NEW_BASE,
            "initial_accumulator_value": 0.1,
            "epsilon": 1e-07,
        },
        "registered_name": None,
    },
    "Adadelta": {
        "module": "keras.optimizers",
        "class_name": "Adadelta",
        "config": {"name": "Adadelta", **_TF_NEW_BASE, "rho": 0.95, "epsilon": 1e-07},
        "registered_name": None,
    },
    "Adamax": {
        "module": "keras.optimizers",
        "class_name": "Adamax",
        "config": {
            "name": "Adamax",
            **_TF_NEW_BASE,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
        },
        "registered_name": None,
    },
    "Nadam": {
        "module": "keras.optimizers",
        "class_name": "Nadam",
        "config": {
            "name": "Nadam",
            **_TF_NEW_BASE,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
        },
        "registered_name": None,
    },
    "Ftrl": {
        "module": "keras.optimizers",
        "class_name": "Ftrl",
        "config": {
            "name": "Ftrl",
            **_TF_NEW_BASE,
            "learning_rate_power": -0.5,
            "initial_accumulator_value": 0.1,
            "l1_regularization_strength": 0.0,
            "l2_regularization_strength": 0.0,
            "l2_shrinkage_regularization_strength": 0.0,
            "beta": 0.0,
        },
        "registered_name": None,
    },
    # keras.optimizers.serialize(keras.optimizers.Adam(0.1)) (Keras 3.15).
    "Keras3Adam": {
        "module": "keras.optimizers",
        "class_name": "Adam",
        "config": {
            "name": "adam",
            "learning_rate": 0.10000000149011612,
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
        "registered_name": None,
    },
}
# tf_keras.optimizers.serialize(tf_keras.mixed_precision.LossScaleOptimizer(
#     tf_keras.optimizers.SGD(0.1, momentum=0.5)))
TF_LSO_V3 = {
    "module": "tf_keras.src.mixed_precision.loss_scale_optimizer",
    "class_name": "LossScaleOptimizerV3",
    "config": {
        "inner_optimizer": {
            "module": "keras.optimizers",
            "class_name": "SGD",
            "config": {
                "name": "SGD",
                **_TF_NEW_BASE,
                "momentum": 0.5,
                "nesterov": False,
            },
            "registered_name": None,
        },
        "dynamic": True,
        "initial_scale": 32768.0,
        "dynamic_growth_steps": 2000,
    },
    "registered_name": "LossScaleOptimizerV3",
}
_EXPECTED_CLASS = {
    "SGD": SGD,
    "Adam": Adam,
    "RMSprop": RMSprop,
    "Adagrad": Adagrad,
    "Adadelta": Adadelta,
    "Adamax": Adamax,
    "Nadam": Nadam,
    "Ftrl": Ftrl,
    "Keras3Adam": Adam,
}
_NEW_STYLE_KEYS = set(_NEW_STYLE_KWARGS)


@pytest.mark.parametrize("key", sorted(TF_NEW_CONFIGS))
def test_new_style_configs_load_into_the_legacy_classes(key):
    config = copy.deepcopy(TF_NEW_CONFIGS[key])
    opt = optimizers.deserialize(config)
    assert config == TF_NEW_CONFIGS[key]  # not modified
    cls = _EXPECTED_CLASS[key]
    assert type(opt) is cls
    from_config = cls.from_config(config["config"])
    ours = opt.get_config()
    assert ours == from_config.get_config()
    for k, v in config["config"].items():
        if k in _NEW_STYLE_KEYS or v is None or k == "name":
            continue
        assert ours[k] == pytest.approx(v, rel=1e-7), k
    # The same numbers as the legacy class made directly.
    kwargs = {
        k: v
        for k, v in config["config"].items()
        if k not in _NEW_STYLE_KEYS and v is not None
    }
    direct = cls(**kwargs)
    a, b = Variable([1.0, -2.0]), Variable([1.0, -2.0])
    for g in ([0.5, -1.0], [1.0, 3.0]):
        opt.apply_gradients([(jnp.float32(g), a)])
        direct.apply_gradients([(jnp.float32(g), b)])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_loss_scale_optimizer_v3_config_loads():
    config = copy.deepcopy(TF_LSO_V3)
    for opt in (
        mixed_precision.LossScaleOptimizer.from_config(config["config"]),
        optimizers.deserialize(config),
    ):
        assert isinstance(opt, mixed_precision.LossScaleOptimizer)
        assert type(opt.inner_optimizer) is SGD
        assert opt.get_config()["initial_scale"] == 32768.0
        assert opt.inner_optimizer.get_config()["momentum"] == 0.5
    assert config == TF_LSO_V3
    # The TF 2.4+ name too (tf-keras' deserialize maps both).
    legacy = {**config, "class_name": "LossScaleOptimizer"}
    assert isinstance(
        optimizers.deserialize(legacy), mixed_precision.LossScaleOptimizer
    )


@pytest.mark.parametrize(
    "changes, key",
    [
        # tf_keras.optimizers.Adam(0.1, weight_decay=0.01, clipnorm=1.0)'s config
        ({"weight_decay": 0.01, "clipnorm": 1.0}, "weight_decay"),
        # tf_keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9)'s config
        ({"use_ema": True, "ema_momentum": 0.9}, "use_ema"),
        ({"loss_scale_factor": 128.0}, "loss_scale_factor"),
        ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps"),
    ],
)
def test_new_style_values_the_legacy_class_cannot_honour_raise(changes, key):
    config = copy.deepcopy(TF_NEW_CONFIGS["Adam"])
    config["config"].update(changes)
    with pytest.raises(ValueError, match=f"`{key}` cannot be honoured.*Adam"):
        optimizers.deserialize(config)
    with pytest.raises(ValueError, match=f"Received: {key}="):
        Adam.from_config(config["config"])


def test_new_style_no_op_kwargs_are_accepted_and_unknown_ones_still_raise():
    opt = SGD(0.1, weight_decay=0.0, use_ema=False, jit_compile=True, ema_momentum=0.5)
    assert "weight_decay" not in opt.get_config()
    Adam(loss_scale_factor=1.0, gradient_accumulation_steps=None, is_legacy_optimizer=1)
    with pytest.raises(TypeError, match="Unexpected keyword argument.*: foo"):
        Adam(foo=1)
    with pytest.raises(ValueError, match="weight_decay"):
        RMSprop(weight_decay="0.1")


def test_experimental_names_load():
    # tf-keras' deserialize knows these names (its new-style classes).
    opt = optimizers.deserialize(
        {"class_name": "ExperimentalAdam", "config": {"learning_rate": 0.2}}
    )
    assert type(opt) is Adam
    assert opt.get_config()["learning_rate"] == 0.2


# -- 6. exclude_from_weight_decay, `variables` ------------------------------------------

_G = [[[0.5, -1.0], [1.0, 2.0]], [[1.0, 3.0], [-0.5, 0.25]], [[-0.2, 0.4], [1.0, -1.0]]]
_BG = [[0.3, -0.7], [1.5, 0.1], [-0.4, 0.9]]
# tf-keras 2.21: k = tf.Variable([[1, -2], [0.5, 3]], name="dense/kernel"),
# b = tf.Variable([1, -1], name="dense/bias"), e = tf.Variable([2, 0.5],
# name="emb"); o = tf_keras.optimizers.<Name>(0.1, weight_decay=0.5);
# o.exclude_from_weight_decay(var_names=["bias"]) (or var_list=[e]); three
# apply_gradients over [(G[t], k), (BG[t], b), (BG[t][::-1], e)].
EXCLUDED_REFERENCE = {
    ("AdamW", "names"): [
        [
            [0.6132491827011108, -1.7173677682876587],
            [0.2551889717578888, 2.385930299758911],
        ],
        [0.7656751871109009, -0.8678169250488281],
        [1.8343931436538696, 0.20841777324676514],
    ],
    ("AdamW", "list"): [
        [
            [0.6132491827011108, -1.7173677682876587],
            [0.2551889717578888, 2.385930299758911],
        ],
        [0.6371052265167236, -0.7377318739891052],
        [2.132183313369751, 0.26567521691322327],
    ],
    ("Lion", "names"): [
        [
            [0.7721249461174011, -1.8194999694824219],
            [0.3334375023841858, 2.486875057220459],
        ],
        [0.8999999761581421, -1.100000023841858],
        [1.6099998950958252, 0.3434374928474426],
    ],
    ("Lion", "list"): [
        [
            [0.7721249461174011, -1.8194999694824219],
            [0.3334375023841858, 2.486875057220459],
        ],
        [0.7721249461174011, -0.9621250033378601],
        [1.8999998569488525, 0.4000000059604645],
    ],
    ("Adafactor", "names"): [
        [
            [0.5759272575378418, -1.779709815979004],
            [0.16290947794914246, 2.498328685760498],
        ],
        [0.8201352953910828, -1.0325512886047363],
        [1.6411550045013428, 0.1881464123725891],
    ],
    ("Adafactor", "list"): [
        [
            [0.5759272575378418, -1.779709815979004],
            [0.16290947794914246, 2.498328685760498],
        ],
        [0.7031635642051697, -0.8852837085723877],
        [1.914162516593933, 0.21944467723369598],
    ],
}
_KERAS3 = {"AdamW": AdamW, "Lion": Lion, "Adafactor": Adafactor}


def _excluded_model():
    k = Variable([[1.0, -2.0], [0.5, 3.0]], name="dense/kernel")
    b = Variable([1.0, -1.0], name="dense/bias")
    e = Variable([2.0, 0.5], name="emb")
    return k, b, e


def _exclude(opt, mode, e):
    if mode == "names":
        opt.exclude_from_weight_decay(var_names=["bias"])
    else:
        opt.exclude_from_weight_decay(var_list=[e])


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("name, mode", sorted(EXCLUDED_REFERENCE))
def test_exclude_from_weight_decay_matches_tf_keras(name, mode, packing):
    k, b, e = _excluded_model()
    opt = _KERAS3[name](0.1, weight_decay=0.5)
    opt.packing = packing
    _exclude(opt, mode, e)
    for t in range(3):
        opt.apply_gradients(zip(_grads(_G[t], _BG[t], _BG[t][::-1]), [k, b, e]))
    for var, want in zip((k, b, e), EXCLUDED_REFERENCE[name, mode]):
        np.testing.assert_allclose(var.numpy(), want, rtol=3e-6, atol=3e-6)
    assert opt._traces == 1  # one compiled step for the three calls


def test_exclusions_through_minimize_loss_scaling_and_stateless_apply():
    k, b, e = _excluded_model()
    want = EXCLUDED_REFERENCE["AdamW", "names"]
    # minimize, with the gradients of a linear loss equal to the reference's.
    opt = AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    gk, gb, ge = (Variable(np.zeros(s, np.float32)) for s in ((2, 2), (2,), (2,)))

    def loss():
        return (
            jnp.sum(gk.value * k.value)
            + jnp.sum(gb.value * b.value)
            + jnp.sum(ge.value * e.value)
        )

    for t in range(3):
        gk.assign(_G[t])
        gb.assign(_BG[t])
        ge.assign(_BG[t][::-1])
        opt.minimize(loss, [k, b, e])
    for var, ref in zip((k, b, e), want):
        np.testing.assert_allclose(var.numpy(), ref, rtol=3e-6, atol=3e-6)
    # Loss scaling (gradients exact: the scale is a power of two).
    k, b, e = _excluded_model()
    inner = AdamW(0.1, weight_decay=0.5)
    inner.exclude_from_weight_decay(var_names=["bias"])
    lso = mixed_precision.LossScaleOptimizer(inner)
    for t in range(3):
        gk.assign(_G[t])
        gb.assign(_BG[t])
        ge.assign(_BG[t][::-1])
        lso.minimize(loss, [k, b, e])
    for var, ref in zip((k, b, e), want):
        np.testing.assert_allclose(var.numpy(), ref, rtol=3e-6, atol=3e-6)
    # stateless_apply, jitted.
    k, b, e = _excluded_model()
    opt = AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build([k, b, e])
    step = jax.jit(opt.stateless_apply)
    state, values = opt.state, [k.numpy(), b.numpy(), e.numpy()]
    for t in range(3):
        values, state = step(state, _grads(_G[t], _BG[t], _BG[t][::-1]), values)
    for value, ref in zip(values, want):
        np.testing.assert_allclose(value, ref, rtol=3e-6, atol=3e-6)


def test_exclusions_keep_packing_uniform_and_mixed_lists():
    k1 = Variable(np.ones((2, 2), np.float32), name="k1")
    k2 = Variable(np.ones(3, np.float32), name="k2")
    b = Variable(np.ones(2, np.float32), name="bias")
    opt = AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply_gradients(zip(_grads(np.ones((2, 2)), np.ones(3)), [k1, k2]))
    assert opt._groups  # both decayed: packed
    opt.apply_gradients(zip(_grads(np.ones((2, 2)), np.ones(2)), [k1, b]))
    assert list(opt._groups) == [(0, 2)]  # mixed: packed, the decay masked
    # Same numbers as an optimizer that never packs.
    ref = AdamW(0.1, weight_decay=0.5)
    ref.exclude_from_weight_decay(var_names=["bias"])
    ref.packing = False
    r1, r2 = Variable(np.ones((2, 2), np.float32)), Variable(np.ones(3, np.float32))
    rb = Variable(np.ones(2, np.float32), name="bias")
    ref.apply_gradients(zip(_grads(np.ones((2, 2)), np.ones(3)), [r1, r2]))
    ref.apply_gradients(zip(_grads(np.ones((2, 2)), np.ones(2)), [r1, rb]))
    for x, y in ((k1, r1), (k2, r2), (b, rb)):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_exclusions_do_not_retrace_when_hyperparameters_change():
    k, b, e = _excluded_model()
    opt = AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"], var_list=[e])
    for t in range(3):
        opt.learning_rate = 0.1 * (t + 1)
        opt.weight_decay = 0.1 * t
        opt.apply_gradients(zip(_grads(_G[t], _BG[t], _BG[t][::-1]), [k, b, e]))
    assert opt._traces == 1
    np.testing.assert_array_equal(opt.get_slot(b, "m").shape, (2,))


def test_exclude_from_weight_decay_rules():
    k, b, e = _excluded_model()
    opt = AdamW(0.1, weight_decay=0.5)
    # Each call replaces the previous one (Keras): only `e` is exempt now.
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.exclude_from_weight_decay(var_list=[e])
    assert [opt._use_weight_decay(v) for v in (k, b, e)] == [True, True, False]
    # Regular expressions, searched with and without tf's ":0".
    opt.exclude_from_weight_decay(var_names=["bias$", "^emb"])
    assert [opt._use_weight_decay(v) for v in (k, b, e)] == [True, False, False]
    opt.exclude_from_weight_decay()
    assert [opt._use_weight_decay(v) for v in (k, b, e)] == [True, True, True]
    with pytest.raises(TypeError, match="single string"):
        opt.exclude_from_weight_decay(var_names="bias")
    with pytest.raises(TypeError, match="`var_list` must hold"):
        opt.exclude_from_weight_decay(var_list=[np.ones(2)])
    with pytest.raises(ValueError, match="regular expressions"):
        opt.exclude_from_weight_decay(var_names=["("])
    # Not in the config (nor in Keras'); a clone decays everything.
    opt.exclude_from_weight_decay(var_names=["bias"])
    config = opt.get_config()
    assert not any("exclude" in key for key in config)
    clone = AdamW.from_config(config)
    assert clone._use_weight_decay(b)
    # Only before the optimizer is built (Keras' message).
    opt.apply_gradients(zip(_grads(np.ones((2, 2))), [k]))
    with pytest.raises(ValueError, match="only be configured before the optimizer"):
        opt.exclude_from_weight_decay(var_names=["kernel"])
    built = Lion(0.1)
    built.build([k])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        built.exclude_from_weight_decay(var_list=[k])


def test_keras3_variables_is_a_callable_list_and_legacy_a_method():
    a, b = Variable([1.0, 2.0], name="a"), Variable([3.0, 4.0], name="b")
    for opt, n in ((AdamW(0.1), 5), (Lion(0.1), 3), (Adafactor(0.1), 3)):
        _two_steps(opt, a, b)
        assert len(opt.variables) == n  # tf-keras' CallableList (Keras 3: a list)
        assert [v.name for v in opt.variables()] == [w.name for w in opt.weights]
    legacy = Adam(0.1)
    _two_steps(legacy, a, b)
    assert callable(legacy.variables)
    assert len(legacy.variables()) == 5  # OptimizerV2.variables() is a method
    lso = mixed_precision.LossScaleOptimizer(AdamW(0.1))
    lso.minimize(lambda: jnp.sum(a.value * b.value), [a, b])
    assert len(lso.variables()) == 5


# -- 7. Adagrad(epsilon=0) ------------------------------------------------------------


def test_adagrad_epsilon_zero_becomes_1e_7_as_tf_keras():
    # tf_keras.optimizers.legacy.Adagrad(1.0, initial_accumulator_value=0.0,
    # epsilon=0.0): config epsilon 1e-07; one step on [0.0] with grad [1e-6]
    # gives [-0.90909094].
    v = Variable([0.0])
    opt = Adagrad(1.0, initial_accumulator_value=0.0, epsilon=0.0)
    opt.apply_gradients([(jnp.array([1e-6]), v)])
    np.testing.assert_allclose(v.numpy(), [-0.90909094], rtol=1e-6)
    assert opt.get_config()["epsilon"] == 1e-7
    # The other legacy classes already do `epsilon or 1e-7` (as tf-keras).
    for cls in (Adam, RMSprop, Adadelta, Adamax, Nadam, Adagrad):
        assert cls(epsilon=0).epsilon == cls(epsilon=None).epsilon == 1e-7


# -- 10. a schedule learning rate is not settable (Keras 3 classes) ---------------------

NOT_SETTABLE = (
    "This optimizer was created with a `LearningRateSchedule` object as its "
    "`learning_rate` constructor argument, hence its learning rate is not "
    "settable. If you need the learning rate to be settable, you should "
    "instantiate the optimizer with a float `learning_rate` argument."
)


@pytest.mark.parametrize("cls", [AdamW, Lion, Adafactor])
def test_keras3_schedule_learning_rate_is_not_settable(cls):
    sched = schedules.ExponentialDecay(0.1, 10, 0.5)
    opt = cls(sched)
    v = Variable([1.0, 2.0])
    opt.apply_gradients([(jnp.ones(2), v)])
    for value in (0.3, jnp.float32(0.3)):
        with pytest.raises(TypeError) as info:
            opt.learning_rate = value
        assert str(info.value) == NOT_SETTABLE
        assert opt.learning_rate is sched  # unchanged
    lso = mixed_precision.LossScaleOptimizer(opt)
    with pytest.raises(TypeError, match="not settable"):
        lso.learning_rate = 0.3
    # A schedule or a callable may still replace it (Keras 3), and a float
    # learning rate may become a schedule.
    other = schedules.ExponentialDecay(0.2, 10, 0.5)
    opt.learning_rate = other
    assert opt.learning_rate is other
    plain = cls(0.1)
    plain.learning_rate = sched
    assert plain.learning_rate is sched


def test_legacy_schedule_learning_rate_can_be_replaced():
    # tf_keras.optimizers.legacy.Adam(schedule); opt.learning_rate = 0.3 works.
    opt = Adam(schedules.ExponentialDecay(0.1, 10, 0.5))
    opt.learning_rate = 0.3
    assert float(opt.learning_rate) == pytest.approx(0.3)


# -- 11. Keras 1 Adam weight lists ---------------------------------------------------------


def test_adam_set_weights_cuts_a_keras_1_list():
    # tf-keras legacy Adam.set_weights keeps the first 2n+1 of a 3n+1 list:
    # after one step over [1, 2] with grad ones, get_weights + [vhat] loads as
    # [1, [0.10000002, 0.10000002], [0.000999987, 0.000999987]].
    a = Variable([1.0, 2.0])
    opt = Adam(0.1)
    opt.apply_gradients([(jnp.ones(2), a)])
    weights = opt.get_weights()
    opt.set_weights(weights + [np.full(2, 7.0, np.float32)])
    loaded = opt.get_weights()
    assert int(loaded[0]) == 1
    np.testing.assert_allclose(loaded[1], [0.10000002, 0.10000002], rtol=1e-6)
    np.testing.assert_allclose(loaded[2], [0.000999987, 0.000999987], rtol=1e-5)
    # Two variables: 7 weights give 5.
    b = Variable([3.0])
    opt2 = Adam(0.1)
    opt2.apply_gradients(zip(_grads([1.0, 1.0], [2.0]), [a, b]))
    w = opt2.get_weights()
    keras1 = [np.int64(4), *w[1:], np.ones(2, np.float32), np.ones(1, np.float32)]
    opt2.set_weights(keras1)
    assert int(opt2.iterations) == 4
    np.testing.assert_array_equal(opt2.get_slot(b, "v"), w[4])
    # Other lengths still raise, and nothing changes.
    with pytest.raises(ValueError, match="expecting 5 weights"):
        opt2.set_weights(keras1 + [np.ones(1, np.float32)])
    assert int(opt2.iterations) == 4
    ams = Adam(0.1, amsgrad=True)
    ams.apply_gradients([(jnp.ones(2), a)])
    with pytest.raises(ValueError, match="expecting 4 weights"):
        ams.set_weights(ams.get_weights() + [np.ones(2, np.float32)])


# -- 12. configs before the hyperparameters are created ----------------------------------


def test_legacy_config_keeps_python_numbers_until_the_first_step():
    # tf_keras.optimizers.legacy.Adam(0.1).get_config(): 0.1, 0.9, 0.999 as
    # given; after a step (or reading `opt.beta_1`) float32 values.
    opt = Adam(0.1)
    config = opt.get_config()
    assert (config["learning_rate"], config["beta_1"], config["beta_2"]) == (
        0.1,
        0.9,
        0.999,
    )
    json.dumps(config)
    opt.apply_gradients([(jnp.ones(1), Variable([1.0]))])
    config = opt.get_config()
    assert (config["learning_rate"], config["beta_1"], config["beta_2"]) == (
        F32_0_1,
        F32_0_9,
        F32_0_999,
    )
    # A step that fails changes nothing, the config included.
    failed = Adam(0.1)
    with pytest.raises(ValueError, match="shape"):
        failed.apply_gradients([(jnp.ones(3), Variable([1.0, 2.0]))])
    with pytest.raises(ZeroDivisionError):
        failed.minimize(lambda: 1 / 0, [Variable([1.0])])
    assert failed.get_config()["beta_1"] == 0.9
    built = Adam(0.1)
    built.build([Variable([1.0])])
    assert built.get_config()["beta_1"] == F32_0_9  # as after a first step
    # Reading a hyperparameter attribute creates them too (tf-keras' _get_hyper).
    read = Adam(0.1)
    _ = read.beta_1
    assert read.get_config()["beta_1"] == F32_0_9
    # Set before: as given; set after: float32.
    early = Adam(0.1)
    early.beta_1 = 0.5
    early.learning_rate = 0.3
    assert early.get_config()["beta_1"] == 0.5
    assert early.get_config()["learning_rate"] == 0.3
    opt.beta_1 = 0.3
    assert opt.get_config()["beta_1"] == float(np.float32(0.3))
    # A number replacing a schedule after the step stays as given (tf-keras).
    opt.learning_rate = schedules.ExponentialDecay(0.1, 10, 0.5)
    opt.learning_rate = 0.3
    assert opt.get_config()["learning_rate"] == 0.3
    # The other classes: tf-keras gives these before and after a step.
    for make, key, given in (
        (lambda: SGD(0.1, momentum=0.9), "momentum", 0.9),
        (lambda: RMSprop(0.1, rho=0.9), "rho", 0.9),
        (lambda: Ftrl(0.1, beta=0.1), "beta", 0.1),
        (lambda: Nadam(0.1, beta_2=0.999), "beta_2", 0.999),
    ):
        fresh = make()
        assert fresh.get_config()[key] == given
        fresh.get_weights()  # weights, slots and configs do not create them
        assert fresh.get_config()[key] == given
        w = Variable([1.0])
        fresh.minimize(lambda w=w: jnp.sum(w.value * 2.0), [w])
        assert fresh.get_config()[key] == float(np.float32(given))


def test_keras3_configs_keep_python_numbers_and_a_float32_learning_rate():
    opt = AdamW(0.1, weight_decay=0.004)
    assert opt.get_config()["learning_rate"] == F32_0_1
    assert opt.get_config()["beta_1"] == 0.9
    opt.apply_gradients([(jnp.ones(1), Variable([1.0]))])
    assert opt.get_config()["beta_1"] == 0.9


# -- 13. global_clipnorm with a non-finite norm -------------------------------------------


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("cls", [SGD, AdamW])
def test_global_clipnorm_with_an_infinite_gradient_gives_nan_everywhere(cls, packing):
    # tf_keras legacy SGD(1.0, global_clipnorm=1.0): grads [3, 4] on a and
    # [inf] on b -> a = [nan, nan], b = [nan] (tf.clip_by_global_norm).
    a, b = Variable([1.0, 2.0]), Variable([3.0])
    opt = cls(1.0, global_clipnorm=1.0)
    opt.packing = packing
    opt.apply_gradients(zip(_grads([3.0, 4.0], [np.inf]), [a, b]))
    assert np.isnan(a.numpy()).all() and np.isnan(b.numpy()).all()
    c = Variable([1.0, 2.0])
    cls(1.0, global_clipnorm=1.0).apply_gradients([(jnp.array([np.nan, 1.0]), c)])
    assert np.isnan(c.numpy()).all()


def test_global_clipnorm_numbers_are_otherwise_unchanged():
    grads = _grads([3.0, 4.0], [12.0])
    want, _ = optaxish.clip_by_global_norm(1.0).update(grads, None)
    a, b = Variable([1.0, 2.0]), Variable([3.0])
    SGD(1.0, global_clipnorm=1.0).apply_gradients(zip(grads, [a, b]))
    np.testing.assert_array_equal(a.numpy(), np.float32([1.0, 2.0]) - want[0])
    np.testing.assert_array_equal(b.numpy(), np.float32([3.0]) - want[1])
    got = SGD(1.0, global_clipnorm=1.0).get_gradients(
        lambda: 1.5 * jnp.sum(a.value * a.value) + jnp.sum(b.value), [a, b]
    )
    raw = [3.0 * a.numpy(), np.ones(1, np.float32)]
    ref, _ = optaxish.clip_by_global_norm(1.0).update(_grads(*raw), None)
    for x, y in zip(got, ref):
        np.testing.assert_array_equal(x, y)


def test_a_loaded_state_shows_in_the_config():
    state = Adam(0.1, beta_1=0.9).state
    state.hyperparams["beta_1"] = jnp.float32(0.5)
    fresh = Adam(0.1, beta_1=0.9)  # not built: its config still holds 0.9
    fresh.state = state
    assert fresh.get_config()["beta_1"] == 0.5


# -- clip attributes and get() of a wrapper ----------------------------------------


def test_clip_attributes_read_and_set_as_tf_keras():
    # tf_keras.optimizers.legacy.SGD(1.0, clipnorm=1.0): .clipnorm -> 1.0,
    # .clipvalue -> None; after `opt.clipnorm = 2.0` a step on [0.0] with
    # gradient [3.0] gives [-2.0]; after `opt.clipvalue = 0.5`, -0.5 more.
    opt = optimizers.SGD(1.0, clipnorm=1.0)
    assert (opt.clipnorm, opt.global_clipnorm, opt.clipvalue) == (1.0, None, None)
    v = Variable([0.0])
    opt.apply_gradients([(jnp.array([3.0]), v)])
    np.testing.assert_allclose(v.numpy(), [-1.0])
    opt.clipnorm = 2.0  # the compiled step follows the new setting
    opt.apply_gradients([(jnp.array([3.0]), v)])
    np.testing.assert_allclose(v.numpy(), [-3.0])
    opt.clipnorm, opt.clipvalue = None, 0.5
    opt.apply_gradients([(jnp.array([3.0]), v)])
    np.testing.assert_allclose(v.numpy(), [-3.5])
    # tf-keras' config then: {"name": "SGD", "clipvalue": 0.5, "learning_rate": ...}
    config = opt.get_config()
    assert config["clipvalue"] == 0.5
    assert "clipnorm" not in config


@pytest.mark.parametrize(
    ("start", "key", "value", "error", "match"),
    [
        ({}, "clipnorm", -1.0, ValueError, "Expected clipnorm >= 0, received: -1.0"),
        ({}, "clipvalue", float("nan"), ValueError, "Expected clipvalue >= 0"),
        ({}, "global_clipnorm", "1", TypeError, "Received: global_clipnorm='1'"),
        ({"clipnorm": 1.0}, "global_clipnorm", 1.0, ValueError, "Cannot accept both"),
        (
            {"gradient_transformers": [lambda pairs: pairs]},
            "clipvalue",
            1.0,
            ValueError,
            "`clipvalue` cannot be set when `gradient_transformers` is set",
        ),
    ],
)
def test_bad_clip_assignments_raise_and_change_nothing(start, key, value, error, match):
    opt = optimizers.SGD(1.0, **start)
    before = (opt.clipnorm, opt.global_clipnorm, opt.clipvalue)
    with pytest.raises(error, match=match):
        setattr(opt, key, value)
    assert (opt.clipnorm, opt.global_clipnorm, opt.clipvalue) == before


def test_get_returns_a_loss_scale_optimizer_as_is():
    # tf_keras.optimizers.get(LossScaleOptimizer(SGD())) returns the instance.
    from optaxish.mixed_precision import LossScaleOptimizer

    lso = LossScaleOptimizer(optimizers.SGD(0.1))
    assert optimizers.get(lso) is lso


# -- Keras 3's apply(grads, trainable_variables=None) -----------------------------


def test_apply_follows_keras_3():
    # keras.optimizers.SGD(0.5): build([a, b]); apply([[1.0], [2.0]]) gives
    # a=[0.5], b=[1.0]; apply([g], [b]) steps b alone; apply([]) is a no-op.
    a, b = Variable([1.0]), Variable([2.0])
    opt = optimizers.SGD(0.5)
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([[1.0], [2.0]])
    opt.build([a, b])
    assert int(opt.apply([[1.0], [2.0]])) == 1
    np.testing.assert_allclose([a.numpy(), b.numpy()], [[0.5], [1.0]])
    opt.apply([jnp.array([2.0])], [b])
    np.testing.assert_allclose([a.numpy(), b.numpy()], [[0.5], [0.0]])
    assert opt.apply([]) is None and int(opt.iterations) == 2
    with pytest.raises(ValueError, match="Received a list of 1 gradients"):
        opt.apply([[1.0]])
    with pytest.raises(ValueError, match="the same length"):
        opt.apply([[1.0]], [a, b])
    assert int(opt.iterations) == 2


def test_loss_scale_optimizer_apply_uses_the_inner_variables():
    # Keras 3's `apply` takes the gradients of the scaled loss.
    a = Variable([1.0])
    opt = mixed_precision.LossScaleOptimizer(optimizers.SGD(0.5))
    opt.build([a])
    opt.apply([opt.scale_loss(1.0) * jnp.ones(1)])
    np.testing.assert_allclose(a.numpy(), [0.5])


def test_legacy_namespace_holds_tf_keras_legacy_names():
    # dir(tf_keras.optimizers.legacy), tf-keras 2.21, public names
    names = "Adadelta Adagrad Adam Adamax Ftrl Nadam Optimizer RMSprop SGD".split()
    from optaxish.optimizers import legacy

    assert sorted(legacy.__all__) == sorted(names)
    for name in names:
        assert getattr(legacy, name) is getattr(optimizers, name)
    config = optimizers.serialize(legacy.Adam(0.1))
    assert config["module"] == "keras.optimizers.legacy"
    assert type(optimizers.deserialize(config)) is legacy.Adam
