"""orbax checkpoints of optaxish states: every kind of state survives a round trip.

One checkpoint holds the states of all cases (orbax saves are slow), written
with ``StandardCheckpointer`` and restored twice: into an abstract target
(``jax.eval_shape(tx.init, params)``, orbax's documented way) and without one.
After a restore, one more jitted ``update`` must give bit-identical numbers
without tracing or compiling again (for states committed to a device, as
orbax's restored arrays are). The facade's ``Optimizer.state`` and weights, flax's
``TrainState`` (through ``CheckpointManager``) and ``PyTreeCheckpointer`` get
their own round trips. A last section covers ``flax.serialization`` of typed
PRNG keys, which orbax handles and msgpack did not.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization
from flax.training import train_state

import optaxish as ox
from optaxish import Variable
from optaxish.loss_scale import DynamicLossScale, LossScalingState, loss_scaling
from optaxish.mixed_precision import LossScaleOptimizer
from optaxish.optimizers import Adam
from optaxish.packing import Packed, pack, packed, unpack

PARAMS = {"w": jnp.arange(6.0).reshape(3, 2) / 7 + 0.1, "b": jnp.linspace(-1.0, 1.0, 2)}
MIXED = {"h": jnp.linspace(0.5, 1.0, 3).astype(jnp.bfloat16), "w": PARAMS["w"]}
LABELS = {"w": "adam", "b": "sgd"}


def _grads(params, i, scale=1.0):
    return jax.tree.map(lambda p: (jnp.cos(p * (i + 1)) + 0.1) * scale, params)


def _with_inf(grads):
    return jax.tree.map(lambda g: g.at[0].set(jnp.inf), grads)


def _dynamic():
    # Every field off its default, the bounds included.
    return DynamicLossScale(
        2.0**6, period=3, factor=4.0, min_loss_scale=0.5, max_loss_scale=2.0**10
    )


# name -> (transformation, params, gradients of the steps before saving).
# Loss-scaled cases get scaled gradients and one non-finite step, so their
# counters and scale are off their initial values when saved.
def _cases():
    def finite(params, scale=1.0):
        return [_grads(params, i, scale) for i in range(2)]

    def with_skip(params, scale=1.0):
        g = finite(params, scale)
        return [g[0], _with_inf(g[1]), _grads(params, 2, scale)]

    schedule = ox.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 20)
    return {
        "adam": (ox.adam(1e-2), PARAMS, finite(PARAMS)),
        "adamw": (ox.adamw(1e-2), PARAMS, finite(PARAMS)),
        "sgd_momentum": (ox.sgd(1e-2, momentum=0.9), PARAMS, finite(PARAMS)),
        "lamb": (ox.lamb(1e-2), PARAMS, finite(PARAMS)),
        "adafactor": (ox.adafactor(1e-2), PARAMS, finite(PARAMS)),
        "noisy_sgd": (ox.noisy_sgd(1e-2, key=3), PARAMS, finite(PARAMS)),
        "chain": (
            ox.chain(ox.clip_by_global_norm(1.0), ox.scale_by_adam(), ox.scale(-0.1)),
            PARAMS,
            finite(PARAMS),
        ),
        "named_chain": (
            ox.named_chain(("clip", ox.clip(1.0)), ("opt", ox.adam(1e-2))),
            PARAMS,
            finite(PARAMS),
        ),
        "partition": (
            ox.partition({"adam": ox.adam(1e-2), "sgd": ox.sgd(0.1, 0.9)}, LABELS),
            PARAMS,
            finite(PARAMS),
        ),
        "multi_transform": (
            ox.multi_transform(
                {"adam": ox.adam(1e-2), "sgd": ox.set_to_zero()}, LABELS
            ),
            PARAMS,
            finite(PARAMS),
        ),
        "masked": (
            ox.masked(ox.adam(1e-2), {"w": True, "b": False}),
            PARAMS,
            finite(PARAMS),
        ),
        "inject_hyperparams": (
            ox.inject_hyperparams(ox.adam)(learning_rate=1e-2, b1=0.8),
            PARAMS,
            finite(PARAMS),
        ),
        "inject_schedule": (
            ox.inject_hyperparams(ox.adamw)(learning_rate=schedule),
            PARAMS,
            finite(PARAMS),
        ),
        "multi_steps": (
            ox.MultiSteps(ox.adam(1e-2), 3, should_skip_update_fn=ox.skip_not_finite),
            PARAMS,
            finite(PARAMS),
        ),
        "loss_scaling": (
            loss_scaling(ox.adam(1e-2), _dynamic()),
            PARAMS,
            with_skip(PARAMS, 64.0),
        ),
        "apply_if_finite": (
            ox.apply_if_finite(ox.adam(1e-2), 2),
            PARAMS,
            with_skip(PARAMS),
        ),
        "packed": (packed(ox.adam(1e-2)), PARAMS, finite(PARAMS)),
        "packed_mixed_dtypes": (
            packed(ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(1e-2))),
            MIXED,
            finite(MIXED),
        ),
        "packed_params": (
            packed(ox.inject_hyperparams(ox.adam)(learning_rate=1e-2)),
            pack(PARAMS),
            [pack(g) for g in finite(PARAMS)],
        ),
        "loss_scaling_packed": (
            loss_scaling(packed(ox.adamw(1e-2)), _dynamic()),
            PARAMS,
            with_skip(PARAMS, 64.0),
        ),
    }


CASES = _cases()


def _key_data(x):
    """Typed keys as their key data (they compare as arrays only then)."""
    if _is_key(x):
        return ("key", str(jax.random.key_impl(x)), np.asarray(jax.random.key_data(x)))
    return ("array", None, np.asarray(x))


def _assert_identical(a, b):
    """Same structure (node classes and aux data included) and, leaf by leaf,
    the same dtype, shape and bits."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        (kx, ix, vx), (ky, iy, vy) = _key_data(x), _key_data(y)
        assert (kx, ix, vx.dtype, vx.shape) == (ky, iy, vy.dtype, vy.shape)
        np.testing.assert_array_equal(vx, vy, strict=True)


