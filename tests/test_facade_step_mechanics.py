"""Step mechanics of the Keras-style facade: reads under a trace, which
variables a compiled step updates, deep copies, empty and failing calls.

The expected numbers were recorded with tf-keras 2.21 (``tf_keras.optimizers.
legacy``), as noted at each test.
"""

from __future__ import annotations

import copy
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optaxish import Variable, optimizers
from optaxish.mixed_precision import LossScaleOptimizer
from tests.facade_helpers import four_gradients, four_variables

_EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "custom_optimizer.py"


def _momentum_sgd():
    """The custom (subclassing hooks) optimizer of the examples."""
    spec = importlib.util.spec_from_file_location("custom_optimizer_example", _EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MomentumSGD


def _weights(opt) -> list[tuple[str, np.ndarray]]:
    return [(w.name, np.asarray(w.numpy())) for w in opt.weights]


def _assert_same_weights(before, after) -> None:
    assert [n for n, _ in after] == [n for n, _ in before]
    for (_, b), (_, a) in zip(before, after):
        np.testing.assert_array_equal(a, b)


# -- 1. reading a packed variable while JAX traces -----------------------------------


def test_a_packed_variable_read_in_a_jit_stays_readable():
    a, b = Variable([1.0], name="a"), Variable([2.0], name="b")
    opt = optimizers.SGD(0.1)
    opt.apply_gradients([(jnp.ones(1), a), (jnp.ones(1), b)])  # packed together
    assert opt._groups
    np.testing.assert_allclose(jax.jit(lambda: a.value * 2)(), [1.8], rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), [0.9], rtol=1e-6)
    opt.apply_gradients([(jnp.ones(1), a), (jnp.ones(1), b)])
    np.testing.assert_allclose([a.numpy(), b.numpy()], [[0.8], [1.8]], rtol=1e-6)


def test_get_slot_in_a_jit_keeps_the_optimizer_usable():
    def run(packing: bool, in_jit: bool):
        a, b = Variable([1.0]), Variable([2.0])
        opt = optimizers.Adam(0.1)
        opt.packing = packing
        opt.apply_gradients([(jnp.ones(1), a), (jnp.ones(1), b)])
        read = (lambda: opt.get_slot(a, "m") * 2) if in_jit else None
        if read is not None:
            np.testing.assert_allclose(jax.jit(read)(), [0.2], rtol=1e-6)
        opt.apply_gradients([(jnp.ones(1), a), (jnp.ones(1), b)])
        return [a.numpy(), b.numpy(), opt.get_slot(b, "v")]

    for got, want in zip(run(True, True), run(False, False)):
        np.testing.assert_array_equal(got, want)


def _gan(packing: bool, wrap=lambda opt: opt):
    g1, g2 = Variable([1.0], name="g1"), Variable([0.5], name="g2")
    d1, d2 = Variable([2.0], name="d1"), Variable([0.1], name="d2")
    g_opt, d_opt = wrap(optimizers.Adam(0.1)), wrap(optimizers.Adam(0.1))
    for opt in (g_opt, d_opt):
        getattr(opt, "inner_optimizer", opt).packing = packing

    def d_loss():
        return jnp.sum((d1.value * g1.value + d2.value * g2.value) ** 2)

    def g_loss():
        return -d_loss()

    out = []
    for _ in range(2):
        d_opt.minimize(d_loss, [d1, d2])
        g_opt.minimize(g_loss, [g1, g2])  # reads d1, d2 from d_opt's packed buffer
        out.append((g1.numpy(), d1.numpy()))
    return out


