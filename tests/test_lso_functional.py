"""The LossScaleOptimizer's functional side: ``state``, ``apply`` (Keras 3),
``stateless_apply`` and ``transformation``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optaxish
from optaxish import Variable, loss_scale, optimizers
from optaxish.mixed_precision import LossScaleOptimizer, LossScaleOptimizerState
from optaxish.mixed_precision import experimental as mp_experimental


def _values(variables):
    return [v.value for v in variables]


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_keras3_finite_step_reference():
    # Keras 3 `test_finite_step`: SGD(0.5), gradients [1, 6, 7, 2] times the
    # initial scale, on [1, 2, 3, 4] -> [0.5, -1, -0.5, 3].
    var = Variable([1.0, 2.0, 3.0, 4.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.5))
    opt.build([var])
    grads = [jnp.array([1.0, 6.0, 7.0, 2.0]) * opt.initial_scale]
    (new,), state = jax.jit(opt.stateless_apply)(opt.state, grads, [var.value])
    np.testing.assert_allclose(new, [0.5, -1.0, -0.5, 3.0])
    assert int(state.inner.iterations) == 1 and int(state.loss_scale.counter) == 1
    opt.apply(grads)  # the stateful form gives the same
    np.testing.assert_allclose(var.numpy(), [0.5, -1.0, -0.5, 3.0])


@pytest.mark.parametrize(
    ("make", "skip_counts"),
    [
        (lambda inner: LossScaleOptimizer(inner, initial_scale=8.0), True),
        (
            lambda inner: mp_experimental.LossScaleOptimizer(
                inner, loss_scale.DynamicLossScale(8.0)
            ),
            False,
        ),
    ],
)
def test_keras3_stateless_skip_reference(make, skip_counts):
    # Keras 3 on JAX, initial scale 8: [inf, 1] gives scale 4, counter 0 and
    # the values unchanged; then [8, 8] gives [1, 2] - [2, 2] = [-1, 0],
    # counter 1. Keras 3 does not count the skipped step in `iterations`
    # (TF 2.2's signature neither); tf-keras' signature does.
    var = Variable([1.0, 2.0])
    opt = make(optimizers.SGD(1.0))
    opt.build([var])
    step = jax.jit(opt.stateless_apply)
    (new,), state = step(opt.state, [jnp.array([jnp.inf, 1.0])], [var.value])
    np.testing.assert_array_equal(new, [1.0, 2.0])
    assert float(state.loss_scale.loss_scale) == 4.0
    assert int(state.loss_scale.counter) == 0
    assert int(state.inner.iterations) == int(skip_counts)
    (new,), state = step(state, [jnp.array([8.0, 8.0])], [new])
    np.testing.assert_array_equal(new, [-1.0, 0.0])
    assert int(state.loss_scale.counter) == 1
    assert int(state.inner.iterations) == 1 + int(skip_counts)


def _grad_sequence(pattern, shapes, seed=0):
    """Per step, gradients (already scaled by the caller) for ``shapes``;
    ``pattern[i]`` is None (finite) or the index of a leaf poisoned with inf."""
    rng = np.random.default_rng(seed)
    steps = []
    for bad in pattern:
        grads = [rng.normal(size=s).astype(np.float32) for s in shapes]
        if bad is not None:
            grads[bad % len(shapes)].flat[0] = np.inf
        steps.append(grads)
    return steps


SHAPES = [(3, 2), (2,), (4,)]


def _three_ways(pattern, make_inner, growth=2):
    """Runs one gradient sequence through ``apply``, a jitted
    ``stateless_apply`` and ``transformation()``; returns their final
    values and states."""
    grads_seq = _grad_sequence(pattern, SHAPES)
    init = [
        np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s) for s in SHAPES
    ]

    def make():
        return LossScaleOptimizer(
            make_inner(), initial_scale=4.0, dynamic_growth_steps=growth
        )

    # Stateful: scale each step's gradients with the optimizer's current scale.
    variables = [Variable(x) for x in init]
    stateful = make()
    stateful.build(variables)
    for grads in grads_seq:
        scale = stateful.loss_scale
        stateful.apply([g * scale for g in grads])

    # Stateless, jitted.
    fvars = [Variable(x) for x in init]
    functional = make()
    functional.build(fvars)
    step = jax.jit(functional.stateless_apply)
    state, values = functional.state, _values(fvars)
    for grads in grads_seq:
        scaled = [loss_scale.scale_loss(jnp.asarray(g), state) for g in grads]
        values, state = step(state, scaled, values)

    # transformation(), on a dict of params.
    tx = make().transformation()
    params = {f"p{i}": jnp.asarray(x) for i, x in enumerate(init)}
    tstate = tx.init(params)
    update = jax.jit(tx.update)
    for grads in grads_seq:
        tree = {
            f"p{i}": loss_scale.scale_loss(jnp.asarray(g), tstate)
            for i, g in enumerate(grads)
        }
        updates, tstate = update(tree, tstate, params)
        params = optaxish.apply_updates(params, updates)
    tvalues = [params[f"p{i}"] for i in range(len(init))]
    return (stateful, variables), (values, state), (tvalues, tstate)


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: optimizers.Adam(0.1),
        lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: optimizers.RMSprop(0.01, centered=True),
    ],
    ids=["adam", "sgd_nesterov", "rmsprop_centered"],
)
def test_apply_stateless_apply_and_transformation_agree(make_inner):
    pattern = [None, 1, None, None, None, 0, 2, None, None, None]
    (opt, variables), (values, state), (tvalues, tstate) = _three_ways(
        pattern, make_inner
    )
    for var, v, t in zip(variables, values, tvalues):
        np.testing.assert_allclose(var.numpy(), v, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(var.numpy(), t, rtol=1e-6, atol=1e-7)
    _assert_trees_equal(opt.state.loss_scale, state.loss_scale)
    _assert_trees_equal(opt.state.loss_scale, tstate.loss_scale)
    # Six finite steps at growth 2 doubled the scale; three skips halved it.
    assert int(opt.iterations) == int(state.inner.iterations) == len(pattern)
    assert int(tstate.inner.iterations) == len(pattern)
    _assert_trees_equal(opt.state.inner.inner_state, state.inner.inner_state)


@settings(max_examples=15, deadline=None)
@given(
    pattern=st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=1, max_size=12),
    growth=st.integers(1, 3),
)
def test_three_forms_agree_on_random_overflow_patterns(pattern, growth):
    (opt, variables), (values, state), (tvalues, tstate) = _three_ways(
        pattern, lambda: optimizers.Adam(0.05), growth
    )
    for var, v, t in zip(variables, values, tvalues):
        np.testing.assert_allclose(var.numpy(), v, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(var.numpy(), t, rtol=1e-6, atol=1e-7)
        assert np.all(np.isfinite(var.numpy()))
    _assert_trees_equal(opt.state.loss_scale, state.loss_scale)
    _assert_trees_equal(opt.state.loss_scale, tstate.loss_scale)
    _assert_trees_equal(opt.state.inner.inner_state, state.inner.inner_state)


def test_skipped_stateless_step_keeps_values_and_slots_bit_identical():
    var = Variable([1.0, -2.0])
    opt = LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=2.0)
    opt.build([var])
    step = jax.jit(opt.stateless_apply)
    values, state = step(opt.state, [jnp.array([2.0, 4.0])], [var.value])
    values2, state2 = step(state, [jnp.array([jnp.nan, 1.0])], values)
    _assert_trees_equal(values, values2)
    (adam,), (adam2,) = state.inner.inner_state[0][:1], state2.inner.inner_state[0][:1]
    _assert_trees_equal((adam.mu, adam.nu), (adam2.mu, adam2.nu))
    # tf-keras counts the skipped step; the step count follows `iterations`.
    assert int(state2.inner.iterations) == int(adam2.count) == 2
    assert float(state2.loss_scale.loss_scale) == 1.0


def test_state_round_trip_continues_the_same_trajectory():
    init = [jnp.array([1.0, 2.0]), jnp.array([[0.5]])]
    grads = [jnp.array([0.3, -0.2]), jnp.array([[0.7]])]
    a_vars = [Variable(x) for x in init]
    a = LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=4.0)
    a.build(a_vars)
    state, values = a.state, _values(a_vars)
    step = jax.jit(a.stateless_apply)
    for _ in range(3):
        values, state = step(state, [g * 4.0 for g in grads], values)
    # Load the functional result into a second optimizer; both go on alike.
    b_vars = [Variable(v) for v in values]
    b = LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=4.0)
    b.build(b_vars)
    b.state = state
    _assert_trees_equal(b.state, state)
    b.apply([g * float(b.loss_scale) for g in grads])
    values, state = step(state, [g * 4.0 for g in grads], values)
    for var, v in zip(b_vars, values):
        np.testing.assert_array_equal(var.numpy(), v)
    assert int(b.iterations) == 4


def test_state_assignment_errors_change_nothing():
    var = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=4.0)
    opt.build([var])
    before = opt.state
    # Another kind of loss scale.
    wrong_scale = before._replace(loss_scale=loss_scale.StaticLossScale(4.0))
    with pytest.raises(ValueError, match="DynamicLossScale"):
        opt.state = wrong_scale
    # A wrong inner state: the loss scale must not be half-assigned.
    bad_inner = before._replace(
        inner=before.inner._replace(iterations=jnp.zeros([2], jnp.int32)),
        loss_scale=before.loss_scale.replace(loss_scale=jnp.float32(2.0)),
    )
    with pytest.raises(ValueError, match="structure, shapes and dtypes"):
        opt.state = bad_inner
    _assert_trees_equal(opt.state, before)
    with pytest.raises(ValueError, match="LossScaleOptimizerState"):
        opt.state = before.inner  # the inner optimizer's state alone


def test_stateless_apply_errors():
    var = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="must be built"):
        opt.stateless_apply(opt.state, [[1.0]], [var])
    opt.build([var])
    with pytest.raises(ValueError, match="optimizer_variables"):
        opt.stateless_apply(opt.inner_optimizer.state, [[1.0]], [var])
    with pytest.raises(ValueError, match="Received list with length 2"):
        opt.stateless_apply(opt.state, [[1.0], [1.0]], [var])
    with pytest.raises(ValueError, match="has shape"):
        opt.stateless_apply(opt.state, [[1.0, 2.0]], [var])
    assert float(var.numpy()[0]) == 1.0 and int(opt.iterations) == 0


def test_stateless_apply_compiles_once():
    var = Variable([1.0, 2.0])
    opt = LossScaleOptimizer(optimizers.Adam(0.1))
    opt.build([var])
    traces = []

    @jax.jit
    def step(state, values, grads):
        traces.append(1)
        return opt.stateless_apply(state, grads, values)

    values, state = [var.value], opt.state
    for g in ([1.0, 2.0], [jnp.inf, 1.0], [3.0, 4.0]):
        values, state = step(state, values, [jnp.asarray(g)])
    assert len(traces) == 1


def test_apply_refused_inside_jit_and_empty_grads_do_nothing():
    var = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1))
    opt.build([var])
    with pytest.raises(RuntimeError, match="stateless_apply"):
        jax.jit(lambda: opt.apply([jnp.ones(1)]))()
    assert opt.apply([]) is None
    assert int(opt.iterations) == 0 and float(var.numpy()[0]) == 1.0


def test_apply_and_apply_gradients_differ_by_the_unscaling():
    # tf-keras' apply_gradients takes unscaled gradients, Keras 3's apply
    # scaled ones; the two compile separately.
    a, b = Variable([1.0]), Variable([1.0])
    opt_a = LossScaleOptimizer(optimizers.SGD(0.5), initial_scale=8.0)
    opt_b = LossScaleOptimizer(optimizers.SGD(0.5), initial_scale=8.0)
    opt_a.apply([jnp.array([8.0])], [a])
    (g,) = opt_b.get_unscaled_gradients([opt_b.get_scaled_loss(jnp.array([1.0]))])
    opt_b.apply_gradients([(g, b)])
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    opt_a.get_unscaled_gradients(opt_a.get_scaled_loss(jnp.array([1.0])))
    opt_a.apply_gradients([(jnp.array([1.0]), a)])  # same optimizer, both forms
    opt_a.apply([jnp.array([8.0])], [a])
    np.testing.assert_array_equal(a.numpy(), [-0.5])


def test_float16_compute_stateless_training_with_scaled_gradients():
    # float32 variables, float16 compute: a float16 gradient of 1e-8
    # underflows to 0 unscaled; scaled by 2**15 it survives the float16
    # backward pass and the float32 step moves the variable.
    var = Variable(jnp.ones([4]))
    opt = LossScaleOptimizer(optimizers.SGD(1e3))
    opt.build([var])
    small = jnp.float16(1e-4)  # an argument: XLA would fold small * small

    def loss_fn(v, small):
        return (v.astype(jnp.float16) * small).sum() * small

    assert np.all(jax.grad(loss_fn)(var.value, small) == 0)  # underflows unscaled

    @jax.jit
    def step(state, values, small):
        grads = jax.grad(lambda v: loss_scale.scale_loss(loss_fn(v, small), state))(
            values[0]
        )
        return opt.stateless_apply(state, [grads], values)

    (new,), state = step(opt.state, [var.value], small)
    np.testing.assert_allclose(new, 1.0 - 1e3 * 1e-8, rtol=1e-6)
    assert int(state.loss_scale.counter) == 1


def test_transformation_with_a_fixed_scale_and_helpers():
    opt = LossScaleOptimizer(optimizers.SGD(0.5), dynamic=False, initial_scale=4.0)
    tx = opt.transformation()
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    assert isinstance(state, LossScaleOptimizerState)
    assert float(loss_scale.get_loss_scale(state)) == 4.0
    loss, grads = jax.value_and_grad(
        lambda p: loss_scale.scale_loss(jnp.sum(p), state)
    )(params)
    assert float(loss) == 12.0
    updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates, [-0.5, -0.5])
    # A fixed scale applies non-finite gradients (nothing is skipped).
    updates, state = tx.update(jnp.array([jnp.inf, 4.0]), state, params)
    assert not np.isfinite(np.asarray(updates)[0])


def test_transformation_starts_from_the_initial_scale():
    var = Variable([1.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=8.0)
    opt.apply([jnp.array([jnp.inf])], [var])  # halves the optimizer's scale
    assert float(opt.loss_scale) == 4.0
    state = opt.transformation().init(jnp.zeros(1))
    assert float(state.loss_scale.loss_scale) == 8.0
    assert int(state.inner.iterations) == 0


def test_transformation_composes_with_optax_and_the_helpers_find_its_scale():
    import optax

    tx = optax.chain(
        optax.identity(),
        LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=4.0).transformation(),
    )
    params = {"w": jnp.array([1.0, -1.0])}
    state = tx.init(params)
    assert float(loss_scale.get_loss_scale(state)) == 4.0
    value_and_grad = jax.value_and_grad(
        lambda p, s: loss_scale.scale_loss(jnp.sum(p["w"] ** 2), s)
    )
    _, grads = value_and_grad(params, state)
    updates, state = jax.jit(tx.update)(grads, state, params)
    ref_tx = optaxish.chain(optaxish.identity(), optimizers.Adam(0.1).transformation())
    ref_updates, _ = ref_tx.update({"w": 2 * params["w"]}, ref_tx.init(params), params)
    np.testing.assert_allclose(updates["w"], ref_updates["w"], rtol=1e-6)
    assert int(loss_scale.find_loss_scale(state).counter) == 1