def _is_key(x):
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _is_rich(x):
    """A node orbax cannot rebuild without a target."""
    return isinstance(x, tuple | Packed | DynamicLossScale)


def _packed_values(tree):
    nodes = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, Packed))
    return [x for x in nodes if isinstance(x, Packed)]


DEVICE = jax.devices()[0]


@contextlib.contextmanager
def _count_compiles():
    """A list that gets one entry per XLA compilation inside the block."""
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


class _Traced:
    """``jax.jit(tx.update)`` that counts its traces."""

    def __init__(self, tx):
        self.traces = 0

        def update(grads, state, params):
            self.traces += 1
            return tx.update(grads, state, params)

        self.step = jax.jit(update)


@pytest.fixture(scope="module")
def checkpointer():
    with ocp.StandardCheckpointer() as ckptr:
        yield ckptr


@pytest.fixture(scope="module")
def saved(tmp_path_factory, checkpointer):
    """Every case trained a few jitted steps, saved in one checkpoint.

    Parameters, gradients and states are committed to a device, as orbax's
    restored arrays are: a jitted step compiles again for committed inputs
    where it was compiled for uncommitted ones (see
    ``test_an_uncommitted_state_is_not_traced_again``).
    """
    states, steps, inputs = {}, {}, {}
    for name, (tx, params, grads) in CASES.items():
        params, grads = jax.device_put((params, grads), DEVICE)
        step = _Traced(tx)
        state = jax.device_put(tx.init(params), DEVICE)
        for g in grads:
            state = step.step(g, state, params)[1]
        states[name], steps[name], inputs[name] = state, step, (params, grads)
    path = tmp_path_factory.mktemp("orbax") / "states"
    checkpointer.save(path, states)
    checkpointer.wait_until_finished()
    return path, states, steps, inputs


@pytest.fixture(scope="module")
def restored(saved, checkpointer):
    path = saved[0]
    targets = {
        name: jax.eval_shape(tx.init, params) for name, (tx, params, _) in CASES.items()
    }
    return checkpointer.restore(path, targets)


@pytest.fixture(scope="module")
def restored_raw(saved, checkpointer):
    return checkpointer.restore(saved[0])


# -- (a) into an abstract target ---------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_restore_into_abstract_target_is_identical(name, saved, restored):
    _assert_identical(restored[name], saved[1][name])


@pytest.mark.parametrize("name", list(CASES))
def test_restored_state_steps_bit_identically_without_compiling(name, saved, restored):
    step, (params, grads) = saved[2][name], saved[3][name]
    expected = step.step(grads[-1], saved[1][name], params)
    with _count_compiles() as compiles:
        got = step.step(grads[-1], restored[name], params)
    _assert_identical(got, expected)
    assert step.traces == 1 and not compiles