def test_two_optimizers_minimizing_each_others_variables():
    # tf-keras 2.21 (legacy Adam): step 0 g1=[1.1] d1=[1.9], step 1
    # g1=[1.1998776] d1=[1.799866].
    expected = [([1.1], [1.9]), ([1.1998776], [1.799866])]
    for packing in (True, False):
        for got, want in zip(_gan(packing), expected):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    lso = _gan(
        True, lambda opt: LossScaleOptimizer(opt, dynamic=False, initial_scale=1)
    )
    for got, want in zip(lso, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_minimize_reading_a_variable_packed_by_another_optimizer():
    a, b = Variable([1.0], name="a"), Variable([2.0], name="b")
    optimizers.SGD(0.1).apply_gradients([(jnp.ones(1), a), (jnp.ones(1), b)])
    opt = optimizers.Adam(0.1)
    for want in ([0.8], [0.7]):  # tf-keras: Adam's first steps move by 0.1
        opt.minimize(lambda: jnp.sum(a.value * b.value), [a])
        np.testing.assert_allclose(a.numpy(), want, rtol=1e-5)
        np.testing.assert_allclose(b.numpy(), [1.9], rtol=1e-6)


# -- 2. minimize steps the variables of each call ---------------------------------------


def _minimize_over_two_lists(opt) -> None:
    a, b = Variable([0.0], name="a"), Variable([0.0], name="b")

    def loss():
        return jnp.sum(a.value * 1.0 + b.value * 10.0)

    opt.minimize(loss, [a])
    opt.minimize(loss, [b])
    np.testing.assert_array_equal([a.numpy(), b.numpy()], [[-1.0], [-10.0]])
    a.assign([0.0])
    b.assign([0.0])
    opt.minimize(loss, [a, b])
    opt.minimize(loss, [b, a])
    np.testing.assert_array_equal([a.numpy(), b.numpy()], [[-2.0], [-20.0]])
    traces = opt._traces  # one step per variable list, none after
    for var_list in ([a], [b], [a, b], [b, a]):
        opt.minimize(loss, var_list)
    assert opt._traces == traces == 4


def test_minimize_updates_the_variables_it_is_given():
    # tf-keras 2.21: a=[-1.] b=[-10.]; then [a, b] and [b, a]: a=[-2.] b=[-20.].
    _minimize_over_two_lists(optimizers.SGD(1.0))
    _minimize_over_two_lists(LossScaleOptimizer(optimizers.SGD(1.0)))


def test_minimize_over_changing_lists_matches_tf_keras_adam():
    # tf-keras 2.21 legacy Adam(0.1), loss 2a + 3b, var lists [a], [b],
    # [a, b], [b], [a] (the same numbers as apply_gradients).
    expected = [
        (0.9000001549720764, 1.0),
        (0.9000001549720764, 0.9255866408348083),
        (0.8141537308692932, 0.8397402167320251),
        (0.8141537308692932, 0.7487705945968628),
        (0.7287629842758179, 0.7487705945968628),
    ]
    a, b = Variable([1.0]), Variable([1.0])
    opt = optimizers.Adam(0.1)

    def loss():  # one function: each list gets its own step all the same
        return jnp.sum(a.value * 2 + b.value * 3)

    for var_list, want in zip(([a], [b], [a, b], [b], [a]), expected):
        opt.minimize(loss, var_list)
        np.testing.assert_allclose([a.numpy()[0], b.numpy()[0]], want, rtol=1e-6)


def test_apply_gradients_transformers_see_the_variables_of_each_call():
    # tf-keras 2.21: a transformer zeroing the bias gradient: kernel=[-1.] bias=[0.]
    def no_bias(pairs):
        return [(g * (0.0 if v.name.startswith("bias") else 1.0), v) for g, v in pairs]

    kernel, bias = Variable([0.0], name="kernel"), Variable([0.0], name="bias")
    opt = optimizers.SGD(1.0, gradient_transformers=[no_bias])
    opt.apply_gradients([(jnp.ones(1), kernel)])
    opt.apply_gradients([(jnp.ones(1), bias)])
    np.testing.assert_array_equal([kernel.numpy(), bias.numpy()], [[-1.0], [0.0]])
    # Without callables that see the variables, one step serves every list.
    plain = optimizers.SGD(1.0)
    for v in (kernel, bias, kernel):
        plain.apply_gradients([(jnp.ones(1), v)])
    assert plain._traces == 1


# -- 3. deep copies ----------------------------------------------------------------------


def test_a_deep_copy_tracks_the_same_variables():
    # tf-keras 2.21: the copy's slots continue: v=[0.8000009, 1.8000009], three
    # weights; the original, stepped after, gives [0.7000015, 1.7000015] and
    # m=[0.19, 0.19] at iterations 2.
    v = Variable([1.0, 2.0])
    opt = optimizers.Adam(0.1)
    opt.apply_gradients([(jnp.ones(2), v)])
    clone = copy.deepcopy(opt)
    assert clone._vars[0] is v
    np.testing.assert_array_equal(clone.get_slot(v, "m"), opt.get_slot(v, "m"))
    clone.apply_gradients([(jnp.ones(2), v)])
    np.testing.assert_allclose(v.numpy(), [0.8000009, 1.8000009], rtol=1e-6)
    assert len(clone.weights) == 3 and int(clone.iterations) == 2
    assert int(opt.iterations) == 1  # slots and iterations were copied
    opt.apply_gradients([(jnp.ones(2), v)])
    np.testing.assert_allclose(v.numpy(), [0.7000015, 1.7000015], rtol=1e-6)
    np.testing.assert_allclose(opt.get_slot(v, "m"), [0.19, 0.19], rtol=1e-6)
    assert int(opt.iterations) == 2 and len(opt.weights) == 3


def test_a_deep_copy_of_a_loss_scale_optimizer_tracks_the_same_variables():
    v = Variable([1.0, 2.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.9))
    opt.minimize(lambda: jnp.sum(v.value), [v])
    clone = copy.deepcopy(opt)
    assert clone.inner_optimizer._vars[0] is v
    clone.minimize(lambda: jnp.sum(v.value), [v])
    np.testing.assert_allclose(v.numpy(), [0.71, 1.71], rtol=1e-6)  # momentum kept
    assert len(clone.weights) == 2


@pytest.mark.parametrize("opt_first", [True, False])
def test_copying_the_variables_too_gives_a_copy_tracking_the_copies(opt_first):
    vs = [Variable([1.0, 2.0]), Variable([3.0])]
    opt = optimizers.Adam(0.1)
    grads = [jnp.ones(2), jnp.ones(1)]
    opt.apply_gradients(zip(grads, vs))
    if opt_first:
        twin, twin_vs = copy.deepcopy((opt, vs))
    else:
        twin_vs, twin = copy.deepcopy((vs, opt))
    assert all(t is not v for t, v in zip(twin_vs, vs))
    assert all(t is c for t, c in zip(twin._vars, twin_vs))
    before = [v.numpy() for v in vs]
    twin.apply_gradients(zip(grads, twin_vs))
    for v, b in zip(vs, before):
        np.testing.assert_array_equal(v.numpy(), b)
    opt.apply_gradients(zip(grads, vs))
    for t, v in zip(twin_vs, vs):
        np.testing.assert_array_equal(t.numpy(), v.numpy())


def test_a_copy_and_its_original_stepping_the_same_packed_variables():
    def run(packing: bool):
        vs = [Variable(np.arange(3.0, dtype=np.float32) + i) for i in range(3)]
        opt = optimizers.Adam(0.1)
        opt.packing = packing
        opt.apply_gradients(zip([jnp.ones(3)] * 3, vs))
        clone = copy.deepcopy(opt)
        for t in range(4):
            grads = [jnp.full(3, float(t + i)) for i in range(3)]
            (opt if t % 2 else clone).apply_gradients(zip(grads, vs))  # clone first
        return [v.numpy() for v in vs] + [
            np.asarray(o.get_slot(v, "v")) for o in (opt, clone) for v in vs
        ]

    for got, want in zip(run(True), run(False)):
        np.testing.assert_array_equal(got, want)


# -- 8. empty variable lists ----------------------------------------------------------


def test_minimize_of_no_variables_steps_nothing():
    # tf-keras 2.21: minimize(loss, []) returns None and iterations stays 0;
    # apply_gradients([]) too.
    calls = []

    def loss():
        calls.append(1)
        return jnp.float32(1.0)

    for opt in (optimizers.Adam(0.1), LossScaleOptimizer(optimizers.SGD(0.1))):
        calls.clear()
        assert opt.minimize(loss, []) is None
        assert opt.minimize(loss, lambda: []) is None
        assert opt.apply_gradients([]) is None
        assert int(opt.iterations) == 0 and opt.weights == []
        assert len(calls) == 2  # the loss runs, as in tf-keras


# -- 9. nothing changes when a step fails ------------------------------------------------


def test_a_loss_that_raises_registers_nothing():
    a, b = Variable([1.0]), Variable([2.0])
    opt = optimizers.Adam(0.1)
    with pytest.raises(NameError):
        opt.minimize(lambda: undefined_name + a, [a, b])  # noqa: F821
    assert opt.weights == [] and int(opt.iterations) == 0
    opt.minimize(lambda: jnp.sum(a.value * b.value), [a, b])
    before = _weights(opt)
    c = Variable([3.0])
    with pytest.raises(NameError):
        opt.minimize(lambda: undefined_name + c, [a, c])  # noqa: F821
    _assert_same_weights(before, _weights(opt))


def _fail_then_step(make, fail):
    """``make()``'s optimizer stepped over [a, b], then ``fail(opt, a, c, d)``
    (which raises), then a step over [a, c, d]; the weights after the failure
    and the final values."""
    a, b, c, d = (Variable([x], name=n) for x, n in zip((1.0, 2.0, 3.0, 4.0), "abcd"))
    opt = make()
    opt.minimize(lambda: jnp.sum(a.value * b.value), [a, b])
    before = _weights(opt)
    if fail is not None:
        with pytest.raises((ValueError, RuntimeError)):
            fail(opt, a, c, d)
        _assert_same_weights(before, _weights(opt))
    opt.minimize(lambda: jnp.sum(a.value * c.value * d.value), [a, c, d])
    opt.minimize(lambda: jnp.sum(a.value * b.value), [a, b])
    return _weights(opt), [x.numpy() for x in (a, b, c, d)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.Adam(0.1),
        lambda: LossScaleOptimizer(optimizers.Adam(0.1)),
        lambda: _momentum_sgd()(0.1, momentum=0.5),  # custom slots
    ],
)
def test_a_step_that_fails_after_registering_leaves_the_weights(make):
    def wrong_grad_loss(opt, a, c, d):  # raises while the step is traced
        opt.minimize(
            lambda: jnp.sum(a.value * c.value * d.value),
            [a, c, d],
            grad_loss=jnp.ones(3),
        )

    got_weights, got = _fail_then_step(make, wrong_grad_loss)
    want_weights, want = _fail_then_step(make, None)
    _assert_same_weights(want_weights, got_weights)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_apply_gradients_whose_transformer_raises_registers_nothing():
    def boom(pairs):
        raise RuntimeError("boom")

    a = Variable([1.0])
    opt = optimizers.SGD(0.1, momentum=0.9, gradient_transformers=[boom])
    with pytest.raises(RuntimeError, match="boom"):
        opt.apply_gradients([(jnp.ones(1), a)])
    assert opt.weights == [] and int(opt.iterations) == 0
    opt.gradient_transformers = []
    opt.apply_gradients([(jnp.ones(1), a)])
    np.testing.assert_allclose(a.numpy(), [0.9], rtol=1e-6)
    assert len(opt.weights) == 2


