"""Custom optimizers written with tf-keras' subclassing hooks, compiled."""

from __future__ import annotations

import copy
import importlib.util
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable
from optaxish.optimizers import SGD, Optimizer, schedules

_EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "custom_optimizer.py"
_spec = importlib.util.spec_from_file_location("custom_optimizer_example", _EXAMPLE)
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
MomentumSGD = example.MomentumSGD


class CountingSGD(Optimizer):
    """Plain SGD with a non-slot step counter and an extra ones-slot."""

    def __init__(self, learning_rate=0.1, name="CountingSGD", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))

    def _create_slots(self, var_list):
        self.add_weight("count", [], dtype=jnp.int32)
        for var in var_list:
            self.add_slot(var, "scale", "ones", shape=[1])

    def _resource_apply_dense(self, grad, var, apply_state):
        lr_t = apply_state[(None, var.dtype)]["lr_t"]
        var.assign_sub(lr_t * self.get_slot(var, "scale")[0] * grad)
        self.add_weight("count", [], dtype=jnp.int32).assign_add(1)


def _vars():
    return [Variable([1.0, -2.0, 0.5], name="x"), Variable(3.0, name="y")]


def _grads(step):
    rng = np.random.default_rng(step)
    return [rng.normal(size=3).astype(np.float32), np.float32(rng.normal())]


def test_matches_builtin_momentum_sgd_over_20_steps():
    custom, builtin = MomentumSGD(0.05, momentum=0.8), SGD(0.05, momentum=0.8)
    cv, bv = _vars(), _vars()
    for step in range(20):
        g = _grads(step)
        custom.apply_gradients(zip(g, cv))
        builtin.apply_gradients(zip(g, bv))
        for a, b in zip(cv, bv):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(cv, bv):
        np.testing.assert_allclose(
            custom.get_slot(a, "momentum"), builtin.get_slot(b, "momentum"), rtol=1e-6
        )
    assert int(custom.iterations) == 20
    assert custom.get_slot_names() == builtin.get_slot_names() == ["momentum"]


def test_decay_and_schedule_follow_the_base_rules():
    sched = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    for kwargs in ({"learning_rate": 1.0, "decay": 0.5}, {"learning_rate": sched}):
        custom, builtin = (
            MomentumSGD(momentum=0.5, **kwargs),
            SGD(momentum=0.5, **kwargs),
        )
        cv, bv = _vars(), _vars()
        for step in range(5):
            custom.apply_gradients(zip(_grads(step), cv))
            builtin.apply_gradients(zip(_grads(step), bv))
        for a, b in zip(cv, bv):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_traced_once_across_steps_and_learning_rate_changes():
    opt, vs = MomentumSGD(0.1), _vars()
    before = [v.numpy() for v in vs]
    for step in range(6):
        if step == 3:
            opt.learning_rate = 0.0
            opt.momentum = 0.0
        opt.apply_gradients(zip(_grads(step), vs))
        if step == 2:
            mid = [v.numpy() for v in vs]
    assert opt._traces == 1
    assert all(not np.allclose(a, b) for a, b in zip(before, mid))
    for a, b in zip(mid, vs):  # lr=0, momentum=0 after step 3: frozen
        np.testing.assert_array_equal(a, b.numpy())


def test_minimize_works_and_traces_once():
    w = Variable([1.0, 2.0], name="w")
    opt = MomentumSGD(0.1, momentum=0.5)

    def loss():
        return jnp.sum(w**2)

    for _ in range(30):
        opt.minimize(loss, [w])
    np.testing.assert_allclose(w.numpy(), 0.0, atol=1e-3)
    assert opt._traces == 1


def test_example_trains():
    params, loss, opt = example.train(steps=60)
    np.testing.assert_allclose(params, [2.0, -1.0], atol=0.05)
    assert loss < 1e-3 and opt._traces == 1


def test_slots_weights_and_round_trip():
    opt, vs = CountingSGD(0.5), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    opt.apply_gradients(zip(_grads(1), vs))
    assert [w.name for w in opt.weights] == [
        "CountingSGD/iter:0", "CountingSGD/count:0",
        "CountingSGD/x/scale:0", "CountingSGD/y/scale:0",
    ]  # fmt: skip
    weights = opt.get_weights()
    assert int(weights[0]) == 2 and int(weights[1]) == 4  # 2 variables, 2 steps
    np.testing.assert_array_equal(opt.get_slot(vs[0], "scale"), [1.0])
    weights[1], weights[2] = np.array(10), np.array([0.0], np.float32)
    opt.set_weights(weights)
    assert int(opt.get_weights()[1]) == 10
    frozen = vs[0].numpy()
    opt.apply_gradients(zip(_grads(2), vs))
    np.testing.assert_array_equal(vs[0].numpy(), frozen)  # scale 0 freezes x
    assert int(opt.get_weights()[1]) == 12 and int(opt.iterations) == 3
    assert opt._traces == 1
    with pytest.raises(ValueError, match="expecting 4 weights"):
        opt.set_weights(weights[:2])
    with pytest.raises(ValueError, match=r"weight shape \(1,\) not compatible"):
        opt.set_weights(weights[:2] + [np.zeros(2), weights[3]])
    assert int(opt.get_weights()[1]) == 12