def test_an_uncommitted_state_is_not_traced_again(tmp_path, checkpointer):
    # A state never placed on a device explicitly is uncommitted; orbax
    # restores committed arrays, for which jit compiles its traced step once
    # more (JAX's rule, not optaxish's). Nothing is traced again.
    tx, params, grads = CASES["loss_scaling_packed"]
    step = _Traced(tx)
    state = tx.init(params)
    for g in grads:
        state = step.step(g, state, params)[1]
    checkpointer.save(tmp_path / "state", state)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "state", jax.eval_shape(tx.init, params))
    expected = step.step(grads[0], state, params)
    with _count_compiles() as compiles:
        _assert_identical(step.step(grads[0], restored, params), expected)
    assert step.traces == 1 and len(compiles) <= 1


@pytest.mark.parametrize("name", list(CASES))
def test_no_state_leaf_is_weakly_typed(name, saved):
    # orbax restores every array strongly typed: a weakly typed leaf (a
    # Python number turned into an array) would make a jitted step trace
    # again after each restore.
    tx, params, _ = CASES[name]
    for state in (tx.init(params), saved[1][name]):
        weak = [
            jax.tree_util.keystr(path)
            for path, x in jax.tree_util.tree_leaves_with_path(state)
            if getattr(x, "weak_type", False)
        ]
        assert not weak


def test_every_dynamic_loss_scale_field_survives(saved, restored):
    for name in ("loss_scaling", "loss_scaling_packed"):
        state = restored[name]
        assert isinstance(state, LossScalingState)
        scale = state.loss_scale
        assert isinstance(scale, DynamicLossScale)
        # Saved after a finite, a skipped (64 / 4) and a finite step.
        assert float(scale.loss_scale) == 16.0
        assert (int(scale.counter), int(scale.period)) == (1, 3)
        assert (float(scale.factor), float(scale.min_loss_scale)) == (4.0, 0.5)
        assert float(scale.max_loss_scale) == 2.0**10
        assert scale.counter.dtype == jnp.int32 and scale.period.dtype == jnp.int32
        assert (int(state.skipped_steps), int(state.consecutive_skipped_steps)) == (
            1,
            0,
        )


def test_packed_values_keep_their_layout(saved, restored):
    for name in ("packed", "packed_mixed_dtypes", "packed_params"):
        got, want = _packed_values(restored[name]), _packed_values(saved[1][name])
        assert got and [v.layout for v in got] == [v.layout for v in want]
        _assert_identical(unpack(restored[name]), unpack(saved[1][name]))


def test_int_and_bool_leaves_keep_their_dtype(restored, restored_raw):
    # With a target the dtypes are the target's; without one, the saved ones.
    for state in (restored["apply_if_finite"], restored_raw["apply_if_finite"]):
        state = state if isinstance(state, dict) else state._asdict()
        assert state["last_finite"].dtype == jnp.bool_ and bool(state["last_finite"])
        assert state["notfinite_count"].dtype == jnp.int32
        assert int(state["total_notfinite"]) == 1
    for state in (restored["multi_steps"], restored_raw["multi_steps"]):
        state = state if isinstance(state, dict) else state._asdict()
        assert state["mini_step"].dtype == jnp.int32 and int(state["mini_step"]) == 2


def test_typed_prng_key_survives(saved, restored):
    key = restored["noisy_sgd"][0].rng_key
    assert jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(
        jax.random.key_data(key), jax.random.key_data(saved[1]["noisy_sgd"][0].rng_key)
    )


# -- (b) without a target ----------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_restore_without_target_gives_plain_containers_with_exact_leaves(
    name, saved, restored_raw
):
    # orbax rebuilds dicts and lists (NamedTuples, loss-scale values and Packed
    # values lose their class, a Packed its layout); the leaves are exact,
    # dtypes and typed keys included, and `deserialize_tree` rebuilds the state.
    tx, params, _ = CASES[name]
    raw = restored_raw[name]
    nodes = jax.tree.leaves(raw, is_leaf=_is_rich)
    assert not any(_is_rich(x) for x in nodes)
    assert jax.tree.structure(raw) != jax.tree.structure(saved[1][name])
    rebuilt = ocp.tree.deserialize_tree(raw, jax.eval_shape(tx.init, params))
    _assert_identical(rebuilt, saved[1][name])


# -- flax TrainState through CheckpointManager ------------------------------------


def _apply(params, x):
    return x @ params["w"]