# -- 6. in-place calls inside a JAX transformation ---------------------------------

_IN_PLACE_CALLS = {
    "apply_gradients": lambda opt, v: opt.apply_gradients([(jnp.ones(3), v)]),
    "minimize": lambda opt, v: opt.minimize(lambda: jnp.sum(v.value**2), [v]),
    "get_updates": lambda opt, v: opt.get_updates(lambda: jnp.sum(v.value**2), [v]),
    "build": lambda opt, v: opt.build([v]),
    "set_weights": lambda opt, v: opt.set_weights(opt.get_weights()),
    "state": lambda opt, v: setattr(opt, "state", opt.state),
    "iterations": lambda opt, v: setattr(opt, "iterations", 5),
    "learning_rate": lambda opt, v: setattr(opt, "learning_rate", 0.5),
}
_TRANSFORMS = {
    "jit": lambda f: jax.jit(f)(1.0),
    "vmap": lambda f: jax.vmap(f)(jnp.ones(2)),
    "grad": lambda f: jax.grad(lambda x: f(x) * 0.0 + x)(1.0),
}


def _stepped_adam(packing: bool):
    v, w = Variable([1.0, 2.0, 3.0], name="v"), Variable([1.0, 1.0, 1.0], name="w")
    opt = optimizers.Adam(0.1)
    opt.packing = packing
    opt.apply_gradients([(jnp.ones(3), v), (jnp.ones(3), w)])
    return opt, v, w