def test_get_weights_set_weights_round_trip_between_optimizers():
    a, va = MomentumSGD(0.1), _vars()
    for step in range(3):
        a.apply_gradients(zip(_grads(step), va))
    b, vb = MomentumSGD(0.1), [Variable(v.numpy(), name=v.name[:-2]) for v in va]
    b.build(vb)
    b.set_weights(a.get_weights())
    for opt, vs in ((a, va), (b, vb)):
        opt.apply_gradients(zip(_grads(9), vs))
    for x, y in zip(va, vb):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert [w.name for w in b.weights] == [
        "MomentumSGD/iter:0", "MomentumSGD/x/momentum:0", "MomentumSGD/y/momentum:0",
    ]  # fmt: skip


def test_config_round_trip():
    opt = MomentumSGD(0.25, momentum=0.7, clipnorm=1.0)
    config = opt.get_config()
    assert config == {
        "name": "MomentumSGD",
        "learning_rate": pytest.approx(0.25),
        "decay": 0.0,
        "momentum": pytest.approx(0.7),
        "clipnorm": 1.0,
    }
    clone = MomentumSGD.from_config(config)
    assert clone.get_config() == config
    assert isinstance(copy.deepcopy(opt), MomentumSGD)


def test_add_slot_on_an_unknown_variable_is_a_clear_error():
    opt, vs = MomentumSGD(), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    stranger = Variable([1.0], name="stranger")
    with pytest.raises(ValueError, match="'stranger:0'.*does not update"):
        opt.add_slot(stranger, "m")


def test_duplicate_slot():
    opt, vs = MomentumSGD(), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    slot = opt.add_slot(vs[0], "momentum")  # same slot again: the same one
    np.testing.assert_array_equal(slot.numpy(), opt.get_slot(vs[0], "momentum"))
    assert len(opt.get_weights()) == 3
    with pytest.raises(ValueError, match="'momentum' of variable 'x:0' exists"):
        opt.add_slot(vs[0], "momentum", shape=[2])


def test_missing_slot_and_unknown_variable_are_key_errors():
    opt, vs = MomentumSGD(), _vars()
    opt.apply_gradients(zip(_grads(0), vs))
    with pytest.raises(KeyError, match="no slot 'nope'"):
        opt.get_slot(vs[0], "nope")
    with pytest.raises(KeyError):
        opt.get_slot(Variable(1.0), "momentum")


def test_failing_create_slots_leaves_the_optimizer_unchanged():
    class Broken(MomentumSGD):
        def _create_slots(self, var_list):
            super()._create_slots(var_list)
            self.add_slot(var_list[0], "bad", initializer="glorot")

    opt, vs = Broken(), _vars()
    with pytest.raises(ValueError, match="Unknown initializer.*'glorot'"):
        opt.apply_gradients(zip(_grads(0), vs))
    assert opt.get_weights() == [] and opt.get_slot_names() == []
    assert int(opt.iterations) == 0


def test_sparse_hook_and_add_weight_on_builtins_raise_clearly():
    with pytest.raises(NotImplementedError, match="no `tf.IndexedSlices`"):
        MomentumSGD()._resource_apply_sparse(None, None, None, None)
    with pytest.raises(TypeError, match="`add_weight` is for custom optimizers"):
        SGD().add_weight("count", [])


class KerasStyleAdam(Optimizer):
    """tf-keras' legacy Adam kernel, reading ``iterations`` in the trace."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, name="Adam"):
        super().__init__(name)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = 1e-7

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "m")
        for var in var_list:
            self.add_slot(var, "v")

    def _resource_apply_dense(self, grad, var, apply_state):
        dtype = var.dtype
        t = jnp.asarray(self.iterations + 1, dtype)
        b1, b2 = self._get_hyper("beta_1", dtype), self._get_hyper("beta_2", dtype)
        lr = self._decayed_lr(dtype) * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m.assign(b1 * m + (1 - b1) * grad)
        v.assign(b2 * v + (1 - b2) * grad**2)
        var.assign_sub(lr * m / (jnp.sqrt(v.value) + self.epsilon))


def test_iterations_and_hypers_are_traced_values():
    from optaxish.optimizers import Adam

    custom, builtin = KerasStyleAdam(0.1, beta_1=0.8), Adam(0.1, beta_1=0.8)
    cv, bv = _vars(), _vars()
    for step in range(20):
        if step == 10:
            custom.beta_2 = builtin.beta_2 = 0.99
        custom.apply_gradients(zip(_grads(step), cv))
        builtin.apply_gradients(zip(_grads(step), bv))
    for a, b in zip(cv, bv):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert [w.name for w in custom.weights] == [w.name for w in builtin.weights]
    assert custom._traces == 1