def test_train_state_round_trip_with_checkpoint_manager(tmp_path):
    tx = loss_scaling(packed(ox.adamw(1e-2)), _dynamic())

    def create():
        state = train_state.TrainState.create(apply_fn=_apply, params=PARAMS, tx=tx)
        # flax's `create` sets step=0, a Python int: a weakly typed leaf that
        # orbax restores strongly typed, so the next jitted step would trace
        # again (once). A strongly typed step avoids it; committing the state
        # to a device avoids compiling again (as orbax commits what it restores).
        return jax.device_put(state.replace(step=jnp.zeros([], jnp.int32)), DEVICE)

    traces = []

    @jax.jit
    def train_step(state, grads):
        traces.append(1)
        return state.apply_gradients(grads=grads)

    grads = jax.device_put([_grads(PARAMS, i, 64.0) for i in range(3)], DEVICE)
    state = create()
    for g in grads[:2]:
        state = train_step(state, g)
    options = ocp.CheckpointManagerOptions(max_to_keep=2)
    with ocp.CheckpointManager(tmp_path / "ckpt", options=options) as mngr:
        mngr.save(2, args=ocp.args.StandardSave(state))
        mngr.wait_until_finished()
        abstract = jax.eval_shape(create)
        restored = mngr.restore(
            mngr.latest_step(), args=ocp.args.StandardRestore(abstract)
        )
    assert isinstance(restored, train_state.TrainState)
    assert isinstance(restored.opt_state.loss_scale, DynamicLossScale)
    _assert_identical(restored, state)
    expected = train_step(state, grads[2])
    with _count_compiles() as compiles:
        _assert_identical(train_step(restored, grads[2]), expected)
    assert len(traces) == 1 and not compiles


def test_pytree_checkpointer_round_trip(tmp_path, saved):
    tx, params, _ = CASES["loss_scaling_packed"]
    state = saved[1]["loss_scaling_packed"]
    target = jax.eval_shape(tx.init, params)
    with ocp.PyTreeCheckpointer() as ckptr:
        ckptr.save(tmp_path / "state", state)
        # Without `restore_args` orbax warns that it reads the shardings from
        # the checkpoint ("Sharding info not provided when restoring").
        restored = ckptr.restore(
            tmp_path / "state",
            args=ocp.args.PyTreeRestore(
                item=target,
                restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            ),
        )
    _assert_identical(restored, state)


# -- the Keras-style facade ---------------------------------------------------------

GRADS = [np.full((3, 2), 0.3, np.float32), np.array([0.1, -0.2], np.float32)]


def _variables():
    return [
        Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 5),
        Variable(np.ones(2, np.float32)),
    ]


def _trained_adam():
    variables = _variables()
    opt = Adam(0.1)
    for _ in range(2):
        opt.apply_gradients(zip(GRADS, variables))
    return opt, variables


def test_facade_state_round_trip(tmp_path, checkpointer):
    opt, variables = _trained_adam()
    saved = opt.state
    checkpointer.save(tmp_path / "opt", saved)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, saved)
    restored = checkpointer.restore(tmp_path / "opt", target)
    _assert_identical(restored, saved)

    # Into a fresh optimizer built on copies of the variables.
    twins = [Variable(v.numpy()) for v in variables]
    fresh = Adam(0.1)
    fresh.build(twins)
    fresh.state = restored
    # Into the same optimizer, a few steps later: its compiled step is reused.
    opt.apply_gradients(zip(GRADS, variables))
    opt.state = restored
    for v, value in zip(variables, [t.numpy() for t in twins]):
        v.assign(value)
    opt.apply_gradients(zip(GRADS, variables))
    fresh.apply_gradients(zip(GRADS, twins))
    assert opt._traces == 1 and fresh._traces == 1
    assert int(opt.iterations) == int(fresh.iterations) == 3
    for a, b in zip(variables, twins):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), strict=True)
    _assert_identical(opt.state, fresh.state)


def test_facade_loading_a_restored_state_compiles_nothing(tmp_path, checkpointer):
    # orbax restores arrays committed to a device; the setter stores
    # uncommitted copies, for which the steps were compiled.
    opt, variables = _trained_adam()
    checkpointer.save(tmp_path / "opt", opt.state)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, opt.state)
    restored = checkpointer.restore(tmp_path / "opt", target)
    with _count_compiles() as compiles:
        opt.state = restored
        for _ in range(2):
            opt.apply_gradients(zip(GRADS, variables))
    assert opt._traces == 1
    assert not compiles