@pytest.mark.parametrize("transform", sorted(_TRANSFORMS))
@pytest.mark.parametrize("call", sorted(_IN_PLACE_CALLS))
def test_in_place_calls_inside_a_transformation_raise_and_change_nothing(
    call, transform
):
    # Every argument is concrete (closed over), so only the trace state can
    # tell: before the check, the variables and slots kept jit's tracers.
    opt, v, w = _stepped_adam(packing=True)
    before, values = _weights(opt), [v.numpy(), w.numpy()]

    def inside(x):
        _IN_PLACE_CALLS[call](opt, v)
        return x

    with pytest.raises(RuntimeError, match="inside a JAX transformation"):
        _TRANSFORMS[transform](inside)
    _assert_same_weights(before, _weights(opt))
    np.testing.assert_array_equal(v.numpy(), values[0])
    np.testing.assert_array_equal(w.numpy(), values[1])
    assert float(opt.learning_rate) == pytest.approx(0.1)


@pytest.mark.parametrize("packing", [True, False])
def test_an_optimizer_refused_inside_jit_steps_as_one_never_called_there(packing):
    opt, v, w = _stepped_adam(packing)
    ref, rv, rw = _stepped_adam(packing)
    with pytest.raises(RuntimeError, match="`apply_gradients`"):
        jax.jit(lambda: opt.apply_gradients([(jnp.ones(3), v), (jnp.ones(3), w)]))()
    for o, a, b in ((opt, v, w), (ref, rv, rw)):
        o.apply_gradients([(jnp.full(3, 0.5), a), (jnp.full(3, -1.0), b)])
    np.testing.assert_array_equal(v.numpy(), rv.numpy())
    np.testing.assert_array_equal(w.numpy(), rw.numpy())
    _assert_same_weights(_weights(ref), _weights(opt))


