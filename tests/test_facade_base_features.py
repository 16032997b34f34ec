"""Base-class features of the Keras-style optimizers: the registry
(``get``/``serialize``/``deserialize``), ``get_gradients``/``get_updates``,
gradient aggregation and transformers, the functional escape hatch
(``state``, ``stateless_apply``, ``transformation``) and the non-slot weight
hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable, optimizers
from optaxish.optimizers import schedules

# -- registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls",
    [
        ("adam", "Adam"),
        ("Adam", "Adam"),
        ("rmsprop", "RMSprop"),
        ("RMSprop", "RMSprop"),
        ("sgd", "SGD"),
        ("adagrad", "Adagrad"),
        ("adadelta", "Adadelta"),
        ("adamax", "Adamax"),
        ("nadam", "Nadam"),
        ("ftrl", "Ftrl"),
        ("adamw", "AdamW"),
        ("lion", "Lion"),
    ],
)
def test_get_by_name(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is getattr(optimizers, cls)
    assert opt.get_config() == getattr(optimizers, cls)().get_config()


def test_get_instance_and_dict():
    opt = optimizers.Adam(0.3)
    assert optimizers.get(opt) is opt
    got = optimizers.get({"class_name": "adam", "config": {"learning_rate": 0.5}})
    # tf-keras 2.21's output for the same call (ours stores float32 hypers).
    assert got.get_config() == pytest.approx(
        {
            "name": "Adam",
            "learning_rate": 0.5,
            "decay": 0.0,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        }
    )


@pytest.mark.parametrize("bad", [3, None, 1.5, [1]])
def test_get_uninterpretable(bad):
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        optimizers.get(bad)


def test_get_unknown_name():
    with pytest.raises(ValueError, match=r"^Unknown optimizer: 'nope'\. Please ensure"):
        optimizers.get("nope")
    with pytest.raises(ValueError, match="Unknown optimizer: 'Nope'"):
        optimizers.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        optimizers.deserialize({"config": {}})


def test_serialize_matches_tf_keras_and_round_trips():
    config = optimizers.serialize(optimizers.Adam(0.1))
    assert config["config"] == pytest.approx(optimizers.Adam(0.1).get_config())
    config["config"] = pytest.approx(config["config"])
    assert config == {  # tf-keras 2.21: legacy.Adam(0.1)
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
    }
    lr = schedules.ExponentialDecay(0.1, 3, 0.5)
    opt = optimizers.RMSprop(lr, rho=0.8, centered=True, clipnorm=2.0)
    text = json.dumps(optimizers.serialize(opt))
    back = optimizers.deserialize(json.loads(text))
    assert type(back) is optimizers.RMSprop
    assert back.get_config() == opt.get_config()
    assert isinstance(back.learning_rate, schedules.ExponentialDecay)
    assert optimizers.serialize(optimizers.AdamW())["module"] == "keras.optimizers"


def test_custom_objects_and_registration():
    class MyAdam(optimizers.Adam):
        pass

    config = optimizers.serialize(MyAdam(0.2, name="mine"))
    assert config["class_name"] == "MyAdam"
    with pytest.raises(ValueError, match="Unknown optimizer: 'MyAdam'"):
        optimizers.deserialize(config)
    back = optimizers.deserialize(config, custom_objects={"MyAdam": MyAdam})
    assert type(back) is MyAdam and back.get_config()["name"] == "mine"

    @optimizers.register_optimizer(name="WrapperForTest")
    class Wrapper:  # e.g. a LossScaleOptimizer: not an `Optimizer` subclass
        def __init__(self, inner):
            self.inner = optimizers.get(inner)

        def get_config(self):
            return {"inner": optimizers.serialize(self.inner)}

        @classmethod
        def from_config(cls, config, custom_objects=None):
            return cls(optimizers.deserialize(config["inner"], custom_objects))

    w = Wrapper("sgd")
    assert optimizers.get(w) is w
    config = json.loads(json.dumps(optimizers.serialize(w)))
    assert config["class_name"] == "WrapperForTest"
    assert config["registered_name"] == "WrapperForTest"
    back = optimizers.get(config)
    assert type(back) is Wrapper and type(back.inner) is optimizers.SGD


# -- get_gradients / get_updates ---------------------------------------------------


def test_get_gradients_clips_and_does_not_step():
    a, b = Variable([3.0, 4.0]), Variable(2.0)
    opt = optimizers.SGD(0.5, clipnorm=1.0)
    ga, gb = opt.get_gradients(lambda: jnp.sum(a * a) + 3.0 * b, [a, b])
    np.testing.assert_allclose(ga, [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(gb, 1.0, rtol=1e-6)
    plain = optimizers.SGD(0.5).get_gradients(lambda: jnp.sum(a * a), a)
    np.testing.assert_allclose(plain[0], [6.0, 8.0])
    assert int(opt.iterations) == 0 and opt.weights == []
    np.testing.assert_array_equal(a.numpy(), [3.0, 4.0])
    with pytest.raises(ValueError, match="callable"):
        opt.get_gradients(1.0, [a])
    with pytest.raises(TypeError, match="Variable"):
        opt.get_gradients(lambda: 1.0, [np.ones(2)])


def test_get_updates_is_a_legacy_step():
    v1, v2 = Variable([1.0, -2.0]), Variable([1.0, -2.0])
    o1, o2 = optimizers.Adam(0.1, clipvalue=0.5), optimizers.Adam(0.1, clipvalue=0.5)

    def loss1():
        return jnp.sum(v1**3)

    for _ in range(3):
        out = o1.get_updates(loss1, [v1])
        o2.minimize(lambda: jnp.sum(v2**3), [v2])
    assert len(out) == 1 and int(out[0]) == 3
    np.testing.assert_array_equal(v1.numpy(), v2.numpy())
    assert o1._traces == 1


# -- aggregation and transformers (tf-keras 2.21 numbers) -----------------------------


def _double(pairs):
    return [(2.0 * g, v) for g, v in pairs]


def test_aggregator_runs_before_clipping():
    v = Variable(5.0)
    optimizers.SGD(1.0, gradient_aggregator=_double, clipvalue=1.0).apply_gradients(
        [(0.8, v)]
    )
    assert float(v.numpy()) == 4.0  # tf-keras: 4.0 (clip after aggregation)


def test_transformers_after_aggregation_and_flag():
    v = Variable(5.0)
    opt = optimizers.SGD(
        1.0,
        gradient_aggregator=lambda gv: [(g + 1.0, v) for g, v in gv],
        gradient_transformers=[lambda gv: [(3.0 * g, v) for g, v in gv]],
    )
    opt.apply_gradients([(1.0, v)])
    assert float(v.numpy()) == -1.0  # tf-keras: -1.0
    opt.apply_gradients([(1.0, v)], experimental_aggregate_gradients=False)
    assert float(v.numpy()) == -4.0  # tf-keras: -4.0 (transformers still run)
    w = Variable(0.0)
    opt2 = optimizers.SGD(1.0, gradient_transformers=[_double])
    opt2.minimize(lambda: 2.0 * w, [w])  # minimize aggregates too
    assert float(w.numpy()) == -4.0
    assert "gradient_transformers" not in opt.get_config()


@pytest.mark.parametrize("key", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_clip_with_transformers_rejected(key):
    with pytest.raises(ValueError, match=f"^`{key}` cannot be set when"):
        optimizers.SGD(1.0, gradient_transformers=[_double], **{key: 1.0})
    with pytest.raises(TypeError, match="callables"):
        optimizers.SGD(1.0, gradient_transformers=[3.0])


def test_bad_aggregator_output_names_it():
    v = Variable([1.0])
    opt = optimizers.SGD(1.0, gradient_aggregator=lambda gv: [])
    with pytest.raises(ValueError, match="gradient_aggregator"):
        opt.apply_gradients([([1.0], v)])
    np.testing.assert_array_equal(v.numpy(), [1.0])
    assert int(opt.iterations) == 0


def test_apply_gradients_inside_a_transform_is_an_error():
    v = Variable(1.0)
    opt = optimizers.SGD(1.0)
    with pytest.raises(RuntimeError, match="stateless_apply"):
        jax.jit(lambda g: opt.apply_gradients([(g, v)]))(1.0)
    assert float(v.numpy()) == 1.0


def test_default_aggregator_sums_over_a_named_axis():
    # vmap's named axis stands for the devices here (shard_map: next test).
    x = Variable([1.0, 2.0])
    opt = optimizers.Adam(0.1, axis_name="dev", clipnorm=1.0)
    opt.build([x])
    per_device = jnp.array([[0.5, -1.0], [1.5, 0.25], [-1.0, 2.0]])

    def replica(g):
        (new,), state = opt.stateless_apply(opt.state, [g], [x.value])
        return new, state.iterations

    new, its = jax.vmap(replica, axis_name="dev")(per_device)
    ref = Variable([1.0, 2.0])
    optimizers.Adam(0.1, clipnorm=1.0).apply_gradients([(per_device.sum(0), ref)])
    for row in np.asarray(new):
        np.testing.assert_allclose(row, ref.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(its, [1, 1, 1])
    # No aggregation without the flag: each replica uses its own gradient.
    new, _ = jax.vmap(
        lambda g: opt.stateless_apply(
            opt.state, [g], [x.value], experimental_aggregate_gradients=False
        ),
        axis_name="dev",
    )(per_device)
    assert not np.allclose(new[0][0], new[0][1])
    # Outside the axis the default aggregator is the identity.
    y = Variable([1.0, 2.0])
    optimizers.Adam(0.1, axis_name="dev").apply_gradients([([0.5, -1.0], y)])
    assert np.all(np.isfinite(y.numpy()))


_SHARD_MAP_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    from optaxish import Variable, optimizers
    assert jax.device_count() == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("d",))
    a, b = Variable([1.0, 2.0, 3.0]), Variable(0.5)
    opt = optimizers.RMSprop(0.05, momentum=0.9, axis_name="d", global_clipnorm=2.0)
    opt.build([a, b])
    rng = np.random.default_rng(0)
    grads_a = rng.normal(size=(10, 2, 3)).astype(np.float32)
    grads_b = rng.normal(size=(10, 2)).astype(np.float32)

    @jax.jit
    def step(state, values, ga, gb):
        def local(state, values, ga, gb):
            return opt.stateless_apply(state, [ga[0], gb[0]], values)
        return jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("d"), P("d")),
                             out_specs=P(), check_vma=False)(state, values, ga, gb)

    state, values = opt.state, [a.value, b.value]
    for t in range(10):
        values, state = step(state, values, grads_a[t], grads_b[t])
    ref_a, ref_b = Variable([1.0, 2.0, 3.0]), Variable(0.5)
    ref = optimizers.RMSprop(0.05, momentum=0.9, global_clipnorm=2.0)
    for t in range(10):
        ref.apply_gradients([(grads_a[t].sum(0), ref_a), (grads_b[t].sum(0), ref_b)])
    np.testing.assert_allclose(values[0], ref_a.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values[1], ref_b.numpy(), rtol=1e-5, atol=1e-6)
    assert int(state.iterations) == 10
    print("OK")
    """
)


def test_shard_map_on_two_cpu_devices_sums_gradients():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", _SHARD_MAP_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


def test_deepcopy_steps_independently_of_the_original():
    import copy

    from optaxish.mixed_precision import LossScaleOptimizer

    for make in (
        lambda: optimizers.Adam(0.1),
        lambda: LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.9)),
    ):
        v = Variable([1.0, 2.0])
        opt = make()

        def step(o, var):
            return o.minimize(lambda: jnp.sum(var * var), [var])

        step(opt, v)
        twin_opt, twin_v = copy.deepcopy((opt, v))
        step(opt, v)  # donates the original's buffers
        step(twin_opt, twin_v)
        np.testing.assert_array_equal(twin_v.numpy(), v.numpy())
        assert int(twin_opt.iterations) == int(opt.iterations) == 2
        assert twin_opt._traces == 1  # it compiled its own step