def test_loss_scale_optimizer_loading_a_restored_state_compiles_nothing(
    tmp_path, checkpointer
):
    variables = _variables()
    opt = LossScaleOptimizer(Adam(0.1), initial_scale=4.0)
    scaled = [g * 4.0 for g in GRADS]  # Keras 3's `apply` unscales
    for _ in range(2):
        opt.apply(scaled, variables)
    checkpointer.save(tmp_path / "lso", opt.state)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, opt.state)
    restored = checkpointer.restore(tmp_path / "lso", target)
    _assert_identical(restored, opt.state)
    with _count_compiles() as compiles:
        opt.state = restored
        for _ in range(2):
            opt.apply(scaled, variables)
    assert not compiles
    assert int(opt.iterations) == 4 and int(opt.dynamic_counter) == 4


def test_facade_weights_round_trip(tmp_path, checkpointer):
    opt, variables = _trained_adam()
    weights = opt.get_weights()
    checkpointer.save(tmp_path / "weights", weights)
    checkpointer.wait_until_finished()
    # A list of NumPy arrays comes back as one, target or not.
    raw = checkpointer.restore(tmp_path / "weights")
    target = [ocp.utils.to_shape_dtype_struct(w) for w in weights]
    restored = checkpointer.restore(tmp_path / "weights", target)
    for got in (raw, restored):
        assert [w.dtype for w in got] == [w.dtype for w in weights]  # int64 count
        for a, b in zip(got, weights):
            np.testing.assert_array_equal(a, b, strict=True)

    twins = [Variable(v.numpy()) for v in variables]
    fresh = Adam(0.1)
    fresh.build(twins)
    fresh.set_weights(raw)
    opt.apply_gradients(zip(GRADS, variables))
    fresh.apply_gradients(zip(GRADS, twins))
    for a, b in zip(variables, twins):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), strict=True)


# -- limits --------------------------------------------------------------------------


def test_packed_state_refuses_a_checkpoint_of_another_layout(tmp_path, checkpointer):
    tx = packed(ox.adam(0.1))
    before = {"a": jnp.ones(2), "b": jnp.ones(3)}
    after = {"b": jnp.ones(3), "c": jnp.ones(2)}  # "a" renamed "c": same buffer
    checkpointer.save(tmp_path / "packed", tx.init(before))
    checkpointer.wait_until_finished()
    # The buffers are named after the layout: the other layout's are not found.
    with pytest.raises(ValueError, match="not found"):
        checkpointer.restore(tmp_path / "packed", jax.eval_shape(tx.init, after))
    restored = checkpointer.restore(
        tmp_path / "packed", jax.eval_shape(tx.init, before)
    )
    _assert_identical(restored, tx.init(before))


# -- flax.serialization (msgpack) of typed PRNG keys --------------------------------


def test_flax_msgpack_round_trip_of_a_typed_key_state(saved):
    # msgpack refused typed keys ("JAX array with PRNGKey dtype cannot be
    # converted to a NumPy array") until register_flax_serialization covered them.
    ox.register_flax_serialization()
    tx = CASES["noisy_sgd"][0]
    state, step = saved[1]["noisy_sgd"], saved[2]["noisy_sgd"]
    params, grads = saved[3]["noisy_sgd"]
    data = serialization.to_bytes(state)
    restored = serialization.from_bytes(tx.init(params), data)
    _assert_identical(restored, state)
    _assert_identical(
        step.step(grads[0], restored, params), step.step(grads[0], state, params)
    )


def test_flax_restores_unwrapped_key_data_and_keeps_the_target_impl():
    ox.register_flax_serialization()
    target = {"k": jax.random.key(0, impl="rbg")}
    saved = ox.tree.unwrap_random_key_data({"k": jax.random.key(7, impl="rbg")})
    restored = serialization.from_bytes(target, serialization.to_bytes(saved))
    assert str(jax.random.key_impl(restored["k"])) == str(
        jax.random.key_impl(target["k"])
    )
    np.testing.assert_array_equal(
        jax.random.key_data(restored["k"]), np.asarray(saved["k"])
    )


def test_flax_refuses_key_data_of_another_shape():
    ox.register_flax_serialization()
    target = {"k": jax.random.key(0)}
    data = serialization.to_bytes({"k": np.zeros(3, np.uint32)})
    with pytest.raises(
        ValueError, match=r"at \./k .*expected uint32\[2\]\. Received: uint32\[3\]"
    ):
        serialization.from_bytes(target, data)