def test_loss_scale_optimizer_refuses_inside_jit():
    v = Variable([1.0, 2.0])
    opt = LossScaleOptimizer(optimizers.SGD(0.1))
    with pytest.raises(RuntimeError, match="inside a JAX transformation"):
        jax.jit(lambda: opt.minimize(lambda: jnp.sum(v.value**2), [v]))()
    assert int(opt.iterations) == 0
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_an_optimizer_made_inside_jit_holds_no_tracer():
    made = []

    def build_inside(x):
        made.append(optimizers.Adam(learning_rate=0.1, beta_1=0.8))
        return x

    jax.jit(build_inside)(1.0)
    opt = made[0]
    assert not isinstance(opt.state.hyperparams["learning_rate"], jax.core.Tracer)
    v = Variable([1.0])
    opt.apply_gradients([(jnp.ones(1), v)])
    np.testing.assert_allclose(v.numpy(), [0.9], rtol=1e-5)


def test_stateless_apply_still_runs_inside_jit():
    opt, v, w = _stepped_adam(packing=True)
    (new_v, _), state = jax.jit(opt.stateless_apply)(
        opt.state, [jnp.ones(3), jnp.ones(3)], [v.value, w.value]
    )
    assert int(state.iterations) == 2
    assert new_v.shape == (3,)


# -- 7. a loss function made anew on each call -------------------------------------


def _minimize_extras(opt) -> int:
    return sum(1 for k in opt._steps if k[0] == "extras")


def test_a_new_lambda_per_call_warns_once_and_keeps_a_bounded_cache():
    from optaxish.optimizers._minimize import MINIMIZE_CACHE_SIZE

    w, ref_w = Variable([1.0, -2.0]), Variable([1.0, -2.0])
    opt, ref = optimizers.SGD(0.01), optimizers.SGD(0.01)
    once = lambda: jnp.sum(ref_w.value**2)  # noqa: E731
    steps = MINIMIZE_CACHE_SIZE + 8
    with pytest.warns(UserWarning, match="each compiled a new step") as record:
        for _ in range(steps):
            opt.minimize(lambda: jnp.sum(w.value**2), [w])  # the TF2 idiom
            ref.minimize(once, [ref_w])
    assert sum("each compiled a new step" in str(r.message) for r in record) == 1
    assert record[0].filename == __file__  # points at the caller's line
    assert _minimize_extras(opt) == MINIMIZE_CACHE_SIZE  # the oldest were dropped
    assert _minimize_extras(ref) == 1 and ref._traces == 1
    np.testing.assert_array_equal(w.numpy(), ref_w.numpy())


def test_losses_defined_once_do_not_warn(recwarn):
    w = Variable([1.0, -2.0])
    opt = optimizers.Adam(0.01)
    losses = [lambda: jnp.sum(w.value**2), lambda: jnp.sum(jnp.abs(w.value))]
    for _ in range(5):
        for loss in losses:
            opt.minimize(loss, [w])
    assert not [r for r in recwarn if "compiled a new step" in str(r.message)]
    assert opt._traces == 2


def test_an_evicted_loss_compiles_again_with_the_same_numbers():
    from optaxish.optimizers._minimize import MINIMIZE_CACHE_SIZE

    w = Variable([3.0])
    opt = optimizers.SGD(0.1)
    first = lambda: jnp.sum(w.value**2)  # noqa: E731
    opt.minimize(first, [w])
    others = [
        (lambda k=k: jnp.sum(w.value**2) * 0.0 + k) for k in range(MINIMIZE_CACHE_SIZE)
    ]
    with pytest.warns(UserWarning):
        for loss in others:
            opt.minimize(loss, [w])  # zero gradients: w stays 2.4
    traces = opt._traces
    opt.minimize(first, [w])  # evicted: traced again
    assert opt._traces == traces + 1
    np.testing.assert_allclose(w.numpy(), [2.4 * 0.8], rtol=1e-6)


