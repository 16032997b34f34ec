"""Mixed precision against tf-keras 2.21 and Keras 3: the audit's fixes.

Reference numbers are literals from runs of ``tf_keras`` 2.21 (legacy
``OptimizerV2`` classes) and Keras 3.15 (JAX backend); each block names the
calls that produced them.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable, optimizers
from optaxish.loss_scale import (
    DynamicLossScale,
    StaticLossScale,
    dynamic_loss_scaling,
)
from optaxish.mixed_precision import (
    LossScaleOptimizer,
    Policy,
    experimental,
    global_policy,
    set_global_policy,
)

INF, NAN = np.inf, np.nan


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You forgot to call")
        yield


# -- constructor arguments ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"initial_scale": -1.0}, ValueError, "`initial_scale` must be positive"),
        ({"initial_scale": 0.0}, ValueError, "`initial_scale` must be positive"),
        ({"initial_scale": 1e39}, ValueError, "finite in float32"),  # inf in f32
        ({"initial_scale": "8"}, TypeError, "`initial_scale` must be a number"),
        ({"dynamic_growth_steps": 0}, ValueError, "`dynamic_growth_steps` must be"),
        ({"dynamic_growth_steps": 2.5}, ValueError, "`dynamic_growth_steps` must be"),
        ({"dynamic_growth_steps": "9"}, TypeError, "`dynamic_growth_steps` must be"),
        (
            {"dynamic": False, "initial_scale": -4.0},
            ValueError,
            "`initial_scale` must be positive",
        ),
    ],
)
def test_bad_scale_arguments_are_named_and_leave_the_inner_unwrapped(
    kwargs, error, match
):
    # Before the audit these named the core's `loss_scale`/`period`, raised a
    # raw OverflowError/ValueError, or (1e39) built an infinite scale.
    inner = optimizers.SGD()
    with pytest.raises(error, match=match) as info:
        LossScaleOptimizer(inner, **kwargs)
    assert "Received: " in str(info.value)
    assert LossScaleOptimizer(inner).inner_optimizer is inner  # not marked


def test_growth_steps_beyond_int32_are_accepted(quiet):
    # tf_keras.mixed_precision.LossScaleOptimizer(SGD(1.0), initial_scale=2.0,
    # dynamic_growth_steps=2**40); apply_gradients([([1.0], var)]):
    # dynamic_growth_steps 1099511627776, loss_scale 2.0, dynamic_counter 1.
    opt = LossScaleOptimizer(
        optimizers.SGD(1.0), initial_scale=2.0, dynamic_growth_steps=2**40
    )
    var = Variable([1.0])
    opt.apply_gradients([(jnp.array([1.0]), var)])
    assert opt.dynamic_growth_steps == 2**40
    assert float(opt.loss_scale) == 2.0 and int(opt.dynamic_counter) == 1
    config = opt.get_config()
    assert config["dynamic_growth_steps"] == 2**40
    assert LossScaleOptimizer.from_config(config).dynamic_growth_steps == 2**40


def test_core_values_reject_what_float32_and_int32_cannot_hold():
    for make, name in (
        (lambda: DynamicLossScale(1e39), "loss_scale"),
        (lambda: StaticLossScale(1e39), "loss_scale"),
        (lambda: DynamicLossScale(period=2**31), "period"),
        (lambda: DynamicLossScale(counter=2**31), "counter"),
        (lambda: DynamicLossScale(factor=1e39), "factor"),
        (lambda: DynamicLossScale(min_loss_scale=1e39), "min_loss_scale"),
    ):
        with pytest.raises(ValueError, match=f"`{name}` must be") as info:
            make()
        assert f"Received: {name}=" in str(info.value)
    assert int(DynamicLossScale(period=2**31 - 1).period) == 2**31 - 1


def test_dynamic_loss_scaling_names_its_own_arguments():
    import optaxish

    with pytest.raises(ValueError, match="Received: initial_scale=-1.0"):
        dynamic_loss_scaling(optaxish.sgd(0.1), initial_scale=-1.0)
    with pytest.raises(ValueError, match="Received: dynamic_growth_steps=0"):
        dynamic_loss_scaling(optaxish.sgd(0.1), dynamic_growth_steps=0)


# -- delegation ------------------------------------------------------------------------


def test_clip_attributes_are_the_inner_optimizers(quiet):
    # tf_keras: LossScaleOptimizer(SGD(1.0, clipnorm=1.0)).clipnorm -> 1.0,
    # .clipvalue and .global_clipnorm -> None; one step on var=[0.0] with the
    # (unscaled) gradient [3.0] gives [-1.0].
    inner = optimizers.SGD(1.0, clipnorm=1.0)
    opt = LossScaleOptimizer(inner)
    assert (opt.clipnorm, opt.clipvalue, opt.global_clipnorm) == (1.0, None, None)
    var = Variable([0.0])
    opt.apply_gradients([(jnp.array([3.0]), var)])
    np.testing.assert_allclose(var.numpy(), [-1.0])
    # tf-keras sets the inner value: the next step clips at 2.
    opt.clipnorm = 2.0
    assert (opt.clipnorm, inner.clipnorm) == (2.0, 2.0)
    opt.apply_gradients([(jnp.array([3.0]), var)])
    np.testing.assert_allclose(var.numpy(), [-3.0])


def test_variables_is_a_list_that_can_be_called(quiet):
    # tf_keras: LossScaleOptimizer(legacy.SGD(1.0, momentum=0.5)) after a step
    # on tf.Variable(..., name="w"): variables() names
    # ['SGD/iter:0', 'SGD/w/momentum:0']; LossScaleOptimizerV3 (and Keras 3)
    # make `variables` a property.
    opt = LossScaleOptimizer(optimizers.SGD(1.0, momentum=0.5))
    var = Variable([1.0, 2.0], name="w")
    opt.apply_gradients([(jnp.ones(2), var)])
    assert [v.name for v in opt.variables()] == ["SGD/iter:0", "SGD/w/momentum:0"]
    assert len(opt.variables) == 2
    assert [v.name for v in opt.variables] == [w.name for w in opt.weights]


def test_add_slot_is_delegated_except_in_the_experimental_signature():
    # tf_keras' LossScaleOptimizer.add_slot calls the inner add_slot; TF 2.2's
    # experimental one raises AttributeError.
    var = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.SGD())
    with pytest.raises(ValueError, match="Cannot add slot 'x'"):  # the inner's
        opt.add_slot(var, "x")
    old = experimental.LossScaleOptimizer(optimizers.SGD(), "dynamic")
    with pytest.raises(AttributeError, match="cannot call add_slot"):
        old.add_slot(var, "x")


# -- scaling ---------------------------------------------------------------------------

_EXAMPLE_TAIL = "in the correct place! For example:"


def _warning_for(opt, *calls):
    for call in calls:
        if call == "scale":
            opt.get_scaled_loss(jnp.float32(1.0))
        else:
            opt.get_unscaled_gradients([jnp.ones(1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.apply_gradients([(jnp.ones(1), Variable([1.0]))])
    return [str(w.message) for w in caught]


def test_warning_texts_are_tf_keras():
    # tf_keras' _maybe_warn_about_scaling: three messages.
    (both,) = _warning_for(LossScaleOptimizer(optimizers.SGD()))
    assert both.startswith(
        "You forgot to call LossScaleOptimizer.get_scaled_loss() and "
        "LossScaleOptimizer.get_unscaled_gradients() before calling "
        "LossScaleOptimizer.apply_gradients(). This will likely result in worse "
        "model quality, so please call them in the correct places! For example:"
    )
    (no_scale,) = _warning_for(LossScaleOptimizer(optimizers.SGD()), "unscale")
    assert no_scale.startswith(
        "You forgot to call LossScaleOptimizer.get_scaled_loss() before calling "
        "LossScaleOptimizer.apply_gradients() (you did call "
        "get_unscaled_gradients() however). This will likely result in worse "
        "model quality, so please call get_scaled_loss() " + _EXAMPLE_TAIL
    )
    (no_unscale,) = _warning_for(LossScaleOptimizer(optimizers.SGD()), "scale")
    assert no_unscale.startswith(
        "You forgot to call LossScaleOptimizer.get_unscaled_gradients() before "
        "calling LossScaleOptimizer.apply_gradients() (you did call "
        "get_scaled_loss() however). This will likely result in worse model "
        "quality, so please call get_unscaled_gradients() " + _EXAMPLE_TAIL
    )
    assert _warning_for(LossScaleOptimizer(optimizers.SGD()), "scale", "unscale") == []


def test_experimental_signature_does_not_warn():
    # TF 2.2's experimental LossScaleOptimizer has no such warning.
    opt = experimental.LossScaleOptimizer(optimizers.SGD(), "dynamic")
    assert _warning_for(opt) == []


def test_scale_loss_is_keras_3s_get_scaled_loss():
    # keras.optimizers.LossScaleOptimizer(SGD(), initial_scale=4.0)
    # .scale_loss(3.0) -> 12.0.
    opt = LossScaleOptimizer(optimizers.SGD(), initial_scale=4.0)
    assert float(opt.scale_loss(jnp.float32(3.0))) == 12.0
    assert opt.scale_loss(jnp.float16(3.0)).dtype == jnp.float16
    assert _warning_for(opt, "unscale") == []  # scale_loss counts as scaling


# -- trajectories ------------------------------------------------------------------------

# tf_keras.mixed_precision.LossScaleOptimizer(legacy.SGD(1.0, momentum=0.5),
# initial_scale=8.0, dynamic_growth_steps=2); var=[1.0, 2.0]; apply_gradients
# of each gradient in turn; after each: var, iterations, loss_scale, counter.
# The wrapped new-style tf_keras.optimizers.SGD (LossScaleOptimizerV3) gives
# the same rows.
SGD_GRADS = [
    [1, 1],
    [INF, 1],
    [NAN, 1],
    [1, 1],
    [1, 1],
    [1, 1],
    [0, 0],
    [-INF, INF],
    [1, 1],
]
SGD_ROWS = [
    ([0.0, 1.0], 1, 8.0, 1),
    ([0.0, 1.0], 2, 4.0, 0),
    ([0.0, 1.0], 3, 2.0, 0),
    ([-1.5, -0.5], 4, 2.0, 1),
    ([-3.25, -2.25], 5, 4.0, 0),
    ([-5.125, -4.125], 6, 4.0, 1),
    ([-6.0625, -5.0625], 7, 8.0, 0),
    ([-6.0625, -5.0625], 8, 4.0, 0),
    ([-7.53125, -6.53125], 9, 4.0, 1),
]


def test_sgd_momentum_trajectory_with_skipped_steps(quiet):
    opt = LossScaleOptimizer(
        optimizers.SGD(1.0, momentum=0.5), initial_scale=8.0, dynamic_growth_steps=2
    )
    var = Variable([1.0, 2.0])
    for g, (value, it, scale, counter) in zip(SGD_GRADS, SGD_ROWS, strict=True):
        opt.apply_gradients([(jnp.array(g, jnp.float32), var)])
        np.testing.assert_array_equal(var.numpy(), np.float32(value))
        assert (int(opt.iterations), float(opt.loss_scale)) == (it, scale)
        assert int(opt.dynamic_counter) == counter
    # get_weights(): [iterations, momentum] = [9, [-1.46875, -1.46875]].
    weights = opt.get_weights()
    assert int(weights[0]) == 9
    np.testing.assert_array_equal(weights[1], np.float32([-1.46875, -1.46875]))


# tf_keras.mixed_precision.LossScaleOptimizer(legacy.Adam(0.1),
# initial_scale=4.0, dynamic_growth_steps=2); var=[1.0, 2.0]. A skipped step
# counts in `iterations`, so the next applied step's bias correction uses it.
ADAM_GRADS = [[1, 2], [INF, 1], [1, 2], [NAN, 0], [3, -4], [0.5, 0.5]]
ADAM_ROWS = [
    [0.9000003337860107, 1.9000000953674316],
    [0.9000003337860107, 1.9000000953674316],
    [0.8141540288925171, 1.8141536712646484],
    [0.8141540288925171, 1.8141536712646484],
    [0.7366777658462524, 1.8206133842468262],
    [0.6628619432449341, 1.8208467960357666],
]


@pytest.mark.parametrize("how", ["apply_gradients", "minimize"])
@pytest.mark.filterwarnings("ignore:The last 5 `minimize` calls")  # a loss per step
def test_adam_trajectory_with_skipped_steps(how, quiet):
    opt = LossScaleOptimizer(
        optimizers.Adam(0.1), initial_scale=4.0, dynamic_growth_steps=2
    )
    var = Variable([1.0, 2.0])
    for g, want in zip(ADAM_GRADS, ADAM_ROWS, strict=True):
        grad = jnp.array(g, jnp.float32)
        if how == "apply_gradients":
            opt.apply_gradients([(grad, var)])
        else:  # d(sum(var * g))/d var = g, scaled and unscaled exactly
            opt.minimize(lambda grad=grad: jnp.sum(var * grad), [var])
        np.testing.assert_allclose(var.numpy(), want, rtol=1e-6)
    assert int(opt.iterations) == 6 and float(opt.loss_scale) == 2.0


@pytest.mark.parametrize(
    "initial, growth, finite, rows",
    [
        # tf_keras LossScaleOptimizer(legacy.SGD(1.0), initial_scale=...,
        # dynamic_growth_steps=...); (loss_scale, dynamic_counter) after each
        # apply_gradients of [1.0] (finite) or [inf].
        (65504.0, 1, [True], [(131008.0, 0)]),  # past float16's max: kept
        (3e38, 1, [True], [(3.0000000054977558e38, 0)]),  # 6e38 is inf: kept
        (
            3.0,
            1,
            [True, True, False, False, False],
            [(6.0, 0), (12.0, 0), (6.0, 0), (3.0, 0), (1.5, 0)],
        ),
        (0.5, 3, [False, True, True, True], [(1.0, 0), (1.0, 1), (1.0, 2), (2.0, 0)]),
        (1.5, 3, [False, False], [(1.0, 0), (1.0, 0)]),
        (1e-3, 3, [False], [(1.0, 0)]),
    ],
)
def test_dynamic_rule_at_the_edges(initial, growth, finite, rows, quiet):
    opt = LossScaleOptimizer(
        optimizers.SGD(1.0), initial_scale=initial, dynamic_growth_steps=growth
    )
    var = Variable([1.0])
    for ok, (scale, counter) in zip(finite, rows, strict=True):
        opt.apply_gradients([(jnp.array([1.0 if ok else INF]), var)])
        assert float(opt.loss_scale) == np.float32(scale)
        assert int(opt.dynamic_counter) == counter


# -- configs -----------------------------------------------------------------------------

# keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5, momentum=0.9),
# initial_scale=256.0, dynamic_growth_steps=10).get_config() (Keras 3.15).
KERAS3_CONFIG = {
    "name": "loss_scale_optimizer",
    "inner_optimizer": {
        "module": "keras.optimizers",
        "class_name": "SGD",
        "config": {
            "name": "sgd",
            "learning_rate": 0.5,
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
            "momentum": 0.9,
            "nesterov": False,
        },
        "registered_name": None,
    },
    "initial_scale": 256.0,
    "dynamic_growth_steps": 10,
}


def test_keras_3_config_loads():
    for opt in (
        LossScaleOptimizer.from_config(dict(KERAS3_CONFIG)),
        optimizers.deserialize(
            {
                "module": "keras.optimizers",
                "class_name": "LossScaleOptimizer",
                "config": KERAS3_CONFIG,
                "registered_name": None,
            }
        ),
    ):
        assert isinstance(opt, LossScaleOptimizer) and opt.dynamic
        assert (opt.initial_scale, opt.dynamic_growth_steps) == (256.0, 10)
        inner = opt.inner_optimizer
        assert type(inner) is optimizers.SGD
        assert float(inner.momentum) == pytest.approx(0.9)
    # Older Keras 3 configs carry the base keys; Keras 3 reads them at their
    # defaults and otherwise raises "LossScaleOptimizer does not support
    # `clipnorm`. Instead, set `clipnorm` on the `inner_optimizer`."
    old = dict(KERAS3_CONFIG, use_ema=False, clipnorm=None, ema_momentum=0.99)
    assert LossScaleOptimizer.from_config(old).initial_scale == 256.0
    with pytest.raises(
        ValueError,
        match="does not support `clipnorm`. Instead, set `clipnorm` on the "
        "`inner_optimizer`. Received: clipnorm=1.0",
    ):
        LossScaleOptimizer.from_config(dict(old, clipnorm=1.0))


def test_inner_config_is_read_as_optimizers_deserialize_reads_it():
    # tf_keras' from_config deserialises the inner optimizer with
    # optimizers.deserialize, which ignores the case of `class_name`.
    opt = LossScaleOptimizer.from_config(
        {"inner_optimizer": {"class_name": "sgd", "config": {"learning_rate": 0.3}}}
    )
    assert type(opt.inner_optimizer) is optimizers.SGD
    with pytest.raises(ValueError, match="needs an `inner_optimizer`"):
        LossScaleOptimizer.from_config({"dynamic": True})
    with pytest.raises(TypeError, match="cannot wrap another LossScaleOptimizer"):
        LossScaleOptimizer.from_config(
            {
                "inner_optimizer": optimizers.serialize(
                    LossScaleOptimizer(optimizers.SGD())
                )
            }
        )


# -- policies ------------------------------------------------------------------------------


def test_policy_names_read_as_tf_keras_reads_them():
    # tf_keras.mixed_precision.Policy("float").compute_dtype == "float32"
    # (NumPy reads "float" as float64); "half" and "double" too.
    for name, dtype in (
        ("float", "float32"),
        ("half", "float16"),
        ("double", "float64"),
    ):
        p = Policy(name)
        assert (p.name, p.compute_dtype, p.variable_dtype) == (name, dtype, dtype)
    assert str(Policy("float").core.param_dtype) == "float32"
    # tf_keras rejects NumPy's other spellings: "Cannot convert value f4 to a
    # mixed precision Policy. ..."
    for bad in ("f4", "single", "int", "longlong", "str", "float_"):
        with pytest.raises(ValueError, match=f"Cannot convert value {bad} to a"):
            Policy(bad)


def test_infer_policy():
    # tf_keras.mixed_precision.Policy("_infer"): compute_dtype and
    # variable_dtype None; set_global_policy("_infer") is accepted.
    p = Policy("_infer")
    assert (p.compute_dtype, p.variable_dtype, repr(p)) == (
        None,
        None,
        '<Policy "_infer">',
    )
    assert Policy.from_config(p.get_config()) == p
    with pytest.raises(ValueError, match="'_infer' policy has no dtypes"):
        p.core  # noqa: B018
    try:
        set_global_policy("_infer")
        assert global_policy().name == "_infer"
    finally:
        set_global_policy(None)


def test_policies_of_the_same_name_are_equal():
    # keras.mixed_precision.Policy("float32") == Policy("float32") -> True
    # (Keras 3's DTypePolicy); == "float32" -> False.
    a, b = Policy("mixed_float16"), Policy("mixed_float16")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Policy("mixed_bfloat16") and a != "mixed_float16"


def test_a_dtype_object_is_not_a_name():
    with pytest.raises(
        TypeError, match="not a dtype. Instead, pass its name, 'float16'"
    ):
        Policy(jnp.float16)
    with pytest.raises(TypeError, match="'name' must be a string, but got: 1"):
        Policy(1)


def test_config_inner_optimizer_has_tf_keras_serialize_keys():
    # tf-keras 2.21: LossScaleOptimizer(legacy.Adam(0.1)).get_config()
    expected = {
        "inner_optimizer": {
            "module": "keras.optimizers.legacy",
            "class_name": "Adam",
            "config": {
                "name": "Adam",
                "learning_rate": 0.1,
                "decay": 0.0,
                "beta_1": 0.9,
                "beta_2": 0.999,
                "epsilon": 1e-07,
                "amsgrad": False,
            },
            "registered_name": None,
        },
        "dynamic": True,
        "initial_scale": 32768.0,
        "dynamic_growth_steps": 2000,
    }
    opt = LossScaleOptimizer(optimizers.Adam(0.1))
    assert opt.get_config() == expected
    again = LossScaleOptimizer.from_config(expected)
    assert again.get_config() == expected
