"""``optaxish.mixed_precision``: LossScaleOptimizer (both signatures), Policy."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_fixtures import list_cases, load_case, seed_examples

from optaxish import Variable, optimizers
from optaxish.loss_scale import DynamicLossScale, StaticLossScale
from optaxish.mixed_precision import (
    LossScaleOptimizer,
    Policy,
    experimental,
    global_policy,
    set_global_policy,
)

LSO_CASES = list_cases("loss_scale")


def _inner(case):
    cls = getattr(optimizers, case.optimizer["class_name"])
    return cls(**case.optimizer["kwargs"])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You forgot to call")
        yield


# -- parity with tf-keras --------------------------------------------------------


def test_fixture_cases_are_all_covered():
    assert len(LSO_CASES) == 4


@pytest.mark.parametrize("case_id", LSO_CASES)
def test_tf_keras_trajectory(case_id):
    case = load_case(case_id)
    opt = LossScaleOptimizer(_inner(case), **case.loss_scale)
    vs = [Variable(x, name=n) for x, n in zip(case.init, case.names)]
    for t in range(case.num_steps):
        before = [v.numpy() for v in vs]
        slots_before = opt.get_weights()
        opt.apply_gradients(zip(case.step_grads(t), vs))
        for i, v in enumerate(vs):
            np.testing.assert_allclose(
                v.numpy(), case.params[i][t], rtol=1e-5, atol=1e-6, err_msg=f"{t}"
            )
        assert int(opt.iterations) == case.iterations[t]
        assert float(opt.loss_scale) == case.loss_scale_values[t]
        if case.loss_scale["dynamic"]:
            assert int(opt.dynamic_counter) == case.dynamic_counter[t]
        else:
            assert opt.dynamic_counter is None
        if opt.dynamic and not case.grads_finite[t]:  # skipped: bit-identical
            for b, v in zip(before, vs):
                assert np.array_equal(b, v.numpy())
            for b, w in zip(slots_before[1:], opt.get_weights()[1:]):
                assert np.array_equal(b, w)
    for (i, name), value in case.slots.items():
        np.testing.assert_allclose(
            opt.get_slot(vs[i], name), value, rtol=1e-5, atol=1e-6
        )
    assert [w.name for w in opt.weights] == case.weight_names
    for ours, theirs in zip(opt.get_weights(), case.weights, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    config = opt.get_config()
    assert config == case.config  # tf-keras' keys, `module` and `registered_name` too
    assert opt._traces == 1


def test_seed_example():
    ref = seed_examples()["loss_scale_optimizer_docstring"]["outputs"]
    opt = LossScaleOptimizer(optimizers.SGD(0.25))
    var = Variable(1.0)
    loss_fn = lambda: var**2  # noqa: E731
    opt.minimize(loss_fn, var_list=var)
    assert var.numpy() == ref["after_minimize"] == 0.5
    assert float(opt.loss_scale) == ref["loss_scale_after_minimize"]
    loss = loss_fn()
    scaled_loss = opt.get_scaled_loss(loss)
    assert float(loss) == ref["loss"] and float(scaled_loss) == ref["scaled_loss"]
    scaled_grad = jax.grad(lambda x: opt.get_scaled_loss(x**2))(var.value)
    assert float(scaled_grad) == ref["scaled_grad"]
    (grad,) = opt.get_unscaled_gradients([scaled_grad])
    assert float(grad) == ref["unscaled_grad"]
    opt.apply_gradients([(grad, var)])
    assert var.numpy() == ref["after_apply_gradients"] == 0.25
    assert int(opt.iterations) == ref["iterations"]
    assert int(opt.dynamic_counter) == ref["dynamic_counter"]
    assert float(opt.loss_scale) == ref["loss_scale"]
    config = opt.get_config()
    assert config == ref["config"]


def test_seed_example_experimental_signature():
    opt = experimental.LossScaleOptimizer(optimizers.SGD(0.25), "dynamic")
    var = Variable(1.0)
    opt.minimize(lambda: var**2, var_list=var)
    assert var.numpy() == 0.5
    grad = jax.grad(lambda x: opt.get_scaled_loss(x**2))(var.value)
    (grad,) = opt.get_unscaled_gradients([grad])
    opt.apply_gradients([(grad, var)])
    assert var.numpy() == 0.25
    assert float(opt.loss_scale.loss_scale) == 32768.0
    assert isinstance(opt.loss_scale, DynamicLossScale)


# -- behaviour ------------------------------------------------------------------------


def test_defaults_and_properties():
    inner = optimizers.Adam(beta_1=0.8, epsilon=1e-5)
    opt = LossScaleOptimizer(inner)
    assert opt.dynamic is True and opt.inner_optimizer is inner
    assert opt.initial_scale == 32768.0 and opt.dynamic_growth_steps == 2000
    assert float(opt.loss_scale) == 32768.0 and int(opt.dynamic_counter) == 0
    assert float(opt.beta_1) == pytest.approx(0.8)
    opt.beta_1 = 0.7
    assert float(inner.beta_1) == pytest.approx(0.7)
    with pytest.raises(AttributeError, match="no attribute 'epsilon'"):
        opt.epsilon  # noqa: B018
    opt.epsilon = 1e-4
    assert inner.epsilon == 1e-5 and opt.epsilon == 1e-4
    opt.learning_rate = 0.5
    assert float(inner.learning_rate) == 0.5
    opt.lr = 0.25
    assert float(inner.learning_rate) == 0.25 and float(opt.lr) == 0.25
    opt.iterations = 7
    assert int(inner.iterations) == 7
    fixed = LossScaleOptimizer(optimizers.SGD(), dynamic=False, initial_scale=128)
    assert fixed.dynamic is False and fixed.dynamic_counter is None
    assert fixed.dynamic_growth_steps is None and float(fixed.loss_scale) == 128.0


def test_skip_increments_iterations_only_in_tf_keras_signature():
    grads = [np.array([np.inf, 1.0], np.float32)]
    for cls, args, expected in (
        (LossScaleOptimizer, {"initial_scale": 8.0}, 1),
        (experimental.LossScaleOptimizer, {"loss_scale": DynamicLossScale(8.0)}, 0),
    ):
        opt = cls(optimizers.SGD(1.0), **args)
        var = Variable([1.0, 2.0])
        opt.apply_gradients(zip(grads, [var]))
        np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])
        assert int(opt.iterations) == expected
        assert float(np.asarray(opt._loss_scale.loss_scale)) == 4.0
        opt.apply_gradients([(jnp.array([8.0, 8.0]), var)])
        np.testing.assert_array_equal(var.numpy(), [-7.0, -6.0])
        assert int(opt.iterations) == expected + 1


def test_fixed_scale_applies_non_finite_gradients():
    for opt in (
        LossScaleOptimizer(optimizers.SGD(1.0), dynamic=False, initial_scale=128),
        experimental.LossScaleOptimizer(optimizers.SGD(1.0), 128),
    ):
        var = Variable([1.0])
        opt.apply_gradients([(jnp.array([jnp.inf]), var)])
        assert var.numpy()[0] == -np.inf and int(opt.iterations) == 1


def test_experimental_loss_scale_forms():
    sgd = optimizers.SGD
    opt = experimental.LossScaleOptimizer(sgd(), 64)
    assert isinstance(opt.loss_scale, StaticLossScale)
    assert float(opt.loss_scale.loss_scale) == 64.0
    mine = DynamicLossScale(4.0, period=2)
    opt = experimental.LossScaleOptimizer(sgd(1.0), mine)
    var = Variable([0.0])
    for _ in range(2):
        opt.apply_gradients([(jnp.array([1.0]), var)])
    assert float(opt.loss_scale.loss_scale) == 8.0
    assert float(mine.loss_scale) == 4.0  # the caller's value is not donated
    config = opt.get_config()
    assert config["loss_scale"] == {
        "class_name": "DynamicLossScale",
        "config": {"initial_loss_scale": 4.0, "increment_period": 2, "multiplier": 2.0},
    }
    clone = experimental.LossScaleOptimizer.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(AttributeError, match="cannot call get_slot"):
        opt.get_slot(var, "momentum")


def test_minimize_trains_float16_where_unscaled_stalls():
    # The backward pass multiplies by 1e-4 twice: 1e-8 underflows float16.
    # (`eps` is a variable, not a constant, so XLA cannot fold 1e-4 * 1e-4.)
    eps = Variable(jnp.float16(1e-4))

    def loss_for(w):
        return lambda: jnp.sum(eps * (eps * (w * 1e4)))

    w_plain = Variable(jnp.ones(3, jnp.float16))
    plain = optimizers.SGD(100.0)
    w_lso = Variable(jnp.ones(3, jnp.float16))
    lso = LossScaleOptimizer(optimizers.SGD(100.0))
    loss_plain, loss_lso = loss_for(w_plain), loss_for(w_lso)  # once: compiled once
    for _ in range(5):
        plain.minimize(loss_plain, [w_plain])
        lso.minimize(loss_lso, [w_lso])
    np.testing.assert_array_equal(w_plain.numpy(), np.ones(3, np.float16))
    assert w_lso.dtype == jnp.float16
    np.testing.assert_allclose(w_lso.numpy(), 0.95, rtol=1e-2)
    assert int(lso.iterations) == 5 and float(lso.loss_scale) == 32768.0


def test_minimize_overflow_skips_and_halves():
    opt = LossScaleOptimizer(optimizers.SGD(0.1))
    var = Variable(jnp.array([1.0], jnp.float16))
    opt.minimize(lambda: jnp.sum(var * 100.0), [var])  # 100 * 32768 > f16 max
    assert var.numpy()[0] == 1.0
    assert float(opt.loss_scale) == 16384.0 and int(opt.iterations) == 1


def test_one_compiled_step_no_retrace_on_learning_rate_or_scale():
    opt = LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=4.0)
    var = Variable([1.0, 2.0])
    loss = lambda: jnp.sum(var**2)  # noqa: E731
    for step in range(6):
        opt.learning_rate = 0.1 / (step + 1)
        opt.apply_gradients([(jnp.array([1.0, jnp.nan if step == 2 else 1.0]), var)])
        opt.minimize(loss, [var])
    assert opt._traces == 2  # one for apply_gradients, one for minimize
    assert float(opt.learning_rate) == pytest.approx(0.1 / 6)


def test_get_gradients_scales_and_unscales():
    opt = LossScaleOptimizer(optimizers.SGD())
    var = Variable(jnp.array([3.0], jnp.float16))
    eps = Variable(jnp.float16(1e-4))
    loss = lambda: jnp.sum(eps * (eps * (var * 1e4)))  # noqa: E731
    assert float(optimizers.SGD().get_gradients(loss, [var])[0][0]) == 0.0
    (grad,) = opt.get_gradients(loss, [var])
    assert grad.dtype == jnp.float16 and float(grad[0]) == pytest.approx(1e-4, 1e-2)


def test_scaling_helpers():
    opt = LossScaleOptimizer(optimizers.SGD(), initial_scale=4.0)
    assert float(opt.get_scaled_loss(jnp.float32(3.0))) == 12.0
    assert float(opt.get_scaled_loss(lambda: jnp.float32(3.0))()) == 12.0
    out = opt.get_unscaled_gradients([jnp.array([8.0]), None])
    np.testing.assert_array_equal(out[0], [2.0])
    assert out[1] is None


def test_warns_when_scaling_methods_were_not_called():
    opt = LossScaleOptimizer(optimizers.SGD())
    with pytest.warns(UserWarning, match="get_scaled_loss.*get_unscaled_gradients"):
        warnings.filterwarnings("default", "You forgot to call")
        opt.apply_gradients([(jnp.array([1.0]), Variable([1.0]))])


def test_config_round_trip():
    inner = optimizers.Adam(0.01, beta_1=0.8, amsgrad=True)
    opt = LossScaleOptimizer(inner, initial_scale=256.0, dynamic_growth_steps=10)
    config = opt.get_config()
    clone = LossScaleOptimizer.from_config(config)
    assert clone.get_config() == config
    assert type(clone.inner_optimizer) is optimizers.Adam
    fixed = LossScaleOptimizer(optimizers.SGD(), dynamic=False, initial_scale=64)
    assert LossScaleOptimizer.from_config(fixed.get_config()).get_config() == (
        fixed.get_config()
    )
    old = {
        "optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.5}},
        "loss_scale": {
            "class_name": "DynamicLossScale",
            "config": {
                "initial_loss_scale": 256,
                "increment_period": 10,
                "multiplier": 2.0,
            },
        },
    }
    converted = LossScaleOptimizer.from_config(old)
    assert (converted.dynamic, converted.initial_scale) == (True, 256.0)
    assert converted.dynamic_growth_steps == 10
    old["loss_scale"] = {
        "class_name": "FixedLossScale",
        "config": {"loss_scale_value": 64},
    }
    converted = LossScaleOptimizer.from_config(old)
    assert (converted.dynamic, converted.initial_scale) == (False, 64.0)
    old["loss_scale"] = {
        "class_name": "DynamicLossScale",
        "config": {"multiplier": 3.0},
    }
    with pytest.raises(ValueError, match="multiplier is not 2"):
        LossScaleOptimizer.from_config(old)


def test_constructor_errors():
    with pytest.raises(TypeError, match='"inner_optimizer" must be an instance'):
        LossScaleOptimizer(object())
    with pytest.raises(TypeError, match='"dynamic" argument .* must be a bool'):
        LossScaleOptimizer(optimizers.SGD(), "dynamic")
    with pytest.raises(ValueError, match='"initial_scale" must be specified'):
        LossScaleOptimizer(optimizers.SGD(), dynamic=False)
    with pytest.raises(ValueError, match='"dynamic_growth_steps" must be None'):
        LossScaleOptimizer(optimizers.SGD(), False, 2.0, 5)
    lso = LossScaleOptimizer(optimizers.SGD())
    with pytest.raises(TypeError, match="cannot wrap another LossScaleOptimizer"):
        LossScaleOptimizer(lso)
    with pytest.raises(ValueError, match="already wrapped"):
        LossScaleOptimizer(lso.inner_optimizer)
    with pytest.raises(ValueError, match="`initial_scale` must be positive"):
        LossScaleOptimizer(optimizers.SGD(), initial_scale=-1.0)


def test_experimental_constructor_errors():
    with pytest.raises(ValueError, match="must be an instance of OptimizerV2"):
        experimental.LossScaleOptimizer(object(), "dynamic")
    with pytest.raises(ValueError, match="loss_scale cannot be None"):
        experimental.LossScaleOptimizer(optimizers.SGD(), None)
    with pytest.raises(ValueError, match="Could not interpret loss scale"):
        experimental.LossScaleOptimizer(optimizers.SGD(), "static")
    with pytest.raises(ValueError, match="at least 1"):
        experimental.LossScaleOptimizer(optimizers.SGD(), 0.5)
    with pytest.raises(ValueError, match="with a clipnorm"):
        experimental.LossScaleOptimizer(optimizers.SGD(clipnorm=1.0), "dynamic")


def test_bad_input_changes_nothing():
    opt = LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.9), initial_scale=8.0)
    var = Variable([1.0, 2.0])
    opt.apply_gradients([(jnp.array([1.0, 1.0]), var)])
    weights = opt.get_weights()
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([(jnp.ones(3), var)])
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply_gradients([(None, var)])
    for a, b in zip(weights, opt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(opt.loss_scale) == 8.0 and int(opt.dynamic_counter) == 1


# -- policies ---------------------------------------------------------------------------


def test_policy_names_and_dtypes():
    for name, compute, variable in (
        ("float32", "float32", "float32"),
        ("mixed_float16", "float16", "float32"),
        ("mixed_bfloat16", "bfloat16", "float32"),
        ("bfloat16", "bfloat16", "bfloat16"),
        ("int32", "int32", "int32"),
    ):
        p = Policy(name)
        assert (p.name, p.compute_dtype, p.variable_dtype) == (name, compute, variable)
        assert repr(p) == f'<Policy "{name}">'
        assert Policy.from_config(p.get_config()).name == name
    core = Policy("mixed_float16").core
    assert (str(core.param_dtype), str(core.compute_dtype)) == ("float32", "float16")


def test_policy_errors():
    with pytest.raises(TypeError, match="'name' must be a string"):
        Policy(jnp.float32)
    with pytest.raises(ValueError, match="Cannot convert value mixed_float8"):
        Policy("mixed_float8")
    with pytest.raises(ValueError, match="use the 'mixed_float16' policy"):
        Policy("float16_with_float32_vars")


def test_global_policy():
    assert global_policy().name == "float32"
    try:
        set_global_policy("mixed_float16")
        assert global_policy().compute_dtype == "float16"
        set_global_policy(Policy("float64"))
        assert global_policy().name == "float64"
        with pytest.raises(ValueError, match="floating-point policies"):
            set_global_policy("int32")
        assert global_policy().name == "float64"
    finally:
        set_global_policy(None)
    assert global_policy().name == "float32"


def test_lazy_top_level_import():
    import optaxish

    assert optaxish.mixed_precision.LossScaleOptimizer is LossScaleOptimizer


def test_minimize_with_a_tape_is_a_clear_error():
    from optaxish import Variable, optimizers
    from optaxish.mixed_precision import LossScaleOptimizer

    v = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="get_scaled_loss"):
        opt.minimize(1.0, [v], tape=lambda loss, vs: [v.value])
    np.testing.assert_array_equal(v.numpy(), [1.0])