# -- 8. a second optimizer over variables another one packed -----------------------


def test_a_second_optimizer_takes_the_variables_back_and_packs_them():
    vs, ref_vs = four_variables(), four_variables()
    first, ref_first = (
        optimizers.SGD(0.1, momentum=0.9),
        optimizers.SGD(0.1, momentum=0.9),
    )
    for k in range(3):
        first.apply_gradients(zip(four_gradients(k), vs))
        ref_first.apply_gradients(zip(four_gradients(k), ref_vs))
    assert first._groups
    momentum = [np.asarray(first.get_slot(v, "momentum")) for v in vs]
    first.apply_gradients(zip(four_gradients(3), vs))  # packed again after the reads
    ref_first.apply_gradients(zip(four_gradients(3), ref_vs))
    second, ref_second = optimizers.Adam(0.05), optimizers.Adam(0.05)
    for k in range(3):
        second.apply_gradients(zip(four_gradients(k), vs))
        ref_second.apply_gradients(zip(four_gradients(k), ref_vs))
    # The new optimizer packs (it used to step through the first one's group,
    # one read and one write per variable), with the same numbers.
    assert second._groups and not first._groups
    assert all(v.__dict__["_store"].owner() is second for v in vs)
    for v, r in zip(vs, ref_vs):
        np.testing.assert_array_equal(v.numpy(), r.numpy())
        np.testing.assert_array_equal(
            second.get_slot(v, "m"), ref_second.get_slot(r, "m")
        )
    # The first optimizer kept its slots, and steps on (now unpacked).
    for v, r, m in zip(vs, ref_vs, momentum):
        assert first.get_slot(v, "momentum").shape == m.shape
        np.testing.assert_array_equal(
            first.get_slot(v, "momentum"), ref_first.get_slot(r, "momentum")
        )
    for k in range(2):  # in turn: neither re-packs on every switch
        first.apply_gradients(zip(four_gradients(k), vs))
        ref_first.apply_gradients(zip(four_gradients(k), ref_vs))
        second.apply_gradients(zip(four_gradients(k), vs))
        ref_second.apply_gradients(zip(four_gradients(k), ref_vs))
        assert not first._groups and second._groups
    for v, r in zip(vs, ref_vs):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-6)


def test_variables_of_a_dropped_optimizer_are_packed_by_the_next():
    import gc

    vs = four_variables()
    old = optimizers.Adam(0.1)
    old.apply_gradients(zip(four_gradients(0), vs))
    values = [v.numpy() for v in vs]
    del old
    gc.collect()  # the group outlives its optimizer (the variables hold it)
    new = optimizers.SGD(1.0)
    new.apply_gradients(zip(four_gradients(1), vs))
    assert new._groups
    for v, before, g in zip(vs, values, four_gradients(1)):
        np.testing.assert_allclose(v.numpy(), before - np.asarray(g), rtol=1e-6)


@pytest.mark.parametrize("cls", [optimizers.Adam, optimizers.SGD, optimizers.RMSprop])
def test_a_failed_first_step_keeps_the_python_number_config(cls):
    # tf-keras gives the constructor's Python numbers until the first step
    # creates the float32 hyperparameters; a first step that fails (a bad
    # gradient, a loss or a transformer that raises) creates nothing.
    def transformer(grads_and_vars):
        raise ZeroDivisionError("from the transformer")

    var = Variable([1.0, 2.0])
    opt = cls(0.1, gradient_transformers=[transformer])
    with pytest.raises(ValueError, match="has shape"):
        opt.apply_gradients([(jnp.ones(3), var)])
    with pytest.raises(ZeroDivisionError, match="from the transformer"):
        opt.apply_gradients([(jnp.ones(2), var)])
    with pytest.raises(ZeroDivisionError):
        opt.minimize(lambda: 1 / 0, [var])
    lr = opt.get_config()["learning_rate"]
    assert type(lr) is float and lr == 0.1  # not float32's 0.10000000149...
    opt.gradient_transformers = []
    opt.apply_gradients([(jnp.ones(2), var)])
    assert float(opt.get_config()["learning_rate"]) == float(np.float32(0.1))
